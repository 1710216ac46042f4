// The wire contract (docs/protocol.md): one zod schema per message, both directions, and the
// records they carry. Server, REST API, tests and the web client all take their types from here.
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Records (snake_case on the wire)

const timestamp = z.string();

// PostgreSQL cannot store a NUL character in text (or jsonb), and an unpaired UTF-16 surrogate
// has no UTF-8 form: such text would fail its insert, so it is refused at the schema.
const NUL = /\u0000/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');
export const UNSTORABLE_TEXT = 'must not contain NUL characters or unpaired surrogates';
export const isStorableText = (value: string): boolean => !NUL.test(value) && !LONE_SURROGATE.test(value);
/** A string PostgreSQL can store; every string field that is stored or sent to SQL uses it. */
export const storableText = () => z.string().refine(isStorableText, UNSTORABLE_TEXT);
/** Server-produced text (LLM output, transcripts) made storable: NULs and unpaired surrogates removed. */
export const cleanText = (value: string): string =>
  isStorableText(value) ? value : value.replace(/\u0000/g, '').replace(LONE_SURROGATES, ''); // per LLM delta: test before copying

/** Every string (and key) inside a JSON value is storable text (for jsonb columns). */
export function isStorableJson(value: unknown): boolean {
  if (typeof value === 'string') return isStorableText(value);
  if (Array.isArray(value)) return value.every(isStorableJson);
  if (typeof value === 'object' && value !== null) return Object.entries(value).every(([k, v]) => isStorableText(k) && isStorableJson(v));
  return true;
}

const text = (max: number) => storableText().max(max);
const id = storableText().trim().min(1).max(200);

/**
 * A `__proto__` key anywhere in a JSON value. JSON.parse keeps it as data, but zod (and any
 * `obj[key] = …` copy) drops it or turns it into the copy's prototype, so it is refused outright.
 */
export function protoKeyPath(value: unknown, path = ''): string | undefined {
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = protoKeyPath(item, `${path}[${i}]`);
      if (found !== undefined) return found;
    }
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      if (key === '__proto__') return path ? `${path}.__proto__` : '__proto__';
      const found = protoKeyPath(item, path ? `${path}.${key}` : key);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}
export const PROTO_KEY = 'must not contain a "__proto__" key';
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * SillyTavern's `extensions.talkativeness`: a number or a numeric string, held to 0–1. Undefined
 * when absent or not a number ("", null, "abc"): the default 0.5 applies then, as SillyTavern's
 * editor reads such a card; the card's own value is kept as written (export gives it back).
 */
export function talkativenessOf(extensions: Record<string, unknown> | undefined): number | undefined {
  if (!extensions || !Object.hasOwn(extensions, 'talkativeness')) return undefined;
  const raw = extensions.talkativeness;
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN;
  return Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : undefined;
}

/** Any JSON object, kept as given (own keys only, all storable, no `__proto__`). */
const jsonObject = (what: string) =>
  z.custom<Record<string, unknown>>(isPlainObject, `${what} must be an object`)
    .refine((v) => protoKeyPath(v) === undefined, PROTO_KEY)
    .refine(isStorableJson, UNSTORABLE_TEXT);
/** A card's `extensions` (SillyTavern, RisuAI … keep their data there): any object. */
export const extensionsSchema = jsonObject('extensions');
/** Any JSON value for a card's fields Chorus does not model (V3's assets, nickname …). */
const jsonValue = z.unknown().refine((v) => protoKeyPath(v) === undefined, PROTO_KEY).refine(isStorableJson, UNSTORABLE_TEXT);

/** A lorebook entry (Character Card V2/V3): the spec's fields checked, any others kept. */
export const characterBookEntrySchema = z.looseObject({
  keys: z.array(text(1_000)).max(1_000),
  content: text(100_000),
  extensions: jsonObject('extensions').optional(),
  enabled: z.boolean(),
  insertion_order: z.number(),
  case_sensitive: z.boolean().nullable().optional(),
  use_regex: z.boolean().nullable().optional(),
  constant: z.boolean().nullable().optional(),
  name: text(1_000).nullable().optional(),
  priority: z.number().nullable().optional(),
  id: z.union([z.number(), text(200)]).nullable().optional(),
  comment: text(10_000).nullable().optional(),
  selective: z.boolean().nullable().optional(),
  secondary_keys: z.array(text(1_000)).max(1_000).nullable().optional(),
  position: z.union([z.enum(['before_char', 'after_char']), z.number(), text(100)]).nullable().optional(),
});
export const characterBookSchema = jsonValue.pipe(
  z.looseObject({
    name: text(1_000).optional(),
    description: text(10_000).optional(),
    scan_depth: z.number().nullable().optional(),
    token_budget: z.number().nullable().optional(),
    recursive_scanning: z.boolean().nullable().optional(),
    extensions: jsonObject('extensions').optional(),
    entries: z.array(characterBookEntrySchema).max(10_000),
  }),
);
export type CharacterBook = z.infer<typeof characterBookSchema>;

