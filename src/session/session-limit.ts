// MAX_SESSIONS: at most that many WebSocket sessions at once. A connection over it is closed
// at once with 1013 (try again later) and a reason, before any session is made for it.
import type { WebSocket } from 'ws';

export class SessionLimit {
  private open = 0;

  constructor(private readonly max: number) {}

  /** Takes a slot for `ws` (given back when it closes), or closes it when none is free. */
  admit(ws: WebSocket): boolean {
    if (this.open >= this.max) {
      ws.close(1013, `The server is at its limit of ${this.max} sessions (MAX_SESSIONS); try again later.`);
      return false;
    }
    this.open++;
    ws.once('close', () => this.open--);
    return true;
  }
}
