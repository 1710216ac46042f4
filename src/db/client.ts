// Opens the database: a PostgreSQL server when a URL is given, otherwise embedded PGlite
// (PostgreSQL compiled to WASM) in a data directory, in this thread. Both get the same schema,
// the same migrations from drizzle/ and the same drizzle query API. The server itself always
// takes the URL: without DATABASE_URL, src/db/embedded-host.ts runs PGlite in a process of its
// own (which opens it here) and hands the server its socket's URL; PGlite in-thread is for that
// process, tests and benches.
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import pg from 'pg';
import { schema, type Schema } from './schema.ts';

/** The drizzle API both drivers share; the repository only uses this. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export interface Database {
  kind: 'pglite' | 'postgres';
  db: Db;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** postgres:// URL of a PostgreSQL server; when absent, PGlite is used. */
  databaseUrl?: string;
  /** PGlite data directory (created if missing); `memory://` keeps it in memory. */
  dataDir?: string;
}

/** Resolved from this file, not the working directory, so any cwd works. */
const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** Advisory lock key (an arbitrary constant) that serializes migrations across processes. */
const MIGRATION_LOCK = 7_245_001;

export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  if (opts.databaseUrl) return openPostgres(opts.databaseUrl);
  return openPglite(opts.dataDir ?? 'memory://');
}

async function openPostgres(connectionString: string): Promise<Database> {
  // allowExitOnIdle: an idle pool alone does not keep the process (a CLI, a test) alive.
  const pool = new pg.Pool({ connectionString, allowExitOnIdle: true });
  // An idle client the server drops (a restart, a terminated backend) emits 'error' on the pool;
  // unhandled, that would end the process. The pool discards that client and the next query
  // connects anew, so there is nothing else to do.
  pool.on('error', () => {});
  // A client in use (between the statements of a transaction) that loses its connection emits
  // 'error' too, with nobody listening, which would also end the process. The statement that
  // needed it fails on its own, and the pool drops the broken client when it is released.
  pool.on('connect', (client) => client.on('error', () => {}));
  try {
    const db = drizzlePg({ client: pool, schema });
    await withSessionLock(pool, MIGRATION_LOCK, () => migratePg(db, { migrationsFolder }));
    return { kind: 'postgres', db, close: () => pool.end() };
  } catch (error) {
    await pool.end();
    throw error;
  }
}

/**
 * Holds a session-level advisory lock on its own connection while `run` works on others, so
 * several server processes starting at once apply the migrations one after the other.
 */
async function withSessionLock<T>(pool: pg.Pool, key: number, run: () => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [key]);
    try {
      return await run();
    } finally {
      await client.query('select pg_advisory_unlock($1)', [key]);
    }
  } finally {
    client.release();
  }
}

/** In-process PGlite: the embedded-database process (src/db/embedded-host-process.ts) and tests only. */
export async function openPglite(dataDir: string): Promise<Database & { client: PGlite }> {
  if (!hasScheme(dataDir)) await mkdir(dataDir, { recursive: true });
  const client = await PGlite.create(dataDir);
  try {
    const db = drizzlePglite({ client, schema });
    await migratePglite(db, { migrationsFolder });
    return { kind: 'pglite', db, client, close: () => client.close() };
  } catch (error) {
    await client.close();
    throw error;
  }
}

/** `memory://`, `idb://` and the like name a PGlite store, not a directory. */
const hasScheme = (dataDir: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(dataDir);
