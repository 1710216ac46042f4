// The turn lock: turns on one conversation never run at once in two sessions, of this process or
// of any other on the same PostgreSQL. In-process, sessions queue per conversation on a promise
// chain; across processes, the holder also takes a PostgreSQL session-level advisory lock keyed
// by the conversation, on a connection of its own held for the turn (a blocked pg_advisory_lock
// is the wait; a connection that dies, with its process, releases it). A wait is cut short when
// the waiting session closes. The embedded database's process answers advisory locks per connection
// too (src/db/advisory-locks.ts), for plain integer keys: the conversation's key is computed here.
import { createHash } from 'node:crypto';
import pg from 'pg';

/** Advisory lock namespace (the first key of the two-key form; the second is conversationKey(id)). */
const TURN_LOCK_NAMESPACE = 7_245_002;

/** A conversation's lock key: a signed 32-bit integer from its id (a collision only makes two conversations take turns). */
export function conversationKey(id: string): number {
  return createHash('sha1').update(id).digest().readInt32BE(0);
}

/**
 * Connections for held or awaited turn locks. A waiting turn holds one too; when all are taken a
 * turn waits for one (not for the query pool, which storage keeps using meanwhile).
 */
const LOCK_CONNECTIONS = 32;

/** How long connecting, or asking for a free lock, may take before the turn goes on without it. */
const CONNECT_TIMEOUT_MS = 2000;

export interface HeldTurnLock {
  /** The lock was held by another session when asked for: its changes may have to be read. */
  waited: boolean;
  /** Other processes may have held it (PostgreSQL is shared): the history should be re-read. */
  shared: boolean;
  release(): Promise<void>;
}

export class TurnLocks {
  /** Per conversation, the promise that settles when the last session queued for it is done. */
  private readonly local = new Map<string, Promise<void>>();
  private pool: pg.Pool | undefined;
  private databaseUrl: string | undefined;

  /** Across processes from now on: advisory locks on this PostgreSQL server. */
  useDatabase(databaseUrl: string): void {
    this.databaseUrl = databaseUrl;
    this.pool = new pg.Pool({
      connectionString: databaseUrl,
      max: LOCK_CONNECTIONS,
      idleTimeoutMillis: 10_000,
      // An unreachable database must not hold the turn up for long: it runs without the lock.
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      allowExitOnIdle: true,
      application_name: `chorus-turn-lock-${process.pid}`,
    });
    this.pool.on('error', () => {}); // an idle connection dropped: the next turn connects anew
    // A connection lost while its lock is held (or awaited) emits 'error' on its client; the
    // query waiting on it fails on its own, and the lock went with the connection.
    this.pool.on('connect', (client) => client.on('error', () => {}));
  }

  /** Cancels the query a lock connection is waiting in. */
  private async cancel(client: pg.PoolClient): Promise<void> {
    const pid = (client as unknown as { processID?: number }).processID;
    if (!this.databaseUrl || pid === undefined) return;
    const canceller = new pg.Client({ connectionString: this.databaseUrl, application_name: `chorus-turn-lock-${process.pid}` });
    canceller.on('error', () => {});
    try {
      await canceller.connect();
      await canceller.query('select pg_cancel_backend($1)', [pid]);
    } catch {
      // the wait ends with the lock then, and the lock is let go at once (see lockInDatabase)
    } finally {
      await canceller.end().catch(() => {});
    }
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => {});
  }

  /** Waits until this session may run a turn on the conversation; rejects if `signal` aborts first. */
  async acquire(conversationId: string, signal: AbortSignal): Promise<HeldTurnLock> {
    signal.throwIfAborted();
    const { waited: waitedHere, release: releaseHere } = await this.queueHere(conversationId, signal);
    if (!this.pool) return { waited: waitedHere, shared: false, release: async () => releaseHere() };
    try {
      const held = await this.lockInDatabase(this.pool, conversationId, signal);
      return {
        waited: waitedHere || held.waited,
        shared: true,
        release: async () => {
          try {
            await held.release();
          } finally {
            releaseHere();
          }
        },
      };
    } catch (error) {
      releaseHere();
      throw error;
    }
  }

  /** The in-process queue of one conversation. */
  private async queueHere(id: string, signal: AbortSignal): Promise<{ waited: boolean; release: () => void }> {
    const before = this.local.get(id);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = (before ?? Promise.resolve()).then(() => mine);
    this.local.set(id, tail);
    void tail.then(() => {
      if (this.local.get(id) === tail) this.local.delete(id);
    });
    if (before) {
      try {
        await untilAborted(before, signal);
      } catch (error) {
        release(); // who queued after us waits only for those before us
        throw error;
      }
    }
    return { waited: before !== undefined, release };
  }

  private async lockInDatabase(pool: pg.Pool, id: string, signal: AbortSignal): Promise<{ waited: boolean; release: () => Promise<void> }> {
    const client = await pool.connect();
    if (signal.aborted) {
      client.release();
      throw signal.reason;
    }
    // PostgreSQL does not notice a client gone while its backend waits for a lock, so closing
    // the connection would leave the wait in place: the waiting query is cancelled instead
    // (pg_cancel_backend, from a connection of its own: the pool may be all waiters), then the
    // connection is closed.
    let waiting = false;
    const abort = () => {
      if (waiting) void this.cancel(client);
    };
    signal.addEventListener('abort', abort, { once: true });
    try {
      const keys = [TURN_LOCK_NAMESPACE, conversationKey(id)];
      // query_timeout is a per-query option of node-postgres its types leave out.
      const tryLock = { text: 'select pg_try_advisory_lock($1, $2) as ok', values: keys, query_timeout: CONNECT_TIMEOUT_MS } as pg.QueryConfig;
      const tried = await client.query<{ ok: boolean }>(tryLock);
      const waited = tried.rows[0]?.ok !== true;
      if (waited && !signal.aborted) {
        waiting = true;
        await client.query('select pg_advisory_lock($1, $2)', keys).finally(() => (waiting = false));
      }
      signal.removeEventListener('abort', abort);
      // Given up just as it was granted: not kept (the catch below closes the connection, and the lock goes with it).
      if (signal.aborted) throw signal.reason;
      return {
        waited,
        release: async () => {
          try {
            await client.query('select pg_advisory_unlock($1, $2)', keys);
            client.release();
          } catch (error) {
            client.release(error instanceof Error ? error : new Error(String(error))); // the connection goes, and its lock with it
          }
        },
      };
    } catch (error) {
      signal.removeEventListener('abort', abort);
      // Closed, not reused: it may hold the lock (granted as the wait was given up).
      client.release(error instanceof Error ? error : new Error(String(error)));
      throw signal.aborted ? signal.reason : error;
    }
  }
}

/** Resolves with `promise`, or rejects when `signal` aborts first. */
function untilAborted(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const abort = () => reject(signal.reason);
    signal.addEventListener('abort', abort, { once: true });
    promise.then(
      () => {
        signal.removeEventListener('abort', abort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(error);
      },
    );
  });
}

/** The process's turn locks: in-process until main.ts gives it the PostgreSQL server. */
export const turnLocks = new TurnLocks();
