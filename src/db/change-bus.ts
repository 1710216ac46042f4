// The change bus between server processes: PostgreSQL LISTEN/NOTIFY on one channel. Every change
// this process announces in-process (crudChanges: characters, voices, conversations, context,
// messages; made over WebSocket CRUD, REST, imports or by turn storage) is NOTIFYed with a small
// payload naming what changed (endpoint settings too); every other process LISTENing re-reads the rows it needs and
// re-emits the change into its own crudChanges, so its sessions take it on the code path they
// take a change of their own process on. A notice names its origin process: a process ignores
// its own (it has applied them already). The LISTEN connection is dedicated (application_name
// chorus-listen-<pid>); when it is lost it is re-established with backoff and every session is
// told to re-read its state ('resync'), since notices sent meanwhile are gone.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { z } from 'zod';
import { registry } from '../metrics.ts';
import { type Character, type Conversation, type EndpointKind, endpointKinds } from '../protocol.ts';
import { crudChanges, type MessageChange } from './handlers.ts';
import { NotFoundError, type Repo } from './repo.ts';

/** The one channel every Chorus process of a database LISTENs on. */
export const CHANGE_CHANNEL = 'chorus_changes';

/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; ours are ids only, far below. */
const MAX_PAYLOAD_BYTES = 7999;

/** Waits between attempts to re-establish a lost LISTEN connection (the last one repeats). */
const RECONNECT_DELAYS_MS = [50, 100, 250, 500, 1000, 2000, 5000];

/** A notice on the wire: `p` the origin process, `k` the kind, then the ids of that kind. */
const noticeSchema = z.discriminatedUnion('k', [
  z.object({ p: z.string(), k: z.literal('characters') }),
  z.object({ p: z.string(), k: z.literal('context') }),
  z.object({ p: z.string(), k: z.literal('conversation'), id: z.string() }),
  z.object({ p: z.string(), k: z.literal('endpoints'), kind: z.enum(endpointKinds) }),
  z.object({ p: z.string(), k: z.literal('message'), op: z.enum(['added', 'updated', 'deleted']), c: z.string(), m: z.string(), s: z.string().optional() }),
]);
type Notice = z.infer<typeof noticeSchema>;
type NoticeBody = Notice extends infer N ? (N extends Notice ? Omit<N, 'p'> : never) : never;

const reconnects = new Counter({
  name: 'chorus_change_bus_reconnects_total',
  help: 'Times the LISTEN connection of the change bus was lost and re-established (every session re-read its state).',
  registers: [registry],
});
const received = new Counter({
  name: 'chorus_change_bus_notices_total',
  help: 'Change notices received from other processes and applied.',
  registers: [registry],
});

export interface ChangeBusOptions {
  databaseUrl: string;
  repo: Repo;
  logger: Logger;
}

export class ChangeBus {
  /** This process, as the origin of the notices it sends. */
  readonly processId = randomUUID();
  private readonly pool: pg.Pool;
  private listener: pg.Client | undefined;
  private closed = false;
  /** Set while a notice of another process is re-emitted: it is not sent back out. */
  private relaying = false;
  /** Notices of other processes, applied in the order they came. */
  private applying: Promise<void> = Promise.resolve();
  /** Notices of this process, sent in the order they happened. */
  private sending: Promise<void> = Promise.resolve();
  private readonly off: Array<() => void> = [];
  /** Resolves when the LISTEN connection is (re-)established; for tests and the bench. */
  private connectedWaiters: Array<() => void> = [];

