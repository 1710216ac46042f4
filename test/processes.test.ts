// Several server processes and the embedded database's own process (issue 13, points 1–3):
// WORKERS=2 serving sessions from two processes on one port, one embedded database shared by
// both, supervision (a dead worker replaced, a dead database process restarted), the database
// process's socket server (its transactions, LISTEN/NOTIFY and session-level advisory locks
// per connection), /healthz (503 when draining, when the database is gone or does not answer),
// the SIGTERM drain, and the WORKERS / DRAIN_TIMEOUT_MS settings.
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { pino } from 'pino';
import { buildApp } from '../src/app.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { type Database, openDatabase } from '../src/db/client.ts';
import { type EmbeddedHost, startEmbeddedHost } from '../src/db/embedded-host.ts';
import { Repo } from '../src/db/repo.ts';
import { Health } from '../src/http/health.ts';
import { createLlm } from '../src/llm/chat.ts';
import { MessageSpool } from '../src/session/message-spool.ts';
import type { WebSocketRouter } from '../src/session/router.ts';
import { shutdown } from '../src/shutdown.ts';
import { TestClient } from './support/client.ts';
import { closeTestDatabases, openTestDatabases } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';
import { type ServerProcess, startServerProcess } from './support/server-process.ts';

const silent = pino({ level: 'silent' });
const temporary: string[] = [];
const tempDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chorus-scale-'));
  temporary.push(dir);
  return dir;
};
const processes: ServerProcess[] = [];
const start = async (env: Record<string, string>) => {
  const child = await startServerProcess({ SEED_STARTER_CAST: 'false', ...env });
  processes.push(child);
  return child;
};
after(async () => {
  for (const child of processes) await child.kill();
  for (const dir of temporary) await rm(dir, { recursive: true, force: true });
});

/** Resolves with the first JSON log line of `child`, from now on, that `match` accepts. */
function nextLogLine(child: ServerProcess, match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    let pending = '';
    const scan = (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (!match(parsed)) continue;
        child.child.stdout?.off('data', scan);
        return resolve(parsed);
      }
    };
    child.child.stdout?.on('data', scan);
  });
}

/** GET /healthz on a connection of its own (no keep-alive), so each may reach another worker. */
function healthz(port: number): Promise<{ status: number; body: { status: string; pid: number; database: { ok: boolean; kind: string; error?: string } } }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    }).on('error', reject);
  });
}

/** A session, and the pid of the process that took it (the X-Chorus-Pid header of the upgrade). */
async function session(url: string): Promise<{ client: TestClient; pid: number }> {
  let pid = NaN;
  const client = await TestClient.connect(url, { onUpgrade: (res) => (pid = Number(res.headers['x-chorus-pid'])) });
  return { client, pid };
}

/** Sessions until one is served by a process not in `seen` (round robin: the next one is). */
async function sessionOnAnother(url: string, seen: Set<number>, tries = 8): Promise<{ client: TestClient; pid: number }> {
  for (let i = 0; i < tries; i++) {
    const opened = await session(url);
    if (!seen.has(opened.pid)) return opened;
    await opened.client.close();
  }
  throw new Error(`${tries} sessions, all on ${[...seen].join(', ')}`);
}

describe('WORKERS and DRAIN_TIMEOUT_MS settings', () => {
  test('WORKERS is 1 by default, a number of processes, or auto (one per core); anything else stops start-up naming it', () => {
    assert.equal(loadConfig({}).workers, 1);
    assert.equal(loadConfig({ WORKERS: '3' }).workers, 3);
    assert.equal(loadConfig({ WORKERS: 'auto' }).workers, availableParallelism());
    for (const bad of ['0', '-1', '1.5', 'two', 'AUTO', '257']) {
      assert.throws(() => loadConfig({ WORKERS: bad }), (error: unknown) => error instanceof ConfigError && error.problems.some((p) => p.startsWith(`WORKERS="${bad}"`)), bad);
    }
  });

  test('DRAIN_TIMEOUT_MS is 0 by default and at most half of SHUTDOWN_TIMEOUT_MS', () => {
    assert.equal(loadConfig({}).drainTimeoutMs, 0);
    assert.equal(loadConfig({ DRAIN_TIMEOUT_MS: '5000' }).drainTimeoutMs, 5000);
    assert.throws(() => loadConfig({ DRAIN_TIMEOUT_MS: '5001' }), /DRAIN_TIMEOUT_MS=5001: must be at most half of SHUTDOWN_TIMEOUT_MS/);
  });
});

