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
import type { MessageCreate } from '../protocol.ts';
import type { MessageSpool } from './message-spool.ts';

export type PendingMessage = Omit<MessageCreate, 'conversation_id'>;

/** One message waiting to be stored, with what it takes to create its conversation. */
export interface LogEntry {
  conversation_id: string;
  /** The first message of a conversation the session has not stored yet: create it first. */
  new_conversation: boolean;
  active_characters: string[];
  message: PendingMessage;
}

const RETRY_DELAYS_MS = [100, 500, 1000, 2000, 5000];

/** Every log with messages still to store, open or closed; shutdown spools what they hold. */
export const liveLogs = new Set<ConversationLog>();

export interface ConversationLogOptions {
  repo: Repo;
  conversationId: string;
  activeCharacters: () => string[];
  /** Tells the client (storage_error) while the connection is open. */
  report: (message: string) => void;
  /** Where refused messages are set aside; without one they go to the error log only. */
  spool?: MessageSpool | undefined;
  logger?: Logger | undefined;
}

export class ConversationLog {
  private conversationId: string;
  private stored = false;
  private readonly queue: LogEntry[] = [];
  private draining: Promise<void> | undefined;
  private idleWaiters: Array<(idle: boolean) => void> = [];
  private closed = false;
  private stopped = false;
  /** Cuts a backoff wait short when the log is stopped. */
  private readonly wake = new AbortController();
  private outageReported = false;

  constructor(private readonly opts: ConversationLogOptions) {
    this.conversationId = opts.conversationId;
    liveLogs.add(this);
  }

  get id(): string {
    return this.conversationId;
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
    const entry: LogEntry = {
      conversation_id: this.conversationId,
      new_conversation: !this.stored,
      active_characters: this.opts.activeCharacters(),
      message,
    };
    this.stored = true;
    if (this.stopped) {
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
      await storeEntry(this.opts.repo, entry);
      this.outageReported = false;
      return true;
    } catch (error) {
      const failure = classifyStorageError(error);
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
export async function storeEntry(repo: Repo, entry: LogEntry): Promise<void> {
  if (entry.new_conversation) await ensureConversation(repo, entry);
  try {
    await repo.createMessage({ ...entry.message, conversation_id: entry.conversation_id });
  } catch (error) {
    // Someone deleted the conversation while it was in use: bring it back rather than lose the message.
    if (!(error instanceof NotFoundError)) throw error;
    await ensureConversation(repo, entry);
    await repo.createMessage({ ...entry.message, conversation_id: entry.conversation_id });
  }
}

/** Creates the entry's conversation unless it exists (a retry after the create went through). */
async function ensureConversation(repo: Repo, entry: LogEntry): Promise<void> {
  const title = conversationTitle(entry.message.content, new Date());
  try {
    await repo.createConversation({ title, active_characters: entry.active_characters }, entry.conversation_id);
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
