// Write-behind persistence of one connection's conversation: messages are stored in order
// without delaying the stream. The conversation row is created with the first message (titled
// by it). A write that fails for a passing reason (the database is unreachable) is retried with
// backoff, holding back the messages after it so their order is kept; one the database refuses
// for good (a data or constraint error) is reported once and set aside in the dead-letter file,
// and the messages after it go on. close() waits (bounded) for what is pending; a log that could
// not finish by then stays in `liveLogs` and keeps retrying for as long as the process lives,
// and shutdown spools what is still unstored (stopLiveLogs).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Repo } from '../db/repo.ts';
import { ConflictError, conversationTitle, NotFoundError } from '../db/repo.ts';
import { classifyStorageError, describeStorageFailure } from '../db/storage-errors.ts';
import type { ConversationCreate, Message, MessageCreate } from '../protocol.ts';
import type { MessageSpool } from './message-spool.ts';

/** A message of the session: with its own id it is saved (inserted or replaced), without one created. */
export type PendingMessage = Omit<MessageCreate, 'conversation_id'> & { message_id?: string; alternatives?: string[]; alternative_index?: number };

/** One message waiting to be stored, with what it takes to create its conversation. */
export interface LogEntry {
  conversation_id: string;
  /** The first message of a conversation the session has not stored yet: create it first. */
  new_conversation: boolean;
  active_characters: string[];
  /** The conversation's cast and rules to create it with (reply_strategy …); absent: the defaults. */
  settings?: ConversationCreate;
  /** The conversation was stored before its first message (storeNow): this one titles it. */
  retitle?: boolean;
  message: PendingMessage;
}

const RETRY_DELAYS_MS = [100, 500, 1000, 2000, 5000];

/** Every log with messages still to store, open or closed; shutdown spools what they hold. */
export const liveLogs = new Set<ConversationLog>();

export interface ConversationLogOptions {
  repo: Repo;
  conversationId: string;
  activeCharacters: () => string[];
  /** The rest of the conversation record to create it with (the session's cast settings). */
  settings?: () => ConversationCreate;
  /** Told when the conversation is first given a message (it is stored with it). */
  onStored?: () => void;
  /** Tells the client (storage_error) while the connection is open. */
  report: (message: string) => void;
  /** Told of each message stored: new, or a new state of one stored before (other sessions are told). */
  stored?: (message: Message, op: 'added' | 'updated') => void;
  /** Where refused messages are set aside; without one they go to the error log only. */
  spool?: MessageSpool | undefined;
  logger?: Logger | undefined;
}

export class ConversationLog {
  private conversationId: string;
  private stored = false;
  /** Stored by storeNow with a placeholder title: the first message titles it. */
  private untitled = false;
  private readonly queue: LogEntry[] = [];
  /** Reserved places (reserve()) whose message is not final yet. */
  private readonly slots = new Map<LogEntry, Promise<PendingMessage | undefined>>();
  private draining: Promise<void> | undefined;
  private idleWaiters: Array<(idle: boolean) => void> = [];
  private closed = false;
  private stopped = false;
  /** Cuts a backoff wait short when the log is stopped. */
  private readonly wake = new AbortController();
  private readonly stopping = new Promise<undefined>((resolve) => this.wake.signal.addEventListener('abort', () => resolve(undefined), { once: true }));
  private outageReported = false;

  constructor(private readonly opts: ConversationLogOptions) {
    this.conversationId = opts.conversationId;
    liveLogs.add(this);
  }

  get id(): string {
    return this.conversationId;
  }

  /**
   * Stores the new conversation now, before its first message (which still titles it, unless
   * titled() is called): something is about to change its record.
   */
  async storeNow(): Promise<void> {
    if (this.stored) return;
    const entry = { conversation_id: this.conversationId, active_characters: this.opts.activeCharacters(), settings: this.opts.settings?.() };
    await ensureConversation(this.opts.repo, { ...entry, new_conversation: true, message: { role: 'user', content: '' } }, conversationTitle(undefined, new Date()));
    this.stored = true;
    this.untitled = true;
    this.opts.onStored?.();
  }

  /** The conversation was given a title: its first message no longer titles it. */
  titled(): void {
    this.untitled = false;
  }

  /** The conversation exists in the database, or will with the messages already appended. */
  get isStored(): boolean {
    return this.stored;
  }

