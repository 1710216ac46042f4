// Write-behind persistence of one connection's conversation: messages are stored in order
// without delaying the stream. The conversation row is created with the first message (titled
// by it). A failed write is reported and retried with backoff until it succeeds or the
// connection closes; close() waits (bounded) for what is still pending.
import type { Repo } from '../db/repo.ts';
import { conversationTitle, NotFoundError } from '../db/repo.ts';
import type { MessageCreate } from '../protocol.ts';

export type PendingMessage = Omit<MessageCreate, 'conversation_id'>;

const RETRY_DELAYS_MS = [100, 500, 1000, 2000, 5000];

export class ConversationLog {
  private stored = false;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly repo: Repo,
    private conversationId: string,
    private readonly activeCharacters: () => string[],
    private readonly onError: (message: string) => void,
  ) {}

  get id(): string {
    return this.conversationId;
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
    const conversationId = this.conversationId;
    this.chain = this.chain.then(() => this.writeWithRetry(conversationId, message));
  }

  /** Waits until everything appended so far is stored (or `timeoutMs` passes). */
  async flush(timeoutMs = 10_000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const done = await Promise.race([this.chain.then(() => true), timeout]);
    clearTimeout(timer);
    return done;
  }

  /** Stops retrying after the pending writes have had `timeoutMs` to finish. */
  async close(timeoutMs = 10_000): Promise<boolean> {
    const done = await this.flush(timeoutMs);
    this.closed = true;
    return done;
  }

  private async writeWithRetry(conversationId: string, message: PendingMessage): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.write(conversationId, message);
        return;
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        if (attempt === 0) this.onError(`Could not store a message (${reason}); retrying.`);
        if (this.closed) return;
        await sleep(RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)] as number);
      }
    }
  }

  private async write(conversationId: string, message: PendingMessage): Promise<void> {
    const isCurrent = conversationId === this.conversationId;
    if (isCurrent && !this.stored) {
      await this.createConversation(conversationId, message.content);
      this.stored = true;
    }
    try {
      await this.repo.createMessage({ ...message, conversation_id: conversationId });
    } catch (error) {
      // Someone deleted the conversation while it was in use: bring it back rather than lose the message.
      if (!(error instanceof NotFoundError)) throw error;
      await this.createConversation(conversationId, message.content);
      await this.repo.createMessage({ ...message, conversation_id: conversationId });
    }
  }

  private async createConversation(id: string, firstMessage: string): Promise<void> {
    await this.repo.createConversation(
      { title: conversationTitle(firstMessage, new Date()), active_characters: this.activeCharacters() },
      id,
    );
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
