// Synthesis: one sentence's audio, requested from its engine as soon as the sentence is known
// and held in order until the speech worker gets to it. It reads the engine's stream on its own
// (so a sentence synthesized ahead is ready the moment the one before it ends) but only while
// `mayRead()` allows, which bounds what it holds; abort() closes the engine request.

export class Synthesis {
  private readonly controller = new AbortController();
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private failure: { error: unknown } | undefined;
  private wakeReader: (() => void) | undefined;
  /** PCM read from the engine and not yet taken. */
  heldBytes = 0;

  /**
   * @param source the engine stream (given the signal abort() fires)
   * @param room resolves when this synthesis may read its next chunk
   * @param onChunk told of each chunk read (for the speech worker's byte count)
   */
  constructor(
    source: (signal: AbortSignal) => AsyncIterable<Buffer> | Promise<AsyncIterable<Buffer>>,
    private readonly room: (synthesis: Synthesis) => Promise<void>,
    private readonly onChunk: (bytes: number) => void,
  ) {
    void this.read(source);
  }

  get aborted(): boolean {
    return this.controller.signal.aborted;
  }

  /** Stops the engine request; chunks not yet taken are dropped (returns their byte count). */
  abort(reason: unknown = new Error('interrupted')): number {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
    const dropped = this.heldBytes;
    this.chunks.length = 0;
    this.heldBytes = 0;
    this.ended = true;
    this.wake();
    return dropped;
  }

  /** The chunks in order, those already read first; throws the engine's error at the end. */
  async *take(): AsyncGenerator<Buffer> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        this.heldBytes -= chunk.length;
        yield chunk;
        continue;
      }
      if (this.failure) throw this.failure.error;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
    }
  }

  private async read(source: ConstructorParameters<typeof Synthesis>[0]): Promise<void> {
    const { signal } = this.controller;
    try {
      for await (const pcm of await source(signal)) {
        if (signal.aborted) break;
        this.chunks.push(pcm);
        this.heldBytes += pcm.length;
        this.onChunk(pcm.length);
        this.wake();
        await this.room(this);
        if (signal.aborted) break;
      }
    } catch (error) {
      if (!signal.aborted) this.failure = { error };
    } finally {
      this.ended = true;
      this.wake();
    }
  }

  private wake(): void {
    const wake = this.wakeReader;
    this.wakeReader = undefined;
    wake?.();
  }
}
