// The repository: every read and write of characters, voices, conversations and messages,
// returning records in their wire shape (protocol.ts: snake_case, ISO timestamps). The same
// code runs on PGlite and PostgreSQL. Unknown ids raise NotFoundError; a reference to
// something that does not exist (a character's voice) or a duplicate key raises ConflictError.
import { randomUUID } from 'node:crypto';
import { asc, desc, eq, or, sql, type AnyColumn, type SQL } from 'drizzle-orm';
import type {
  Character,
  CharacterCreate,
  CharacterUpdate,
  Conversation,
  ConversationCreate,
  ConversationUpdate,
  Message,
  MessageCreate,
  Voice,
  VoiceCreate,
  VoiceUpdate,
} from '../protocol.ts';
import { talkativenessOf } from '../protocol.ts';
import type { Database, Db } from './client.ts';
import { characters, conversations, messages, voices } from './schema.ts';

export class NotFoundError extends Error {
  override name = 'NotFoundError';
}

export class ConflictError extends Error {
  override name = 'ConflictError';
}

/** A character to create from a card: its fields, and the card's others (kept for export). */
export type CharacterImport = CharacterCreate & { card?: Record<string, unknown> };

// Advisory lock keys (arbitrary constants; client.ts uses 7_245_001 for migrations).
const STARTER_CAST_LOCK = 7_245_002;
const CHARACTER_ID_LOCK = 7_245_003;

const DEFAULT_CONVERSATION_PAGE = 50;
const TITLE_LENGTH = 50;

/** The original's rule: the first 50 characters of the first message, or the date. */
export function conversationTitle(firstMessage: string | undefined, now: Date): string {
  const chars = Array.from(firstMessage?.trim() ?? ''); // code points: never split an emoji
  if (chars.length === 0) return `Conversation ${now.toISOString().slice(0, 16).replace('T', ' ')}`;
  if (chars.length <= TITLE_LENGTH) return chars.join('');
  return `${chars.slice(0, TITLE_LENGTH).join('')}...`;
}

export function slugify(name: string): string {
  const slug = name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/\p{M}/gu, '') // the diacritics NFKD split off
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return slug || 'character';
}

export class Repo {
  private readonly db: Db;

  constructor(database: Database) {
    this.db = database.db;
  }

  // ---------------------------------------------------------------------------------------
  // Characters

  async listCharacters(): Promise<Character[]> {
    const rows = await this.db.select().from(characters).orderBy(...byName);
    return rows.map(toCharacter);
  }

  async listActiveCharacters(): Promise<Character[]> {
    const rows = await this.db.select().from(characters).where(eq(characters.is_active, true)).orderBy(...byName);
    return rows.map(toCharacter);
  }

  async getCharacter(id: string): Promise<Character> {
    const rows = await this.db.select().from(characters).where(eq(characters.id, id));
    return toCharacter(found(rows, `character "${id}"`));
  }

  /** Case-insensitive substring of the name or the system prompt; a blank query lists all. */
  async searchCharacters(query: string): Promise<Character[]> {
    const needle = query.trim();
    if (!needle) return this.listCharacters();
    const contains = (column: AnyColumn) => sql`strpos(lower(${column}), lower(${needle})) > 0`;
    const rows = await this.db
      .select()
      .from(characters)
      .where(or(contains(characters.name), contains(characters.system_prompt)))
      .orderBy(...byName);
    return rows.map(toCharacter);
  }

  async createCharacter(input: CharacterCreate): Promise<Character> {
    return this.db.transaction((tx) => insertCharacter(tx, input));
  }

  /** Creates all the characters or, if one fails, none. */
  async importCharacters(inputs: readonly CharacterImport[]): Promise<Character[]> {
    return this.db.transaction(async (tx) => {
      const created: Character[] = [];
      for (const input of inputs) created.push(await insertCharacter(tx, input));
      return created;
    });
  }

  /** The character and the card fields kept for export. */
  async getCharacterCard(id: string): Promise<{ character: Character; card: Record<string, unknown> }> {
    const rows = await this.db.select().from(characters).where(eq(characters.id, id));
    const row = found(rows, `character "${id}"`);
    return { character: toCharacter(row), card: row.card };
  }

  /** Changes only the fields given (drizzle skips undefined ones); the id never changes. */
  async updateCharacter(input: CharacterUpdate): Promise<Character> {
    const { id, voice, ...fields } = input;
    return this.db.transaction(async (tx) => {
      // New extensions carrying a talkativeness set it, unless talkativeness itself is given.
      const talkativeness = fields.talkativeness ?? talkativenessOf(fields.extensions);
      const changes = { ...fields, ...(talkativeness === undefined ? {} : { talkativeness }), updated_at: now() };
      const voiceChange = voice === undefined ? {} : { voice: await existingVoice(tx, voice) };
      const rows = await tx
        .update(characters)
        .set({ ...changes, ...voiceChange })
        .where(eq(characters.id, id))
        .returning();
      return toCharacter(found(rows, `character "${id}"`));
    });
  }

