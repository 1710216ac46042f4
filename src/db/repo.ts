// The repository: every read and write of characters, voices, conversations and messages,
// returning records in their wire shape (protocol.ts: snake_case, ISO timestamps). The same
// code runs on PGlite and PostgreSQL. Unknown ids raise NotFoundError; a reference to
// something that does not exist (a character's voice) or a duplicate key raises ConflictError.
import { createHash, randomUUID } from 'node:crypto';
import { asc, desc, eq, inArray, or, sql, type AnyColumn, type SQL } from 'drizzle-orm';
import type {
  Character,
  CharacterCreate,
  CharacterUpdate,
  Conversation,
  ConversationCreate,
  ConversationUpdate,
  Lorebook,
  LorebookCreate,
  LorebookUpdate,
  Message,
  MessageCreate,
  MessageUpdate,
  Persona,
  PersonaCreate,
  PersonaUpdate,
  Voice,
  VoiceCreate,
  VoiceUpdate,
} from '../protocol.ts';
import { cardV3Fields, talkativenessOf } from '../protocol.ts';
import { cardV3View, withV3Fields } from '../card-v3.ts';
import type { Database, Db } from './client.ts';
import { characterPictures, characters, conversations, lorebooks, messages, personas, voices } from './schema.ts';
import { STARTER_VOICES, starterCharacters } from './starter-cast.ts';

/** Marks a conversation as just changed (the list is newest first); not found when it does not exist. */
async function touchConversation(tx: Pick<Db, 'update'>, conversationId: string, what: string): Promise<void> {
  const touched = await tx
    .update(conversations)
    .set({ updated_at: now() })
    .where(eq(conversations.conversation_id, conversationId))
    .returning({ id: conversations.conversation_id });
  found(touched, what);
}

export class NotFoundError extends Error {
  override name = 'NotFoundError';
}

export class ConflictError extends Error {
  override name = 'ConflictError';
}

/** A picture as stored (character_pictures). */
export interface Picture {
  content_type: string;
  bytes: Buffer;
}
/**
 * A character to create from a card: its fields, the card's other `data` fields and its own
 * top-level ones (both kept for export), and its picture (stored apart, `image_url` its route).
 */
export type CharacterImport = CharacterCreate & { card?: Record<string, unknown>; card_top?: Record<string, unknown>; picture?: Picture };
/** What an export needs: the record, the card's kept fields, and the stored picture if `image_url` is it. */
export interface StoredCard {
  character: Character;
  card: Record<string, unknown>;
  card_top: Record<string, unknown>;
  picture: Picture | undefined;
}