  /** Messages not stored (nor set aside) yet. */
  get pending(): number {
    return this.queue.length;
  }

  /** Switches to a new, not yet stored conversation. */
  startNew(id: string): void {
    this.conversationId = id;
    this.stored = false;
  }

  /** Switches to a stored conversation. */
  resume(id: string): void {
    this.conversationId = id;
    this.stored = true;
  }

  append(message: PendingMessage): void {
    this.enqueue(this.entryFor(message));
  }

  /**
   * Holds the next place in the log for a message whose final form comes later (a reply is
   * committed when its playback ends): messages appended after it wait behind it, so the store
   * keeps the conversation's order. Call the returned function with the message, or undefined
   * when there is none to store. Until then `provisional` stands for it (shutdown spools that).
   */
  reserve(provisional: PendingMessage): (message: PendingMessage | undefined) => void {
    const entry = this.entryFor(provisional);
    let fill!: (message: PendingMessage | undefined) => void;
    this.slots.set(entry, new Promise((resolve) => (fill = resolve)));
    this.enqueue(entry);
    return fill;
  }

  private entryFor(message: PendingMessage): LogEntry {
    const entry: LogEntry = {
      conversation_id: this.conversationId,
      new_conversation: !this.stored,
      active_characters: this.opts.activeCharacters(),
      ...(!this.stored && this.opts.settings ? { settings: this.opts.settings() } : {}),
      ...(this.untitled ? { retitle: true } : {}),
      message,
    };
    this.untitled = false;
    if (!this.stored) this.opts.onStored?.();
    this.stored = true;
    return entry;
  }

  private enqueue(entry: LogEntry): void {
    if (this.stopped) {
      this.slots.delete(entry);
      void this.spoolLate(entry); // after shutdown took the queue: straight to the spool
      return;
    }
    this.queue.push(entry);
    liveLogs.add(this);
    this.draining ??= this.drain();
  }

  /** Waits until everything appended so far is stored or set aside (or `timeoutMs` passes). */
  async flush(timeoutMs = 10_000): Promise<boolean> {
    if (this.queue.length === 0) return true;
    if (this.stopped) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(resolve));
    const done = await Promise.race([idle, timeout]);
    clearTimeout(timer);
    return done;
  }

  /**
   * The connection is gone: waits up to `timeoutMs` for the pending writes. Whatever is still
   * unstored then keeps being retried in the background (the log stays in liveLogs).
   */
  async close(timeoutMs = 10_000): Promise<boolean> {
    this.closed = true;
    const done = await this.flush(timeoutMs);
    if (this.queue.length === 0) liveLogs.delete(this);
    return done;
  }

  /**
   * Shutdown: stops retrying and returns the messages still unstored, in order. A write in
   * flight gets up to `waitMs` to finish; if it does not, its message is returned too (stored
   * twice at worst, never lost).
   */
  async stop(waitMs: number): Promise<LogEntry[]> {
    this.stopped = true;
    this.wake.abort();
    if (this.draining) await Promise.race([this.draining, sleep(waitMs, undefined, { ref: false })]);
    liveLogs.delete(this);
    this.settleWaiters(false);
    return this.queue.splice(0);
  }

  private async drain(): Promise<void> {
    let attempt = 0;
    try {
      while (!this.stopped && this.queue.length > 0) {
        const entry = this.queue[0] as LogEntry;
        const slot = this.slots.get(entry);
        if (slot) {
          const message = await Promise.race([slot, this.stopping]);
          if (this.stopped) break; // unfilled: stop() returns it with its provisional message
          this.slots.delete(entry);
          if (message === undefined) {
            this.queue.shift();
            continue;
          }
          entry.message = message as PendingMessage;
        }
        if (await this.write(entry)) {
          this.queue.shift();
          attempt = 0;
          continue;
        }
        const delay = RETRY_DELAYS_MS[Math.min(attempt++, RETRY_DELAYS_MS.length - 1)] as number;
        // Unref'd: a retry alone does not keep the process alive; shutdown spools what is left.
        await sleep(delay, undefined, { signal: this.wake.signal, ref: false }).catch(() => undefined);
      }
    } finally {
      // Cleared before anyone is woken: an append from a woken flush() starts a new drain.
      this.draining = undefined;
    }
    if (this.queue.length === 0) {
      this.settleWaiters(true);
      if (this.closed) liveLogs.delete(this);
    }
  }

  /** One attempt. True when the message is done with: stored, or refused and set aside. */
  private async write(entry: LogEntry): Promise<boolean> {
    try {
      const stored = await storeEntry(this.opts.repo, entry);
      this.outageReported = false;
      // Inserted and updated in separate transactions: equal timestamps (now()) mean new.
      this.opts.stored?.(stored, stored.created_at === stored.updated_at ? 'added' : 'updated');
      return true;
    } catch (error) {
      // A message id taken in another conversation: no retry can store it (it cannot happen with the server's own ids).
      const failure = error instanceof ConflictError ? { permanent: true, code: 'conflict' } : classifyStorageError(error);
      const reason = describeStorageFailure(failure);
      if (!failure.permanent) {
        // Once per outage, not once per message waiting behind it.
        if (!this.outageReported) this.tell(`Could not store a message (${reason}); retrying.`);
        this.outageReported = true;
        return false;
      }
      this.tell(`Could not store ${describeEntry(entry)}: ${reason}. It was set aside in the dead-letter file; the conversation goes on.`);
      await this.setAside(entry, `${failure.code}: ${error instanceof Error ? error.message : String(error)}`);
      return true;
    }
  }

  private async setAside(entry: LogEntry, reason: string): Promise<void> {
    try {
      if (!this.opts.spool) throw new Error('no data directory to keep it in');
      await this.opts.spool.deadLetter(entry, reason);
      this.opts.logger?.error({ file: this.opts.spool.deadLetterPath, reason }, 'a message the database refused was set aside');
    } catch (error) {
      // The last copy of the message: into the error log rather than nowhere.
      this.opts.logger?.error({ err: error, entry, reason }, 'a message the database refused could not be set aside');
    }
  }

  private async spoolLate(entry: LogEntry): Promise<void> {
    try {
      if (!this.opts.spool) throw new Error('no data directory to keep it in');
      await this.opts.spool.spool([entry]);
    } catch (error) {
      this.opts.logger?.error({ err: error, entry }, 'a message appended during shutdown could not be spooled');
    }
  }

  private tell(message: string): void {
    if (!this.closed) this.opts.report(message);
    else this.opts.logger?.warn(message);
  }

  private settleWaiters(idle: boolean): void {
    for (const resolve of this.idleWaiters.splice(0)) resolve(idle);
  }
}

