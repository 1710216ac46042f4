// The connection panel's REST routes (/api/endpoints, src/http/endpoint-routes.ts) against the
// real server and loopback engine servers: keys masked in every answer, sealed at rest (the
// stored column is not the key), saved settings applied to new turns at once and kept across a
// restart on the same database, models listed and connections tested in plain words without the
// key, validation as 4xx with reasons, and AUTH_TOKEN required when it is set.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { sql } from 'drizzle-orm';
import { loadConfig } from '../src/config.ts';
import type { Database } from '../src/db/client.ts';
import { createTtsEngine } from '../src/speech/tts.ts';
import type { EndpointsView, EndpointTestResult } from '../src/protocol.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { closeTestDatabases, openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const KEY = 'sk-chorus-test-0123456789-wxyz';
const SECRETS_KEY = 'ab'.repeat(32);
/** A port nothing listens on: the LLM is unreachable. */
const NOWHERE = 'http://127.0.0.1:9/v1';
const TOKEN = 'endpoint-test-token-0123456789';

let database: Database;
let engines: EngineServer;
const running: ChorusUnderTest[] = [];

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  database = db.database;
  engines = await startEngineServer({ requireApiKey: KEY, model: 'tiny-model' });
});

beforeEach(async () => {
  engines.reset();
  await resetData(database);
});

after(async () => {
  for (const c of running.splice(0)) await c.close();
  await engines?.close();
  await closeTestDatabases();
});

async function start(env: Record<string, string> = {}, tts?: Awaited<ReturnType<typeof createTtsEngine>>): Promise<ChorusUnderTest> {
  const chorus = await startChorus({ database, env: { LLM_BASE_URL: NOWHERE, LLM_API_KEY: '', SECRETS_KEY, ...env }, ...(tts ? { tts } : {}) });
  running.push(chorus);
  return chorus;
}

async function stop(chorus: ChorusUnderTest): Promise<void> {
  running.splice(running.indexOf(chorus), 1);
  await chorus.close();
}

