// Nothing said is lost: text PostgreSQL cannot store never reaches it, a refused message is set
// aside without holding back the rest, a storage outage outlasts the connection, and a shutdown
// (a real SIGTERM to a server process) stores or spools everything, replayed at the next start.
// Real server, real sockets, real PostgreSQL (its own database, behind a loopback TCP proxy
// that can cut it off) and, for the signal tests, the server as a child process.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { pino } from 'pino';
import type { WebSocket } from 'ws';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { type Database, openDatabase } from '../src/db/client.ts';
import { Repo } from '../src/db/repo.ts';
import { createLlm } from '../src/llm/chat.ts';
import type { Character, Message } from '../src/protocol.ts';
import { ConversationLog, liveLogs } from '../src/session/conversation-log.ts';
import { DEAD_LETTER_FILE, MessageSpool, SPOOL_FILE } from '../src/session/message-spool.ts';
import type { WebSocketRouter } from '../src/session/router.ts';
import { eventually } from './support/eventually.ts';
import { TestClient } from './support/client.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';
import { startServerProcess, type ServerProcess } from './support/server-process.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';

/**
 * A PostgreSQL database of this file's own, `test_durable` on TEST_DATABASE_URL's server (created
 * when missing), or DURABILITY_DATABASE_URL. Without either, the tests that need one are skipped.
 */
async function durableDatabase(): Promise<string | undefined> {
  if (process.env.DURABILITY_DATABASE_URL) return process.env.DURABILITY_DATABASE_URL;
  const base = process.env.TEST_DATABASE_URL;
  if (!base) return undefined;
  const url = new URL(base);
  url.pathname = '/test_durable';
  const client = new pg.Client({ connectionString: base });
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', ['test_durable']);
    if (found.rowCount === 0) await client.query('create database test_durable');
  } finally {
    await client.end();
  }
  return url.toString();
}

const DATABASE_URL = (await durableDatabase()) ?? '';
const needsPostgres = DATABASE_URL ? {} : { skip: 'needs PostgreSQL: set TEST_DATABASE_URL (or DURABILITY_DATABASE_URL)' };

let proxy: TcpProxy;
let database: Database;
let repo: Repo;
let llm: EngineServer;
let server: InProcess;
let bob: Character;
const clients: TestClient[] = [];
const dirs: string[] = [];

interface InProcess {
  wsUrl: string;
  httpUrl: string;
  dataDir: string;
  close(): Promise<void>;
}

