// Serves one PGlite database over the PostgreSQL wire protocol to any number of client
// connections (every Chorus server process's pg.Pool). PGlite is a single backend, so the
// connections take turns: a connection holds the backend from its first message until its
// unit of work is done (a simple Query, or extended-protocol messages up to Sync) and, when
// that left a transaction open, until the transaction ends, so no statement of another
// connection ever lands inside someone else's Parse/Bind/Execute sequence or transaction.
// (@electric-sql/pglite-socket 0.2.17, whose multiplexer this replaces, queues each protocol
// message on its own and holds the backend only across explicit transactions, so by its code
// another client's Parse may land between one client's Parse and its Execute (not seen in
// practice: PGlite answers synchronously); and it hands a NOTIFY's message to whichever
// connection ran the query that produced it, so a listener on another connection never hears
// it (measured; docs/performance.md). This server avoids both.)
//
// LISTEN/NOTIFY: the one backend listens on the union of every connection's channels; the
// NotificationResponse messages PGlite emits are taken out of whatever output carries them
// and sent to each connection that listens on that channel. UNLISTEN is answered here (the
// backend keeps listening, harmlessly, for the other connections).
//
// Session-level advisory locks are answered here, per connection (src/db/advisory-locks.ts).
// Other session state is shared by all connections (it is one backend): SET, named prepared
// statements and temporary tables are seen by every client; Chorus uses none of them.
import { createServer, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';
import { type AdvisoryCall, advisoryCall, AdvisoryLocks, lockKey } from './advisory-locks.ts';

const SSL_REQUEST = 80877103;
const CANCEL_REQUEST = 80877102;
const GSSENC_REQUEST = 80877104;

/** Extended-protocol messages after which the unit of work goes on until Sync. */
const EXTENDED = new Set(['P', 'B', 'D', 'E', 'C', 'H', 'F']);

export interface PgliteServerOptions {
  db: PGlite;
  /** A unix socket path, or a TCP port on `host`. */
  path?: string;
  port?: number;
  host?: string;
}

/** A FIFO lock on the one backend. */
class BackendLock {
  private owner: Connection | undefined;
  private readonly waiting: Array<{ who: Connection; grant: () => void }> = [];

  async acquire(who: Connection): Promise<void> {
    if (this.owner === who) return;
    if (this.owner === undefined) {
      this.owner = who;
      return;
    }
    await new Promise<void>((grant) => this.waiting.push({ who, grant }));
  }

  release(who: Connection): void {
    if (this.owner !== who) return;
    const next = this.waiting.shift();
    this.owner = next?.who;
    next?.grant();
  }

  /** A connection that goes away gives up its place in the queue. */
  forget(who: Connection): void {
    const at = this.waiting.findIndex((w) => w.who === who);
    if (at >= 0) this.waiting.splice(at, 1);
  }

  holds(who: Connection): boolean {
    return this.owner === who;
  }
}

class Connection {
  private input: Buffer = Buffer.alloc(0);
  private started = false;
  private busy = false;
  private closed = false;
  /** Extended-protocol messages sent since the last Sync. */
  private unsynced = false;
  /** The backend's transaction status after this connection's last ReadyForQuery. */
  status = 'I';
  /** An advisory lock call being answered here (Parse … Sync), with its Bind's parameters. */
  private advisory: { call: AdvisoryCall; params: string[] } | undefined;
  readonly channels = new Set<string>();

  constructor(
    readonly socket: Socket,
    private readonly server: PgliteServer,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.input = this.input.length === 0 ? chunk : Buffer.concat([this.input, chunk]);
      void this.drain();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => void this.close());
  }

  /** Runs the complete messages received, one at a time, in order. */
  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (let message = this.next(); message && !this.closed; message = this.next()) await this.handle(message);
    } catch {
      this.socket.destroy();
    } finally {
      this.busy = false;
    }
  }

  /** Cuts the next whole message off the input (the startup packet has no type byte). */
  private next(): Buffer | undefined {
    const headerless = !this.started;
    const lengthAt = headerless ? 0 : 1;
    if (this.input.length < lengthAt + 4) return undefined;
    const total = lengthAt + this.input.readInt32BE(lengthAt);
    if (this.input.length < total) return undefined;
    const message = this.input.subarray(0, total);
    this.input = this.input.subarray(total);
    return message;
  }

  private async handle(message: Buffer): Promise<void> {
    if (!this.started) return this.startup(message);
    const type = String.fromCharCode(message[0] ?? 0);
    if (type === 'X') {
      void this.close(); // its locks are free before the client learns it has ended
      return void this.socket.end();
    }
    if (this.advisory) return this.advisoryMessage(type, message);
    if (type === 'Q') {
      const text = cString(message, 5);
      const call = advisoryCall(text);
      if (call) return this.answerSimple(call);
      if (this.server.answersLocally(this, text)) return;
      this.server.noteListen(this, text);
    }
    if (type === 'P') {
      const text = cString(message, message.indexOf(0, 5) + 1); // after the statement name
      const call = advisoryCall(text);
      if (call) {
        this.advisory = { call, params: [] };
        return this.send(backendMessage('1', Buffer.alloc(0)));
      }
      this.server.noteListen(this, text);
    }
    await this.server.lock.acquire(this);
    if (this.closed) return this.server.lock.release(this);
    await this.server.run(this, message);
    if (EXTENDED.has(type)) this.unsynced = true;
    if (type === 'S' || type === 'Q') this.unsynced = false;
    // The backend stays this connection's while its unit of work or its transaction is open.
    if (!this.unsynced && this.status === 'I') this.server.lock.release(this);
  }

  private async startup(message: Buffer): Promise<void> {
    const code = message.readInt32BE(4);
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) return void this.socket.write('N');
    if (code === CANCEL_REQUEST) return void this.socket.end(); // not supported: the query runs on
    this.started = true;
    await this.server.lock.acquire(this);
    try {
      await this.server.run(this, message);
    } finally {
      if (this.status === 'I') this.server.lock.release(this);
    }
  }

  /** An advisory lock call by simple query: answered in full here. */
  private async answerSimple(call: AdvisoryCall): Promise<void> {
    const value = await this.server.advise(this, call, []);
    this.send(Buffer.concat([rowDescription(call), dataRow(value), backendMessage('C', cStringBytes('SELECT 1')), backendMessage('Z', Buffer.from(this.status))]));
  }

  /** The rest of an advisory lock call's extended-protocol messages, up to its Sync. */
  private async advisoryMessage(type: string, message: Buffer): Promise<void> {
    const advisory = this.advisory!;
    const answers: Record<string, () => Promise<Buffer> | Buffer> = {
      B: () => {
        advisory.params = bindParameters(message);
        return backendMessage('2', Buffer.alloc(0));
      },
      D: () => (message[5] === 0x53 /* S */ ? Buffer.concat([parameterDescription(advisory.call), rowDescription(advisory.call)]) : rowDescription(advisory.call)),
      E: async () => Buffer.concat([dataRow(await this.server.advise(this, advisory.call, advisory.params)), backendMessage('C', cStringBytes('SELECT 1'))]),
      C: () => backendMessage('3', Buffer.alloc(0)),
      H: () => Buffer.alloc(0),
      S: () => {
        this.advisory = undefined;
        return backendMessage('Z', Buffer.from(this.status));
      },
    };
    if (!Object.hasOwn(answers, type)) {
      this.advisory = undefined; // not the shape pg sends: let the backend answer the rest
      return this.handle(message);
    }
    this.send(await answers[type]!());
  }

  send(data: Uint8Array): void {
    if (!this.closed && this.socket.writable) this.socket.write(data);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.server.forget(this);
    this.server.lock.forget(this);
    this.server.advisoryLocks.releaseAll(this);
    if (!this.server.lock.holds(this)) return;
    // Gone in the middle of a transaction or a Parse/Sync sequence: undo it for the next one.
    try {
      if (this.unsynced) await this.server.db.execProtocolRaw(SYNC);
      if (this.server.db.isInTransaction()) await this.server.db.exec('rollback');
    } finally {
      this.server.lock.release(this);
    }
  }
}