  /** Its messages stay, with character_id null (foreign key ON DELETE SET NULL). */
  async deleteCharacter(id: string): Promise<void> {
    const rows = await this.db.delete(characters).where(eq(characters.id, id)).returning({ id: characters.id });
    found(rows, `character "${id}"`);
  }

  // ---------------------------------------------------------------------------------------
  // Voices

  async listVoices(): Promise<Voice[]> {
    const rows = await this.db.select().from(voices).orderBy(asc(voices.voice));
    return rows.map(toVoice);
  }

  async getVoice(voice: string): Promise<Voice> {
    const rows = await this.db.select().from(voices).where(eq(voices.voice, voice));
    return toVoice(found(rows, `voice "${voice}"`));
  }

  async createVoice(input: VoiceCreate): Promise<Voice> {
    const rows = await this.db.insert(voices).values(input).onConflictDoNothing().returning();
    const [row] = rows;
    if (!row) throw new ConflictError(`voice "${input.voice}" already exists`);
    return toVoice(row);
  }

  async updateVoice(input: VoiceUpdate): Promise<Voice> {
    const { voice, ...fields } = input;
    const rows = await this.db
      .update(voices)
      .set({ ...fields, updated_at: now() })
      .where(eq(voices.voice, voice))
      .returning();
    return toVoice(found(rows, `voice "${voice}"`));
  }

  /** Characters using it keep existing with voice null (foreign key ON DELETE SET NULL). */
  async deleteVoice(voice: string): Promise<void> {
    const rows = await this.db.delete(voices).where(eq(voices.voice, voice)).returning({ voice: voices.voice });
    found(rows, `voice "${voice}"`);
  }

  // ---------------------------------------------------------------------------------------
  // Conversations

  /** Newest first: most recently updated, then most recently created. */
  async listConversations(page: { limit?: number; offset?: number } = {}): Promise<Conversation[]> {
    const rows = await this.db
      .select()
      .from(conversations)
      .orderBy(desc(conversations.updated_at), desc(conversations.created_at), desc(conversations.conversation_id))
      .limit(page.limit ?? DEFAULT_CONVERSATION_PAGE)
      .offset(page.offset ?? 0);
    return rows.map(toConversation);
  }

  async getConversation(id: string): Promise<Conversation> {
    const what = `conversation "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    const rows = await this.db.select().from(conversations).where(eq(conversations.conversation_id, id));
    return toConversation(found(rows, what));
  }

  /** `id` lets a session store a conversation under the id it already announced. */
  async createConversation(input: ConversationCreate, id: string = randomUUID()): Promise<Conversation> {
    if (!isUuid(id)) throw new ConflictError(`conversation id "${id}" is not a UUID`);
    const rows = await this.db
      .insert(conversations)
      .values({
        conversation_id: id,
        title: input.title ?? conversationTitle(undefined, new Date()),
        active_characters: input.active_characters ?? [],
      })
      .onConflictDoNothing()
      .returning();
    const [row] = rows;
    if (!row) throw new ConflictError(`conversation "${id}" already exists`);
    return toConversation(row);
  }

  async updateConversation(input: ConversationUpdate): Promise<Conversation> {
    const { conversation_id: id, ...fields } = input;
    const what = `conversation "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    const rows = await this.db
      .update(conversations)
      .set({ ...fields, updated_at: now() })
      .where(eq(conversations.conversation_id, id))
      .returning();
    return toConversation(found(rows, what));
  }

