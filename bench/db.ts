// The database on its own, through the server's repository: one message insert (the write-behind
// log's unit of work: a transaction that bumps the conversation and inserts the row) and one
// history load (all of a conversation's messages, as load_conversation reads them), on embedded
// PGlite in a data directory and on a PostgreSQL server in a database made for the run.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { type Database, openDatabase } from '../src/db/client.ts';
import { Repo } from '../src/db/repo.ts';
import { summarize, type Summary } from './stats.ts';

export interface DbFigures {
  kind: 'pglite' | 'postgres';
  messages: number;
  insert_ms: Summary;
  history_load_ms: Summary;
}

const now = () => process.hrtime.bigint();
const since = (t: bigint) => Number(now() - t) / 1e6;

async function measure(database: Database, messages: number, loads: number): Promise<DbFigures> {
  const repo = new Repo(database);
  const conversation = await repo.createConversation({ title: 'bench' });
  const insert: number[] = [];
  for (let i = 0; i < messages; i++) {
    const start = now();
    await repo.createMessage({
      conversation_id: conversation.conversation_id,
      role: i % 2 === 0 ? 'user' : 'assistant',
      name: i % 2 === 0 ? 'User' : 'Mira Vance',
      content: `Message ${i}: the chart for sector ${i} shows a quiet stretch of sky, and nobody believed it until the lights went green.`,
      character_id: null,
    });
    insert.push(since(start));
  }
  const load: number[] = [];
  for (let i = 0; i < loads + 2; i++) {
    const start = now();
    const rows = await repo.listMessages({ conversation_id: conversation.conversation_id });
    if (rows.length !== messages) throw new Error(`history load returned ${rows.length} of ${messages} messages`);
    if (i >= 2) load.push(since(start)); // two warm-up reads
  }
  await repo.deleteConversation(conversation.conversation_id);
  return { kind: database.kind, messages, insert_ms: summarize(insert, 1), history_load_ms: summarize(load, 1) };
}

export async function benchPglite(messages: number, loads: number): Promise<DbFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'chorus-bench-pglite-'));
  try {
    const database = await openDatabase({ dataDir: dir });
    try {
      return await measure(database, messages, loads);
    } finally {
      await database.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * On the server at `url`: creates a database of its own (so the schema is migrated from scratch
 * and nothing of anyone else's is touched), measures, and drops it.
 */
export async function benchPostgres(url: string, messages: number, loads: number): Promise<DbFigures> {
  const name = `chorus_bench_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    try {
      const target = new URL(url);
      target.pathname = `/${name}`;
      const database = await openDatabase({ databaseUrl: target.toString() });
      try {
        return await measure(database, messages, loads);
      } finally {
        await database.close();
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  } finally {
    await admin.end();
  }
}