/**
 * What of a character's replies is spoken (src/speech/narration.ts): `all` (everything, actions
 * included), `dialogue_only` (only quoted dialogue), `narrated` (dialogue in the character's voice,
 * *actions* and unquoted text in the narrator voice). Code and URLs are never spoken.
 */
export const narrationModes = ['all', 'dialogue_only', 'narrated'] as const;
export type NarrationMode = (typeof narrationModes)[number];

/**
 * Higgs Audio v3's sentence-level delivery tags (docs.boson.ai "Tags", the model's PROMPTING.md):
 * a voice's or a character's `style` becomes `<|emotion:…|>`, `<|style:…|>` and `<|prosody:…|>`
 * in front of each sentence it speaks on the higgs engine (src/speech/voice-style.ts); other
 * engines never see them. The inline ones (sfx, pause) belong in the text itself, not in a setting.
 */
export const styleEmotions = [
  'affection', 'amusement', 'anger', 'arousal', 'awe', 'bitterness', 'confusion', 'contemplation', 'contentment', 'determination', 'disgust',
  'elation', 'enthusiasm', 'fear', 'helplessness', 'longing', 'pride', 'relief', 'sadness', 'shame', 'surprise',
] as const;
export const styleStyles = ['singing', 'shouting', 'whispering'] as const;
/** Sentence-level prosody, in groups of which a style takes at most one each (speed, pitch, expressiveness). */
export const styleProsodyGroups = {
  speed: ['speed_very_slow', 'speed_slow', 'speed_fast', 'speed_very_fast'],
  pitch: ['pitch_low', 'pitch_high'],
  expressiveness: ['expressive_low', 'expressive_high'],
} as const;
export type StyleProsodyGroup = keyof typeof styleProsodyGroups;
export const styleProsody = Object.values(styleProsodyGroups).flat() as Array<(typeof styleProsodyGroups)[StyleProsodyGroup][number]>;
export type StyleProsody = (typeof styleProsody)[number];
const PROSODY_GROUP = new Map<string, StyleProsodyGroup>(
  (Object.entries(styleProsodyGroups) as Array<[StyleProsodyGroup, readonly string[]]>).flatMap(([group, tags]) => tags.map((tag) => [tag, group] as const)),
);
/** The prosody group a tag belongs to (speed_slow → speed); undefined for a tag that is not sentence-level prosody. */
export const prosodyGroupOf = (tag: string): StyleProsodyGroup | undefined => PROSODY_GROUP.get(tag);

/** A delivery style: each part optional; a character's parts override its voice's, part by part. */
export const voiceStyleSchema = z.strictObject({
  emotion: z.enum(styleEmotions).nullable().optional(),
  style: z.enum(styleStyles).nullable().optional(),
  prosody: z
    .array(z.enum(styleProsody as [StyleProsody, ...StyleProsody[]]))
    .max(3)
    .refine((tags) => new Set(tags.map(prosodyGroupOf)).size === tags.length, 'prosody takes at most one speed, one pitch and one expressiveness tag')
    .optional(),
});
export type VoiceStyle = z.infer<typeof voiceStyleSchema>;

export const characterSchema = z.object({
  id: z.string(),
  name: z.string(),
  voice: z.string().nullable(),
  system_prompt: z.string(),
  image_url: z.string().nullable(),
  images: z.array(z.string()),
  is_active: z.boolean(),
  last_message: z.string().nullable(),
  /** How readily the character speaks up unaddressed, 0–1 (SillyTavern's talkativeness). */
  talkativeness: z.number(),
  /** What of its replies is spoken (null = NARRATION); its narrator voice (null = NARRATOR_VOICE). */
  narration: z.enum(narrationModes).nullable(),
  narrator_voice: z.string().nullable(),
  /** Its delivery style on Higgs v3 (part by part over its voice's); null = its voice's only. */
  style: voiceStyleSchema.nullable(),
  // Character Card V2/V3 fields (docs/protocol.md, Character).
  description: z.string(),
  personality: z.string(),
  scenario: z.string(),
  first_mes: z.string(),
  mes_example: z.string(),
  creator_notes: z.string(),
  post_history_instructions: z.string(),
  alternate_greetings: z.array(z.string()),
  tags: z.array(z.string()),
  creator: z.string(),
  character_version: z.string(),
  character_book: z.looseObject({ entries: z.array(z.looseObject({})) }).nullable(),
  extensions: z.record(z.string(), z.unknown()),
  // Character Card V3 fields (absent in the card: the empty value, or null for the dates).
  /** Stands for `{{char}}` in the prompt when not empty. */
  nickname: z.string(),
  /** Greetings offered only in a conversation with more than one character. */
  group_only_greetings: z.array(z.string()),
  creator_notes_multilingual: z.record(z.string(), z.string()),
  assets: z.array(z.looseObject({ type: z.string(), uri: z.string() })),
  /** Where the card came from (ids or URLs); the V3 spec asks that users not edit it. */
  source: z.array(z.string()),
  /** Unix seconds (the card's own, as it came). */
  creation_date: z.number().nullable(),
  modification_date: z.number().nullable(),
  created_at: timestamp,
  updated_at: timestamp,
});
export type Character = z.infer<typeof characterSchema>;
/** The Character Card V3 fields of a Character, kept in the card as they came (src/db/repo.ts). */
export const cardV3Fields = ['nickname', 'group_only_greetings', 'creator_notes_multilingual', 'assets', 'source', 'creation_date', 'modification_date'] as const;
export type CardV3Field = (typeof cardV3Fields)[number];