  /** Its messages go too (foreign key ON DELETE CASCADE). */
  async deleteConversation(id: string): Promise<void> {
    const what = `conversation "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    const rows = await this.db
      .delete(conversations)
      .where(eq(conversations.conversation_id, id))
      .returning({ id: conversations.conversation_id });
    found(rows, what);
  }

  // ---------------------------------------------------------------------------------------
  // Messages

  /** Oldest first in insertion order; all of them unless a limit is given. */
  async listMessages(page: { conversation_id: string; limit?: number; offset?: number }): Promise<Message[]> {
    await this.getConversation(page.conversation_id);
    const query = this.db
      .select()
      .from(messages)
      .where(eq(messages.conversation_id, page.conversation_id))
      .orderBy(asc(messages.seq))
      .offset(page.offset ?? 0)
      .$dynamic();
    const rows = await (page.limit === undefined ? query : query.limit(page.limit));
    return rows.map(toMessage);
  }

  /**
   * Inserts the message and bumps its conversation's updated_at in one transaction. A
   * character_id that no longer exists is stored as null: the message is worth more than the link.
   */
  async createMessage(input: MessageCreate): Promise<Message> {
    const what = `conversation "${input.conversation_id}"`;
    if (!isUuid(input.conversation_id)) throw notFound(what);
    return this.db.transaction(async (tx) => {
      const touched = await tx
        .update(conversations)
        .set({ updated_at: now() })
        .where(eq(conversations.conversation_id, input.conversation_id))
        .returning({ id: conversations.conversation_id });
      found(touched, what);
      const rows = await tx
        .insert(messages)
        .values({
          message_id: randomUUID(),
          conversation_id: input.conversation_id,
          role: input.role,
          name: input.name ?? null,
          content: input.content,
          character_id: existingCharacterId(input.character_id),
          // The two say one thing: an interrupted message has status "interrupted".
          interrupted: input.interrupted ?? input.status === 'interrupted',
          status: input.status ?? (input.interrupted ? 'interrupted' : 'complete'),
        })
        .returning();
      return toMessage(single(rows));
    });
  }

  async deleteMessage(id: string): Promise<void> {
    const what = `message "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    const rows = await this.db.delete(messages).where(eq(messages.message_id, id)).returning({ id: messages.message_id });
    found(rows, what);
  }

  // ---------------------------------------------------------------------------------------
  // Starter cast

