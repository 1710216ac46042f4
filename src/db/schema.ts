// The database schema (drizzle pg-core), the single source of the SQL migrations in drizzle/
// (`npm run db:generate`). Column names are the wire's snake_case names, so a row maps onto
// its protocol record with nothing but timestamp formatting.
import { sql } from 'drizzle-orm';
import { bigint, boolean, check, customType, doublePrecision, index, integer, jsonb, pgTable, real, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { type CharacterBook, DEFAULT_AUTO_MODE_DELAY_MS, endpointKinds, type VoiceStyle, messageStatuses, narrationModes, replyStrategies, roles, ttsEngineNames, voiceMethods } from '../protocol.ts';

const timestamps = {
  created_at: timestamp({ withTimezone: true }).notNull().defaultNow(),
  updated_at: timestamp({ withTimezone: true }).notNull().defaultNow(),
};

/** Quotes a fixed list of words for a CHECK constraint (they are constants, never input). */
const oneOf = (values: readonly string[]) => sql.raw(values.map((v) => `'${v}'`).join(', '));

export const voices = pgTable(
  'voices',
  {
    voice: text().primaryKey(),
    method: text({ enum: voiceMethods }).notNull().default('preset'),
    audio_path: text(),
    text_path: text(),
    speaker_desc: text(),
    scene_prompt: text(),
    audio_tokens: jsonb().$type<unknown>(),
    // No CHECK on engine: the list grows with the project's engines and is validated at the edge.
    engine: text({ enum: ttsEngineNames }),
    engine_voice: text(),
    speed: real().notNull().default(1),
    pitch: real().notNull().default(1),
    /** Higgs v3 delivery tags (emotion, style, prosody) put before each sentence; null = none. */
    style: jsonb().$type<VoiceStyle>(),
    ...timestamps,
  },
  (t) => [check('voices_method_check', sql`${t.method} in (${oneOf(voiceMethods)})`)],
);

export const characters = pgTable(
  'characters',
  {
    id: text().primaryKey(),
    name: text().notNull(),
    voice: text().references(() => voices.voice, { onDelete: 'set null', onUpdate: 'cascade' }),
    system_prompt: text().notNull().default(''),
    image_url: text(),
    images: jsonb().$type<string[]>().notNull().default([]),
    is_active: boolean().notNull().default(true),
    last_message: text(),
    talkativeness: doublePrecision().notNull().default(0.5),
    /** What of its replies is spoken (null = the NARRATION default) and the narrator's voice (null = NARRATOR_VOICE). */
    narration: text({ enum: narrationModes }),
    narrator_voice: text().references(() => voices.voice, { onDelete: 'set null', onUpdate: 'cascade' }),
    /** Its Higgs v3 delivery style, part by part over its voice's; null = the voice's. */
    style: jsonb().$type<VoiceStyle>(),
    // Character Card V2/V3 fields (an imported card's, or given by create/update).
    description: text().notNull().default(''),
    personality: text().notNull().default(''),
    scenario: text().notNull().default(''),
    first_mes: text().notNull().default(''),
    mes_example: text().notNull().default(''),
    creator_notes: text().notNull().default(''),
    post_history_instructions: text().notNull().default(''),
    alternate_greetings: jsonb().$type<string[]>().notNull().default([]),
    tags: jsonb().$type<string[]>().notNull().default([]),
    creator: text().notNull().default(''),
    character_version: text().notNull().default(''),
    character_book: jsonb().$type<CharacterBook>(),
    extensions: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    /**
     * The card's other `data` fields, kept as the card had them for export: V3's nickname,
     * group_only_greetings, assets, source, creator_notes_multilingual, creation_date,
     * modification_date (the Character record shows these, src/db/repo.ts) and unknown ones.
     */
    card: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    /** The card's own top-level fields beside spec/data (SillyTavern's avatar, chat, create_date, unknown ones); not on the wire. */
    card_top: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    ...timestamps,
  },
  // Deleting a voice sets its characters' voice to null: the index spares a full scan.
  (t) => [
    index('characters_voice_idx').on(t.voice),
    index('characters_narrator_voice_idx').on(t.narrator_voice),
    check('characters_narration_check', sql`${t.narration} in (${oneOf(narrationModes)})`),
  ],
);

const bytea = customType<{ data: Buffer; driverData: Buffer | Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (value) => (Buffer.isBuffer(value) ? value : Buffer.from(value)),
});

/**
 * A character's picture from its card (GET /api/characters/{id}/image): kept apart from the
 * character row, so no list of characters carries megabytes of image. Goes with its character.
 */
