// Slow clients: a connection whose unwritten output has stayed at or above the high-water mark
// with nothing more taken by the client for SLOW_CLIENT_TIMEOUT_MS is closed (1008, with a
// reason). One coarse timer checks every connection; the send path only counts bytes.
import { AUDIO_HIGH_WATER_BYTES, type SocketWriter } from './writer.ts';

interface Progress {
  /** writer.writtenBytes when last seen moving (or below the mark). */
  written: number;
  since: number;
}

export class SlowClientGuard {
  private readonly watched = new Map<SocketWriter, Progress>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly timeoutMs: number) {
    // A quarter of the timeout: a stalled client is closed within 1.25× of it.
    this.timer = setInterval(() => this.check(), Math.max(25, Math.floor(timeoutMs / 4)));
    this.timer.unref();
  }

  watch(writer: SocketWriter): void {
    this.watched.set(writer, { written: writer.writtenBytes, since: performance.now() });
  }

  unwatch(writer: SocketWriter): void {
    this.watched.delete(writer);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const now = performance.now();
    for (const [writer, progress] of this.watched) {
      const written = writer.writtenBytes;
      if (written !== progress.written || writer.unwrittenBytes < AUDIO_HIGH_WATER_BYTES) {
        progress.written = written;
        progress.since = now;
      } else if (now - progress.since >= this.timeoutMs) {
        this.watched.delete(writer);
        writer.close(1008, `Closed: the client read nothing for ${this.timeoutMs} ms while output waited (SLOW_CLIENT_TIMEOUT_MS).`);
      }
    }
  }
}
