// The recent audio of one connection, addressed by absolute sample index (samples since
// listening started): the pre-roll before speech and the utterance being recorded. Old samples
// are dropped lazily, so appending a frame is one copy and almost never a reallocation.

const INITIAL_CAPACITY = 16_000 * 4;

export class PcmBuffer {
  private data = new Int16Array(INITIAL_CAPACITY);
  /** Where the oldest held sample sits in `data`. */
  private head = 0;
  private length = 0;
  /** Absolute index of the oldest held sample. */
  private first = 0;

  /** Absolute index of the oldest sample still held. */
  get start(): number {
    return this.first;
  }

  /** Absolute index one past the newest sample. */
  get end(): number {
    return this.first + this.length;
  }

  append(pcm: Int16Array): void {
    if (this.head + this.length + pcm.length > this.data.length) this.makeRoom(pcm.length);
    this.data.set(pcm, this.head + this.length);
    this.length += pcm.length;
  }

  /** Forgets every sample before absolute index `index`. */
  discardBefore(index: number): void {
    const n = Math.min(this.length, Math.max(0, index - this.first));
    this.head += n;
    this.length -= n;
    this.first += n;
  }

  /** A copy of the samples in [from, to), clamped to what is held. */
  slice(from: number, to: number): Int16Array {
    const a = Math.max(from, this.first) - this.first;
    const b = Math.min(to, this.end) - this.first;
    return this.data.slice(this.head + a, this.head + Math.max(a, b));
  }

  /** Empties the buffer and restarts its indices at 0. */
  reset(): void {
    this.head = 0;
    this.length = 0;
    this.first = 0;
  }

  /** Moves the held samples to the front, growing the array only when they would still not fit. */
  private makeRoom(extra: number): void {
    const needed = this.length + extra;
    const target = needed * 2 <= this.data.length ? this.data : new Int16Array(Math.max(needed * 2, this.data.length * 2));
    if (target === this.data) this.data.copyWithin(0, this.head, this.head + this.length);
    else target.set(this.data.subarray(this.head, this.head + this.length));
    this.data = target;
    this.head = 0;
  }
}