export const voiceMethods = ['clone', 'description', 'preset'] as const;
export type VoiceMethod = (typeof voiceMethods)[number];
/** Speech engines (docs/engines.md): `higgs` is Higgs Audio v3 (Boson's speech API), `higgs-v2` boson-ai's vLLM server. */
export const ttsEngineNames = ['espeak', 'openai', 'higgs', 'higgs-v2'] as const;
export type TtsEngineName = (typeof ttsEngineNames)[number];

export const voiceSchema = z.object({
  voice: z.string(),
  method: z.enum(voiceMethods),
  audio_path: z.string().nullable(),
  text_path: z.string().nullable(),
  speaker_desc: z.string().nullable(),
  scene_prompt: z.string().nullable(),
  audio_tokens: z.unknown().nullable(),
  engine: z.enum(ttsEngineNames).nullable(),
  engine_voice: z.string().nullable(),
  speed: z.number(),
  pitch: z.number(),
  /** Its delivery style on Higgs v3 (inline tags before each sentence); null = none. */
  style: voiceStyleSchema.nullable(),
  created_at: timestamp,
  updated_at: timestamp,
});
export type Voice = z.infer<typeof voiceSchema>;

/** Who answers a message (docs/protocol.md, "Who answers"). */
export const replyStrategies = ['natural', 'list', 'manual', 'pooled'] as const;
export type ReplyStrategy = (typeof replyStrategies)[number];
/** auto_mode_delay_ms when none is given: the pause after the last reply finished playing. */
export const DEFAULT_AUTO_MODE_DELAY_MS = 5000;

export const conversationSchema = z.object({
  conversation_id: z.string(),
  title: z.string(),
  /** The conversation's cast (character ids, in cast order). */
  active_characters: z.array(z.string()),
  reply_strategy: z.enum(replyStrategies),
  allow_self_responses: z.boolean(),
  /** Cast members who never answer unless forced (trigger_character). */
  muted: z.array(z.string()),
  auto_mode: z.boolean(),
  auto_mode_delay_ms: z.number().int(),
  /** Who the user speaks as in this conversation; null: the default persona. */
  persona_id: z.string().nullable(),
  /** Standalone lorebooks attached to this conversation (their entries join the characters' own). */
  lorebook_ids: z.array(z.string()),
  created_at: timestamp,
  updated_at: timestamp,
});
export type Conversation = z.infer<typeof conversationSchema>;

/** Who the user speaks as: `{{user}}` is `name`, `description` goes into every character's prompt. */
export const personaSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  image_url: z.string().nullable(),
  /** The persona of conversations that choose none (at most one persona is the default). */
  is_default: z.boolean(),
  created_at: timestamp,
  updated_at: timestamp,
});
export type Persona = z.infer<typeof personaSchema>;

/** A standalone lorebook (SillyTavern world info), its entries in character_book form. */
export const lorebookSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  book: z.looseObject({ entries: z.array(z.looseObject({})) }),
  created_at: timestamp,
  updated_at: timestamp,
});
export type Lorebook = z.infer<typeof lorebookSchema>;

