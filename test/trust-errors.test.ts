// Errors say what went wrong, never how the server is built: REST status codes with reasons
// (400, 405, 415, 500 with an error id), no SQL, parameters, stacks or secrets in any reply,
// and a reply cut short by an LLM failure stored and announced as failed.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { loadConfig, redactUrlPassword } from '../src/config.ts';
import type { Character } from '../src/protocol.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const KEY = 'sk-or-v1-0123456789abcdef0123456789abcdef';

let llm: EngineServer;
let chorus: ChorusUnderTest;
let bob: Character;

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  llm = await startEngineServer();
  chorus = await startChorus({ database: db.database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: KEY, LLM_MODEL: 'test/model', TTS_ENGINE: 'none' } });
});

beforeEach(async () => {
  llm.reset();
  await resetData((await openTestDatabases())[0]!.database);
  bob = await chorus.repo.createCharacter({ name: 'Bob', system_prompt: 'You are a baker.' });
});

after(async () => {
  await chorus?.close();
  await llm?.close();
});

const api = (path: string, init: RequestInit = {}) => fetch(`${chorus.httpUrl}${path}`, init);
const json = (body: unknown): RequestInit => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const errorOf = async (res: Response) => ((await res.json()) as { error: string }).error;

/** Nothing in a reply that shows how the server is built or what its secrets are. */
const assertNoInternals = (text: string) => assert.doesNotMatch(text, /select |insert |params|\$1|at .*\.ts:\d+|hunter2|sk-or|Error:/i);