  constructor(private readonly opts: ChangeBusOptions) {
    // One connection sends the notices (in order); it is not the pool the queries share, so a
    // busy pool never holds a notice back.
    this.pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 1, allowExitOnIdle: true, application_name: `chorus-notify-${process.pid}` });
    this.pool.on('error', () => {}); // a dropped idle connection: the next NOTIFY connects anew
    this.pool.on('connect', (client) => client.on('error', () => {})); // a NOTIFY in flight fails on its own and is logged
  }

  /** Listens (resolves once the LISTEN is in place) and starts sending this process's changes. */
  async start(): Promise<void> {
    await this.connect();
    this.watch('characters', () => this.publish({ k: 'characters' }));
    this.watch('context', () => this.publish({ k: 'context' }));
    this.watch('conversation', (c: Conversation) => this.publish({ k: 'conversation', id: c.conversation_id }));
    this.watch('endpoints', (kind: EndpointKind) => this.publish({ k: 'endpoints', kind }));
    this.watch('message', (m: MessageChange) => this.publish({ k: 'message', op: m.op, c: m.conversation_id, m: m.message_id, ...(m.origin ? { s: m.origin } : {}) }));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const off of this.off.splice(0)) off();
    await this.sending;
    await this.listener?.end().catch(() => {});
    await this.pool.end().catch(() => {});
  }

  /** The backend pid of the LISTEN connection (tests terminate it to check recovery). */
  get listenerPid(): number | undefined {
    return (this.listener as unknown as { processID?: number } | undefined)?.processID;
  }

  /** Resolves once the LISTEN connection is up again after a loss. */
  reconnected(): Promise<void> {
    return new Promise((resolve) => this.connectedWaiters.push(resolve));
  }

  private watch<E extends 'characters' | 'context' | 'conversation' | 'endpoints' | 'message'>(event: E, send: (...args: never[]) => void): void {
    const listener = (...args: unknown[]) => {
      if (!this.relaying) (send as (...a: unknown[]) => void)(...args);
    };
    crudChanges.on(event, listener as never);
    this.off.push(() => crudChanges.off(event, listener as never));
  }

  /** NOTIFYs one change of this process; a failure is logged (the change itself is stored). */
  private publish(body: NoticeBody): void {
    const payload = JSON.stringify({ p: this.processId, ...body });
    if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
      this.opts.logger.error({ kind: body.k, bytes: Buffer.byteLength(payload) }, 'change notice over the NOTIFY limit: not sent');
      return;
    }
    this.sending = this.sending
      .then(() => this.pool.query('select pg_notify($1, $2)', [CHANGE_CHANNEL, payload]))
      .then(
        () => {},
        (err: unknown) => this.opts.logger.error({ err, kind: body.k }, 'sending a change notice failed: other processes learn of it at their next re-read'),
      );
  }

  /** Opens the dedicated LISTEN connection; when it is lost, reconnects (with backoff) and re-syncs. */
  private async connect(): Promise<void> {
    // keepAlive: a connection that dies silently (no reset from a lost network) is noticed, and re-established.
    const client = new pg.Client({ connectionString: this.opts.databaseUrl, application_name: `chorus-listen-${process.pid}`, keepAlive: true });
    let lost = false;
    const onLost = (err?: unknown) => {
      if (lost) return;
      lost = true;
      if (this.listener === client) this.listener = undefined;
      void client.end().catch(() => {});
      if (!this.closed) void this.recover(err);
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (n) => {
      if (n.channel === CHANGE_CHANNEL && n.payload !== undefined) this.take(n.payload);
    });
    try {
      await client.connect();
      await client.query(`listen ${CHANGE_CHANNEL}`);
    } catch (error) {
      lost = true;
      await client.end().catch(() => {});
      throw error;
    }
    this.listener = client;
  }

  private async recover(err: unknown): Promise<void> {
    this.opts.logger.warn({ err }, 'change bus: the LISTEN connection was lost; reconnecting');
    for (let attempt = 0; !this.closed; attempt++) {
      await sleep(RECONNECT_DELAYS_MS[Math.min(attempt, RECONNECT_DELAYS_MS.length - 1)]!);
      if (this.closed) return;
      try {
        await this.connect();
        break;
      } catch (error) {
        this.opts.logger.warn({ err: error, attempt: attempt + 1 }, 'change bus: reconnecting failed; trying again');
      }
    }
    if (this.closed) return;
    reconnects.inc();
    this.opts.logger.warn('change bus: listening again; every session re-reads its state');
    // Changes made while nobody listened were not heard: everything cached is read anew.
    this.applying = this.applying.then(() => this.resync());
    await this.applying;
    for (const wake of this.connectedWaiters.splice(0)) wake();
  }

  private async resync(): Promise<void> {
    const all = await this.opts.repo.listCharacters().catch((err: unknown) => void this.opts.logger.error({ err }, 'change bus: re-reading the characters failed'));
    this.relay(() => {
      if (all) crudChanges.emit('characters', all);
      crudChanges.emit('context');
      crudChanges.emit('resync');
    });
  }

  /** A notice from the channel: another process's change is applied here; our own are skipped. */
  private take(payload: string): void {
    let notice: Notice;
    try {
      notice = noticeSchema.parse(JSON.parse(payload));
    } catch {
      this.opts.logger.warn({ bytes: payload.length }, 'change bus: a notice that is not ours was ignored');
      return;
    }
    if (notice.p === this.processId) return;
    received.inc();
    this.applying = this.applying.then(() => this.apply(notice)).catch((err: unknown) => this.opts.logger.error({ err, kind: notice.k }, 'change bus: applying a notice failed'));
  }

  /** Reads what the notice names and tells this process's sessions, as if the change were made here. */
  private async apply(notice: Notice): Promise<void> {
    const { repo } = this.opts;
    switch (notice.k) {
      case 'characters': {
        const all: Character[] = await repo.listCharacters();
        return this.relay(() => crudChanges.emit('characters', all));
      }
      case 'context':
        return this.relay(() => crudChanges.emit('context'));
      case 'conversation': {
        const conversation = await repo.getConversation(notice.id).catch((e: unknown) => {
          if (e instanceof NotFoundError) return undefined; // deleted since
          throw e;
        });
        if (conversation) this.relay(() => crudChanges.emit('conversation', conversation));
        return;
      }
      case 'endpoints':
        return this.relay(() => crudChanges.emit('endpoints', notice.kind));
      case 'message':
        return this.relay(() => crudChanges.emit('message', { op: notice.op, conversation_id: notice.c, message_id: notice.m, origin: notice.s }));
    }
  }

  /** Emits in-process without sending it out again (emit is synchronous). */
  private relay(emit: () => void): void {
    this.relaying = true;
    try {
      emit();
    } finally {
      this.relaying = false;
    }
  }
}
