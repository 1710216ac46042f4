// What one database round trip costs on each of the three ways Chorus can reach its data:
// PGlite in the calling thread (what the server did before issue 13, and what tests still use),
// PGlite in its own process over the PostgreSQL protocol (the embedded database now:
// src/db/embedded-host.ts), and a PostgreSQL server (BENCH_DATABASE_URL, else TEST_DATABASE_URL,
// in a database made for the run). Each runs `select 1` and two typical repository calls
// (getCharacter: one indexed read; createMessage: the write-behind log's transaction) one after
// another, many times, and reports the median and p99 in microseconds.
//   npx tsx bench/db-cost.ts [iterations]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { pino } from 'pino';
import { type Database, openDatabase, openPglite } from '../src/db/client.ts';
import { startEmbeddedHost } from '../src/db/embedded-host.ts';
import { Repo } from '../src/db/repo.ts';
import { runOnServer } from '../test/support/db.ts';

const iterations = Number(process.argv[2] ?? 2000);
const warmup = Math.max(50, iterations / 10);

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;

/** Wall time per call (median, p99) and the calling process's own CPU time per call (its event loop's share). */
async function time(run: () => Promise<unknown>): Promise<{ median_us: number; p99_us: number; caller_cpu_us: number }> {
  for (let i = 0; i < warmup; i++) await run();
  const samples: number[] = [];
  const cpu = process.cpuUsage();
  for (let i = 0; i < iterations; i++) {
    const start = process.hrtime.bigint();
    await run();
    samples.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  const used = process.cpuUsage(cpu);
  samples.sort((a, b) => a - b);
  return { median_us: Math.round(percentile(samples, 0.5)), p99_us: Math.round(percentile(samples, 0.99)), caller_cpu_us: Math.round((used.user + used.system) / iterations) };
}

async function measure(name: string, database: Database) {
  const repo = new Repo(database);
  const character = await repo.createCharacter({ name: `Bench ${process.pid} ${name}` });
  const conversation = await repo.createConversation({ title: 'db-cost' });
  const row = { conversation_id: conversation.conversation_id, role: 'user' as const, name: 'User', content: 'A line of a conversation, of a typical length for a spoken turn.', character_id: null };
  const figures = {
    select_1: await time(() => database.db.execute(sql`select 1`)),
    get_character: await time(() => repo.getCharacter(character.id)),
    create_message: await time(() => repo.createMessage(row)),
  };
  await repo.deleteConversation(conversation.conversation_id);
  await repo.deleteCharacter(character.id);
  return { name, ...figures };
}

async function main() {
  const logger = pino({ level: 'silent' });
  const results = [];
  const dirs: string[] = [];
  const dir = async () => {
    const d = await mkdtemp(join(tmpdir(), 'chorus-db-cost-'));
    dirs.push(d);
    return d;
  };
  try {
    const inThread = await openPglite(await dir());
    results.push(await measure('pglite in-thread', inThread));
    await inThread.close();

    const host = await startEmbeddedHost(await dir(), logger, { restart: false });
    const overSocket = await openDatabase({ databaseUrl: host.url });
    results.push(await measure('pglite over its socket (embedded process)', overSocket));
    await overSocket.close();
    await host.close();

    const url = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
    if (url) {
      const name = `chorus_db_cost_${process.pid}`;
      await runOnServer(url, `create database ${name}`);
      try {
        const target = new URL(url);
        target.pathname = `/${name}`;
        const server = await openDatabase({ databaseUrl: target.toString() });
        results.push(await measure('postgresql server', server));
        await server.close();
      } finally {
        await runOnServer(url, `drop database if exists ${name}`);
      }
    }
  } finally {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
  console.log(JSON.stringify({ iterations, results }, null, 2));
  const cell = (f: { median_us: number; p99_us: number; caller_cpu_us: number }) => `${f.median_us} / ${f.p99_us} / ${f.caller_cpu_us}`;
  console.log('| way | select 1 | getCharacter | createMessage |  (µs: median / p99 / caller CPU per call)');
  for (const r of results) console.log(`| ${r.name} | ${cell(r.select_1)} | ${cell(r.get_character)} | ${cell(r.create_message)} |`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