export const roles = ['user', 'assistant', 'system'] as const;
/** How a message ended: whole, cut off by the user (interrupt), or cut short by a failure (the LLM's). */
export const messageStatuses = ['complete', 'interrupted', 'failed'] as const;
export type MessageStatus = (typeof messageStatuses)[number];
export const messageSchema = z.object({
  message_id: z.string(),
  conversation_id: z.string(),
  role: z.enum(roles),
  name: z.string().nullable(),
  content: z.string(),
  character_id: z.string().nullable(),
  interrupted: z.boolean(),
  status: z.enum(messageStatuses),
  /** Every version of a regenerated reply (swipes), oldest first; [] when it has just one. */
  alternatives: z.array(z.string()),
  /** Which of `alternatives` is `content` (0 when there are none). */
  alternative_index: z.number().int(),
  created_at: timestamp,
  updated_at: timestamp,
});
export type Message = z.infer<typeof messageSchema>;

// ---------------------------------------------------------------------------------------------
// CRUD payloads (also the REST bodies)

const nullableText = (max: number) => text(max).nullable().optional();
/** Long card text (descriptions, example dialogue): cards run to tens of thousands of characters. */
const CARD_TEXT_MAX = 100_000;
/** A whole card's worth of text (an asset's data: URL). */
const MAX_CARD_CHARS = 12_000_000;
/** The Character Card fields a character can be given (create, update, import). */
function characterCardFields() {
  const cardText = text(CARD_TEXT_MAX).optional();
  return {
    talkativeness: z.number().min(0).max(1).optional(),
    description: cardText,
    personality: cardText,
    scenario: cardText,
    first_mes: cardText,
    mes_example: cardText,
    creator_notes: cardText,
    post_history_instructions: cardText,
    alternate_greetings: z.array(text(CARD_TEXT_MAX)).max(200).optional(),
    tags: z.array(text(200)).max(500).optional(),
    creator: text(1_000).optional(),
    character_version: text(1_000).optional(),
    character_book: characterBookSchema.nullable().optional(),
    extensions: extensionsSchema.optional(),
    nickname: text(1_000).optional(),
    group_only_greetings: z.array(text(CARD_TEXT_MAX)).max(200).optional(),
    creator_notes_multilingual: jsonObject('creator_notes_multilingual').pipe(z.record(text(100), text(CARD_TEXT_MAX))).optional(),
    assets: z.array(jsonValue.pipe(z.looseObject({ type: text(200), uri: text(MAX_CARD_CHARS), name: text(1_000).optional(), ext: text(100).optional() }))).max(1_000).optional(),
    source: z.array(text(2_000)).max(200).optional(),
    creation_date: z.number().nullable().optional(),
    modification_date: z.number().nullable().optional(),
  };
}
/** The original stored a conversation's active characters as ids or as character objects. */
const characterIdList = z.array(z.union([id, z.object({ id }).transform((c) => c.id)])).max(100);

export const characterCreateSchema = z.strictObject({
  name: storableText().trim().min(1, 'name must not be blank').max(100),
  voice: nullableText(200),
  narration: z.enum(narrationModes).nullable().optional(),
  narrator_voice: nullableText(200),
  style: voiceStyleSchema.nullable().optional(),
  system_prompt: text(20_000).optional(),
  image_url: nullableText(3_000_000),
  images: z.array(text(3_000_000)).max(20).optional(),
  is_active: z.boolean().optional(),
  ...characterCardFields(),
});
export type CharacterCreate = z.infer<typeof characterCreateSchema>;
export const characterUpdateSchema = characterCreateSchema.partial().extend({
  id,
  last_message: nullableText(20_000),
});
export type CharacterUpdate = z.infer<typeof characterUpdateSchema>;

export const voiceCreateSchema = z.strictObject({
  voice: storableText().trim().min(1, 'voice must not be blank').max(200),
  method: z.enum(voiceMethods).optional(),
  audio_path: nullableText(2000),
  text_path: nullableText(2000),
  speaker_desc: nullableText(5000),
  scene_prompt: nullableText(5000),
  audio_tokens: z.unknown().refine(isStorableJson, UNSTORABLE_TEXT).optional(),
  engine: z.enum(ttsEngineNames).nullable().optional(),
  engine_voice: nullableText(200),
  speed: z.number().min(0.25).max(4).optional(),
  pitch: z.number().min(0).max(2).optional(),
  style: voiceStyleSchema.nullable().optional(),
});
export type VoiceCreate = z.infer<typeof voiceCreateSchema>;
export const voiceUpdateSchema = voiceCreateSchema.partial().extend({ voice: id });
export type VoiceUpdate = z.infer<typeof voiceUpdateSchema>;

