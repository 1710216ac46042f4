// The records layer: characters, voices and conversations through the REST API (docs/api.md),
// which runs the same CRUD operations as the WebSocket. REST works while the socket is
// reconnecting, and it is the only way to list the TTS engine's voices. Every failure is an
// ApiError whose message is the server's own explanation (it names the field at fault).
import { logIn } from './login.ts';
import type { EndpointDraft, EndpointKind, EndpointSettingsBody, EndpointsView, EndpointTestResult } from './types.ts';
import type { Character, CharacterCreate, CharacterUpdate, Conversation, EngineVoices, Lorebook, LorebookCreate, Message, Persona, PersonaCreate, Voice, VoiceCreate, VoiceUpdate } from './types.ts';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** One REST call (a JSON body, or FormData for file uploads); a 401 (the server has an AUTH_TOKEN) asks for the token and tries once more. */
async function call<T>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown, retried = false): Promise<T> {
  let response: Response;
  const form = body instanceof FormData;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined || form ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: form ? body : JSON.stringify(body) }),
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
    throw new ApiError(reason || 'The server could not do that.', response.status);
  }
  return value as T;
}

const seg = encodeURIComponent;
function formOf(files: readonly File[]): FormData {
  const form = new FormData();
  for (const file of files) form.append('file', file, file.name);
  return form;
}
type CharacterPatch = Omit<CharacterUpdate, 'id'>;
type VoicePatch = Omit<VoiceUpdate, 'voice'>;

export const api = {
  characters: () => call<Character[]>('GET', '/api/characters'),
  searchCharacters: (query: string) => call<Character[]>('GET', `/api/characters?q=${seg(query)}`),
  createCharacter: (input: CharacterCreate) => call<Character>('POST', '/api/characters', input),
  updateCharacter: (id: string, patch: CharacterPatch) => call<Character>('PATCH', `/api/characters/${seg(id)}`, patch),
  deleteCharacter: (id: string) => call<{ id: string }>('DELETE', `/api/characters/${seg(id)}`),
  /** Character cards (PNG or JSON), several at once (docs/api.md, Character cards). */
  importCards: (files: readonly File[]) => call<{ characters: Character[] }>('POST', '/api/characters/import', formOf(files)),
  /** A voice's stored reference clip: its transcript, length and rate (404 when it has none). */
  reference: (voice: string) => call<{ transcript: string; seconds: number; sample_rate: number }>('GET', `/api/voices/${seg(voice)}/reference`),
  referenceAudioUrl: (voice: string) => `/api/voices/${seg(voice)}/reference/audio`,
  /** The text of a recording, by the server's speech input engine (503 when it has none). */
  transcribe: (audio: Blob, name: string) => {
    const form = new FormData();
    form.append('audio', audio, name);
    return call<{ text: string }>('POST', '/api/transcriptions', form);
  },
  /** A clone voice's reference clip (WAV, MP3, Ogg Opus, FLAC or WebM/Opus) and its transcript (docs/api.md). */
  uploadReference: (voice: string, clip: Blob, name: string, transcript: string) => {
    const form = new FormData();
    form.append('file', clip, name);
    form.append('transcript', transcript);
    return call<{ voice: Voice; clip: { seconds: number; sample_rate: number; format: string } }>('POST', `/api/voices/${seg(voice)}/reference`, form);
  },
  exportUrl: (id: string, format: 'png' | 'json', spec: 'v2' | 'v3') => `/api/characters/${seg(id)}/export?format=${format}&spec=${spec}`,

  personas: () => call<Persona[]>('GET', '/api/personas'),
  createPersona: (input: PersonaCreate) => call<Persona>('POST', '/api/personas', input),
  updatePersona: (id: string, patch: PersonaCreate) => call<Persona>('PATCH', `/api/personas/${seg(id)}`, patch),
  deletePersona: (id: string) => call<{ id: string }>('DELETE', `/api/personas/${seg(id)}`),

  lorebooks: () => call<Lorebook[]>('GET', '/api/lorebooks'),
  /** SillyTavern world-info files or character_books, several at once. */
  importLorebooks: (files: readonly File[]) => call<{ lorebooks: Lorebook[] }>('POST', '/api/lorebooks/import', formOf(files)),
  createLorebook: (input: LorebookCreate) => call<Lorebook>('POST', '/api/lorebooks', input),
  updateLorebook: (id: string, patch: Partial<LorebookCreate>) => call<Lorebook>('PATCH', `/api/lorebooks/${seg(id)}`, patch),
  deleteLorebook: (id: string) => call<{ id: string }>('DELETE', `/api/lorebooks/${seg(id)}`),

  voices: () => call<Voice[]>('GET', '/api/voices'),
  engines: () => call<EngineVoices>('GET', '/api/voices/engines'),
  createVoice: (input: VoiceCreate) => call<Voice>('POST', '/api/voices', input),
  updateVoice: (voice: string, patch: VoicePatch) => call<Voice>('PATCH', `/api/voices/${seg(voice)}`, patch),
  deleteVoice: (voice: string) => call<{ voice: string }>('DELETE', `/api/voices/${seg(voice)}`),

  conversations: () => call<Conversation[]>('GET', '/api/conversations?limit=200'),
  conversation: (id: string) => call<Conversation>('GET', `/api/conversations/${seg(id)}`),
  renameConversation: (id: string, title: string) => call<Conversation>('PATCH', `/api/conversations/${seg(id)}`, { title }),
  deleteConversation: (id: string) => call<{ conversation_id: string }>('DELETE', `/api/conversations/${seg(id)}`),
  messages: (id: string) => call<Message[]>('GET', `/api/conversations/${seg(id)}/messages`),

  // The connection panel (docs/api.md, "Endpoint settings"): keys come back masked, never whole.
  endpoints: () => call<EndpointsView>('GET', '/api/endpoints'),
  saveEndpoint: (kind: EndpointKind, body: EndpointSettingsBody) => call<EndpointsView>('PUT', `/api/endpoints/${kind}`, body),
  forgetEndpoint: (kind: EndpointKind) => call<EndpointsView>('DELETE', `/api/endpoints/${kind}`),
  endpointModels: (kind: EndpointKind, draft: EndpointDraft) => call<{ models: string[] }>('POST', `/api/endpoints/${kind}/models`, draft),
  testEndpoint: (kind: EndpointKind, draft: EndpointDraft) => call<EndpointTestResult>('POST', `/api/endpoints/${kind}/test`, draft),
};