/** Stores one entry, creating its conversation when it is new or has been deleted meanwhile. */
export async function storeEntry(repo: Repo, entry: LogEntry): Promise<Message> {
  if (entry.new_conversation) await ensureConversation(repo, entry);
  let stored: Message;
  try {
    stored = await writeMessage(repo, entry);
  } catch (error) {
    // Someone deleted the conversation while it was in use: bring it back rather than lose the message.
    if (!(error instanceof NotFoundError)) throw error;
    await ensureConversation(repo, entry);
    stored = await writeMessage(repo, entry);
  }
  if (entry.retitle) await repo.updateConversation({ conversation_id: entry.conversation_id, title: conversationTitle(entry.message.content, new Date()) });
  return stored;
}

function writeMessage(repo: Repo, entry: LogEntry): Promise<Message> {
  const { message_id, ...message } = entry.message;
  if (message_id === undefined) return repo.createMessage({ ...message, conversation_id: entry.conversation_id });
  return repo.saveMessage({ ...message, message_id, conversation_id: entry.conversation_id });
}

/** Creates the entry's conversation unless it exists (a retry after the create went through). */
async function ensureConversation(repo: Repo, entry: LogEntry, title = conversationTitle(entry.message.content, new Date())): Promise<void> {
  try {
    await repo.createConversation({ ...entry.settings, title: entry.settings?.title ?? title, active_characters: entry.active_characters }, entry.conversation_id);
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error;
  }
}

/** Stops every live log (shutdown) and returns what they could not store. */
export async function stopLiveLogs(waitMs: number): Promise<LogEntry[]> {
  const left = await Promise.all([...liveLogs].map((log) => log.stop(waitMs)));
  return left.flat();
}

/** Names a message for its author: who said it and how it began. */
function describeEntry(entry: LogEntry): string {
  const { role, name, content } = entry.message;
  const chars = Array.from(content);
  const start = chars.length > 40 ? `${chars.slice(0, 40).join('')}…` : content;
  return `the ${role} message${name ? ` from ${name}` : ''} "${start}"`;
}
