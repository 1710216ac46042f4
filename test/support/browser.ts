// Browser tests' support: headless Debian Chromium driven by playwright-core, and a small
// loopback proxy in front of the real Chorus server. The proxy forwards plain HTTP (the page,
// /api) untouched and relays each WebSocket frame by frame, recording every frame in both
// directions, so a test can see exactly what the page sent (binary mic frames and their sizes,
// `interrupt` before `user_message`, `load_conversation` after a reconnect) and what it was
// sent. It can also hold the server's frames back and release them later (to make frames of a
// cancelled message arrive after the user pressed stop), drop some, go silent (a dead socket),
// or close a connection from the server side.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type Browser, chromium } from 'playwright-core';
import { type RawData, WebSocket, WebSocketServer } from 'ws';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export async function launchBrowser(extraArgs: string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`${CHROMIUM_PATH} is missing: apt-get update && apt-get install -y chromium`);
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--autoplay-policy=no-user-gesture-required',
      ...extraArgs,
    ],
  });
}

// ───────────────────────────── proxy ─────────────────────────────

export interface ProxyFrame {
  binary: boolean;
  data: Buffer;
  /** Parsed JSON of a text frame. */
  json?: { type?: string; data?: Record<string, unknown>; request_id?: string; [k: string]: unknown };
  /** Milliseconds (performance.now()) when the proxy received it. */
  at: number;
}

/** What to do with a frame from the server: forward it, keep it until release(), or drop it. */
export type ServerPolicy = (frame: ProxyFrame, conn: ProxyConnection) => 'pass' | 'hold' | 'drop';

export class ProxyConnection {
  /** Everything the page sent, in order. */
  readonly fromClient: ProxyFrame[] = [];
  /** Everything the server sent, in order (forwarded or not). */
  readonly fromServer: ProxyFrame[] = [];
  /** What was actually delivered to the page, in order. */
  readonly delivered: ProxyFrame[] = [];
  readonly held: ProxyFrame[] = [];
  private holding = false;
  closed = false;

  constructor(
    readonly index: number,
    private readonly client: WebSocket,
    private readonly upstream: WebSocket,
    private readonly proxy: TestProxy,
  ) {}

  /** The JSON messages the page sent, by type. */
  clientMessages(type?: string): NonNullable<ProxyFrame['json']>[] {
    return this.fromClient.flatMap((f) => (f.json && (type === undefined || f.json.type === type) ? [f.json] : []));
  }
  serverMessages(type?: string): NonNullable<ProxyFrame['json']>[] {
    return this.fromServer.flatMap((f) => (f.json && (type === undefined || f.json.type === type) ? [f.json] : []));
  }
  clientBinary(): ProxyFrame[] {
    return this.fromClient.filter((f) => f.binary);
  }

  /** Sends everything held, in order, and stops holding. */
  release(): void {
    this.holding = false;
    for (const frame of this.held.splice(0)) this.deliver(frame);
    this.proxy.changed();
  }

  /** Sends a frame to the server as if the page had (the microphone audio a test speaks, a control message). */
  sendToServer(data: Buffer | string, binary: boolean): void {
    if (this.upstream.readyState === WebSocket.OPEN) this.upstream.send(data, { binary });
  }

  /** Closes the page's socket as the server would (and the upstream one with it). */
  closeFromServer(code = 1012, reason = 'server restarting'): void {
    this.client.close(code, reason);
    this.upstream.close(1000);
  }

  /** @internal */
  fromServerFrame(frame: ProxyFrame): void {
    this.fromServer.push(frame);
    const verdict = this.holding ? 'hold' : (this.proxy.policy?.(frame, this) ?? 'pass');
    if (verdict === 'hold') {
      this.holding = true;
      this.held.push(frame);
    } else if (verdict === 'pass') this.deliver(frame);
    this.proxy.changed();
  }

  private deliver(frame: ProxyFrame): void {
    if (this.client.readyState !== WebSocket.OPEN) return;
    this.client.send(frame.data, { binary: frame.binary });
    this.delivered.push(frame);
  }
}

export class TestProxy {
  readonly connections: ProxyConnection[] = [];
  /** Applied to every server frame of every connection; unset = forward everything. */
  policy: ServerPolicy | undefined;
  private readonly events = new EventEmitter();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    readonly url: string,
  ) {}

  static async start(target: string): Promise<TestProxy> {
    const targetUrl = new URL(target);
    const wss = new WebSocketServer({ noServer: true });
    const server = createServer((req, res) => {
      const upstream = httpRequest(
        { host: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new TestProxy(server, wss, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('connection', (socket) => {
      proxy.sockets.add(socket);
      socket.on('close', () => proxy.sockets.delete(socket));
    });
    server.on('upgrade', (req: IncomingMessage, socket, head) => {
      wss.handleUpgrade(req, socket, head, (client) => proxy.relay(client, `ws://${targetUrl.host}${req.url ?? '/ws'}`));
    });
    return proxy;
  }

  get last(): ProxyConnection {
    const conn = this.connections[this.connections.length - 1];
    if (!conn) throw new Error('no WebSocket connection yet');
    return conn;
  }

  /** Resolves with `find()`'s value once it is truthy (checked on every frame). */
  waitFor<T>(find: () => T | undefined | false | null | 0, what: string, timeoutMs = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const value = find();
        if (value) {
          done();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`proxy: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.events.off('change', check);
      };
      this.events.on('change', check);
      check();
    });
  }

  /** @internal */
  changed(): void {
    this.events.emit('change');
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private relay(client: WebSocket, upstreamUrl: string): void {
    const upstream = new WebSocket(upstreamUrl);
    const conn = new ProxyConnection(this.connections.length, client, upstream, this);
    this.connections.push(conn);
    const early: Array<[RawData, boolean]> = [];
    client.on('message', (data: RawData, binary: boolean) => {
      conn.fromClient.push(frame(data, binary));
      this.changed();
      if (upstream.readyState === WebSocket.OPEN) upstream.send(toBuffer(data), { binary });
      else early.push([data, binary]);
    });
    upstream.on('open', () => {
      for (const [data, binary] of early.splice(0)) upstream.send(toBuffer(data), { binary });
    });
    upstream.on('message', (data: RawData, binary: boolean) => conn.fromServerFrame(frame(data, binary)));
    const closeBoth = () => {
      conn.closed = true;
      if (client.readyState === WebSocket.OPEN) client.close(1000);
      if (upstream.readyState === WebSocket.OPEN || upstream.readyState === WebSocket.CONNECTING) upstream.terminate();
      this.changed();
    };
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
    client.on('error', () => undefined);
    upstream.on('error', () => closeBoth());
    this.changed();
  }
}

function toBuffer(data: RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

function frame(data: RawData, binary: boolean): ProxyFrame {
  const buffer = toBuffer(data);
  const result: ProxyFrame = { binary, data: buffer, at: performance.now() };
  if (!binary) {
    try {
      result.json = JSON.parse(buffer.toString('utf8')) as ProxyFrame['json'];
    } catch {
      // not JSON: kept as bytes
    }
  }
  return result;
}
