// The CRUD dispatch table: message type → payload schema, repository operation, reply type.
// The WebSocket router and the REST API both run requests through runCrud, so there is one
// implementation of every operation, one validation and one error mapping.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { z } from 'zod';
import * as p from '../protocol.ts';
import type { Character, Conversation, EndpointKind, ServerMessageOf, ServerMessageType } from '../protocol.ts';
import type { CharacterImport, Repo } from './repo.ts';
import { ConflictError, NotFoundError } from './repo.ts';

type DataOf<R extends ServerMessageType> = ServerMessageOf<R> extends { data: infer D } ? D : never;

interface CrudOp<S extends z.ZodType, R extends ServerMessageType> {
  schema: S;
  reply: R;
  run: (repo: Repo, input: z.infer<S>) => Promise<DataOf<R>>;
  /** Which cached records a successful call changes (sessions reload their characters or a conversation's cast). */
  changes?: Change;
}
type Change = 'characters' | 'conversation' | 'context' | MessageOp;

/** What happened to a message. */
export type MessageOp = 'added' | 'updated' | 'deleted';

/**
 * A message of a conversation changed. Small, as a notice between processes must be: the
 * subscriber reads the row. `origin` is the session that made the change (it has applied it
 * already); absent for a change made over REST.
 */
export interface MessageChange {
  op: MessageOp;
  conversation_id: string;
  message_id: string;
  origin?: string | undefined;
}

const op = <S extends z.ZodType, R extends ServerMessageType>(
  schema: S,
  reply: R,
  run: (repo: Repo, input: z.infer<S>) => Promise<DataOf<R>>,
  changes?: Change,
): CrudOp<S, R> => ({ schema, reply, run, changes });

export const crudOps = {
  get_characters: op(p.emptySchema, 'characters_data', (r) => r.listCharacters()),
  get_active_characters: op(p.emptySchema, 'active_characters_data', (r) => r.listActiveCharacters()),
  get_character: op(p.characterIdSchema, 'character_data', (r, d) => r.getCharacter(d.id)),
  search_characters: op(p.searchSchema, 'characters_data', (r, d) => r.searchCharacters(d.query)),
  create_character: op(p.characterCreateSchema, 'character_created', (r, d) => r.createCharacter(d), 'characters'),
  update_character: op(p.characterUpdateSchema, 'character_updated', (r, d) => r.updateCharacter(d), 'characters'),
  delete_character: op(p.characterIdSchema, 'character_deleted', async (r, d) => (await r.deleteCharacter(d.id), { id: d.id }), 'characters'),

  get_voices: op(p.emptySchema, 'voices_data', (r) => r.listVoices()),
  get_voice: op(p.voiceKeySchema, 'voice_data', (r, d) => r.getVoice(d.voice)),
  create_voice: op(p.voiceCreateSchema, 'voice_created', (r, d) => r.createVoice(d)),
  update_voice: op(p.voiceUpdateSchema, 'voice_updated', (r, d) => r.updateVoice(d), 'characters'),
  delete_voice: op(p.voiceKeySchema, 'voice_deleted', async (r, d) => (await r.deleteVoice(d.voice), { voice: d.voice }), 'characters'),

  get_conversations: op(p.pageSchema, 'conversations_data', (r, d) => r.listConversations(d)),
  get_conversation: op(p.conversationIdSchema, 'conversation_data', (r, d) => r.getConversation(d.conversation_id)),
  create_conversation: op(p.conversationCreateSchema, 'conversation_created', (r, d) => r.createConversation(d)),
  update_conversation: op(p.conversationUpdateSchema, 'conversation_updated', (r, d) => r.updateConversation(d), 'conversation'),
  delete_conversation: op(p.conversationIdSchema, 'conversation_deleted', async (r, d) => (await r.deleteConversation(d.conversation_id), { conversation_id: d.conversation_id })),

  get_personas: op(p.emptySchema, 'personas_data', (r) => r.listPersonas()),
  get_persona: op(p.recordIdSchema, 'persona_data', (r, d) => r.getPersona(d.id)),
  create_persona: op(p.personaCreateSchema, 'persona_created', (r, d) => r.createPersona(d), 'context'),
  update_persona: op(p.personaUpdateSchema, 'persona_updated', (r, d) => r.updatePersona(d), 'context'),
  delete_persona: op(p.recordIdSchema, 'persona_deleted', async (r, d) => (await r.deletePersona(d.id), { id: d.id }), 'context'),

  get_lorebooks: op(p.emptySchema, 'lorebooks_data', (r) => r.listLorebooks()),
  get_lorebook: op(p.recordIdSchema, 'lorebook_data', (r, d) => r.getLorebook(d.id)),
  create_lorebook: op(p.lorebookCreateSchema, 'lorebook_created', async (r, d) => (await r.createLorebooks([d]))[0]!, 'context'),
  update_lorebook: op(p.lorebookUpdateSchema, 'lorebook_updated', (r, d) => r.updateLorebook(d), 'context'),
  delete_lorebook: op(p.recordIdSchema, 'lorebook_deleted', async (r, d) => (await r.deleteLorebook(d.id), { id: d.id }), 'context'),

  get_messages: op(p.messagesPageSchema, 'messages_data', (r, d) => r.listMessages(d)),
  create_message: op(p.messageCreateSchema, 'message_created', (r, d) => r.createMessage(d), 'added'),
  update_message: op(p.messageUpdateSchema, 'message_updated', (r, d) => r.updateMessage(d), 'updated'),
  delete_message: op(p.messageIdSchema, 'message_deleted', async (r, d) => ({ message_id: d.message_id, conversation_id: (await r.deleteMessage(d.message_id)).conversation_id }), 'deleted'),
} as const;