describe('the embedded database process, shared over its socket', () => {
  let host: EmbeddedHost;
  let a: pg.Pool;
  let b: pg.Pool;
  before(async () => {
    host = await startEmbeddedHost(await tempDir(), silent, { restart: false });
    a = new pg.Pool({ connectionString: host.url, max: 4 });
    b = new pg.Pool({ connectionString: host.url, max: 4 });
    await a.query('create table scale_rows (n int)');
  });
  after(async () => {
    await a?.end();
    await b?.end();
    await host?.close();
  });

  test('ran the migrations before it served', async () => {
    const { rows } = await a.query<{ n: string }>('select count(*) as n from characters');
    assert.equal(rows[0]!.n, '0');
  });

  test('statements from many connections at once each get their own answer', async () => {
    // Each pool its own statement: were one's Parse/Bind/Execute to interleave with the other's, answers would mix.
    const statement = (i: number) => (i % 2 ? 'select $1::int as n, $2::text as t' : "select $1::int as n, $2::text as t, 'b' as pool");
    const expected = (i: number) => (i % 2 ? { n: i, t: `text ${i}` } : { n: i, t: `text ${i}`, pool: 'b' });
    const answers = await Promise.all(Array.from({ length: 400 }, (_, i) => (i % 2 ? a : b).query(statement(i), [i, `text ${i}`])));
    answers.forEach((answer, i) => assert.deepEqual(answer.rows, [expected(i)]));
  });

  test("another connection's statement never runs inside an open transaction", async () => {
    const [tx, reader] = [await a.connect(), await b.connect()];
    try {
      await tx.query('begin');
      await tx.query('insert into scale_rows values (1)');
      const other = reader.query<{ n: string }>('select count(*) as n from scale_rows'); // sent now; waits for the transaction
      // Round trips of the transaction, each a chance for the other statement to cut in if it could.
      for (let i = 0; i < 20; i++) await tx.query('select 1');
      assert.equal((await tx.query<{ n: string }>('select count(*) as n from scale_rows')).rows[0]!.n, '1');
      await tx.query('rollback');
      assert.equal((await other).rows[0]!.n, '0', 'it ran after the rollback, not inside the transaction');
    } finally {
      tx.release();
      reader.release();
    }
  });

  test('a connection that goes away in a transaction is rolled back and frees the database', async () => {
    const lone = new pg.Client({ connectionString: host.url });
    await lone.connect();
    await lone.query('begin');
    await lone.query('insert into scale_rows values (2)');
    await lone.end(); // Terminate in the middle of the transaction
    assert.equal((await b.query<{ n: string }>('select count(*) as n from scale_rows')).rows[0]!.n, '0');
  });

  test('LISTEN on one connection hears NOTIFY from another; UNLISTEN stops that connection only', async () => {
    const [one, two] = [await b.connect(), await b.connect()];
    try {
      const heard = { one: [] as string[], two: [] as string[] };
      const next = (client: pg.PoolClient) => new Promise<string>((resolve) => client.once('notification', (n) => resolve(n.payload ?? '')));
      one.on('notification', (n) => heard.one.push(n.payload ?? ''));
      two.on('notification', (n) => heard.two.push(n.payload ?? ''));
      await one.query('LISTEN "Scale_Changes"');
      await two.query('listen "Scale_Changes"');
      const both = Promise.all([next(one), next(two)]);
      await a.query(`select pg_notify('Scale_Changes', 'first')`);
      assert.deepEqual(await both, ['first', 'first']);

      await one.query('UNLISTEN "Scale_Changes"');
      const second = next(two);
      await a.query(`select pg_notify('Scale_Changes', 'second')`);
      assert.equal(await second, 'second');
      await one.query('select 1'); // anything sent to it before this answer has arrived
      assert.deepEqual(heard, { one: ['first'], two: ['first', 'second'] });
    } finally {
      one.release();
      two.release();
    }
  });
  test('session-level advisory locks belong to one connection, as on a PostgreSQL server', async () => {
    const [one, two] = [new pg.Client({ connectionString: host.url }), new pg.Client({ connectionString: host.url })];
    await one.connect();
    await two.connect();
    try {
      const got = async (client: pg.Client, text: string, values: unknown[] = []) => Object.values((await client.query(text, values)).rows[0] as object)[0];
      assert.equal(await got(one, 'select pg_try_advisory_lock(4242)'), true);
      assert.equal(await got(one, 'select pg_try_advisory_lock($1)', [4242]), true, 're-entrant for its holder');
      assert.equal(await got(two, 'select pg_try_advisory_lock($1) as mine', [4242]), false, 'not for another connection');
      assert.equal(await got(two, 'select pg_advisory_unlock($1)', [4242]), false, 'nor can another release it');
      let waited = false;
      const blocked = two.query('select pg_advisory_lock($1)', [4242]).then(() => (waited = true));
      assert.equal(await got(one, 'select pg_advisory_unlock(4242)'), true);
      assert.equal(waited, false, 'still held once (taken twice)');
      assert.equal(await got(one, 'select pg_advisory_unlock($1)', [4242]), true);
      await blocked; // the waiter gets it as soon as the holder lets go
      assert.equal(await got(one, 'select pg_try_advisory_lock(4242)'), false);
      assert.equal(await got(one, 'select pg_try_advisory_lock(1, 2)'), true, 'two-key locks are another key space');
      assert.equal(await got(two, 'select pg_try_advisory_lock($1, $2)', [1, 2]), false);
      await two.end(); // a connection that goes away lets go of its locks
      assert.equal(await got(one, 'select pg_try_advisory_lock(4242)'), true);
      assert.deepEqual((await one.query('select pg_advisory_unlock_all()')).rows, [{ pg_advisory_unlock_all: '' }]);
    } finally {
      await one.end();
      await two.end().catch(() => {});
    }
  });
});

