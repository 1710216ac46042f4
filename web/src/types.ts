// The wire types, taken from the server's own schemas (src/protocol.ts) so client and server
// share one source. Type-only imports: nothing of zod reaches the bundle.
import type { INPUT_SAMPLE_RATE as ServerInputRate, ModelSettings } from '../../src/protocol.ts';

export type {
  Character,
  CharacterCreate,
  CharacterUpdate,
  Conversation,
  ErrorCode,
  Message,
  ModelSettings,
  ServerMessage,
  ServerMessageOf,
  ServerMessageType,
  SttState,
  Voice,
  VoiceCreate,
  VoiceUpdate,
} from '../../src/protocol.ts';

/** Microphone frames: PCM16 LE mono at this rate (tied to the server's constant by its type). */
export const INPUT_SAMPLE_RATE: typeof ServerInputRate = 16_000;

/** Every non-CRUD message this client sends (docs/protocol.md, Client → server). */
export type ClientMessage = (
  | { type: 'ping' }
  | { type: 'user_message'; data: { text: string } }
  | { type: 'interrupt' }
  | { type: 'model_settings'; data: Partial<ModelSettings> }
  | { type: 'session_settings'; data: { user_name: string } }
  | { type: 'clear_history' }
  | { type: 'load_conversation'; data: { conversation_id: string } }
  | { type: 'refresh_active_characters' }
  | { type: 'preview_voice'; data: { voice: string; text?: string } }
  | { type: 'start_listening' }
  | { type: 'stop_listening' }
) & { request_id?: string };

/** GET /api/voices/engines */
export interface EngineVoices {
  engines: Array<{ engine: string; sample_rate: number; default_voice: string; voices: string[] }>;
}
