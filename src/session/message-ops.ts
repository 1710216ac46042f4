// MessageOps: the message operations of one session (docs/protocol.md, "Message operations"):
// regenerate and continue (which stream a reply, as a turn of their own), select_alternative,
// edit_message and delete_message. They act on the live history — what every later prompt is
// built from — and store the change through the conversation log, keyed by the message's id,
// so reopening the conversation shows the same state.
import { randomUUID } from 'node:crypto';
import type { CrudType } from '../db/handlers.ts';
import type { Repo } from '../db/repo.ts';
import { NotFoundError } from '../db/repo.ts';
import type { ChatLLM, HistoryEntry } from '../llm/chat.ts';
import * as p from '../protocol.ts';
import type { Character, ErrorCode, ServerMessage } from '../protocol.ts';
import type { ConversationLog } from './conversation-log.ts';
import { messageUpdate, type ReplyPlan, storedMessage } from './turn.ts';

interface Req {
  type: string;
  request_id?: string;
}

/** A turn's replies, planned when the turn's time comes (undefined: nothing to run; the client was told why). */
export type PlanReplies = () => Promise<ReplyPlan[] | undefined>;

export interface MessageOpsDeps {
  chat: ChatLLM;
  log: ConversationLog;
  repo: Repo;
  cast: () => readonly Character[];
  /** Who answers the user message the history ends with (the conversation's reply strategy). */
  responders: (history: readonly HistoryEntry[]) => readonly Character[];
  send: (message: ServerMessage) => void;
  error: (code: ErrorCode, message: string, req?: Req) => void;
  speaking: () => boolean;
  /** Cuts what is playing (committing what was heard). */
  stopSpeaking: () => Promise<void>;
  /** Resolves once every reply streamed so far is committed (its playback ended or was cut). */
  settled: () => Promise<void>;
  queueReplies: (plan: PlanReplies) => void;
  crud: (type: CrudType, data: unknown, req: Req) => Promise<boolean>;
}

const echo = (req: Req) => (req.request_id === undefined ? {} : { request_id: req.request_id });

/** A refused operation: the client gets `code` and the reason. */
class OpError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export class MessageOps {
  constructor(private readonly deps: MessageOpsDeps) {}

  /**
   * A new reply in place of the last one, by the same character; the old text stays as an
   * alternative. Without a message id: the last reply, or — when the history ends with the
   * user's message (its reply failed or was never made) — new replies to that message. With
   * one: that reply, if it is the last of its turn (the conversation ends there, or the user
   * spoke next); the new one is written from the history before it and takes its place.
   */
  async regenerate(messageId: string | undefined, req: Req): Promise<void> {
    if (this.deps.speaking()) await this.deps.stopSpeaking();
    this.deps.queueReplies(() =>
      this.plan(req, async () => {
        await this.deps.settled(); // a reply still playing is committed first: the history is final
        const history = this.deps.chat.history;
        const last = history.at(-1);
        // No id (a failed reply that was never stored), or the reply was cut before a word of it was
        // heard (Retry pressed as it started: stopping it above left nothing to store): new
        // replies to the user's message.
        const unheard = messageId !== undefined && messageId === this.deps.chat.lastUnheard && !this.find(messageId);
        if ((messageId === undefined || unheard) && last?.role === 'user') {
          return this.deps.responders(history).map((character) => ({ character, messageId: randomUUID() }));
        }
        const target = messageId === undefined ? last : this.find(messageId);
        if (!target || target.role !== 'assistant') throw new OpError('invalid_payload', 'There is no reply to regenerate: only a character\'s reply can be.');
        const at = history.indexOf(target);
        if (history[at + 1] !== undefined && history[at + 1]?.role !== 'user') {
          throw new OpError('invalid_payload', 'Only the last reply of a turn can be regenerated: another character answered after this one.');
        }
        const character = await this.characterOf(target);
        history.splice(at, 1);
        const alternatives = (target.alternatives?.length ?? 0) > 0 ? [...(target.alternatives as string[])] : [target.content];
        return [{ character, messageId: target.message_id as string, alternatives, previousIndex: target.alternative_index ?? 0, ...(at < history.length ? { at } : {}) }];
      }),
    );
  }