describe('WORKERS=2', () => {
  test('two server processes serve sessions on one port, on one embedded database', async () => {
    const server = await start({ WORKERS: '2', DATA_DIR: await tempDir() });
    const first = await session(server.wsUrl);
    const second = await sessionOnAnother(server.wsUrl, new Set([first.pid]));
    assert.notEqual(first.pid, second.pid);
    assert.ok(first.pid !== server.child.pid && second.pid !== server.child.pid, 'the primary serves no one itself');

    // A change made through one process is read through the other.
    const created = await first.client.request({ type: 'create_character', data: { name: 'Across Processes' } });
    assert.equal(created.type, 'character_created', JSON.stringify(created));
    const listed = await second.client.request({ type: 'get_characters' });
    assert.equal(listed.type, 'characters_data', JSON.stringify(listed));
    assert.ok(listed.type === 'characters_data' && listed.data.some((c) => c.name === 'Across Processes'));
    const health = await healthz(server.port);
    assert.equal(health.body.database.kind, 'embedded');

    // And pushed, without asking: the new (active) character joins the default cast of the other
    // process's session (the database process relays LISTEN/NOTIFY between them).
    const pushed = await second.client.waitFor(
      (f) => f.type === 'active_characters_data' && f.data.some((c: { name: string }) => c.name === 'Across Processes'),
      'the new cast pushed to the other process',
      10_000,
    );
    assert.ok(pushed);

    await first.client.close();
    await second.client.close();
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0, server.output());
  });
});

describe('supervision', () => {
  test('WORKERS=2: a worker that dies is replaced; the other keeps its session', async () => {
    const server = await start({ WORKERS: '2', DATA_DIR: await tempDir() });
    const first = await session(server.wsUrl);
    const second = await sessionOnAnother(server.wsUrl, new Set([first.pid]));
    // A worker logs "worker is ready" after the primary's "Chorus is ready": a line of the first two
    // may still be on its way, so the new one is told by its pid.
    const replaced = nextLogLine(server, (l) => l.msg === 'worker is ready' && l.pid !== first.pid && l.pid !== second.pid);
    const lost = new Promise<number>((resolve) => first.client.ws.once('close', (code) => resolve(code)));
    process.kill(first.pid, 'SIGKILL');
    await lost;
    const fresh = (await replaced).pid as number;
    assert.ok(fresh !== first.pid && fresh !== second.pid, `a new worker (${fresh})`);
    const answer = await second.client.request({ type: 'get_characters' });
    assert.equal(answer.type, 'characters_data', 'the other worker\'s session goes on');
    const third = await sessionOnAnother(server.wsUrl, new Set([second.pid]));
    assert.equal(third.pid, fresh, 'the new worker takes sessions');
    await Promise.all([second.client.close(), third.client.close()]);
  });

  test('the embedded database process is restarted after it dies, and the pools reconnect', async () => {
    const events: string[] = [];
    let back = () => {};
    const restarted = new Promise<void>((resolve) => (back = resolve));
    const logger = pino({ level: 'info' }, { write: (line: string) => {
      const msg = (JSON.parse(line) as { msg: string }).msg;
      events.push(msg);
      if (msg === 'the embedded database process is back') back();
    } });
    const host = await startEmbeddedHost(await tempDir(), logger);
    const database = await openDatabase({ databaseUrl: host.url }); // the server's own pool
    try {
      await database.db.execute(sql`create table survives (n int)`);
      await database.db.execute(sql`insert into survives values (7)`);
      const before = host.pid();
      process.kill(before!, 'SIGKILL');
      await restarted;
      assert.notEqual(host.pid(), before);
      const rows = (await database.db.execute(sql`select n from survives`)) as unknown as { rows: unknown[] };
      assert.deepEqual(rows.rows, [{ n: 7 }], 'the data (in DATA_DIR) and a new connection');
      assert.ok(events.includes('the embedded database process ended; restarting it'), events.join('\n'));
    } finally {
      await database.close();
      await host.close();
    }
  });
});

