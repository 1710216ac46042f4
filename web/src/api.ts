// The records layer: characters, voices and conversations through the REST API (docs/api.md),
// which runs the same CRUD operations as the WebSocket. REST works while the socket is
// reconnecting, and it is the only way to list the TTS engine's voices. Every failure is an
// ApiError whose message is the server's own explanation (it names the field at fault).
import { logIn } from './login.ts';
import type { Character, CharacterCreate, CharacterUpdate, Conversation, EngineVoices, Message, Voice, VoiceCreate, VoiceUpdate } from './types.ts';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** One REST call; a 401 (the server has an AUTH_TOKEN) asks for the token and tries once more. */
async function call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown, retried = false): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    throw new ApiError('The server cannot be reached.', 0);
  }
  if (response.status === 401 && !retried) {
    await logIn();
    return call<T>(method, path, body, true);
  }
  const value: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const reason = typeof value === 'object' && value !== null && typeof (value as { error?: unknown }).error === 'string' ? (value as { error: string }).error : response.statusText;
    throw new ApiError(reason || `HTTP ${response.status}`, response.status);
  }
  return value as T;
}

const seg = encodeURIComponent;
type CharacterPatch = Omit<CharacterUpdate, 'id'>;
type VoicePatch = Omit<VoiceUpdate, 'voice'>;

export const api = {
  characters: () => call<Character[]>('GET', '/api/characters'),
  searchCharacters: (query: string) => call<Character[]>('GET', `/api/characters?q=${seg(query)}`),
  createCharacter: (input: CharacterCreate) => call<Character>('POST', '/api/characters', input),
  updateCharacter: (id: string, patch: CharacterPatch) => call<Character>('PATCH', `/api/characters/${seg(id)}`, patch),
  deleteCharacter: (id: string) => call<{ id: string }>('DELETE', `/api/characters/${seg(id)}`),

  voices: () => call<Voice[]>('GET', '/api/voices'),
  engines: () => call<EngineVoices>('GET', '/api/voices/engines'),
  createVoice: (input: VoiceCreate) => call<Voice>('POST', '/api/voices', input),
  updateVoice: (voice: string, patch: VoicePatch) => call<Voice>('PATCH', `/api/voices/${seg(voice)}`, patch),
  deleteVoice: (voice: string) => call<{ voice: string }>('DELETE', `/api/voices/${seg(voice)}`),

  conversations: () => call<Conversation[]>('GET', '/api/conversations?limit=200'),
  renameConversation: (id: string, title: string) => call<Conversation>('PATCH', `/api/conversations/${seg(id)}`, { title }),
  deleteConversation: (id: string) => call<{ conversation_id: string }>('DELETE', `/api/conversations/${seg(id)}`),
  messages: (id: string) => call<Message[]>('GET', `/api/conversations/${seg(id)}/messages`),
};