/** A conversation's cast and its rules for who speaks (create, update, and a session's own). */
export const conversationCastFields = {
  active_characters: characterIdList.optional(),
  reply_strategy: z.enum(replyStrategies).optional(),
  allow_self_responses: z.boolean().optional(),
  muted: z.array(id).max(100).optional(),
  auto_mode: z.boolean().optional(),
  auto_mode_delay_ms: z.number().int().min(0).max(600_000).optional(),
};
/** A conversation's persona and attached lorebooks (create, update, and a session's own). */
export const conversationContextFields = {
  persona_id: z.uuid().nullable().optional(),
  lorebook_ids: z.array(z.uuid()).max(50).optional(),
};
export const conversationCreateSchema = z.strictObject({
  title: storableText().trim().min(1).max(200).optional(),
  ...conversationCastFields,
  ...conversationContextFields,
});
export type ConversationCreate = z.infer<typeof conversationCreateSchema>;
export const conversationUpdateSchema = conversationCreateSchema.extend({ conversation_id: z.uuid() });
export type ConversationUpdate = z.infer<typeof conversationUpdateSchema>;

export const personaCreateSchema = z.strictObject({
  name: storableText().trim().min(1, 'name must not be blank').max(64),
  description: text(CARD_TEXT_MAX).optional(),
  image_url: nullableText(3_000_000),
  is_default: z.boolean().optional(),
});
export type PersonaCreate = z.infer<typeof personaCreateSchema>;
export const personaUpdateSchema = personaCreateSchema.partial().extend({ id: z.uuid() });
export type PersonaUpdate = z.infer<typeof personaUpdateSchema>;

export const lorebookCreateSchema = z.strictObject({
  name: storableText().trim().min(1, 'name must not be blank').max(200),
  description: text(10_000).optional(),
  book: characterBookSchema,
});
export type LorebookCreate = z.infer<typeof lorebookCreateSchema>;
export const lorebookUpdateSchema = lorebookCreateSchema.partial().extend({ id: z.uuid() });
export type LorebookUpdate = z.infer<typeof lorebookUpdateSchema>;
/** Personas and lorebooks are keyed by UUID. */
export const recordIdSchema = z.object({ id: z.uuid() });

export const messageCreateSchema = z.strictObject({
  conversation_id: z.uuid(),
  role: z.enum(roles),
  name: nullableText(200),
  content: text(100_000),
  character_id: nullableText(200),
  interrupted: z.boolean().optional(),
  status: z.enum(messageStatuses).optional(),
});
export type MessageCreate = z.infer<typeof messageCreateSchema>;

const page = { limit: z.number().int().min(1).max(1000).optional(), offset: z.number().int().min(0).optional() };
export const emptySchema = z.object({}).loose();
export const characterIdSchema = z.object({ id });
export const voiceKeySchema = z.object({ voice: id });
/** POST /api/voices/{voice}/reference: the transcript field beside the uploaded clip. */
export const voiceReferenceSchema = z.strictObject({ transcript: storableText().trim().min(1, 'transcript must not be blank').max(2000) });
export const conversationIdSchema = z.object({ conversation_id: z.uuid() });
export const messageIdSchema = z.object({ message_id: z.uuid() });
/**
 * update_message (PATCH /api/messages/{id}): new text for a message, or another of its versions
 * chosen (a swipe); the REST twins of edit_message and select_alternative.
 */
export const messageUpdateSchema = z
  .strictObject({ message_id: z.uuid(), content: text(100_000).optional(), alternative_index: z.number().int().min(0).max(10_000).optional() })
  .refine((m) => (m.content === undefined) !== (m.alternative_index === undefined), { message: 'give either content or alternative_index' });
export type MessageUpdate = z.infer<typeof messageUpdateSchema>;
export const searchSchema = z.object({ query: text(200) });
export const pageSchema = z.object(page);
export const messagesPageSchema = z.object({ conversation_id: z.uuid(), ...page });

/** GET /api/characters/{id}/export's query: the file (PNG by default) and the card spec (V2 by default). */
export const cardExportQuerySchema = z.object({
  format: z.enum(['png', 'json']).default('png'),
  spec: z.enum(['v2', 'v3']).default('v2'),
});

/** POST /api/login: the access token (AUTH_TOKEN) a browser trades for its session cookie. */
export const loginSchema = z.object({ token: z.string().min(1).max(4096) });

// ---------------------------------------------------------------------------------------------
// Client → server (non-CRUD). The envelope is parsed first, then `data` by the type's schema.

export const envelopeSchema = z.object({
  type: z.string().min(1).max(100),
  data: z.unknown().optional(),
  request_id: z.string().max(200).optional(),
});
export type Envelope = z.infer<typeof envelopeSchema>;

/** Sampling ranges follow the original client's sliders. */
export const modelSettingsSchema = z.object({
  model: z.string().trim().min(1).max(200),
  temperature: z.number().min(0).max(2),
  top_p: z.number().min(0).max(1),
  min_p: z.number().min(0).max(1),
  top_k: z.number().int().min(0).max(200),
  frequency_penalty: z.number().min(-2).max(2),
  presence_penalty: z.number().min(-2).max(2),
  repetition_penalty: z.number().min(0).max(2),
});
export type ModelSettings = z.infer<typeof modelSettingsSchema>;