/** The route a stored picture is served at (src/http/card-routes.ts); `?v=` changes with the picture. */
export const pictureRoute = (id: string) => `/api/characters/${encodeURIComponent(id)}/image`;
const pictureUrl = (id: string, etag: string) => `${pictureRoute(id)}?v=${etag}`;
/** Whether a character's image_url is its own stored picture. */
const isOwnPicture = (id: string, url: string | null | undefined) => url?.startsWith(`${pictureRoute(id)}?`) ?? false;
/** A session's message, stored under the id its stream carried (saveMessage). */
export type SavedMessage = MessageCreate & { message_id: string; alternatives?: string[] | undefined; alternative_index?: number | undefined };

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

  /** The character, the card fields kept for export, and its stored picture. */
  async getCharacterCard(id: string): Promise<StoredCard> {
    const rows = await this.db.select().from(characters).where(eq(characters.id, id));
    const row = found(rows, `character "${id}"`);
    const picture = isOwnPicture(id, row.image_url) ? await this.getCharacterPicture(id).catch(() => undefined) : undefined;
    return { character: toCharacter(row), card: row.card, card_top: row.card_top, picture };
  }

  /** A character's stored picture (its card's); NotFoundError when it has none. */
  async getCharacterPicture(id: string): Promise<Picture & { etag: string }> {
    const rows = await this.db
      .select({ content_type: characterPictures.content_type, base64: sql<string>`encode(${characterPictures.bytes}, 'base64')`, etag: characterPictures.etag })
      .from(characterPictures)
      .where(eq(characterPictures.character_id, id));
    const { base64, ...picture } = found(rows, `the picture of character "${id}"`);
    return { ...picture, bytes: Buffer.from(base64, 'base64') }; // its line breaks are skipped
  }

  /**
   * Changes only the fields given (drizzle skips undefined ones); the id never changes. The V3
   * fields are written into the card (src/card-v3.ts); a picture the image_url no longer shows is
   * deleted.
   */
  async updateCharacter(input: CharacterUpdate): Promise<Character> {
    const { id, voice, narrator_voice: narratorVoice, ...given } = input;
    const { fields, v3 } = splitV3(given);
    return this.db.transaction(async (tx) => {
      // New extensions carrying a talkativeness set it, unless talkativeness itself is given.
      const talkativeness = fields.talkativeness ?? talkativenessOf(fields.extensions);
      const changes = { ...fields, ...(talkativeness === undefined ? {} : { talkativeness }), updated_at: now() };
      const voiceChange = voice === undefined ? {} : { voice: await existingVoice(tx, voice) };
      const narratorChange = narratorVoice === undefined ? {} : { narrator_voice: await existingVoice(tx, narratorVoice) };
      const cardChange = Object.keys(v3).length === 0 ? {} : { card: withV3Fields(await storedCard(tx, id), v3) };
      const rows = await tx
        .update(characters)
        .set({ ...changes, ...voiceChange, ...narratorChange, ...cardChange })
        .where(eq(characters.id, id))
        .returning();
      const row = found(rows, `character "${id}"`);
      if (fields.image_url !== undefined && !isOwnPicture(id, row.image_url)) await tx.delete(characterPictures).where(eq(characterPictures.character_id, id));
      return toCharacter(row);
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
    await this.checkContext(input);
    const rows = await this.db
      .insert(conversations)
      .values({
        conversation_id: id,
        ...input,
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
    await this.checkContext(fields);
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
      await touchConversation(tx, input.conversation_id, what);
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

  /**
   * Stores a session's message under its own id (the id its stream carried): inserted the first
   * time, its text, status and alternatives replaced after (regenerate, continue, edit). A retry
   * of a write that went through is harmless. An id taken in another conversation is refused.
   */
  async saveMessage(input: SavedMessage): Promise<Message> {
    const what = `conversation "${input.conversation_id}"`;
    if (!isUuid(input.conversation_id) || !isUuid(input.message_id)) throw notFound(what);
    const status = input.status ?? (input.interrupted ? 'interrupted' : 'complete');
    const changes = {
      content: input.content,
      interrupted: status === 'interrupted',
      status,
      alternatives: input.alternatives ?? [],
      alternative_index: input.alternative_index ?? 0,
    };
    return this.db.transaction(async (tx) => {
      await touchConversation(tx, input.conversation_id, what);
      const rows = await tx
        .insert(messages)
        .values({
          message_id: input.message_id,
          conversation_id: input.conversation_id,
          role: input.role,
          name: input.name ?? null,
          character_id: existingCharacterId(input.character_id),
          ...changes,
        })
        .onConflictDoUpdate({ target: messages.message_id, set: { ...changes, updated_at: now() }, where: eq(messages.conversation_id, input.conversation_id) })
        .returning();
      if (rows.length === 0) throw new ConflictError(`message "${input.message_id}" belongs to another conversation`);
      return toMessage(single(rows));
    });
  }

  async getMessage(id: string): Promise<Message> {
    const what = `message "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    return toMessage(found(await this.db.select().from(messages).where(eq(messages.message_id, id)), what));
  }

  /**
   * New text for a message (kept in its version list too, when it has one), or another of its
   * versions chosen: what edit_message and select_alternative do in a session, for REST.
   */
  async updateMessage(input: MessageUpdate): Promise<Message> {
    return this.db.transaction(async (tx) => {
      const what = `message "${input.message_id}"`;
      if (!isUuid(input.message_id)) throw notFound(what);
      const row = found(await tx.select().from(messages).where(eq(messages.message_id, input.message_id)).for('update'), what);
      const alternatives = [...row.alternatives];
      let { content, alternative_index } = row;
      if (input.alternative_index !== undefined) {
        if (input.alternative_index >= alternatives.length) throw new ConflictError(`message "${input.message_id}" has ${alternatives.length} versions: alternative_index must be below that`);
        alternative_index = input.alternative_index;
        content = alternatives[alternative_index] as string;
      } else if (input.content !== undefined) {
        content = input.content;
        if (alternatives.length > 0) alternatives[alternative_index] = content;
      }
      const rows = await tx.update(messages).set({ content, alternatives, alternative_index, updated_at: now() }).where(eq(messages.message_id, input.message_id)).returning();
      await touchConversation(tx, row.conversation_id, `conversation "${row.conversation_id}"`);
      return toMessage(single(rows));
    });
  }

  /** Deletes the message; returns the conversation it was in. */
  async deleteMessage(id: string): Promise<{ conversation_id: string }> {
    const what = `message "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    const rows = await this.db.delete(messages).where(eq(messages.message_id, id)).returning({ conversation_id: messages.conversation_id });
    return found(rows, what);
  }

  /** A conversation's persona and lorebooks must exist (ConflictError, 409, naming the missing one). */
  async checkContext(fields: { persona_id?: string | null | undefined; lorebook_ids?: string[] | undefined }): Promise<void> {
    if (fields.persona_id) await this.getPersona(fields.persona_id).catch(asConflict);
    for (const id of fields.lorebook_ids ?? []) await this.getLorebook(id).catch(asConflict);
  }

  // ---------------------------------------------------------------------------------------
  // Personas

  /** The default first, then by name. */
  async listPersonas(): Promise<Persona[]> {
    const rows = await this.db.select().from(personas).orderBy(desc(personas.is_default), asc(sql`lower(${personas.name})`), asc(personas.id));
    return rows.map(toRecord);
  }

  async getPersona(id: string): Promise<Persona> {
    const what = `persona "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    return toRecord(found(await this.db.select().from(personas).where(eq(personas.id, id)), what));
  }

  /** The default persona, if one is marked so. */
  async defaultPersona(): Promise<Persona | undefined> {
    const [row] = await this.db.select().from(personas).where(eq(personas.is_default, true));
    return row && toRecord(row);
  }

  /** A new default takes the mark from the old one, in the same transaction. */
  async createPersona(input: PersonaCreate): Promise<Persona> {
    return this.db.transaction(async (tx) => {
      if (input.is_default) await tx.update(personas).set({ is_default: false, updated_at: now() }).where(eq(personas.is_default, true));
      const rows = await tx.insert(personas).values({ id: randomUUID(), ...input }).returning();
      return toRecord(single(rows));
    });
  }

  async updatePersona(input: PersonaUpdate): Promise<Persona> {
    const { id, ...fields } = input;
    const what = `persona "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    return this.db.transaction(async (tx) => {
      if (fields.is_default) await tx.update(personas).set({ is_default: false, updated_at: now() }).where(sql`${personas.is_default} and ${personas.id} <> ${id}`);
      const rows = await tx.update(personas).set({ ...fields, updated_at: now() }).where(eq(personas.id, id)).returning();
      return toRecord(found(rows, what));
    });
  }

  /** Conversations that chose it fall back to the default persona (foreign key ON DELETE SET NULL). */
  async deletePersona(id: string): Promise<void> {
    const what = `persona "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    found(await this.db.delete(personas).where(eq(personas.id, id)).returning({ id: personas.id }), what);
  }

  // ---------------------------------------------------------------------------------------
  // Lorebooks

  async listLorebooks(): Promise<Lorebook[]> {
    const rows = await this.db.select().from(lorebooks).orderBy(asc(sql`lower(${lorebooks.name})`), asc(lorebooks.id));
    return rows.map(toRecord);
  }

  async getLorebook(id: string): Promise<Lorebook> {
    const what = `lorebook "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    return toRecord(found(await this.db.select().from(lorebooks).where(eq(lorebooks.id, id)), what));
  }

  /** The lorebooks of these ids that exist, in the order given. */
  async lorebooksByIds(ids: readonly string[]): Promise<Lorebook[]> {
    const valid = ids.filter(isUuid);
    if (valid.length === 0) return [];
    const rows = await this.db.select().from(lorebooks).where(inArray(lorebooks.id, valid));
    const byId = new Map(rows.map((r) => [r.id, toRecord(r)]));
    return valid.flatMap((id) => byId.get(id) ?? []);
  }

  /** The lorebooks of these names (exact, as SillyTavern names its worlds); of two with one name, the older. */
  async lorebooksByNames(names: readonly string[]): Promise<Lorebook[]> {
    if (names.length === 0) return [];
    const rows = await this.db.select().from(lorebooks).where(inArray(lorebooks.name, [...new Set(names)])).orderBy(asc(lorebooks.created_at), asc(lorebooks.id));
    const byName = new Map<string, Lorebook>();
    for (const row of rows) if (!byName.has(row.name)) byName.set(row.name, toRecord(row));
    return [...byName.values()];
  }

  /** Creates all the lorebooks or, if one fails, none. */
  async createLorebooks(inputs: readonly LorebookCreate[]): Promise<Lorebook[]> {
    return this.db.transaction(async (tx) => {
      const created: Lorebook[] = [];
      for (const input of inputs) created.push(toRecord(single(await tx.insert(lorebooks).values({ id: randomUUID(), ...input }).returning())));
      return created;
    });
  }

  async updateLorebook(input: LorebookUpdate): Promise<Lorebook> {
    const { id, ...fields } = input;
    const what = `lorebook "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    const rows = await this.db.update(lorebooks).set({ ...fields, updated_at: now() }).where(eq(lorebooks.id, id)).returning();
    return toRecord(found(rows, what));
  }

  /** Also detaches it from every conversation it was attached to (jsonb `-` removes the id). */
  async deleteLorebook(id: string): Promise<void> {
    const what = `lorebook "${id}"`;
    if (!isUuid(id)) throw notFound(what);
    await this.db.transaction(async (tx) => {
      found(await tx.delete(lorebooks).where(eq(lorebooks.id, id)).returning({ id: lorebooks.id }), what);
      await tx
        .update(conversations)
        .set({ lorebook_ids: sql`${conversations.lorebook_ids} - ${id}::text` })
        .where(sql`${conversations.lorebook_ids} ? ${id}::text`);
    });
  }

  // ---------------------------------------------------------------------------------------
  // Starter cast

  /**
   * Seeds three voices and three characters (imported from the card files in seed-cards/,
   * starter-cast.ts) when there are neither, so a fresh install has someone to talk to. Returns whether it seeded. The lock keeps two processes starting at
   * once from both seeding.
   */
  async ensureStarterCast(): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${STARTER_CAST_LOCK})`);
      const empty = (await isEmpty(tx, characters)) && (await isEmpty(tx, voices));
      if (!empty) return false;
      await tx.insert(voices).values(STARTER_VOICES);
      for (const character of starterCharacters()) await insertCharacter(tx, character);
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
async function insertCharacter(tx: Db, given: CharacterImport): Promise<Character> {
  const { fields: input, v3 } = splitV3(given);
  const voice = await existingVoice(tx, input.voice);
  const narratorVoice = await existingVoice(tx, input.narrator_voice);
  const id = await nextCharacterId(tx, slugify(input.name));
  const etag = input.picture && createHash('sha256').update(input.picture.bytes).digest('hex').slice(0, 16);
  const rows = await tx
    .insert(characters)
    .values({
      id,
      name: input.name,
      voice,
      narration: input.narration ?? null,
      narrator_voice: narratorVoice,
      style: input.style ?? null,
      system_prompt: input.system_prompt ?? '',
      image_url: etag === undefined ? (input.image_url ?? null) : pictureUrl(id, etag),
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
      card: withV3Fields(input.card ?? {}, v3),
      card_top: input.card_top ?? {},
    })
    .returning();
  if (input.picture && etag !== undefined) {
    // As base64 text, decoded by the database: PGlite takes a bytea parameter byte by byte (8 s
    // for a 3 MB picture on a busy machine against 0.5 s so).
    const { content_type, bytes } = input.picture;
    await tx.insert(characterPictures).values({ character_id: id, content_type, bytes: sql`decode(${bytes.toString('base64')}, 'base64')`, etag });
  }
  return toCharacter(single(rows));
}

/** A create's or update's V3 fields apart from the rest (they are kept in the card). */
function splitV3<T extends Partial<Record<(typeof cardV3Fields)[number], unknown>>>(input: T) {
  const fields: Record<string, unknown> = { ...input };
  const v3: Record<string, unknown> = {};
  for (const key of cardV3Fields) {
    if (!Object.hasOwn(fields, key)) continue;
    v3[key] = fields[key];
    delete fields[key];
  }
  return { fields: fields as Omit<T, (typeof cardV3Fields)[number]>, v3: v3 as Partial<Pick<Character, (typeof cardV3Fields)[number]>> };
}

/** The card a character has now, locked for the update that rewrites it. */
async function storedCard(tx: Db, id: string): Promise<Record<string, unknown>> {
  const rows = await tx.select({ card: characters.card }).from(characters).where(eq(characters.id, id)).for('update');
  return found(rows, `character "${id}"`).card;
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
  const { card, card_top: _exportOnly, ...record } = row;
  return { ...record, ...cardV3View(card), ...timestamps(row) };
}
const toVoice = (row: VoiceRow): Voice => ({ ...row, ...timestamps(row) });
/** Personas and lorebooks: the row with its timestamps as text. */
const toRecord = <R extends { created_at: Date; updated_at: Date }>(row: R): Omit<R, 'created_at' | 'updated_at'> & { created_at: string; updated_at: string } => ({ ...row, ...timestamps(row) });
const asConflict = (error: unknown): never => {
  throw error instanceof NotFoundError ? new ConflictError(error.message.replace(/ not found$/, ' does not exist')) : error;
};
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
