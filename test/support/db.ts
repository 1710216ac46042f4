// Databases for tests: one in-memory PGlite per process (it takes seconds and hundreds of MB
// to start, so it is shared, never one per test) and, when TEST_DATABASE_URL is set, that
// PostgreSQL server, wiped and migrated afresh. Test files share them; resetData isolates groups.
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { openDatabase, type Database } from '../../src/db/client.ts';

export interface TestDatabase {
  name: string;
  database: Database;
}

let pglite: Promise<Database> | undefined;
let postgres: Promise<Database> | undefined;

export async function openTestDatabases(): Promise<TestDatabase[]> {
  pglite ??= openDatabase({ dataDir: 'memory://' });
  const databases = [{ name: 'pglite', database: await pglite }];
  const url = process.env.TEST_DATABASE_URL;
  if (url) {
    postgres ??= openFreshPostgres(url);
    databases.push({ name: 'postgres', database: await postgres });
  }
  return databases;
}

/** Closes what openTestDatabases opened (call from a top-level `after`). */
export async function closeTestDatabases(): Promise<void> {
  const open = [pglite, postgres];
  pglite = postgres = undefined;
  for (const database of open) if (database) await (await database).close();
}

/** Empties the four tables. */
export async function resetData(database: Database): Promise<void> {
  await database.db.execute(sql`truncate table messages, conversations, characters, voices`);
}

/**
 * Drops everything, including drizzle's own migration journal (schema `drizzle`), so the
 * migrations run from scratch against the current schema.
 */
async function openFreshPostgres(url: string): Promise<Database> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('DROP SCHEMA IF EXISTS drizzle CASCADE');
    await client.query('DROP SCHEMA IF EXISTS public CASCADE');
    await client.query('CREATE SCHEMA public');
  } finally {
    await client.end();
  }
  return openDatabase({ databaseUrl: url });
}
