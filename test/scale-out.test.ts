// Several server processes on one PostgreSQL behave as one server: a change made through one
// (REST or WebSocket CRUD) is pushed to the sessions of the others (active_characters_data,
// message_added / message_updated / message_deleted); turns on one conversation in two processes
// take turns (the second waits on the advisory lock, then prompts with the first's replies); a
// lost LISTEN connection is re-established and the sessions re-read their state; a process
// stopped with SIGTERM leaves the others serving. Three real processes (src/main.ts), a fresh
// database of this file's own on TEST_DATABASE_URL's server, the loopback LLM.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { Character, EndpointsView, Message } from '../src/protocol.ts';
import { TestClient } from './support/client.ts';
import { eventually } from './support/eventually.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';
import { startServerProcess, type ServerProcess } from './support/server-process.ts';
import { runOnServer } from './support/db.ts';

const BASE_URL = process.env.TEST_DATABASE_URL;
const needsPostgres = BASE_URL ? {} : { skip: 'needs PostgreSQL: set TEST_DATABASE_URL' };

/** One secrets key for every process: a key one process seals, another must open. */
const SECRETS_KEY = 'ab'.repeat(32);
const databaseName = `chorus_scale_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
let databaseUrl = '';
let admin: pg.Client; // on the test's own database: reads and direct writes
let llm: EngineServer;
let dataDir: string;
const servers: ServerProcess[] = [];
const clients: TestClient[] = [];

const httpUrl = (server: ServerProcess) => `http://127.0.0.1:${server.port}`;

async function connect(server: ServerProcess): Promise<TestClient> {
  const client = await TestClient.connect(`${server.wsUrl}?greetings=off`);
  clients.push(client);
  return client;
}