export const userMessageSchema = z.object({ text: text(20_000) });
export const modelSettingsPatchSchema = modelSettingsSchema.partial();
export const loadConversationSchema = conversationIdSchema;
export const sessionSettingsSchema = z.object({ user_name: storableText().trim().min(1).max(64) });
/** Force-talk: the character speaks now, without a user message (even when muted). */
export const triggerCharacterSchema = z.object({ character_id: id });
/**
 * An unsaved voice as the editor has it (a preview before saving): the stored voice's fields,
 * each optional with the stored defaults, `voice` its name if it has one; never `audio_tokens`.
 */
export const voiceDefinitionSchema = voiceCreateSchema.omit({ audio_tokens: true }).extend({ voice: voiceCreateSchema.shape.voice.optional() });
export type VoiceDefinition = z.infer<typeof voiceDefinitionSchema>;
/** `voice`: a stored voice's key (as old clients send) or an unsaved definition (an object). */
export const previewVoiceSchema = z.object({ voice: z.union([id, voiceDefinitionSchema]), text: storableText().trim().min(1).max(1000).optional() });
// Message operations (docs/protocol.md, "Message operations").
/** How much of a message's audio the client played, sent just before `interrupt`. */
export const playbackPositionSchema = z.object({ message_id: z.uuid(), played_ms: z.number().min(0).max(86_400_000) });
export const regenerateSchema = z.object({ message_id: z.uuid().optional() });
export const selectAlternativeSchema = z.object({ message_id: z.uuid(), index: z.number().int().min(0).max(10_000) });
export const continueSchema = z.object({ message_id: z.uuid() });
export const editMessageSchema = z.object({ message_id: z.uuid(), content: text(100_000) });

/** A conversation's cast and rules as a session announces them (session.cast_settings). */
export const castSettingsSchema = conversationSchema.pick({ active_characters: true, reply_strategy: true, allow_self_responses: true, muted: true, auto_mode: true, auto_mode_delay_ms: true, persona_id: true, lorebook_ids: true });
export type CastSettings = z.infer<typeof castSettingsSchema>;

// ---------------------------------------------------------------------------------------------
// Server → client

const streamIds = {
  character_id: z.string(),
  character_name: z.string(),
  message_id: z.string(),
};
const msg = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) =>
  z.object({ type: z.literal(type), ...shape, request_id: z.string().optional() });
const withData = <T extends string, D extends z.ZodType>(type: T, data: D) => msg(type, { data });

export const sttStates = ['inactive', 'listening', 'recording', 'transcribing'] as const;
export type SttState = (typeof sttStates)[number];

export const errorCodes = [
  'bad_json',
  'unknown_type',
  'invalid_payload',
  'message_too_large',
  'bad_audio',
  'llm_not_configured',
  'llm_error',
  'tts_error',
  'voice_fallback',
  'stt_error',
  'stt_not_configured',
  'storage_error',
  'not_found',
  'rate_limited',
  'internal',
] as const;
export type ErrorCode = (typeof errorCodes)[number];

// ─── Endpoint settings (REST /api/endpoints, docs/api.md; src/endpoints/) ───

export const endpointKinds = ['llm', 'tts', 'stt'] as const;
export type EndpointKind = (typeof endpointKinds)[number];
/** ready: answered; not_configured: no key for a hosted endpoint; unreachable / rejected: the last check failed; unknown: not checked yet. */
export const llmStates = ['ready', 'not_configured', 'unreachable', 'rejected', 'unknown'] as const;
export type LlmState = (typeof llmStates)[number];

export const capabilitiesSchema = z.object({
  llm: z.enum(llmStates),
  /** A speech input engine is live: the mic button is offered. */
  speech_input: z.boolean(),
  /** Speech output is on (TTS_ENGINE is not none). */
  speech_output: z.boolean(),
});
export type Capabilities = z.infer<typeof capabilitiesSchema>;

const endpointUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).max(2000);
const endpointName = z.string().trim().min(1, 'must not be empty').max(200);
/**
 * A PUT /api/endpoints/:kind body (and the draft a test or model list runs on). `api_key`:
 * absent keeps the stored key, null or "" clears it, a string replaces it.
 */
