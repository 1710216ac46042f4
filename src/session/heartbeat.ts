// WebSocket heartbeat: one timer for all connections pings each every interval; a connection
// that has not answered the previous ping with a pong by the next tick is dead (a vanished
// peer, a half-open TCP connection) and is terminated, so its session is closed and freed.
import type { WebSocket } from 'ws';

export class Heartbeat {
  /** Each watched socket, and whether it answered since the last ping. */
  private readonly alive = new Map<WebSocket, boolean>();
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs: number) {
    this.timer = setInterval(() => this.beat(), intervalMs);
    this.timer.unref(); // never what keeps the process running
  }

  watch(ws: WebSocket): void {
    this.alive.set(ws, true);
    ws.on('pong', () => this.alive.set(ws, true));
    ws.once('close', () => this.alive.delete(ws));
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * The verdict waits for setImmediate, after the event loop's I/O phase: when this process was
   * busy past a tick, the timer fires before the pongs already waiting in the sockets are read,
   * and a stall of our own would otherwise be held against healthy clients.
   */
  private beat(): void {
    setImmediate(() => {
      for (const [ws, alive] of this.alive) {
        if (!alive) {
          this.alive.delete(ws);
          ws.terminate();
          continue;
        }
        this.alive.set(ws, false);
        ws.ping();
      }
    });
  }
}