async function rest<T>(server: ServerProcess, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${httpUrl(server)}${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

const conversationOf = (client: TestClient) => {
  const session = client.frames.find((f) => f.type === 'session');
  assert.ok(session?.type === 'session');
  return session.data.conversation_id as string;
};

/** The next active_characters_data whose cast names are `names`. */
async function castBecomes(client: TestClient, names: string[]): Promise<void> {
  const frame = await client.waitFor(
    (f) => f.type === 'active_characters_data' && JSON.stringify(f.data.map((c: Character) => c.name).sort()) === JSON.stringify([...names].sort()),
    `the cast ${names.join(', ')}`,
    10_000,
  );
  assert.ok(frame);
}

/** Sends a user message and waits for its reply to end; the message ids. */
async function say(client: TestClient, text: string): Promise<{ user: string; reply: string; content: string }> {
  client.send({ type: 'user_message', data: { text } });
  const accepted = await client.next('user_message_accepted', 15_000);
  const stop = await client.next('text_stream_stop', 15_000);
  return { user: accepted.data.message_id, reply: stop.data.message_id, content: stop.data.text };
}

const stored = (conversationId: string, ready: (m: Message[]) => boolean) =>
  eventually(async () => {
    const { rows } = await admin.query<Message>('select message_id, role, content from messages where conversation_id = $1 order by seq', [conversationId]);
    return ready(rows) ? rows : undefined;
  }, 'the stored messages');

/** The history part (after the system prompt) of the `n`th LLM request (1-based). */
async function promptOf(n: number) {
  const requests = await llm.chat.waitForRequests(n, 15_000);
  return requests[n - 1]!.body.messages!.filter((m) => m.role !== 'system').map((m) => m.content);
}

/** A session on `server` with `conversationId` loaded. */
async function joined(server: ServerProcess, conversationId: string): Promise<TestClient> {
  const client = await connect(server);
  const loaded = await client.request({ type: 'load_conversation', data: { conversation_id: conversationId } }, 15_000);
  assert.equal(loaded.type, 'conversation_loaded');
  return client;
}

describe('several processes on one PostgreSQL', needsPostgres, () => {
  before(async () => {
    await runOnServer(BASE_URL!, `create database ${databaseName}`);
    const url = new URL(BASE_URL!);
    url.pathname = `/${databaseName}`;
    databaseUrl = url.toString();
    dataDir = await mkdtemp(join(tmpdir(), 'chorus-scale-'));
    llm = await startEngineServer();
    // Echoes the last user message: each reply says which turn it answers.
    llm.chat.script((request) => {
      const last = request.body.messages!.filter((m) => m.role === 'user').at(-1);
      return { tokens: tokenize(`Re: ${String(last?.content ?? '')}`) };
    });
    const env = (i: number) => ({ DATABASE_URL: databaseUrl, DATA_DIR: join(dataDir, `p${i}`), LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', SECRETS_KEY: SECRETS_KEY, SEED_STARTER_CAST: 'false', USER_NAME: 'Jay', LOG_LEVEL: 'info' });
    // The first applies the migrations; the others start together.
    servers.push(await startServerProcess(env(0)));
    servers.push(...(await Promise.all([startServerProcess(env(1)), startServerProcess(env(2))])));
    admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    await rest(servers[0]!, 'POST', '/api/characters', { name: 'Ada', system_prompt: 'You are Ada.' });
  });

  after(async () => {
    for (const c of clients.splice(0)) await c.close().catch(() => {});
    for (const s of servers) await s.kill();
    await admin?.end().catch(() => {});
    await llm?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    if (BASE_URL) await runOnServer(BASE_URL, `drop database if exists ${databaseName} with (force)`);
  });

  test('a character change made through one process (REST, then WebSocket CRUD: renamed, switched off) reaches the sessions of the others as their new cast', async () => {
    const [p0, p1, p2] = servers as [ServerProcess, ServerProcess, ServerProcess];
    const onP1 = await connect(p1);
    const onP2 = await connect(p2);
    const name = `Bea ${randomUUID().slice(0, 6)}`;
    const bea = await rest<Character>(p0, 'POST', '/api/characters', { name, system_prompt: 'You are Bea.' });
    await castBecomes(onP1, ['Ada', name]);
    await castBecomes(onP2, ['Ada', name]);

    const writer = await connect(p0);
    const renamed = await writer.request({ type: 'update_character', data: { id: bea.id, name: `${name} B.` } });
    assert.equal(renamed.type, 'character_updated');
    await castBecomes(onP1, ['Ada', `${name} B.`]);
    await castBecomes(onP2, ['Ada', `${name} B.`]);
    const updated = await writer.request({ type: 'update_character', data: { id: bea.id, is_active: false } });
    assert.equal(updated.type, 'character_updated');
    await castBecomes(onP1, ['Ada']);
    await castBecomes(onP2, ['Ada']);
    assert.deepEqual([...onP1.errors, ...onP2.errors, ...writer.errors], []);
  });

  test('message changes made through one process (WebSocket CRUD and REST) reach a session of another live, into its next prompt', async () => {
    const [p0, p1] = servers as [ServerProcess, ServerProcess];
    const author = await connect(p0);
    const conversation = conversationOf(author);
    const first = await say(author, 'Ada, one');
    await stored(conversation, (m) => m.length === 2);
    const reader = await joined(p1, conversation);

    const created = await author.request({ type: 'create_message', data: { conversation_id: conversation, role: 'user', content: 'A note from p0.' } });
    assert.equal(created.type, 'message_created');
    const added = await reader.next('message_added', 10_000);
    assert.equal(added.data.content, 'A note from p0.');

    await rest(p0, 'PATCH', `/api/messages/${first.reply}`, { content: 'Uno, edited.' });
    const edited = await reader.next('message_updated', 10_000);
    assert.deepEqual([edited.data.message_id, edited.data.content], [first.reply, 'Uno, edited.']);

    const deleted = await author.request({ type: 'delete_message', data: { message_id: first.user } });
    assert.equal(deleted.type, 'message_deleted');
    const gone = await reader.next('message_deleted', 10_000);
    assert.deepEqual(gone.data, { message_id: first.user, conversation_id: conversation });

    const before = llm.chat.requests.length;
    await say(reader, 'Ada, two');
    assert.deepEqual(await promptOf(before + 1), ['Uno, edited.', 'A note from p0.', 'Ada, two']);
    assert.deepEqual([...author.errors, ...reader.errors], []);
  });

  test('two sessions on one conversation in two processes: turns take turns (the second prompts with the first\'s replies), messages go both ways', async () => {
    const [p0, p1] = servers as [ServerProcess, ServerProcess];
    const a = await connect(p0);
    const conversation = conversationOf(a);
    await say(a, 'Ada, one');
    await stored(conversation, (m) => m.length === 2);
    const b = await joined(p1, conversation);

    // a's next reply is held until b's turn is seen waiting for the conversation.
    let releaseA!: () => void;
    const held = new Promise<void>((resolve) => (releaseA = resolve));
    llm.chat.reset(); // requests are counted from here
    llm.chat.script(async (request) => {
      const last = request.body.messages!.filter((m) => m.role === 'user').at(-1);
      if (last?.content === 'Ada, two') await held;
      return { tokens: tokenize(`Re: ${String(last?.content ?? '')}`) };
    });
    a.send({ type: 'user_message', data: { text: 'Ada, two' } });
    await llm.chat.waitForRequests(1, 15_000); // a's turn is running (its reply held)
    b.send({ type: 'user_message', data: { text: 'Ada, three' } });
    // b's turn waits for the conversation's advisory lock, on a lock connection of p1's.
    await eventually(async () => {
      const { rows } = await admin.query(
        `select 1 from pg_stat_activity a join pg_locks l on l.pid = a.pid
          where a.application_name = $1 and l.locktype = 'advisory' and not l.granted`,
        [`chorus-turn-lock-${p1.child.pid}`],
      );
      return rows.length > 0 ? true : undefined;
    }, 'b waiting for the turn lock');
    assert.equal(llm.chat.requests.length, 1, 'b has not prompted while a\'s turn runs');
    releaseA();

    assert.equal((await b.next('text_stream_stop', 15_000)).data.text, 'Re: Ada, three');
    assert.deepEqual(await promptOf(2), ['Ada, one', 'Re: Ada, one', 'Ada, two', 'Re: Ada, two', 'Ada, three'], 'b\'s prompt has a\'s turn');
    // Live both ways: b was told of a's turn (before its own began), a of b's.
    const toB = b.ofType('message_added').map((m) => m.data.content);
    assert.deepEqual(toB, ['Ada, two', 'Re: Ada, two']);
    assert.ok(b.frames.findIndex((f) => f.type === 'message_added') < b.frames.findIndex((f) => f.type === 'user_message_accepted'));
    const toA = [await a.next('message_added', 10_000), await a.next('message_added', 10_000)].map((m) => m.data.content);
    assert.deepEqual(toA, ['Ada, three', 'Re: Ada, three']);
    await stored(conversation, (m) => m.length === 6);
    assert.equal(b.ofType('message_added').length, 2, 'each of a\'s messages told once');
    assert.deepEqual([...a.errors, ...b.errors], []);
  });

  test('endpoint settings saved through one process are applied by the others, the key readable there too', async () => {
    const other = await startEngineServer();
    try {
      await rest(servers[0]!, 'PUT', '/api/endpoints/llm', { base_url: other.baseUrl, model: 'other-model', api_key: 'sk-scale-out-1234' });
      const seen = await eventually(async () => {
        const view = await rest<EndpointsView>(servers[2]!, 'GET', '/api/endpoints');
        return view.llm.base_url === other.baseUrl ? view.llm : undefined;
      }, 'the endpoint saved on process 0 to be in use on process 2');
      assert.deepEqual([seen.model, seen.source, seen.api_key.last4, seen.note], ['other-model', 'saved', '1234', null]);
      // Forgotten on one, the environment's again on the others.
      await rest(servers[1]!, 'DELETE', '/api/endpoints/llm');
      await eventually(async () => {
        const view = await rest<EndpointsView>(servers[2]!, 'GET', '/api/endpoints');
        return view.llm.source === 'environment' ? view : undefined;
      }, 'the endpoint forgotten on process 1 to be forgotten on process 2');
    } finally {
      await other.close();
    }
  });

  test('a lost LISTEN connection is re-established: the sessions re-read their state, and later changes still arrive', async () => {
    const [p0, p1] = servers as [ServerProcess, ServerProcess];
    const author = await connect(p0);
    const conversation = conversationOf(author);
    const first = await say(author, 'Ada, four');
    await stored(conversation, (m) => m.length === 2);
    const reader = await joined(p1, conversation);
    const castPushes = reader.ofType('active_characters_data').length;

    // A change no notice tells of (made straight in the table), then p1's LISTEN backend is killed.
    await admin.query('update messages set content = $1 where message_id = $2', ['Changed behind the bus.', first.reply]);
    const killed = await admin.query<{ ok: boolean }>('select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = $1', [`chorus-listen-${p1.child.pid}`]);
    assert.deepEqual(killed.rows.map((r) => r.ok), [true], 'exactly p1\'s LISTEN connection');

    // Re-synced: the cast pushed again, the history re-read (the silent change pushed too).
    const resynced = await reader.next('message_updated', 15_000);
    assert.deepEqual([resynced.data.message_id, resynced.data.content], [first.reply, 'Changed behind the bus.']);
    await reader.waitFor((f) => f.type === 'active_characters_data' && reader.ofType('active_characters_data').length > castPushes, 'the cast pushed on re-sync', 15_000);

    // And listening again: a change through p0 arrives.
    const created = await author.request({ type: 'create_message', data: { conversation_id: conversation, role: 'user', content: 'After the reconnect.' } });
    assert.equal(created.type, 'message_created');
    assert.equal((await reader.next('message_added', 10_000)).data.content, 'After the reconnect.');
    const metrics = await (await fetch(`${httpUrl(p1)}/metrics`)).text();
    assert.match(metrics, /^chorus_change_bus_reconnects_total 1$/m);
    assert.deepEqual([...author.errors, ...reader.errors], []);
  });

  test('SIGTERM to one process while its session talks: its turn is stored and the lock released, the other processes serve on', async () => {
    const [p0, p1, p2] = servers as [ServerProcess, ServerProcess, ServerProcess];
    const leaving = await connect(p2);
    const conversation = conversationOf(leaving);
    await say(leaving, 'Ada, five');
    await stored(conversation, (m) => m.length === 2);
    const staying = await joined(p1, conversation);
    const elsewhere = await connect(p0);

    // p2's next reply hangs mid-stream: the turn is running (and holds the conversation) when the signal comes.
    llm.chat.reset();
    llm.chat.script((request) => {
      const last = request.body.messages!.filter((m) => m.role === 'user').at(-1);
      if (last?.content === 'Ada, six') return { tokens: tokenize('Half a reply that never ends'), tokenDelayMs: 60_000 };
      return { tokens: tokenize(`Re: ${String(last?.content ?? '')}`) };
    });
    leaving.send({ type: 'user_message', data: { text: 'Ada, six' } });
    await leaving.next('text_chunk', 15_000); // a word of it is out: the interrupted reply is stored with it
    p2.child.kill('SIGTERM');
    assert.equal(await p2.exited, 0, p2.output());

    // The interrupted turn was stored and told to the session in p1; its turn runs at once after.
    const told = [await staying.next('message_added', 15_000), await staying.next('message_added', 15_000)].map((m) => m.data.content);
    assert.equal(told[0], 'Ada, six');
    const reply = await say(staying, 'Ada, seven');
    assert.equal(reply.content, 'Re: Ada, seven');
    // p0's sessions are unaffected, and changes still travel between the remaining processes.
    assert.equal((await say(elsewhere, 'Ada, eight')).content, 'Re: Ada, eight');
    const fresh = await connect(p1);
    const name = `Cy ${randomUUID().slice(0, 6)}`;
    await rest(p0, 'POST', '/api/characters', { name, system_prompt: 'You are Cy.' });
    await castBecomes(fresh, ['Ada', name]);
    assert.deepEqual([...staying.errors, ...elsewhere.errors], []);
  });
});
