// The WebSocket to the server: `/ws` on the page's own host, `wss:` when the page is https.
// It keeps itself alive: a `ping` every 15 s, and a socket that does not answer with `pong`
// within 10 s is dead (closed and replaced, without waiting for TCP to notice). When a socket
// closes it reconnects with exponential backoff and full jitter, forever, reporting each state
// (connecting / connected / reconnecting at a given time) so the page can show it. It knows
// nothing of what the messages mean: main.ts resumes the conversation on each new `session`.
import type { ClientMessage, ServerMessage } from './types.ts';

export type ConnectionState =
  | { kind: 'connecting'; attempt: number }
  | { kind: 'connected' }
  | { kind: 'reconnecting'; attempt: number; at: number };

export interface ConnectionEvents {
  message(message: ServerMessage): void;
  binary(data: ArrayBuffer): void;
  state(state: ConnectionState): void;
  /** The socket in use closed (before the next connect attempt). */
  closed(reason: string): void;
}

export interface ConnectionOptions {
  pingIntervalMs: number;
  pongTimeoutMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const defaultConnectionOptions: ConnectionOptions = { pingIntervalMs: 15_000, pongTimeoutMs: 10_000, baseDelayMs: 500, maxDelayMs: 15_000 };

/** Frames are dropped rather than queued without bound when the socket cannot keep up. */
const MAX_BUFFERED_BYTES = 1 << 20;

export function socketUrl(location: Location): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

export class Connection {
  private ws: WebSocket | undefined;
  private attempt = 0;
  private retryTimer: number | undefined;
  private pingTimer: number | undefined;
  private pongTimer: number | undefined;
  private current: ConnectionState = { kind: 'connecting', attempt: 0 };

  constructor(
    /** The socket's URL, asked anew for every connect (the page says whether it will resume). */
    private readonly url: string | (() => string),
    private readonly events: ConnectionEvents,
    private readonly options: ConnectionOptions = defaultConnectionOptions,
  ) {}

  get state(): ConnectionState {
    return this.current;
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.connect();
  }

  /** Skips the rest of the backoff wait. */
  retryNow(): void {
    if (this.current.kind !== 'reconnecting') return;
    window.clearTimeout(this.retryTimer);
    this.connect();
  }

  /** The server greeted this connection: the backoff starts again from the shortest delay. */
  markHealthy(): void {
    this.attempt = 0;
  }

  send(message: ClientMessage): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  sendBinary(data: ArrayBuffer): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.ws.bufferedAmount > MAX_BUFFERED_BYTES) return false;
    this.ws.send(data);
    return true;
  }

  /** Closes the socket as dead and reconnects (used when the heartbeat goes unanswered). */
  private dead(ws: WebSocket, reason: string): void {
    try {
      ws.close(4000, reason);
    } catch {
      // already closing
    }
    this.dropped(ws, reason);
  }

  private connect(): void {
    this.setState({ kind: 'connecting', attempt: this.attempt });
    let ws: WebSocket;
    try {
      ws = new WebSocket(typeof this.url === 'function' ? this.url() : this.url);
    } catch (error) {
      this.scheduleReconnect(error instanceof Error ? error.message : String(error));
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.setState({ kind: 'connected' });
      this.startHeartbeat(ws);
    };
    ws.onmessage = (event: MessageEvent<unknown>) => {
      if (this.ws !== ws) return;
      if (event.data instanceof ArrayBuffer) {
        this.events.binary(event.data);
        return;
      }
      if (typeof event.data !== 'string') return;
      const message = parse(event.data);
      if (!message) return;
      if (message.type === 'pong') {
        window.clearTimeout(this.pongTimer);
        this.pongTimer = undefined;
      }
      this.events.message(message);
    };
    ws.onclose = (event) => this.dropped(ws, event.reason || `closed (code ${event.code})`);
    ws.onerror = () => undefined; // a close event always follows
  }

  private dropped(ws: WebSocket, reason: string): void {
    if (this.ws !== ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    this.ws = undefined;
    this.stopHeartbeat();
    this.events.closed(reason);
    this.scheduleReconnect(reason);
  }

  private scheduleReconnect(_reason: string): void {
    this.attempt++;
    const ceiling = Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** (this.attempt - 1));
    // "Full jitter" over the upper half: spread out, never instant, never longer than the ceiling.
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.setState({ kind: 'reconnecting', attempt: this.attempt, at: Date.now() + delay });
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  private startHeartbeat(ws: WebSocket): void {
    this.stopHeartbeat();
    this.pingTimer = window.setInterval(() => {
      if (this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify({ type: 'ping' } satisfies ClientMessage));
      if (this.pongTimer === undefined) {
        this.pongTimer = window.setTimeout(() => this.dead(ws, 'no answer to ping'), this.options.pongTimeoutMs);
      }
    }, this.options.pingIntervalMs);
  }

  private stopHeartbeat(): void {
    window.clearInterval(this.pingTimer);
    window.clearTimeout(this.pongTimer);
    this.pingTimer = this.pongTimer = undefined;
  }

  private setState(state: ConnectionState): void {
    this.current = state;
    this.events.state(state);
  }
}

/** One text frame → a server message (shape-checked only as far as routing needs). */
function parse(text: string): ServerMessage | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string') return value as ServerMessage;
  } catch {
    // not JSON: ignored
  }
  return undefined;
}