describe('/healthz', () => {
  test('503 database_unavailable once the database process is gone', async () => {
    const host = await startEmbeddedHost(await tempDir(), silent, { restart: false });
    try {
      const server = await start({ DATABASE_URL: host.url, DATA_DIR: await tempDir() });
      const up = await healthz(server.port);
      assert.equal(up.status, 200);
      assert.deepEqual([up.body.status, up.body.database.ok], ['ok', true]);
      await host.kill();
      const down = await healthz(server.port);
      assert.equal(down.status, 503, JSON.stringify(down.body));
      assert.deepEqual([down.body.status, down.body.database.ok, down.body.database.error], ['database_unavailable', false, 'unreachable']);
    } finally {
      await host.close();
    }
  });

  test('503 database_unavailable (timeout) when the database does not answer within a second, without piling up queries', async () => {
    // A "database" that accepts connections and never answers.
    const sockets: import('node:net').Socket[] = [];
    const silentServer = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silentServer.listen(0, '127.0.0.1', resolve));
    const pool = new pg.Pool({ connectionString: `postgres://nobody@127.0.0.1:${(silentServer.address() as { port: number }).port}/none`, max: 4 });
    pool.on('error', () => {});
    const database: Database = { kind: 'postgres', db: drizzle({ client: pool }) as unknown as Database['db'], close: () => pool.end() };
    const health = new Health({ database, llm: createLlm(loadConfig({}).llm), tts: undefined, stt: undefined, sessionCount: () => 0 });
    try {
      for (let probe = 0; probe < 3; probe++) {
        const { httpStatus, body } = await health.report();
        assert.equal(httpStatus, 503);
        assert.deepEqual([body.status, body.database.ok, body.database.error], ['database_unavailable', false, 'timeout']);
      }
      assert.equal(sockets.length, 1, 'the probes waited on one query, not one each');
    } finally {
      for (const socket of sockets) socket.destroy();
      await pool.end().catch(() => {});
      await new Promise((resolve) => silentServer.close(resolve));
    }
  });

  test('503 draining from the start of the shutdown, while a running turn finishes; new sessions are refused', async () => {
    const shared = (await openTestDatabases())[0]!.database;
    const database: Database = { ...shared, close: async () => {} }; // shared by the file's tests: not closed here
    const config = loadConfig({ PORT: '0', WEB_DIR: './no-such-dir', LOG_LEVEL: 'silent', TTS_ENGINE: 'none' });
    const llm = createLlm(config.llm);
    let finishTurn = () => {};
    const turn = new Promise<void>((resolve) => (finishTurn = resolve));
    const runningSession = { turnFinished: () => turn, close: async () => {} } as unknown as WebSocketRouter;
    const sessions = new Set([runningSession]);
    const health = new Health({ database, llm, tts: undefined, stt: undefined, sessionCount: () => sessions.size });
    const app = await buildApp({ config, database, repo: new Repo(database), llm, logger: silent, tts: undefined, stt: undefined, sessions: new Set(), health });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
      const done = shutdown({ app, sessions, spool: new MessageSpool(await tempDir()), database, closeEngines: async () => {}, logger: silent, timeoutMs: 60_000, health, drainTimeoutMs: 30_000 });
      const draining = await app.inject({ url: '/healthz' });
      assert.equal(draining.statusCode, 503);
      assert.equal(draining.json().status, 'draining');
      const ws = await app.inject({ url: '/ws', headers: { connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
      assert.equal(ws.statusCode, 503, 'no new session while draining');
      finishTurn();
      await done;
    } finally {
      finishTurn();
      await app.close();
      await closeTestDatabases();
    }
  });
});

describe('SIGTERM with DRAIN_TIMEOUT_MS', () => {
  let llm: EngineServer;
  before(async () => (llm = await startEngineServer()));
  after(async () => llm?.close());

  test('a running turn finishes (not interrupted) before the socket closes with 1001', async () => {
    const server = await start({ DATA_DIR: await tempDir(), LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', DRAIN_TIMEOUT_MS: '5000', SHUTDOWN_TIMEOUT_MS: '20000' });
    const { client } = await session(server.wsUrl);
    const closed = new Promise<number>((resolve) => client.ws.once('close', (code) => resolve(code)));
    await client.request({ type: 'create_character', data: { name: 'Bob' } });
    const story = 'Once upon a time there was a loaf that would not rise';
    llm.chat.enqueue({ tokens: tokenize(story), tokenDelayMs: 100 });
    client.send({ type: 'user_message', data: { text: 'Bob, a story' } });
    await client.next('text_chunk', 10_000);
    server.child.kill('SIGTERM');
    const stop = await client.next('text_stream_stop', 15_000);
    assert.deepEqual([stop.data.interrupted ?? false, stop.data.text], [false, story], server.output());
    assert.equal(await closed, 1001);
    assert.equal(await server.exited, 0, server.output());
  });
});
