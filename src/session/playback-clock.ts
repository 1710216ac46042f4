// PlaybackClock: one per session. The time of the client's playback, in milliseconds on the
// performance.now() scale, that stands still while playback is paused (a barge-in that may be
// taken back). The audio streamer paces and stamps frames on it and each Utterance measures what
// was heard on it, so a pause moves neither: after `resume()` the record goes on where it stopped,
// as the client's playback does. `at()` is a timer on this clock: a pause postpones it.

export class PlaybackClock {
  /** Milliseconds spent paused before the current pause. */
  private pausedTotal = 0;
  private pausedSince: number | undefined;
  private waiting: Array<() => void> = [];

  /** Playback time now (frozen while paused). */
  now(): number {
    return (this.pausedSince ?? performance.now()) - this.pausedTotal;
  }

  get paused(): boolean {
    return this.pausedSince !== undefined;
  }

  /** Stops the clock; false if it was already stopped. */
  pause(): boolean {
    if (this.pausedSince !== undefined) return false;
    this.pausedSince = performance.now();
    return true;
  }

  /** Starts it again where it stopped; false if it was running. */
  resume(): boolean {
    if (this.pausedSince === undefined) return false;
    this.pausedTotal += performance.now() - this.pausedSince;
    this.pausedSince = undefined;
    const waiting = this.waiting;
    this.waiting = [];
    for (const wake of waiting) wake();
    return true;
  }

  /** Calls `fn` once the clock reaches `time` (playback ms); a pause postpones it. Returns the cancel. */
  at(time: number, fn: () => void): () => void {
    let timer: NodeJS.Timeout | undefined;
    let cancelled = false;
    const check = () => {
      if (cancelled) return;
      if (this.paused) return void this.waiting.push(check);
      const wait = time - this.now();
      if (wait > 0) timer = setTimeout(check, wait);
      else fn();
    };
    check();
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }
}
