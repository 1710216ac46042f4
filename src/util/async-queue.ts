// An unbounded FIFO joining two pipeline stages: the producer never waits, the consumer awaits
// the next item. clear() drops queued items (interrupts), close() ends the consumer's loop.

export class QueueClosedError extends Error {
  constructor() {
    super('queue closed');
    this.name = 'QueueClosedError';
  }
}

export class AsyncQueue<T> {
  private items: T[] = [];
  private head = 0;
  private waiter: { resolve: (item: T) => void; reject: (e: Error) => void } | undefined;
  private closed = false;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    if (this.closed) return;
    if (this.waiter) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve(item);
      return;
    }
    this.items.push(item);
  }

  /** The next item; waits for one. Only one consumer may wait at a time. Rejects once closed. */
  shift(): Promise<T> {
    if (this.head < this.items.length) {
      const item = this.items[this.head] as T;
      this.items[this.head++] = undefined as T; // release the reference
      if (this.head > 1024 && this.head * 2 > this.items.length) this.compact();
      return Promise.resolve(item);
    }
    if (this.closed) return Promise.reject(new QueueClosedError());
    if (this.waiter) return Promise.reject(new Error('AsyncQueue supports one consumer'));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** Drops queued items (those matching `predicate`, or all). Returns how many were dropped. */
  clear(predicate?: (item: T) => boolean): number {
    const before = this.size;
    const kept = predicate ? this.items.slice(this.head).filter((i) => !predicate(i)) : [];
    this.items = kept;
    this.head = 0;
    return before - kept.length;
  }

  /** Removes and returns the queued items, oldest first. */
  takeAll(): T[] {
    const items = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return items;
  }

  /** Ends the queue: a waiting or later shift() rejects with QueueClosedError. */
  close(): void {
    this.closed = true;
    this.items = [];
    this.head = 0;
    this.waiter?.reject(new QueueClosedError());
    this.waiter = undefined;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      try {
        yield await this.shift();
      } catch (e) {
        if (e instanceof QueueClosedError) return;
        throw e;
      }
    }
  }

  private compact(): void {
    this.items = this.items.slice(this.head);
    this.head = 0;
  }
}