  /**
   * Seeds three voices and three characters when there are neither, so a fresh install has
   * someone to talk to. Returns whether it seeded. The lock keeps two processes starting at
   * once from both seeding.
   */
  async ensureStarterCast(): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${STARTER_CAST_LOCK})`);
      const empty = (await isEmpty(tx, characters)) && (await isEmpty(tx, voices));
      if (!empty) return false;
      await tx.insert(voices).values(STARTER_VOICES);
      for (const character of STARTER_CHARACTERS) await insertCharacter(tx, character);
      return true;
    });
  }
}

// -----------------------------------------------------------------------------------------
// Character ids and references

/**
 * Inserts a character under `slug(name)-NNN`, the next free number. Run inside a transaction:
 * the per-slug advisory lock (released at commit) makes concurrent creates of one name take
 * turns, and each sees the previous one's row, so no two get the same number.
 */
async function insertCharacter(tx: Db, input: CharacterImport): Promise<Character> {
  const voice = await existingVoice(tx, input.voice);
  const id = await nextCharacterId(tx, slugify(input.name));
  const rows = await tx
    .insert(characters)
    .values({
      id,
      name: input.name,
      voice,
      system_prompt: input.system_prompt ?? '',
      image_url: input.image_url ?? null,
      images: input.images ?? [],
      is_active: input.is_active ?? true,
      talkativeness: input.talkativeness ?? talkativenessOf(input.extensions) ?? 0.5,
      description: input.description ?? '',
      personality: input.personality ?? '',
      scenario: input.scenario ?? '',
      first_mes: input.first_mes ?? '',
      mes_example: input.mes_example ?? '',
      creator_notes: input.creator_notes ?? '',
      post_history_instructions: input.post_history_instructions ?? '',
      alternate_greetings: input.alternate_greetings ?? [],
      tags: input.tags ?? [],
      creator: input.creator ?? '',
      character_version: input.character_version ?? '',
      character_book: input.character_book ?? null,
      extensions: input.extensions ?? {},
      card: input.card ?? {},
    })
    .returning();
  return toCharacter(single(rows));
}

async function nextCharacterId(tx: Db, slug: string): Promise<string> {
  await tx.execute(sql`select pg_advisory_xact_lock(${CHARACTER_ID_LOCK}, hashtext(${slug}))`);
  // Numeric maximum, so 1000 follows 999 (as text, '999' > '1000'). A slug is [a-z0-9-] only,
  // so it is safe inside the pattern.
  const [row] = await tx
    .select({ max: sql<string | null>`max(substring(${characters.id} from '[0-9]+$')::numeric)::text` })
    .from(characters)
    .where(sql`${characters.id} ~ ${`^${slug}-[0-9]+$`}`);
  const next = BigInt(row?.max ?? '0') + 1n;
  return `${slug}-${next.toString().padStart(3, '0')}`;
}

/**
 * A character's voice must name a stored voice (ConflictError otherwise); blank means none.
 * The key-share lock keeps the voice from being deleted before this transaction commits.
 */
async function existingVoice(tx: Db, voice: string | null | undefined): Promise<string | null> {
  if (voice == null || voice.trim() === '') return null;
  const rows = await tx.select({ voice: voices.voice }).from(voices).where(eq(voices.voice, voice)).for('key share');
  if (rows.length === 0) throw new ConflictError(`voice "${voice}" does not exist`);
  return voice;
}

/** The id when that character exists at insert time, else null. */
function existingCharacterId(id: string | null | undefined): SQL | null {
  if (id == null) return null;
  return sql`(select ${characters.id} from ${characters} where ${characters.id} = ${id})`;
}

// -----------------------------------------------------------------------------------------
// Rows → records

type CharacterRow = typeof characters.$inferSelect;
type VoiceRow = typeof voices.$inferSelect;
type ConversationRow = typeof conversations.$inferSelect;
type MessageRow = typeof messages.$inferSelect;

const timestamps = (row: { created_at: Date; updated_at: Date }) => ({
  created_at: row.created_at.toISOString(),
  updated_at: row.updated_at.toISOString(),
});

function toCharacter(row: CharacterRow): Character {
  const { card: _exportOnly, ...record } = row;
  return { ...record, ...timestamps(row) };
}
const toVoice = (row: VoiceRow): Voice => ({ ...row, ...timestamps(row) });
const toConversation = (row: ConversationRow): Conversation => ({ ...row, ...timestamps(row) });

function toMessage(row: MessageRow): Message {
  const { seq: _internalOrder, ...record } = row;
  return { ...record, ...timestamps(row) };
}

// -----------------------------------------------------------------------------------------
// Small helpers

/** Case-insensitive by name (the same on every collation), then by id for a stable order. */
const byName = [asc(sql`lower(${characters.name})`), asc(characters.id)];

/** The transaction's time, as SQL: a row's timestamps all come from the database clock. */
const now = () => sql`now()`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** PostgreSQL rejects a malformed uuid with an error; to a caller it is simply not found. */
const isUuid = (id: string) => UUID.test(id);

const notFound = (what: string) => new NotFoundError(`${what} not found`);

function found<T>(rows: T[], what: string): T {
  const [row] = rows;
  if (row === undefined) throw notFound(what);
  return row;
}

function single<T>(rows: T[]): T {
  const [row] = rows;
  if (row === undefined) throw new Error('the database returned no row for an insert');
  return row;
}

async function isEmpty(tx: Db, table: typeof characters | typeof voices): Promise<boolean> {
  const rows = await tx.select({ one: sql`1` }).from(table).limit(1);
  return rows.length === 0;
}

// -----------------------------------------------------------------------------------------
// The starter cast: three espeak-ng voices (voice+variant ids; plain `en-gb` does not load,
// `en-gb-x-rp` does) and three characters, one per voice.

const STARTER_VOICES: VoiceCreate[] = [
  {
    voice: 'mira-warm',
    method: 'preset',
    speaker_desc: 'Warm, bright American woman; unhurried and friendly.',
    engine: 'espeak',
    engine_voice: 'en-us+f3',
    speed: 1,
    pitch: 1.15,
  },
  {
    voice: 'harlan-dry',
    method: 'preset',
    speaker_desc: 'Low, measured British man; dry and deliberate.',
    engine: 'espeak',
    engine_voice: 'en-gb-x-rp+m3',
    speed: 0.9,
    pitch: 0.8,
  },
  {
    voice: 'pip-quick',
    method: 'preset',
    speaker_desc: 'Quick, high-spirited American voice; words tumble out.',
    engine: 'espeak',
    engine_voice: 'en-us+m7',
    speed: 1.15,
    pitch: 1.3,
  },
];

const STARTER_CHARACTERS: CharacterCreate[] = [
  {
    name: 'Mira Vance',
    voice: 'mira-warm',
    is_active: true,
    system_prompt:
      'You are Mira Vance, navigator of the long-haul survey ship Meridian, warm and endlessly curious. ' +
      'You see every conversation as a new star chart and ask the questions that help people find their bearings. ' +
      'You speak plainly and kindly, with the occasional image borrowed from the sea or the stars. ' +
      'Keep your replies short and conversational, as if talking over the hum of the bridge.',
  },
  {
    name: 'Harlan Graves',
    voice: 'harlan-dry',
    is_active: true,
    system_prompt:
      'You are Harlan Graves, a retired police detective with thirty years on the job and a bone-dry wit. ' +
      'You notice the small details others miss and cannot resist pointing out what does not add up. ' +
      'Your humour is understated and your sympathy is real, even when you hide it behind a wry remark. ' +
      'Answer in a few unhurried sentences, never more than the case requires.',
  },
  {
    name: 'Pip Sprocket',
    voice: 'pip-quick',
    is_active: true,
    system_prompt:
      'You are Pip Sprocket, an excitable inventor whose workshop is full of half-finished contraptions. ' +
      'Every problem looks to you like the start of a marvellous machine, and you cannot help sketching one out loud. ' +
      'You are generous with enthusiasm and quick to admit when an idea might explode. ' +
      'Keep replies brief and bubbly, bursting with one bright idea at a time.',
  },
];
