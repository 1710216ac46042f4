// The one writer of a connection: every server → client frame goes through it. It keeps an
// audio_chunk header and its binary frame adjacent (two synchronous sends, nothing between),
// drops frames once the socket is gone, and tells the audio path when the client is not
// reading fast enough (bytes handed to the socket but not yet written out).
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { ServerMessage, ServerMessageOf } from '../protocol.ts';

/** Above this many unwritten bytes, audio waits for the client to catch up. */
export const AUDIO_HIGH_WATER_BYTES = 256 * 1024;

export class SocketWriter {
  private pending = 0;
  private written = 0;
  private waiters: Array<() => void> = [];
  private closedBy: ((close: { code: number; reason: string }) => void) | undefined;
  /** Resolves when the server closes the connection through close() (e.g. a slow client). */
  readonly closing = new Promise<{ code: number; reason: string }>((resolve) => (this.closedBy = resolve));
  private readonly onWritten = (bytes: number) => () => {
    this.pending -= bytes;
    this.written += bytes;
    if (this.pending < AUDIO_HIGH_WATER_BYTES) this.wake();
  };

  /** `tcp`: the connection's socket, corked around a header and its frame so both leave in one write. */
  constructor(
    private readonly ws: WebSocket,
    private readonly tcp?: Socket,
  ) {
    ws.once('close', () => this.wake());
  }

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  /** Bytes sent to the socket that it has not yet written to the network. */
  get unwrittenBytes(): number {
    return this.pending;
  }

  /** Bytes the socket has written out so far: progress, for the slow-client check. */
  get writtenBytes(): number {
    return this.written;
  }

  /** Closes the connection with a reason; the close frame leaves after what is still unwritten. */
  close(code: number, reason: string): void {
    if (!this.open) return;
    this.ws.close(code, reason); // ws destroys the socket if the close handshake does not finish in 30 s
    this.closedBy?.({ code, reason });
    this.wake(); // audio waiting for the client gives up
  }

  send(message: ServerMessage): void {
    this.write(JSON.stringify(message));
  }

  /** An audio_chunk header immediately followed by its PCM frame. */
  sendAudio(header: ServerMessageOf<'audio_chunk'>, pcm: Buffer): void {
    this.tcp?.cork();
    this.write(JSON.stringify(header));
    this.write(pcm);
    this.tcp?.uncork();
  }

  /** True while the client is behind: audio should wait for ready(). */
  get congested(): boolean {
    return this.pending >= AUDIO_HIGH_WATER_BYTES && this.open;
  }

  /** Resolves once the client has taken enough that more audio may be sent (or the socket closed). */
  ready(): Promise<void> {
    if (this.pending < AUDIO_HIGH_WATER_BYTES || !this.open) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private write(data: string | Buffer): void {
    if (!this.open) return;
    const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    this.pending += bytes;
    this.ws.send(data, { binary: typeof data !== 'string' }, this.onWritten(bytes));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
