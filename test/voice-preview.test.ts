// preview_voice of an unsaved voice definition (the voice editor's settings before saving), over
// a real WebSocket, with the openai engine against the loopback /v1/audio/speech server that
// records each request's voice and speed.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer } from './support/engine-server.ts';

let engines: EngineServer;
let openai: TtsEngine;
let chorus: ChorusUnderTest;
const clients: TestClient[] = [];

const connect = async () => {
  const client = await TestClient.connect(chorus.wsUrl);
  clients.push(client);
  return client;
};

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  engines = await startEngineServer();
  openai = createOpenAiTtsEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'tts-1', sampleRate: 24_000, timeoutMs: 2000, defaultVoice: 'alloy' });
  chorus = await startChorus({ database: db.database, env: { LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k' }, tts: openai });
});

beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  engines.reset();
  await resetData((await openTestDatabases())[0]!.database);
});

after(async () => {
  for (const c of clients.splice(0)) await c.close();
  await chorus?.close();
  await openai?.close();
  await engines?.close();
});

describe('preview_voice with an unsaved voice definition', () => {
  test('speaks with the definition, not the stored voice of the same name', async () => {
    await chorus.repo.createVoice({ voice: 'captain', engine: 'openai', engine_voice: 'alloy', speed: 1 });
    const client = await connect();
    client.send({ type: 'preview_voice', data: { voice: { voice: 'captain', engine: 'openai', engine_voice: 'onyx', speed: 1.5 }, text: 'Ahoy there.' } });
    const start = await client.next('audio_stream_start');
    assert.equal(start.data.character_name, 'captain');
    await client.waitFor((f) => f.type === 'audio_stream_stop', 'the preview audio');
    const [request] = await engines.speech.waitForRequests(1);
    assert.equal(request?.body.voice, 'onyx');
    assert.equal(request?.body.speed, 1.5);
    assert.equal(request?.body.input, 'Ahoy there.');
    // The stored voice is untouched, and a stored-name preview (old clients) still speaks it.
    client.send({ type: 'preview_voice', data: { voice: 'captain' } });
    const [, stored] = await engines.speech.waitForRequests(2);
    assert.equal(stored?.body.voice, 'alloy');
  });

  test('a nameless definition previews too; one its engine cannot speak falls back with a warning', async () => {
    const client = await connect();
    client.send({ type: 'preview_voice', data: { voice: { engine_voice: 'echo' } } });
    await client.waitFor((f) => f.type === 'audio_stream_stop', 'the preview audio');
    assert.equal((await engines.speech.waitForRequests(1))[0]?.body.voice, 'echo');
    client.send({ type: 'preview_voice', data: { voice: { voice: 'nobody-yet', engine: 'openai', method: 'description', speaker_desc: 'A gruff sailor.' } } });
    const warning = await client.waitFor((f) => f.type === 'error' && f.data.code === 'voice_fallback', 'the fallback warning');
    assert.match(warning.type === 'error' ? warning.data.message : '', /nobody-yet.*cannot speak description voices/);
    assert.equal((await engines.speech.waitForRequests(2))[1]?.body.voice, 'alloy');
  });

  test('a bad definition is a clear invalid_payload naming its field, with the request_id', async () => {
    const client = await connect();
    const reply = await client.request({ type: 'preview_voice', data: { voice: { engine_voice: 'onyx', speed: 9 } } });
    assert.equal(reply.type, 'error');
    assert.equal(reply.type === 'error' && reply.data.code, 'invalid_payload');
    assert.match(reply.type === 'error' ? reply.data.message : '', /data\.voice\.speed: .*<=4/);
    const unknown = await client.request({ type: 'preview_voice', data: { voice: { engine: 'kokoro' } } });
    assert.match(unknown.type === 'error' ? unknown.data.message : '', /data\.voice\.engine: Invalid option/);
    const internal = await client.request({ type: 'preview_voice', data: { voice: { audio_tokens: [1, 2] } } });
    assert.match(internal.type === 'error' ? internal.data.message : '', /audio_tokens/);
    assert.equal(engines.speech.requests.length, 0, 'nothing was spoken');
  });
});