const SYNC = new Uint8Array([0x53, 0, 0, 0, 4]);

export class PgliteServer {
  readonly lock = new BackendLock();
  readonly advisoryLocks = new AdvisoryLocks();
  private readonly connections = new Set<Connection>();
  private server: Server | undefined;

  constructor(private readonly options: PgliteServerOptions) {}

  get db(): PGlite {
    return this.options.db;
  }

  async start(): Promise<void> {
    const server = createServer((socket) => this.connections.add(new Connection(socket, this)));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const ready = () => {
        server.off('error', reject);
        resolve();
      };
      if (this.options.path !== undefined) server.listen(this.options.path, ready);
      else server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', ready);
    });
  }

  /** The TCP port when listening on one. */
  get port(): number | undefined {
    const address = this.server?.address();
    return typeof address === 'object' && address !== null ? address.port : undefined;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const connection of this.connections) connection.socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  forget(connection: Connection): void {
    this.connections.delete(connection);
  }

  /** Runs one message on the backend and sends its answer, the notifications routed apart. */
  async run(from: Connection, message: Uint8Array): Promise<void> {
    const reader = new MessageReader();
    await this.db.runExclusive(() => this.db.execProtocolRawStream(message, {
      onRawData: (chunk) => {
        const forward: Uint8Array[] = [];
        for (const out of reader.push(chunk)) {
          const type = out[0];
          if (type === 0x41 /* A */) this.notify(out);
          else {
            if (type === 0x5a /* Z */) from.status = String.fromCharCode(out[5] ?? 0x49);
            forward.push(out);
          }
        }
        if (forward.length > 0) from.send(Buffer.concat(forward));
      },
    }));
  }

  /** Runs an advisory lock call for `who`; its result as text ('' for void, 't'/'f'). */
  async advise(who: Connection, call: AdvisoryCall, params: readonly string[]): Promise<string> {
    if (call.fn === 'pg_advisory_unlock_all') {
      this.advisoryLocks.releaseAll(who);
      return '';
    }
    const key = lockKey(call.args.map((arg) => (arg.startsWith('$') ? (params[Number(arg.slice(1)) - 1] ?? '0') : arg)));
    if (call.fn === 'pg_advisory_lock') {
      await this.advisoryLocks.lock(key, who);
      return '';
    }
    const done = call.fn === 'pg_try_advisory_lock' ? this.advisoryLocks.tryLock(key, who) : this.advisoryLocks.unlock(key, who);
    return done ? 't' : 'f';
  }

  /** A NotificationResponse goes to every connection listening on its channel. */
  private notify(message: Buffer): void {
    const channel = cString(message, 9);
    for (const connection of this.connections) if (connection.channels.has(channel)) connection.send(message);
  }

  /** Records a LISTEN (it still runs on the backend, which must listen for anyone to hear). */
  noteListen(connection: Connection, text: string): void {
    const listen = /^\s*listen\s+("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\s*;?\s*$/i.exec(text);
    if (listen) connection.channels.add(identifier(listen[1] ?? ''));
  }

  /** UNLISTEN only stops this connection hearing; the backend goes on for the others. */
  answersLocally(connection: Connection, text: string): boolean {
    const unlisten = /^\s*unlisten\s+("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*|\*)\s*;?\s*$/i.exec(text);
    if (!unlisten) return false;
    const channel = unlisten[1] ?? '*';
    if (channel === '*') connection.channels.clear();
    else connection.channels.delete(identifier(channel));
    connection.send(Buffer.concat([backendMessage('C', cStringBytes('UNLISTEN')), backendMessage('Z', Buffer.from(connection.status))]));
    return true;
  }
}

/** Splits a byte stream into whole backend messages. */
class MessageReader {
  private pending: Buffer = Buffer.alloc(0);

  *push(chunk: Uint8Array): Generator<Buffer> {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 5) {
      const total = 1 + this.pending.readInt32BE(1);
      if (this.pending.length < total) return;
      yield this.pending.subarray(0, total);
      this.pending = this.pending.subarray(total);
    }
  }
}