async function call<T>(chorus: ChorusUnderTest, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T; text: string }> {
  const res = await fetch(`${chorus.httpUrl}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T, text };
}

const storedKeys = async () =>
  ((await database.db.execute(sql`select kind, api_key_encrypted from endpoint_settings order by kind`)) as unknown as { rows: Array<{ kind: string; api_key_encrypted: string | null }> }).rows;

describe('endpoint settings over REST', () => {
  test('the environment’s key is shown masked to its last 4 characters, never in full', async () => {
    const chorus = await start({ LLM_API_KEY: KEY });
    try {
      const view = await call<EndpointsView>(chorus, 'GET', '/api/endpoints');
      assert.equal(view.status, 200);
      assert.deepEqual(view.body.llm.api_key, { set: true, last4: 'wxyz' });
      assert.equal(view.body.llm.source, 'environment');
      assert.ok(!view.text.includes(KEY.slice(0, -4)), 'the answer holds the key');
    } finally {
      await stop(chorus);
    }
  });

  test('an unreachable LLM is reported in the session greeting; saving a working one seals its key, applies it to the next turn and survives a restart', async () => {
    let chorus = await start();
    const clients: TestClient[] = [];
    try {
      const ada = await chorus.repo.createCharacter({ name: 'Ada Endpoint', system_prompt: 'You test endpoints.', talkativeness: 0 });
      const first = await TestClient.connect(chorus.wsUrl, { waitForSession: false });
      clients.push(first);
      const greeting = await first.next('session');
      // The check of the unreachable endpoint may still run when the session opens: it is never "ready".
      assert.notEqual(greeting.data.capabilities?.llm, 'ready');
      const checked = await call<EndpointsView>(chorus, 'GET', '/api/endpoints');
      assert.ok(['unreachable', 'unknown'].includes(checked.body.capabilities.llm));

      const saved = await call<EndpointsView>(chorus, 'PUT', '/api/endpoints/llm', { base_url: engines.baseUrl, model: 'tiny-model', api_key: KEY });
      assert.equal(saved.status, 200, saved.text);
      assert.equal(saved.body.capabilities.llm, 'ready');
      // The open session is told at once.
      await first.waitFor((f) => f.type === 'capabilities' && f.data.llm === 'ready', 'capabilities with the LLM ready');
      assert.equal(saved.body.llm.source, 'saved');
      assert.deepEqual(saved.body.llm.api_key, { set: true, last4: 'wxyz' });
      assert.ok(!saved.text.includes(KEY.slice(0, -4)), 'the answer holds the key');

      const [row] = await storedKeys();
      assert.equal(row?.kind, 'llm');
      const sealed = row?.api_key_encrypted ?? '';
      assert.ok(sealed.startsWith('v1:'), 'stored sealed');
      assert.ok(!sealed.includes(KEY.slice(-12)) && !Buffer.from(sealed.split(':').at(-1) ?? '', 'base64url').includes(Buffer.from(KEY)), 'the stored column holds the key');

      // The session opened before the save talks to the new endpoint, with the new key and model.
      engines.chat.enqueue({ tokens: tokenize('It works.') });
      first.send({ type: 'user_message', data: { text: 'Ada Endpoint, are you there?' } });
      const reply = await first.next('text_stream_stop');
      assert.equal(reply.data.character_id, ada.id);
      assert.equal(reply.data.text, 'It works.');
      const [request] = await engines.chat.waitForRequests(1);
      assert.equal(request?.headers.authorization, `Bearer ${KEY}`);
      assert.equal(request?.body.model, 'tiny-model');

      await first.close();
      await chorus.settled();
      await stop(chorus);
      chorus = await start();
      const again = await call<EndpointsView>(chorus, 'GET', '/api/endpoints');
      assert.equal(again.body.llm.source, 'saved');
      assert.equal(again.body.llm.base_url, engines.baseUrl);
      assert.deepEqual(again.body.llm.api_key, { set: true, last4: 'wxyz' });
      const tested = await call<EndpointTestResult>(chorus, 'POST', '/api/endpoints/llm/test', {});
      assert.equal(tested.body.ok, true, tested.body.message);
    } finally {
      for (const c of clients) await c.close();
      await stop(chorus);
    }
  });

  test('a saved key another secrets key cannot open is reported unset, with a note', async () => {
    let chorus = await start();
    try {
      await call(chorus, 'PUT', '/api/endpoints/llm', { base_url: engines.baseUrl, model: 'tiny-model', api_key: KEY });
      await stop(chorus);
      chorus = await start({ SECRETS_KEY: 'cd'.repeat(32) });
      const view = await call<EndpointsView>(chorus, 'GET', '/api/endpoints');
      assert.deepEqual(view.body.llm.api_key, { set: false, last4: null });
      assert.match(view.body.llm.note ?? '', /cannot be read/);
    } finally {
      await stop(chorus);
    }
  });

  test('models come from the endpoint; a test with a wrong key says so in plain words, without the key', async () => {
    const chorus = await start();
    try {
      const models = await call<{ models: string[] }>(chorus, 'POST', '/api/endpoints/llm/models', { base_url: engines.baseUrl, api_key: KEY });
      assert.equal(models.status, 200, models.text);
      assert.deepEqual(models.body.models, ['tiny-model']);

      const wrongKey = 'sk-wrong-key-123456789';
      const test1 = await call<EndpointTestResult>(chorus, 'POST', '/api/endpoints/llm/test', { base_url: engines.baseUrl, model: 'tiny-model', api_key: wrongKey });
      assert.equal(test1.status, 200);
      assert.equal(test1.body.ok, false);
      assert.match(test1.body.message, /rejected the API key/);
      assert.ok(!test1.text.includes(wrongKey), 'the error quotes the key');

      const unreachable = await call<EndpointTestResult>(chorus, 'POST', '/api/endpoints/llm/test', { base_url: NOWHERE, model: 'x' });
      assert.equal(unreachable.body.ok, false);
      assert.match(unreachable.body.message, /Cannot reach/);

      const refused = await call<{ error: string }>(chorus, 'GET', '/api/endpoints/llm/models');
      assert.equal(refused.status, 502);
      assert.match(refused.body.error, /Cannot reach/);
    } finally {
      await stop(chorus);
    }
  });

  test('speech input saved from the panel is offered to sessions opened afterwards, and its test transcribes', async () => {
    const chorus = await start({ STT_ENGINE: 'none' });
    const clients: TestClient[] = [];
    try {
      const before = await call<EndpointsView>(chorus, 'GET', '/api/endpoints');
      assert.equal(before.body.capabilities.speech_input, false);
      const tested = await call<EndpointTestResult>(chorus, 'POST', '/api/endpoints/stt/test', { base_url: engines.baseUrl, model: 'whisper-1', api_key: KEY });
      assert.equal(tested.body.ok, true, tested.body.message);
      await engines.transcription.waitForRequests(1);
      const saved = await call<EndpointsView>(chorus, 'PUT', '/api/endpoints/stt', { base_url: engines.baseUrl, model: 'whisper-1', api_key: KEY });
      assert.equal(saved.body.capabilities.speech_input, true);
      const client = await TestClient.connect(chorus.wsUrl, { waitForSession: false });
      clients.push(client);
      assert.equal((await client.next('session')).data.capabilities?.speech_input, true);

      const forgotten = await call<EndpointsView>(chorus, 'DELETE', '/api/endpoints/stt');
      assert.equal(forgotten.body.capabilities.speech_input, false);
      assert.equal(forgotten.body.stt.source, 'environment');
      assert.deepEqual(await storedKeys(), []);
    } finally {
      for (const c of clients) await c.close();
      await stop(chorus);
    }
  });

  test('speech output saved from the panel speaks the next sentence through the new server, with its key and default voice', async () => {
    // The engines as the server builds them: espeak, and the openai engine at an address where nothing listens.
    const registry = await createTtsEngine(loadConfig({ TTS_ENGINE: 'openai', TTS_BASE_URL: NOWHERE, ESPEAK_WORKERS: '1' }).tts);
    assert.ok(registry);
    const chorus = await start({}, registry);
    const clients: TestClient[] = [];
    try {
      const client = await TestClient.connect(chorus.wsUrl);
      clients.push(client);
      const tested = await call<EndpointTestResult>(chorus, 'POST', '/api/endpoints/tts/test', { base_url: engines.baseUrl, model: 'tts-1', api_key: KEY, voice: 'nova' });
      assert.equal(tested.body.ok, true, tested.body.message);
      const saved = await call<EndpointsView>(chorus, 'PUT', '/api/endpoints/tts', { base_url: engines.baseUrl, model: 'tts-1', api_key: KEY, voice: 'nova' });
      assert.equal(saved.status, 200, saved.text);
      assert.equal(saved.body.tts.active, true);
      engines.reset();
      // The session opened before the save: its next sentence goes to the new server.
      client.send({ type: 'preview_voice', data: { voice: { engine: 'openai' }, text: 'Testing the new voice.' } });
      await client.waitFor((f) => f.type === 'audio_stream_stop', 'the preview audio');
      const [request] = await engines.speech.waitForRequests(1);
      assert.equal(request?.headers.authorization, `Bearer ${KEY}`);
      assert.equal(request?.body.voice, 'nova');
      assert.equal(request?.body.input, 'Testing the new voice.');
    } finally {
      for (const c of clients) await c.close();
      await stop(chorus);
      await registry.close();
    }
  });

  test('bad bodies and unknown endpoints are 4xx with a reason, and nothing is stored', async () => {
    const chorus = await start();
    try {
      const cases: Array<[string, string, unknown, number, RegExp]> = [
        ['PUT', '/api/endpoints/llm', { base_url: 'ftp://x', model: 'm' }, 400, /base_url/],
        ['PUT', '/api/endpoints/llm', { base_url: engines.baseUrl, model: '' }, 400, /model/],
        ['PUT', '/api/endpoints/llm', { base_url: engines.baseUrl, model: 'm', extra: 1 }, 400, /extra|Unrecognized/],
        ['PUT', '/api/endpoints/llm', { model: 'm' }, 400, /base_url/],
        ['PUT', '/api/endpoints/vision', { base_url: engines.baseUrl, model: 'm' }, 404, /llm, tts, stt/],
        ['POST', '/api/endpoints/tts/test', { api_key: 42 }, 400, /api_key/],
        ['PATCH', '/api/endpoints/llm', {}, 405, /./],
      ];
      for (const [method, path, body, status, reason] of cases) {
        const answer = await call<{ error?: string; message?: string }>(chorus, method, path, body);
        assert.equal(answer.status, status, `${method} ${path} ${JSON.stringify(body)}: ${answer.text}`);
        assert.match(answer.body.error ?? answer.body.message ?? '', reason, `${method} ${path}`);
      }
      assert.deepEqual(await storedKeys(), []);
    } finally {
      await stop(chorus);
    }
  });

  test('with AUTH_TOKEN set, reading, saving and testing endpoints need the token', async () => {
    const chorus = await start({ AUTH_TOKEN: TOKEN });
    try {
      const body = { base_url: engines.baseUrl, model: 'tiny-model', api_key: KEY };
      for (const [method, path, b] of [['GET', '/api/endpoints', undefined], ['PUT', '/api/endpoints/llm', body], ['POST', '/api/endpoints/llm/test', body], ['DELETE', '/api/endpoints/llm', undefined]] as const) {
        const refused = await call(chorus, method, path, b);
        assert.equal(refused.status, 401, `${method} ${path} without the token`);
      }
      assert.deepEqual(await storedKeys(), []);
      const allowed = await call<EndpointsView>(chorus, 'PUT', '/api/endpoints/llm', body, { authorization: `Bearer ${TOKEN}` });
      assert.equal(allowed.status, 200, allowed.text);
      assert.equal(allowed.body.llm.source, 'saved');
    } finally {
      await stop(chorus);
    }
  });
});