export const characterPictures = pgTable('character_pictures', {
  character_id: text()
    .primaryKey()
    .references(() => characters.id, { onDelete: 'cascade', onUpdate: 'cascade' }),
  content_type: text().notNull(),
  bytes: bytea().notNull(),
  /** A hash of the bytes: the picture URL's version (`?v=`) and its ETag. */
  etag: text().notNull(),
  created_at: timestamp({ withTimezone: true }).notNull().defaultNow(),
});

/** Who the user speaks as: `{{user}}` is the name, the description goes into the prompt. */
export const personas = pgTable(
  'personas',
  {
    id: uuid().primaryKey(),
    name: text().notNull(),
    description: text().notNull().default(''),
    image_url: text(),
    /** The persona of a conversation that names none; at most one is. */
    is_default: boolean().notNull().default(false),
    ...timestamps,
  },
  (t) => [uniqueIndex('personas_one_default_idx').on(t.is_default).where(sql`${t.is_default}`)],
);

/** Standalone lorebooks (world info), attached to conversations; `book` is character_book-shaped. */
export const lorebooks = pgTable('lorebooks', {
  id: uuid().primaryKey(),
  name: text().notNull(),
  description: text().notNull().default(''),
  book: jsonb().$type<CharacterBook>().notNull(),
  ...timestamps,
});

export const conversations = pgTable(
  'conversations',
  {
    conversation_id: uuid().primaryKey(),
    title: text().notNull(),
    active_characters: jsonb().$type<string[]>().notNull().default([]),
    reply_strategy: text({ enum: replyStrategies }).notNull().default('natural'),
    allow_self_responses: boolean().notNull().default(false),
    muted: jsonb().$type<string[]>().notNull().default([]),
    auto_mode: boolean().notNull().default(false),
    auto_mode_delay_ms: integer().notNull().default(DEFAULT_AUTO_MODE_DELAY_MS),
    /** Who the user speaks as here; null: the default persona. */
    persona_id: uuid().references(() => personas.id, { onDelete: 'set null' }),
    /** Standalone lorebooks whose entries join the characters' own (ids; a deleted one is removed). */
    lorebook_ids: jsonb().$type<string[]>().notNull().default([]),
    ...timestamps,
  },
  (t) => [
    // Newest first is a backward scan of this index.
    index('conversations_recent_idx').on(t.updated_at, t.created_at, t.conversation_id),
    // Deleting a persona sets its conversations' persona_id to null: the index spares a full scan.
    index('conversations_persona_idx').on(t.persona_id),
    check('conversations_reply_strategy_check', sql`${t.reply_strategy} in (${oneOf(replyStrategies)})`),
  ],
);

export const messages = pgTable(
  'messages',
  {
    message_id: uuid().primaryKey(),
    // Insertion order: many messages can share one timestamp, so timestamps cannot order them.
    seq: bigint({ mode: 'number' }).generatedAlwaysAsIdentity(),
    conversation_id: uuid()
      .notNull()
      .references(() => conversations.conversation_id, { onDelete: 'cascade' }),
    role: text({ enum: roles }).notNull(),
    name: text(),
    content: text().notNull(),
    character_id: text().references(() => characters.id, { onDelete: 'set null', onUpdate: 'cascade' }),
    interrupted: boolean().notNull().default(false),
    status: text({ enum: messageStatuses }).notNull().default('complete'),
    alternatives: jsonb().$type<string[]>().notNull().default([]),
    alternative_index: integer().notNull().default(0),
    ...timestamps,
  },
  (t) => [
    check('messages_status_check', sql`${t.status} in (${oneOf(messageStatuses)})`),
    index('messages_conversation_seq_idx').on(t.conversation_id, t.seq),
    index('messages_character_idx').on(t.character_id),
    check('messages_role_check', sql`${t.role} in (${oneOf(roles)})`),
  ],
);

/**
 * Endpoint settings saved from the connection panel (src/endpoints/): one row per kind (llm, tts,
 * stt). They win over the environment's; deleting the row goes back to it. The API key is stored
 * encrypted (AES-256-GCM, src/endpoints/secret-box.ts), never as it was typed.
 */
export const endpointSettings = pgTable(
  'endpoint_settings',
  {
    kind: text({ enum: endpointKinds }).primaryKey(),
    base_url: text().notNull(),
    model: text().notNull(),
    voice: text(),
    /** `v1:<iv>:<tag>:<ciphertext>` (base64url), or null for no key. */
    api_key_encrypted: text(),
    ...timestamps,
  },
  (t) => [check('endpoint_settings_kind_check', sql`${t.kind} in (${oneOf(endpointKinds)})`)],
);

export const schema = { voices, characters, characterPictures, personas, lorebooks, conversations, messages, endpointSettings };
export type Schema = typeof schema;
