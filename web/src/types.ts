// The wire types, taken from the server's own schemas (src/protocol.ts) so client and server
// share one source. Type-only imports: nothing of zod reaches the bundle.
import type { CastSettings, INPUT_SAMPLE_RATE as ServerInputRate, ModelSettings, VoiceDefinition } from '../../src/protocol.ts';

export type {
  Capabilities,
  EndpointDraft,
  EndpointKind,
  EndpointSettingsBody,
  EndpointsView,
  EndpointTestResult,
  EndpointView,
  LlmState,
  CastSettings,
  Character,
  CharacterCreate,
  CharacterUpdate,
  Conversation,
  ErrorCode,
  Lorebook,
  LorebookCreate,
  Message,
  ModelSettings,
  NarrationMode,
  Persona,
  PersonaCreate,
  ReplyStrategy,
  ServerMessage,
  ServerMessageOf,
  ServerMessageType,
  StyleProsody,
  SttState,
  Voice,
  VoiceCreate,
  VoiceDefinition,
  VoiceStyle,
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
  | { type: 'preview_voice'; data: { voice: string | VoiceDefinition; text?: string } }
  | { type: 'start_listening' }
  | { type: 'stop_listening' }
  // The conversation's persona and lorebooks (the CRUD update_conversation, which a session applies to its own conversation).
  | { type: 'update_conversation'; data: { conversation_id: string; persona_id?: string | null; lorebook_ids?: string[] } & Partial<Pick<CastSettings, 'active_characters' | 'reply_strategy' | 'allow_self_responses' | 'muted' | 'auto_mode' | 'auto_mode_delay_ms'>> }
  // Force-talk: a cast member speaks now (the cast bar).
  | { type: 'trigger_character'; data: { character_id: string } }
  // Message operations (docs/protocol.md, "Message operations").
  | { type: 'playback_position'; data: { message_id: string; played_ms: number } }
  | { type: 'regenerate'; data: { message_id?: string } }
  | { type: 'select_alternative'; data: { message_id: string; index: number } }
  | { type: 'continue'; data: { message_id: string } }
  | { type: 'edit_message'; data: { message_id: string; content: string } }
  | { type: 'delete_message'; data: { message_id: string } }
) & { request_id?: string };

/** GET /api/voices/engines */
export interface EngineVoices {
  /** The one rate all speech audio leaves at. */
  output_sample_rate?: number;
  /** Every configured engine, the default first; `methods`: the voice methods it can speak. */
  engines: Array<{ engine: string; default?: boolean; sample_rate: number; default_voice: string; methods?: string[]; voices: string[]; voice_labels?: VoiceLabel[] }>;
}

/** An engine voice named for people (espeak): its language, and its variant (null: the language's own voice). */
export interface VoiceLabel {
  voice: string;
  language: string;
  variant: string | null;
}