/** The real app on `database`, with a dead-letter file in a fresh DATA_DIR. */
async function startInProcess(): Promise<InProcess> {
  const dataDir = await tempDir();
  const config = loadConfig({ PORT: '0', WEB_DIR: './no-such-dir', LOG_LEVEL: 'silent', TTS_ENGINE: 'none', DATA_DIR: dataDir, LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', LLM_TIMEOUT_MS: '5000' });
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const sessions = new Set<WebSocketRouter>();
  const app = await buildApp({ config, database, repo, llm: createLlm(config.llm), logger, tts: undefined, stt: undefined, sessions, spool: new MessageSpool(dataDir) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { wsUrl: `ws://127.0.0.1:${address.port}/ws`, httpUrl: `http://127.0.0.1:${address.port}`, dataDir, close: () => app.close() };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chorus-durable-'));
  dirs.push(dir);
  return dir;
}

/** Drops everything in the test database, so the migrations run from scratch. */
async function wipe(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('DROP SCHEMA IF EXISTS drizzle CASCADE');
    await client.query('DROP SCHEMA IF EXISTS public CASCADE');
    await client.query('CREATE SCHEMA public');
  } finally {
    await client.end();
  }
}

const connect = async (url = server.wsUrl) => {
  const client = await TestClient.connect(url);
  clients.push(client);
  return client;
};

const conversationOf = (client: TestClient) => client.ofType('session')[0]!.data.conversation_id!;


/** The stored messages of a conversation once there are `n` of them. */
const storedMessages = (conversationId: string, n: number, r = repo) =>
  eventually(async () => {
    const messages = await r.listMessages({ conversation_id: conversationId });
    return messages.length >= n ? messages : undefined;
  }, `${n} stored messages`);

const summary = (messages: Message[]) => messages.map((m) => `${m.role}:${m.content}${m.interrupted ? ' [interrupted]' : ''}`);

before(async () => {
  llm = await startEngineServer();
  if (!DATABASE_URL) return;
  await wipe(DATABASE_URL);
  const target = new URL(DATABASE_URL);
  proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  database = await openDatabase({ databaseUrl: proxy.url(DATABASE_URL) });
  repo = new Repo(database);
  server = await startInProcess();
});

beforeEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  llm.reset();
  if (!DATABASE_URL) return;
  proxy.restore();
  await database.db.execute(sql`truncate table messages, conversations, character_pictures, characters, voices`);
  bob = await repo.createCharacter({ name: 'Bob', system_prompt: 'You are a baker.' });
});

after(async () => {
  for (const client of clients.splice(0)) await client.close();
  await server?.close();
  await llm?.close();
  await database?.close();
  await proxy?.close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('text PostgreSQL cannot store', needsPostgres, () => {
  test('a user_message or user_name with NUL or an unpaired surrogate is refused naming the field; later messages are stored at once', async () => {
    const client = await connect();
    for (const text of ['Bob, hi\u0000there', 'Bob, half an emoji \ud83d']) {
      const reply = await client.request({ type: 'user_message', data: { text } });
      assert.equal(reply.type, 'error');
      assert.equal(reply.type === 'error' && reply.data.code, 'invalid_payload');
      assert.match(reply.type === 'error' ? reply.data.message : '', /data\.text: must not contain NUL characters or unpaired surrogates/);
    }
    const named = await client.request({ type: 'session_settings', data: { user_name: 'J\u0000y' } });
    assert.match(named.type === 'error' ? named.data.message : named.type, /data\.user_name: must not contain NUL/);

    client.send({ type: 'user_message', data: { text: 'Bob, are you there?' } });
    await client.next('text_stream_stop');
    const stored = await storedMessages(conversationOf(client), 2);
    assert.deepEqual(summary(stored), ['user:Bob, are you there?', 'assistant:Reply to: Bob, are you there?']);
    assert.deepEqual(client.ofType('error').filter((e) => e.data.code === 'storage_error'), []);
  });

  test('REST refuses them with 400 naming the field, and stores nothing', async () => {
    const post = (path: string, body: string) => fetch(`${server.httpUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const character = await post('/api/characters', '{"name":"Nul\\u0000Man"}');
    assert.equal(character.status, 400);
    assert.match(((await character.json()) as { error: string }).error, /name: must not contain NUL/);

    const voice = await post('/api/voices', '{"voice":"v1","audio_tokens":{"t":["a\\u0000"]}}');
    assert.equal(voice.status, 400);
    assert.match(((await voice.json()) as { error: string }).error, /audio_tokens: must not contain NUL/);

    const conversation = await repo.createConversation({ title: 'REST' });
    const message = await post(`/api/conversations/${conversation.conversation_id}/messages`, '{"role":"user","content":"lone \\udc00 surrogate"}');
    assert.equal(message.status, 400);
    assert.match(((await message.json()) as { error: string }).error, /content: must not contain NUL characters or unpaired surrogates/);
    assert.deepEqual(await repo.listMessages({ conversation_id: conversation.conversation_id }), []);
    assert.deepEqual((await repo.listCharacters()).map((c) => c.name), ['Bob']);
  });

  test('LLM output with NUL and an unpaired surrogate is stored without them', async () => {
    llm.chat.enqueue({ tokens: ['Fresh', ' br\u0000ead', ' \ud800to', 'day.'] });
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Bob, what is new?' } });
    const stop = await client.next('text_stream_stop');
    assert.equal(stop.data.text, 'Fresh bread today.');
    const stored = await storedMessages(conversationOf(client), 2);
    assert.deepEqual(summary(stored), ['user:Bob, what is new?', 'assistant:Fresh bread today.']);
    assert.deepEqual(client.ofType('error'), []);
  });
});

describe('write-behind failures', needsPostgres, () => {
  test('a message the database refuses is reported once, set aside in the dead-letter file, and does not hold back the next', async () => {
    // A real constraint error (SQLSTATE 23514) for one message's content only.
    await database.db.execute(sql`alter table messages add constraint refuse_poison check (content not like '%POISON%') not valid`);
    try {
      llm.chat.enqueue({ tokens: tokenize('Sounds bad.') }, { tokens: tokenize('Much better.') });
      const client = await connect();
      client.send({ type: 'user_message', data: { text: 'Bob, POISON for you' } });
      const error = (await client.waitFor((f) => f.type === 'error', 'a storage_error')) as { type: 'error'; data: { code: string; message: string } };
      assert.equal(error.data.code, 'storage_error');
      assert.match(error.data.message, /the user message from User "Bob, POISON for you"/);
      assert.match(error.data.message, /set aside/);
      assert.doesNotMatch(error.data.message, /refuse_poison|insert|select/i, 'no SQL or schema names in what the client sees');
      await client.next('text_stream_stop');
      client.send({ type: 'user_message', data: { text: 'Bob, never mind' } });
      await client.next('text_stream_stop');

      const stored = await storedMessages(conversationOf(client), 3);
      assert.deepEqual(summary(stored), ['assistant:Sounds bad.', 'user:Bob, never mind', 'assistant:Much better.']);
      assert.equal(client.ofType('error').length, 1, 'reported once');
      const lines = (await readFile(join(server.dataDir, DEAD_LETTER_FILE), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(lines.length, 1);
      assert.equal(lines[0].conversation_id, conversationOf(client));
      assert.match(lines[0].message.message_id, /^[0-9a-f-]{36}$/);
      assert.deepEqual({ ...lines[0].message, message_id: undefined }, { role: 'user', name: 'User', content: 'Bob, POISON for you', message_id: undefined });
      assert.match(lines[0].reason, /^23514/);
    } finally {
      await database.db.execute(sql`alter table messages drop constraint if exists refuse_poison`);
    }
  });

  test('text with a NUL that reaches the log anyway is refused by PostgreSQL, set aside, and the next message is stored', async () => {
    const conversationId = crypto.randomUUID();
    const spool = new MessageSpool(await tempDir());
    const reports: string[] = [];
    const log = new ConversationLog({ repo, conversationId, activeCharacters: () => [bob.id], report: (m) => reports.push(m), spool });
    log.append({ role: 'user', name: 'User', content: 'first' });
    log.append({ role: 'assistant', name: 'Bob', content: 'bad\u0000byte', character_id: bob.id });
    log.append({ role: 'user', name: 'User', content: 'after it' });
    assert.equal(await log.flush(10_000), true);
    log.append({ role: 'user', name: 'User', content: 'right after the flush' }); // the log takes more once idle
    assert.equal(await log.flush(10_000), true);
    await log.close();
    const stored = await repo.listMessages({ conversation_id: conversationId });
    assert.deepEqual(summary(stored), ['user:first', 'user:after it', 'user:right after the flush']);
    assert.equal(reports.length, 1);
    assert.match(reports[0]!, /the assistant message from Bob "bad/);
    const [line, ...more] = (await readFile(spool.deadLetterPath, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(more, []);
    assert.equal(line.message.content, 'bad\u0000byte');
    assert.match(line.reason, /^22/, 'a data exception (SQLSTATE class 22)');
  });

  test('during an outage the messages are retried in order and stored once the database is back, after the client left', async () => {
    llm.chat.enqueue({ tokens: tokenize('Still here.') });
    const client = await connect();
    proxy.cut();
    client.send({ type: 'user_message', data: { text: 'Bob, is the oven on?' } });
    const error = await client.next('error', 15_000);
    assert.equal(error.data.code, 'storage_error');
    assert.match(error.data.message, /retrying/);
    await client.next('text_stream_stop');
    await client.close();
    proxy.restore();
    const stored = await storedMessages(conversationOf(client), 2);
    assert.deepEqual(summary(stored), ['user:Bob, is the oven on?', 'assistant:Still here.']);
  });

  test('a log keeps retrying after its close() gave up waiting, until the database takes the message', async () => {
    const conversationId = crypto.randomUUID();
    const log = new ConversationLog({ repo, conversationId, activeCharacters: () => [bob.id], report: () => undefined });
    proxy.cut();
    log.append({ role: 'user', name: 'User', content: 'said during the outage' });
    assert.equal(await log.close(200), false, 'close() returns while the database is away');
    assert.ok(liveLogs.has(log), 'the closed log is still live');
    proxy.restore();
    const stored = await storedMessages(conversationId, 1);
    assert.deepEqual(summary(stored), ['user:said during the outage']);
    await eventually(async () => (liveLogs.has(log) ? undefined : true), 'the log to leave liveLogs');
  });

  test('a closing connection stores its partial reply and the user messages of its queued turns', async () => {
    llm.chat.enqueue({ tokens: tokenize('Let me tell you about sourdough and rye and spelt and more'), tokenDelayMs: 100 });
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Bob, talk bread' } });
    await client.next('text_chunk');
    client.send({ type: 'user_message', data: { text: 'Bob, and cakes?' } });
    await client.request({ type: 'ping' }); // the queued message has been read
    await client.close();
    const stored = await storedMessages(conversationOf(client), 3);
    assert.equal(stored.length, 3);
    assert.equal(stored[0]!.content, 'Bob, talk bread');
    assert.equal(stored[1]!.role, 'assistant');
    assert.ok(stored[1]!.interrupted, 'the partial reply is marked interrupted');
    assert.match(stored[1]!.content, /^Let/);
    assert.equal(stored[2]!.content, 'Bob, and cakes?');
  });
});

describe('the spool', needsPostgres, () => {
  test('replay stores each message (creating its conversation), sets a refused one aside, then removes the spool', async () => {
    const spool = new MessageSpool(await tempDir());
    const conversationId = crypto.randomUUID();
    const entry = (content: string, first = false) => ({ conversation_id: conversationId, new_conversation: first, active_characters: [bob.id], message: { role: 'user' as const, name: 'User', content } });
    await spool.spool([entry('kept over a restart', true), entry('refused\u0000'), entry('and the last')]);
    const result = await spool.replay(repo, pino({ level: 'silent' }));
    assert.deepEqual(result, { stored: 2, deadLettered: 1, kept: 0 });
    const conversation = await repo.getConversation(conversationId);
    assert.equal(conversation.title, 'kept over a restart');
    assert.deepEqual(summary(await repo.listMessages({ conversation_id: conversationId })), ['user:kept over a restart', 'user:and the last']);
    assert.match(await readFile(spool.deadLetterPath, 'utf8'), /refused\\u0000/);
    await assert.rejects(readFile(spool.spoolPath), /ENOENT/);
  });

  test('replay during an outage keeps the spool as it was', async () => {
    const spool = new MessageSpool(await tempDir());
    const conversationId = crypto.randomUUID();
    await spool.spool([{ conversation_id: conversationId, new_conversation: true, active_characters: [], message: { role: 'user', name: 'User', content: 'wait for me' } }]);
    const before = await readFile(spool.spoolPath, 'utf8');
    proxy.cut();
    try {
      assert.deepEqual(await spool.replay(repo, pino({ level: 'silent' })), { stored: 0, deadLettered: 0, kept: 1 });
    } finally {
      proxy.restore();
    }
    assert.equal(await readFile(spool.spoolPath, 'utf8'), before);
  });
});

describe('shutdown (SIGTERM to a server process)', () => {
  const children: ServerProcess[] = [];
  after(async () => {
    for (const child of children) await child.kill();
  });
  const start = async (env: Record<string, string>) => {
    const child = await startServerProcess({ LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', SEED_STARTER_CAST: 'false', ...env });
    children.push(child);
    return child;
  };
  const closeOf = (ws: WebSocket) => new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));

  /** Sends a turn, waits for its first chunk, queues a second, then SIGTERMs the server. */
  async function sigtermMidTurn(child: ServerProcess, beforeSignal?: (client: TestClient) => Promise<void>) {
    const client = await connect(child.wsUrl);
    const closed = closeOf(client.ws);
    client.send({ type: 'user_message', data: { text: 'Bob, tell me everything' } });
    await client.next('text_chunk', 10_000);
    client.send({ type: 'user_message', data: { text: 'Bob, and then?' } });
    await client.request({ type: 'ping' });
    await beforeSignal?.(client);
    child.child.kill('SIGTERM');
    const stop = await client.next('text_stream_stop', 10_000).catch((error: Error) => {
      throw new Error(`${error.message}; the server printed:\n${child.output()}`);
    });
    assert.equal(stop.data.interrupted, true);
    assert.deepEqual(await closed, { code: 1001, reason: 'server shutting down' }, child.output());
    assert.equal(await child.exited, 0, child.output());
    return conversationOf(client);
  }

  /** load_conversation on a fresh server process. */
  async function loadOn(child: ServerProcess, conversationId: string): Promise<Message[]> {
    const client = await connect(child.wsUrl).catch((error: Error) => {
      throw new Error(`${error.message}; the server printed:\n${child.output()}`);
    });
    const loaded = await client.request({ type: 'load_conversation', data: { conversation_id: conversationId } });
    assert.equal(loaded.type, 'conversation_loaded', JSON.stringify(loaded));
    return loaded.type === 'conversation_loaded' ? loaded.data.messages : [];
  }

  const assertAllKept = (messages: Message[]) => {
    assert.equal(messages.length, 3, JSON.stringify(summary(messages)));
    assert.equal(messages[0]!.content, 'Bob, tell me everything');
    assert.equal(messages[1]!.role, 'assistant');
    assert.equal(messages[1]!.interrupted, true);
    assert.match(messages[1]!.content, /^Once/);
    assert.equal(messages[2]!.content, 'Bob, and then?');
  };

  test('mid-turn with a queued turn: the partial reply and both user messages survive a restart', async () => {
    const dataDir = await tempDir();
    const first = await start({ DATA_DIR: dataDir });
    const cast = await connect(first.wsUrl);
    await cast.request({ type: 'create_character', data: { name: 'Bob' } });
    llm.chat.enqueue({ tokens: tokenize('Once upon a time there was a loaf that would not rise at all'), tokenDelayMs: 150 });
    const conversationId = await sigtermMidTurn(first);

    const second = await start({ DATA_DIR: dataDir });
    assertAllKept(await loadOn(second, conversationId));
  });

  test('with speech on, a reply whose text had ended but whose audio was still playing is stored as what was heard', async () => {
    const dataDir = await tempDir();
    llm.speech.script(() => ({ realtimeFactor: 1 })); // seconds of audio, paced as it plays
    const story = 'Once upon a time there was a loaf. It would not rise at all. The baker tried everything he knew.';
    llm.chat.enqueue({ tokens: tokenize(story) });
    const first = await start({ DATA_DIR: dataDir, TTS_ENGINE: 'openai', TTS_BASE_URL: llm.baseUrl });
    const cast = await connect(first.wsUrl);
    await cast.request({ type: 'create_character', data: { name: 'Bob' } });
    const client = await connect(first.wsUrl);
    const closed = closeOf(client.ws);
    client.send({ type: 'user_message', data: { text: 'Bob, a story please' } });
    const stop = await client.next('text_stream_stop', 10_000);
    assert.equal(stop.data.text, story, 'the text had streamed in full');
    await client.next('binary', 10_000); // and the audio is playing
    first.child.kill('SIGTERM');
    const truncated = await client.next('message_truncated', 10_000);
    assert.ok(story.startsWith(truncated.data.text) && truncated.data.text.length < story.length, `a heard prefix: ${truncated.data.text}`);
    assert.equal((await closed).code, 1001);
    assert.equal(await first.exited, 0, first.output());

    const second = await start({ DATA_DIR: dataDir });
    const messages = await loadOn(second, conversationOf(client));
    assert.deepEqual(messages.map((m) => [m.role, m.content, m.status]), [['user', 'Bob, a story please', 'complete'], ['assistant', truncated.data.text, 'interrupted']].filter((m) => m[1] !== ''));
  });

  test('during a storage outage: what is unstored is spooled to DATA_DIR and stored at the next start', needsPostgres, async () => {
    const dataDir = await tempDir();
    const first = await start({ DATA_DIR: dataDir, DATABASE_URL: proxy.url(DATABASE_URL), SHUTDOWN_TIMEOUT_MS: '2000' });
    llm.chat.enqueue({ tokens: tokenize('Once upon a time there was a loaf that would not rise at all'), tokenDelayMs: 150 });
    // The first message is stored; then the database goes away, so the partial reply and the
    // queued message cannot be stored before the shutdown's time is up.
    const conversationId = await sigtermMidTurn(first, async () => proxy.cut());
    const spooled = (await readFile(join(dataDir, SPOOL_FILE), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(spooled.length >= 1, 'something was spooled');
    assert.ok(spooled.every((e) => e.conversation_id === conversationId));

    proxy.restore();
    const second = await start({ DATA_DIR: dataDir, DATABASE_URL: proxy.url(DATABASE_URL) });
    assertAllKept(await loadOn(second, conversationId));
    await assert.rejects(readFile(join(dataDir, SPOOL_FILE)), /ENOENT/, 'the spool is removed once replayed');
  });
});