export const endpointSettingsBodySchema = z.strictObject({
  base_url: endpointUrl,
  model: endpointName,
  api_key: z.string().max(4000).nullable().optional(),
  /** tts: the voice of voices that name none on this engine. */
  voice: endpointName.nullable().optional(),
});
export type EndpointSettingsBody = z.infer<typeof endpointSettingsBodySchema>;
/** A draft for test / models: every field optional, the missing ones are the current settings'. */
export const endpointDraftSchema = endpointSettingsBodySchema.partial();
export type EndpointDraft = z.infer<typeof endpointDraftSchema>;

/** What the client sees of one endpoint: never the key, only whether one is set and its last 4 characters. */
export const endpointViewSchema = z.object({
  kind: z.enum(endpointKinds),
  base_url: z.string(),
  model: z.string(),
  voice: z.string().nullable(),
  api_key: z.object({ set: z.boolean(), last4: z.string().nullable() }),
  /** saved: stored from the app (wins over the environment); environment: the server's variables. */
  source: z.enum(['saved', 'environment']),
  /** Whether this endpoint is in use (tts: speech output on; stt: speech input live). */
  active: z.boolean(),
  /** A sentence for the person, when the endpoint cannot be used as it is. */
  note: z.string().nullable(),
});
export type EndpointView = z.infer<typeof endpointViewSchema>;
export const endpointsViewSchema = z.object({ llm: endpointViewSchema, tts: endpointViewSchema, stt: endpointViewSchema, capabilities: capabilitiesSchema });
export type EndpointsView = z.infer<typeof endpointsViewSchema>;
export const endpointTestResultSchema = z.object({ ok: z.boolean(), message: z.string() });
export type EndpointTestResult = z.infer<typeof endpointTestResultSchema>;

export const serverMessageSchemas = {
  pong: msg('pong', {}),
  session: withData(
    'session',
    z.object({
      conversation_id: z.string().nullable(),
      user_name: z.string(),
      input_sample_rate: z.number(),
      output_sample_rate: z.number(),
      active_characters: z.array(characterSchema),
      model_settings: modelSettingsSchema,
      /** The new conversation's cast and rules (a Conversation's fields; it is stored with its first message). */
      cast_settings: castSettingsSchema,
      /** What the server can do right now (the connection panel changes it): the client's first screen and mic button follow it. */
      capabilities: capabilitiesSchema.optional(),
    }),
  ),
  /** What the server can do changed (the connection panel, or the LLM check finished): pushed to every session. */
  capabilities: withData('capabilities', capabilitiesSchema),
  stt_update: msg('stt_update', { text: z.string() }),
  stt_stabilized: msg('stt_stabilized', { text: z.string() }),
  stt_final: msg('stt_final', { text: z.string() }),
  stt_state: withData('stt_state', z.object({ state: z.enum(sttStates) })),
  text_stream_start: withData('text_stream_start', z.object(streamIds)),
  text_chunk: withData('text_chunk', z.object({ ...streamIds, text: z.string(), is_final: z.boolean() })),
  text_stream_stop: withData(
    'text_stream_stop',
    z.object({ ...streamIds, text: z.string(), interrupted: z.boolean().optional(), failed: z.boolean().optional() }),
  ),
  audio_stream_start: withData('audio_stream_start', z.object({ ...streamIds, sample_rate: z.number() })),
  audio_chunk: withData(
    'audio_chunk',
    z.object({ ...streamIds, sentence_index: z.number(), chunk_index: z.number() }),
  ),
  audio_stream_stop: withData('audio_stream_stop', z.object({ ...streamIds, interrupted: z.boolean().optional() })),
  interrupt_ack: msg('interrupt_ack', {}),
  /** The user spoke over the reply: playback pauses where it stands (nothing more is sent) until audio_resumed, or an interrupt cuts it. */
  audio_paused: msg('audio_paused', {}),
  /** Nothing was said after all (a false interruption): playback goes on from where it paused, and the rest of the audio follows. */
  audio_resumed: msg('audio_resumed', {}),
  /** A user message was taken: the id it is stored under (for edit_message / delete_message), and the persona name it is stored with. */
  user_message_accepted: withData('user_message_accepted', z.object({ message_id: z.string(), text: z.string(), name: z.string() })),
  /** An interrupted reply keeps only what was heard: `text` is the stored text, a prefix of what was streamed. */
  message_truncated: withData('message_truncated', z.object({ message_id: z.string(), text: z.string() })),
  /**
   * A message changed (edit_message, select_alternative, regenerate, continue, update_message):
   * its state as stored. Pushed to the other sessions with the conversation loaded too, then
   * with the whole Message record (a superset of these fields).
   */
  message_updated: withData('message_updated', messageSchema.partial().required({ message_id: true, role: true, content: true, status: true, alternatives: true, alternative_index: true })),
  /** Pushed: another session (or REST) added a message to the conversation this session has loaded. */
  message_added: withData('message_added', messageSchema),
  /** The message named characters who are not in the conversation's cast (they do not answer). */
  not_in_cast: withData('not_in_cast', z.object({ names: z.array(z.string()), character_ids: z.array(z.string()) })),
  history_cleared: withData('history_cleared', z.object({ conversation_id: z.string().nullable(), cast_settings: castSettingsSchema.optional() })),
  conversation_loaded: withData(
    'conversation_loaded',
    z.object({ conversation: conversationSchema, messages: z.array(messageSchema) }),
  ),
  model_settings_updated: withData('model_settings_updated', modelSettingsSchema),
  session_settings_updated: withData('session_settings_updated', z.object({ user_name: z.string() })),
  db_error: msg('db_error', { error: z.string(), request_type: z.string() }),
  error: withData(
    'error',
    z.object({ code: z.enum(errorCodes), message: z.string(), request_type: z.string().optional(), retry_after_ms: z.number().int().optional() }),
  ),

  // CRUD replies
  characters_data: withData('characters_data', z.array(characterSchema)),
  active_characters_data: withData('active_characters_data', z.array(characterSchema)),
  character_data: withData('character_data', characterSchema),
  character_created: withData('character_created', characterSchema),
  character_updated: withData('character_updated', characterSchema),
  character_deleted: withData('character_deleted', z.object({ id: z.string() })),
  voices_data: withData('voices_data', z.array(voiceSchema)),
  voice_data: withData('voice_data', voiceSchema),
  voice_created: withData('voice_created', voiceSchema),
  voice_updated: withData('voice_updated', voiceSchema),
  voice_deleted: withData('voice_deleted', z.object({ voice: z.string() })),
  conversations_data: withData('conversations_data', z.array(conversationSchema)),
  conversation_data: withData('conversation_data', conversationSchema),
  conversation_created: withData('conversation_created', conversationSchema),
  conversation_updated: withData('conversation_updated', conversationSchema),
  conversation_deleted: withData('conversation_deleted', z.object({ conversation_id: z.string() })),
  personas_data: withData('personas_data', z.array(personaSchema)),
  persona_data: withData('persona_data', personaSchema),
  persona_created: withData('persona_created', personaSchema),
  persona_updated: withData('persona_updated', personaSchema),
  persona_deleted: withData('persona_deleted', z.object({ id: z.string() })),
  lorebooks_data: withData('lorebooks_data', z.array(lorebookSchema)),
  lorebook_data: withData('lorebook_data', lorebookSchema),
  lorebook_created: withData('lorebook_created', lorebookSchema),
  lorebook_updated: withData('lorebook_updated', lorebookSchema),
  lorebook_deleted: withData('lorebook_deleted', z.object({ id: z.string() })),
  messages_data: withData('messages_data', z.array(messageSchema)),
  message_created: withData('message_created', messageSchema),
  /** The CRUD reply ({message_id}); pushed to the other sessions with the conversation loaded with its conversation_id. */
  message_deleted: withData('message_deleted', z.object({ message_id: z.string(), conversation_id: z.string().optional() })),
} as const;