export type CrudType = keyof typeof crudOps;
export const isCrudType = (type: string): type is CrudType => Object.hasOwn(crudOps, type);

/** Why a CRUD request failed, in words for the client, with the HTTP status REST answers with. */
export type CrudFailure = {
  ok: false;
  status: 400 | 404 | 409 | 500;
  error: string;
  /** An unexpected failure: what the caller logs under `errorId`, never shown to the client. */
  cause?: unknown;
  errorId?: string;
};
export type CrudResult = { ok: true; reply: ServerMessageType; data: unknown } | CrudFailure;

/**
 * Change notices for sessions of this process: every character after a character change (loaded
 * once for all), and a conversation after an update (a session in it takes its cast and rules).
 * The change bus (src/db/change-bus.ts) sends them to the other processes and re-emits theirs
 * here; `endpoints` says an endpoint setting (LLM, TTS, STT) was saved or forgotten; `resync` says notices may have been missed (its LISTEN connection was lost): re-read.
 */
export const crudChanges = new EventEmitter<{ characters: [all: Character[]]; conversation: [conversation: Conversation]; context: []; message: [change: MessageChange]; endpoints: [kind: EndpointKind]; resync: [] }>();
crudChanges.setMaxListeners(0); // one listener per open session, by design: no leak warning at 11

/** The message operations' notices, by the op a CRUD call changes. */
const MESSAGE_OPS = new Set<Change>(['added', 'updated', 'deleted']);
const isMessageOp = (change: Change | undefined): change is MessageOp => change !== undefined && MESSAGE_OPS.has(change);

/** Runs one CRUD request; `origin` is the session that sent it (its message changes are not echoed to it). */
export async function runCrud(repo: Repo, type: CrudType, payload: unknown, origin?: string): Promise<CrudResult> {
  const operation = crudOps[type] as CrudOp<z.ZodType, ServerMessageType>;
  const parsed = operation.schema.safeParse(payload ?? {});
  if (!parsed.success) return { ok: false, status: 400, error: `Invalid ${type} request: ${p.describeZodError(parsed.error)}` };
  try {
    const data = await operation.run(repo, parsed.data);
    if (operation.changes === 'characters') await announceCast(repo);
    if (operation.changes === 'conversation') crudChanges.emit('conversation', data as Conversation);
    if (operation.changes === 'context') crudChanges.emit('context'); // a persona or lorebook: sessions reread theirs
    if (isMessageOp(operation.changes)) {
      const { message_id, conversation_id } = data as { message_id: string; conversation_id: string };
      crudChanges.emit('message', { op: operation.changes, conversation_id, message_id, origin });
    }
    return { ok: true, reply: operation.reply, data };
  } catch (error) {
    return failure(type, error);
  }
}

/** Creates characters from imported cards, all or none, as one more character change. */
export async function runImport(repo: Repo, inputs: readonly CharacterImport[]): Promise<CrudResult> {
  try {
    const data = await repo.importCharacters(inputs);
    await announceCast(repo);
    return { ok: true, reply: 'characters_data', data };
  } catch (error) {
    return failure('import_characters', error);
  }
}

/** Creates lorebooks from imported files (POST /api/lorebooks/import), all or none. */
export async function runLorebookImport(repo: Repo, inputs: readonly p.LorebookCreate[]): Promise<CrudResult> {
  try {
    const data = await repo.createLorebooks(inputs);
    crudChanges.emit('context');
    return { ok: true, reply: 'lorebooks_data', data };
  } catch (error) {
    return failure('import_lorebooks', error);
  }
}

/**
 * Tells the sessions the new character records, before the reply: a user_message sent right
 * after it already meets them. If the read fails, sessions keep the records they had; the
 * change itself succeeded and is reported so.
 */
async function announceCast(repo: Repo): Promise<void> {
  const all = await repo.listCharacters().catch(() => undefined);
  if (all) crudChanges.emit('characters', all);
}

function failure(type: CrudType | 'import_characters' | 'import_lorebooks', error: unknown): CrudFailure {
  if (error instanceof NotFoundError) return { ok: false, status: 404, error: error.message };
  if (error instanceof ConflictError) return { ok: false, status: 409, error: error.message };
  // The driver's message can quote SQL, parameters or a connection string: the client gets an
  // id to quote, the log gets the details.
  const errorId = randomUUID().slice(0, 8);
  return { ok: false, status: 500, error: `${type} failed on the server (error id ${errorId}).`, cause: error, errorId };
}