/** A SQL identifier as PostgreSQL folds it: quoted keeps its case, bare is lower-cased. */
function identifier(token: string): string {
  return token.startsWith('"') ? token.slice(1, -1).replaceAll('""', '"') : token.toLowerCase();
}

function cString(buffer: Buffer, at: number): string {
  const end = buffer.indexOf(0, at);
  return buffer.toString('utf8', at, end < 0 ? buffer.length : end);
}

function cStringBytes(text: string): Buffer {
  return Buffer.concat([Buffer.from(text), Buffer.from([0])]);
}

function backendMessage(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0);
  header.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
}

/** void (2278, 4 bytes) for lock and unlock_all, bool (16, 1 byte) for the others. */
const resultType = (call: AdvisoryCall): [number, number] => (call.fn === 'pg_advisory_lock' || call.fn === 'pg_advisory_unlock_all' ? [2278, 4] : [16, 1]);

function rowDescription(call: AdvisoryCall): Buffer {
  const [oid, size] = resultType(call);
  const field = Buffer.alloc(18);
  field.writeInt32BE(0, 0); // table
  field.writeInt16BE(0, 4); // column
  field.writeInt32BE(oid, 6);
  field.writeInt16BE(size, 10);
  field.writeInt32BE(-1, 12); // type modifier
  field.writeInt16BE(0, 16); // text
  const count = Buffer.alloc(2);
  count.writeInt16BE(1);
  return backendMessage('T', Buffer.concat([count, cStringBytes(call.column), field]));
}

function parameterDescription(call: AdvisoryCall): Buffer {
  const params = call.args.filter((a) => a.startsWith('$')).length;
  const body = Buffer.alloc(2 + 4 * params);
  body.writeInt16BE(params);
  for (let i = 0; i < params; i++) body.writeInt32BE(20, 2 + 4 * i); // int8
  return backendMessage('t', body);
}

function dataRow(value: string): Buffer {
  const text = Buffer.from(value);
  const head = Buffer.alloc(6);
  head.writeInt16BE(1, 0);
  head.writeInt32BE(text.length, 2);
  return backendMessage('D', Buffer.concat([head, text]));
}

/** A Bind's parameter values as text (binary integers converted). */
function bindParameters(message: Buffer): string[] {
  let at = message.indexOf(0, 5) + 1; // portal
  at = message.indexOf(0, at) + 1; // statement
  const formatCount = message.readInt16BE(at);
  const formats = Array.from({ length: formatCount }, (_, i) => message.readInt16BE(at + 2 + 2 * i));
  at += 2 + 2 * formatCount;
  const count = message.readInt16BE(at);
  at += 2;
  const values: string[] = [];
  for (let i = 0; i < count; i++) {
    const length = message.readInt32BE(at);
    at += 4;
    const bytes = length < 0 ? Buffer.alloc(0) : message.subarray(at, at + length);
    at += Math.max(0, length);
    const binary = (formats.length === 1 ? formats[0] : formats[i]) === 1;
    values.push(!binary ? bytes.toString('utf8') : length === 8 ? bytes.readBigInt64BE().toString() : String(bytes.readInt32BE()));
  }
  return values;
}