type Schemas = typeof serverMessageSchemas;
export type ServerMessageType = keyof Schemas;
export type ServerMessage = { [K in ServerMessageType]: z.infer<Schemas[K]> }[ServerMessageType];
export type ServerMessageOf<K extends ServerMessageType> = z.infer<Schemas[K]>;
export const serverMessageSchema = z.discriminatedUnion(
  'type',
  Object.values(serverMessageSchemas) as unknown as [Schemas[ServerMessageType], ...Schemas[ServerMessageType][]],
);

/** Human-readable summary of a zod error that names each offending field. */
export function describeZodError(error: z.ZodError, prefix = 'data'): string {
  return error.issues
    .flatMap(unionBranch)
    .map((i) => `${[prefix, ...i.path].join('.')}: ${i.message}`)
    .join('; ');
}

/**
 * A union's failure as the issues of the one branch the value was meant for (the only branch
 * whose failure is not "wrong type" at its root), e.g. a voice definition's own bad field
 * rather than "Invalid input"; otherwise the union's issue as it is.
 */
function unionBranch(issue: z.core.$ZodIssue): z.core.$ZodIssue[] {
  if (issue.code !== 'invalid_union') return [issue];
  const meant = issue.errors.filter((branch) => !branch.every((i) => i.code === 'invalid_type' && i.path.length === 0));
  if (meant.length !== 1) return [issue];
  return meant[0]!.map((i) => ({ ...i, path: [...issue.path, ...i.path] }));
}

// Audio constants of the wire (protocol.md, Conventions).
export const INPUT_SAMPLE_RATE = 16_000;
