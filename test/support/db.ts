// Databases for tests: one in-memory PGlite per process (it takes seconds and hundreds of MB
// to start, so it is shared, never one per test) and, when TEST_DATABASE_URL is set, a fresh
// database of this process's own on that PostgreSQL server (files run in parallel, each in its
// own process, so they never see each other's data), dropped again on close.
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { openDatabase, type Database } from '../../src/db/client.ts';

export interface TestDatabase {
  name: string;
  database: Database;
}

let pglite: Promise<Database> | undefined;
let postgres: Promise<Database> | undefined;
let postgresName: string | undefined;

/** Why the PostgreSQL tests are skipped, or undefined when they run. */
export const postgresSkip = process.env.TEST_DATABASE_URL ? undefined : 'TEST_DATABASE_URL is not set: no PostgreSQL server to test against';

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
  const url = process.env.TEST_DATABASE_URL;
  if (url && postgresName) await runOnServer(url, `DROP DATABASE IF EXISTS ${postgresName}`);
  postgresName = undefined;
}

/** Empties the tables. */
export async function resetData(database: Database): Promise<void> {
  await database.db.execute(sql`truncate table messages, conversations, character_pictures, characters, voices, personas, lorebooks, endpoint_settings`);
}

/** A new database named after TEST_DATABASE_URL's and this process, so the migrations run from scratch. */
async function openFreshPostgres(url: string): Promise<Database> {
  const target = new URL(url);
  const name = `${target.pathname.slice(1).replace(/\W/g, '_') || 'test'}_${process.pid}`;
  await runOnServer(url, `DROP DATABASE IF EXISTS ${name}`);
  await runOnServer(url, `CREATE DATABASE ${name}`);
  postgresName = name;
  target.pathname = `/${name}`;
  return openDatabase({ databaseUrl: target.toString() });
}

/** Runs one statement on a connection of its own to `url` (CREATE/DROP DATABASE cannot run on the database dropped); the bench uses it too. */
export async function runOnServer(url: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