  /** The same character extends its last reply; the stream appends to it. */
  async continueMessage(messageId: string, req: Req): Promise<void> {
    if (this.deps.speaking()) await this.deps.stopSpeaking();
    this.deps.queueReplies(() =>
      this.plan(req, async () => {
        await this.deps.settled();
        const target = this.find(messageId);
        if (!target || target.role !== 'assistant') throw new OpError(target ? 'invalid_payload' : 'not_found', target ? 'Only a character\'s reply can be continued.' : this.notFound(messageId));
        this.mustBeLast(target, 'continued');
        return [{ character: await this.characterOf(target), messageId, extends: target }];
      }),
    );
  }

  /** Switches a regenerated reply to another of its versions (a swipe). */
  async selectAlternative(messageId: string, index: number, req: Req): Promise<void> {
    if (this.deps.speaking()) await this.deps.stopSpeaking(); // a playing reply commits before it changes
    this.run(req, () => {
      const entry = this.found(messageId);
      const alternatives = entry.alternatives ?? [];
      if (index >= alternatives.length) {
        throw new OpError('invalid_payload', `Invalid select_alternative: data.index must be below ${alternatives.length}, the number of versions of the message.`);
      }
      entry.alternative_index = index;
      entry.content = alternatives[index] as string;
      this.save(entry, req);
    });
  }

  /** New text for a user or character message. */
  async edit(messageId: string, content: string, req: Req): Promise<void> {
    if (this.deps.speaking()) await this.deps.stopSpeaking();
    this.run(req, () => {
      const entry = this.found(messageId);
      entry.content = content;
      if ((entry.alternatives?.length ?? 0) > 0) (entry.alternatives as string[])[entry.alternative_index ?? 0] = content;
      this.save(entry, req);
    });
  }

  /** The CRUD delete, after what is still being written is stored; the message leaves the live history too. */
  async delete(data: unknown, req: Req): Promise<void> {
    await this.deps.log.flush();
    if (!(await this.deps.crud('delete_message', data, req))) return;
    const parsed = p.messageIdSchema.safeParse(data);
    const history = this.deps.chat.history;
    const at = parsed.success ? history.findIndex((h) => h.message_id === parsed.data.message_id) : -1;
    if (at >= 0) history.splice(at, 1);
  }

  // ------------------------------------------------------------------------------------------

  private save(entry: HistoryEntry, req: Req): void {
    this.deps.log.append(storedMessage(entry));
    this.deps.send({ type: 'message_updated', data: messageUpdate(entry), ...echo(req) });
  }

  private run(req: Req, operation: () => void): void {
    try {
      operation();
    } catch (error) {
      if (!(error instanceof OpError)) throw error;
      this.deps.error(error.code, error.message, req);
    }
  }

  private async plan(req: Req, make: () => Promise<ReplyPlan[]>): Promise<ReplyPlan[] | undefined> {
    try {
      return await make();
    } catch (error) {
      if (!(error instanceof OpError)) throw error;
      this.deps.error(error.code, error.message, req);
      return undefined;
    }
  }

  private find(messageId: string): HistoryEntry | undefined {
    return this.deps.chat.history.find((h) => h.message_id === messageId);
  }

  private found(messageId: string): HistoryEntry {
    const entry = this.find(messageId);
    if (!entry) throw new OpError('not_found', this.notFound(messageId));
    return entry;
  }

  private notFound(messageId: string): string {
    return `message "${messageId}" not found in this conversation`;
  }

  private mustBeLast(entry: HistoryEntry, done: string): void {
    if (this.deps.chat.history.at(-1) !== entry) throw new OpError('invalid_payload', `Only the last message of the conversation can be ${done}.`);
  }

  /** The character who wrote a reply, active or not. */
  private async characterOf(entry: HistoryEntry): Promise<Character> {
    const active = this.deps.cast().find((c) => c.id === entry.character_id);
    if (active) return active;
    try {
      if (entry.character_id === null) throw new NotFoundError('no character');
      return await this.deps.repo.getCharacter(entry.character_id);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      throw new OpError('not_found', `The character of message "${entry.message_id}" no longer exists.`);
    }
  }
}