describe('REST status codes', () => {
  test('a wrong method is 405 with the methods that are allowed', async () => {
    const res = await api('/api/characters', { method: 'DELETE' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, POST, HEAD');
    assert.match(await errorOf(res), /DELETE is not allowed on \/api\/characters/);
    const put = await api(`/api/characters/${bob.id}`, { method: 'PUT', ...json({ name: 'X' }) });
    assert.equal(put.status, 405);
    assert.equal((await chorus.repo.getCharacter(bob.id)).name, 'Bob', 'nothing changed');
    assert.equal((await api('/api/no-such-thing')).status, 404);
  });

  test('a JSON body sent as text/plain is 415, not silently ignored', async () => {
    const res = await api(`/api/characters/${bob.id}`, { method: 'PATCH', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ name: 'Robert' }) });
    assert.equal(res.status, 415);
    assert.match(await errorOf(res), /application\/json/);
    assert.equal((await chorus.repo.getCharacter(bob.id)).name, 'Bob');
    const form = await api('/api/characters', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=Eve' });
    assert.equal(form.status, 415);
  });

  test('deep nesting is 400 with the reason, over REST and over the WebSocket', async () => {
    const deep = `{"name":"Deep","images":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    const res = await api('/api/characters', { method: 'POST', headers: { 'content-type': 'application/json' }, body: deep });
    assert.equal(res.status, 400);
    assert.match(await errorOf(res), /nested deeper than 64 levels/);
    // Deep enough that storing it (JSON.stringify) would overflow the stack.
    const voice = `{"type":"create_voice","request_id":"deep","data":{"voice":"v","audio_tokens":${'{"a":'.repeat(200_000)}1${'}'.repeat(200_000)}}}`;
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      client.sendRaw(voice);
      const error = await client.next('error');
      assert.equal(error.data.code, 'bad_json');
      assert.match(error.data.message, /nested deeper than 64 levels/);
      assert.equal((await client.request({ type: 'ping' })).type, 'pong');
      assert.deepEqual(await chorus.repo.listVoices(), []);
    } finally {
      await client.close();
    }
  });

  test('an unexpected failure is a 500 that names an error id and shows no SQL, parameters or secrets', async () => {
    const client = await TestClient.connect(chorus.wsUrl); // before the failure: a session loads the characters when it starts
    const original = chorus.repo.listCharacters;
    chorus.repo.listCharacters = async () => {
      throw new Error('Failed query: select * from characters where id = $1\nparams: hunter2 at repo.ts:12');
    };
    try {
      const res = await api('/api/characters');
      assert.equal(res.status, 500);
      const text = await res.text();
      assertNoInternals(text);
      assert.match(text, /error id [0-9a-f]{8}/);
      try {
        const reply = await client.request({ type: 'get_characters' });
        assert.equal(reply.type, 'db_error');
        if (reply.type === 'db_error') {
          assertNoInternals(reply.error);
          assert.match(reply.error, /get_characters failed on the server \(error id [0-9a-f]{8}\)/);
        }
      } finally {
        await client.close();
      }
    } finally {
      chorus.repo.listCharacters = original;
    }
    assert.equal((await api('/api/characters')).status, 200);
  });
});

describe('secrets', () => {
  test('a password in an invalid DATABASE_URL and a bad API key value are not printed', () => {
    assert.throws(
      () => loadConfig({ DATABASE_URL: 'mysql://admin:hunter2@db.example:5432/chorus' }),
      (error: Error) => !error.message.includes('hunter2') && /DATABASE_URL="mysql:\/\/admin:\*\*\*@db\.example:5432\/chorus"/.test(error.message),
    );
    assert.throws(
      () => loadConfig({ TTS_API_KEY: 'x', STT_API_KEY: 'y', LLM_TIMEOUT_MS: 'soon' }),
      (error: Error) => /LLM_TIMEOUT_MS="soon"/.test(error.message),
    );
    assert.equal(redactUrlPassword('could not connect to postgres://u:p@ss:w@rd@h:5432/db'), 'could not connect to postgres://u:***@h:5432/db');
  });

  test('an LLM error body that echoes the key reaches the client without it', async () => {
    const echoKey = { error: { message: `Incorrect API key provided: ${KEY}. You can find your key at https://example.invalid.` } };
    llm.chat.enqueue(
      { tokens: [], failure: { status: 401, body: JSON.stringify(echoKey) } },
      { tokens: [], failure: { status: 400, body: JSON.stringify({ error: { message: `Bad request for key ${KEY} (sk-proj-abcdefghijkl)` } }) } },
    );
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      client.send({ type: 'user_message', data: { text: 'Bob?' } });
      const first = await client.next('error');
      assert.equal(first.data.code, 'llm_error');
      assert.match(first.data.message, /rejected the API key \(HTTP 401\): check LLM_API_KEY/);
      assert.ok(!first.data.message.includes(KEY.slice(6, 20)), first.data.message);
      client.send({ type: 'user_message', data: { text: 'Bob, again?' } });
      const second = await client.next('error');
      assert.match(second.data.message, /refused the request \(HTTP 400\): Bad request for key \*\*\* \(\*\*\*\)/);
    } finally {
      await client.close();
    }
  });
});

describe('a reply cut short by an LLM failure', () => {
  test('is announced with failed: true and stored with status "failed"', async () => {
    llm.chat.enqueue({ tokens: tokenize('Fresh bread is the best thing'), failure: { cutAfterTokens: 3 } }, { tokens: tokenize('All fine.') });
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      client.send({ type: 'user_message', data: { text: 'Bob?' } });
      const stop = await client.next('text_stream_stop');
      assert.equal(stop.data.failed, true);
      assert.equal(stop.data.interrupted, undefined);
      client.send({ type: 'user_message', data: { text: 'Bob, once more?' } });
      const whole = await client.next('text_stream_stop');
      assert.equal(whole.data.failed, undefined);
      const session = client.ofType('session')[0]!;
      const loaded = await client.request({ type: 'load_conversation', data: { conversation_id: session.data.conversation_id } });
      assert.equal(loaded.type, 'conversation_loaded');
      if (loaded.type !== 'conversation_loaded') return;
      const replies = loaded.data.messages.filter((m) => m.role === 'assistant');
      assert.deepEqual(replies.map((m) => [m.content, m.status, m.interrupted]), [
        [stop.data.text.trim(), 'failed', false],
        ['All fine.', 'complete', false],
      ]);
    } finally {
      await client.close();
    }
  });
});
