// A WebSocket test client that records every frame the server sends, in order, validating
// each JSON frame against the protocol schemas (an unknown or malformed message fails the test
// that reads it), and lets a test wait for messages by event, never by sleeping.
import { WebSocket } from 'ws';
import { type ServerMessage, type ServerMessageOf, type ServerMessageType, serverMessageSchema } from '../../src/protocol.ts';

export type Frame = ServerMessage | { type: 'binary'; data: Buffer };

export class TestClient {
  readonly frames: Frame[] = [];
  /** When each frame arrived (performance.now()), by index. */
  readonly arrivedAt: number[] = [];
  readonly errors: string[] = [];
  private listeners = new Set<() => void>();
  private cursor = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.arrivedAt.push(performance.now());
      if (isBinary) this.frames.push({ type: 'binary', data: Buffer.from(data) });
      else this.frames.push(this.parse(data.toString('utf8')));
      for (const wake of this.listeners) wake();
    });
    ws.on('close', () => {
      for (const wake of this.listeners) wake();
    });
  }

  static async connect(url: string, opts: { waitForSession?: boolean; onUpgrade?: (response: import('node:http').IncomingMessage) => void } = {}): Promise<TestClient> {
    const ws = new WebSocket(url);
    const client = new TestClient(ws); // listening before 'open': the first frame can arrive in the same tick
    if (opts.onUpgrade) ws.once('upgrade', opts.onUpgrade);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    if (opts.waitForSession !== false) await client.next('session');
    return client;
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** The next frame of `type` after the ones already taken by next(). */
  async next<K extends ServerMessageType | 'binary'>(type: K, timeoutMs = 5000): Promise<K extends ServerMessageType ? ServerMessageOf<K> : { type: 'binary'; data: Buffer }> {
    const at = await this.waitUntil(() => this.frames.findIndex((f, i) => i >= this.cursor && f.type === type), `a "${type}" message`, timeoutMs);
    this.cursor = at + 1;
    return this.frames[at] as never;
  }

  /** The first frame (from the start) matching `predicate`. */
  async waitFor(predicate: (f: Frame) => boolean, what: string, timeoutMs = 5000): Promise<Frame> {
    const at = await this.waitUntil(() => this.frames.findIndex(predicate), what, timeoutMs);
    return this.frames[at] as Frame;
  }

  /** Sends a request with a request_id and resolves with the reply that echoes it. */
  async request(message: { type: string; data?: unknown }, timeoutMs = 5000): Promise<ServerMessage> {
    const request_id = Math.random().toString(36).slice(2);
    this.send({ ...message, request_id });
    const reply = await this.waitFor((f) => 'request_id' in f && f.request_id === request_id, `a reply to ${message.type}`, timeoutMs);
    return reply as ServerMessage;
  }

  ofType<K extends ServerMessageType>(type: K): ServerMessageOf<K>[] {
    return this.frames.filter((f) => f.type === type) as never;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((resolve) => this.ws.once('close', resolve));
    this.ws.close();
    await closed;
  }

  private parse(text: string): ServerMessage {
    const parsed = serverMessageSchema.safeParse(JSON.parse(text));
    if (!parsed.success) {
      this.errors.push(`server sent a message outside the protocol: ${text.slice(0, 300)}`);
      return JSON.parse(text) as ServerMessage;
    }
    return parsed.data;
  }

  private waitUntil(find: () => number, what: string, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const at = find();
        if (at >= 0) return done(() => resolve(at));
        if (this.ws.readyState === WebSocket.CLOSED) done(() => reject(new Error(`socket closed while waiting for ${what}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got: ${this.summary()}`))), timeoutMs);
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        settle();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** The frames' types in order, for failure messages. */
  summary(): string {
    return this.frames.map((f) => f.type).join(', ');
  }
}
