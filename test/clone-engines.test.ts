// Clone voices on OpenAI-compatible servers other than Boson's, each the way its documentation
// says (TTS_REFERENCE_AUDIO), against loopback servers speaking those protocols and recording what
// they receive (test/support/clone-servers.ts): vLLM-Omni (the clip inline as a base64 data URL
// with its transcript and task_type Base, raw PCM streamed) and Chatterbox TTS API (the clip put in
// the server's voice library once, then named; its streamed WAV read past the header). The engines
// are assembled from configuration, as main.ts does, and speak in a real conversation; the audio
// leaves at OUTPUT_SAMPLE_RATE with the tone of the voice that spoke.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { loadConfig } from '../src/config.ts';
import { ClipStore } from '../src/speech/clip-store.ts';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import type { TtsRegistry } from '../src/speech/registry.ts';
import { createTtsEngine } from '../src/speech/tts.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { type CloneServer, startChatterboxServer, startVllmOmniServer } from './support/clone-servers.ts';
import { closeTestDatabases, openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer } from './support/engine-server.ts';
import { toneFrequency } from './support/higgs-server.ts';
import { toneClipWav, toneHz, turn } from './support/speech-turns.ts';

const OUTPUT_RATE = 24_000;
let llm: EngineServer;
let dataDir: string;
let database: Awaited<ReturnType<typeof openTestDatabases>>[number]['database'];
const clients: TestClient[] = [];

/** A registry assembled from configuration (as main.ts does) with the openai engine pointing at `server`. */
async function engineFor(server: CloneServer, mode: string, model: string): Promise<TtsRegistry> {
  const config = loadConfig({ TTS_BASE_URL: server.baseUrl, TTS_REFERENCE_AUDIO: mode, TTS_MODEL: model, TTS_SAMPLE_RATE: '24000', ESPEAK_WORKERS: '1', OUTPUT_SAMPLE_RATE: String(OUTPUT_RATE) });
  const registry = await createTtsEngine(config.tts);
  assert.ok(registry);
  return registry;
}

async function connect(chorus: ChorusUnderTest): Promise<TestClient> {
  const client = await TestClient.connect(chorus.wsUrl);
  clients.push(client);
  return client;
}

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  database = db.database;
  dataDir = await mkdtemp(join(tmpdir(), 'chorus-clone-engines-'));
  llm = await startEngineServer();
});

beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await resetData(database);
});

after(async () => {
  for (const c of clients.splice(0)) await c.close();
  await llm?.close();
  await rm(dataDir, { recursive: true, force: true });
  await closeTestDatabases();
});

describe('vLLM-Omni (TTS_REFERENCE_AUDIO=vllm-omni)', () => {
  let server: CloneServer;
  let registry: TtsRegistry;
  let chorus: ChorusUnderTest;
  let clips: ClipStore;

  before(async () => {
    server = await startVllmOmniServer();
    registry = await engineFor(server, 'vllm-omni', 'FunAudioLLM/Fun-CosyVoice3-0.5B-2512');
    clips = new ClipStore(join(dataDir, 'vllm'));
    chorus = await startChorus({ database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', AUDIO_LEAD_MS: '0' }, tts: registry, clips });
  });
  after(async () => {
    await chorus?.close();
    await registry?.close();
    await server?.close();
  });

  test('a clone voice sends its clip as a base64 data URL with ref_text and task_type Base in every request, streamed as raw PCM; a preset names its voice', async () => {
    const wav = toneClipWav(280);
    const stored = await clips.save(wav, 'How the clone sounds.');
    await chorus.repo.createVoice({ voice: 'cosy', method: 'clone', engine: 'openai', speed: 1.5, ...stored });
    clips.release(stored);
    await chorus.repo.createVoice({ voice: 'ryan', engine: 'openai', engine_voice: 'ryan' });
    await chorus.repo.createCharacter({ name: 'Cosy', voice: 'cosy', system_prompt: 'You are Cosy.', talkativeness: 0 });
    await chorus.repo.createCharacter({ name: 'Ryan', voice: 'ryan', system_prompt: 'You are Ryan.', talkativeness: 0 });
    const client = await connect(chorus);

    const cosy = await turn(llm, client, 'Cosy', 'First of all. Second of all.');
    const speech = server.of('POST', '/v1/audio/speech');
    assert.equal(speech.length, 2, 'one request per sentence, each with the clip (the protocol keeps no voices)');
    for (const r of speech) {
      assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 200));
      assert.equal(r.body.ref_audio, `data:audio/wav;base64,${wav.toString('base64')}`);
      assert.deepEqual([r.body.ref_text, r.body.task_type, r.body.stream_format, r.body.response_format, r.body.model], ['How the clone sounds.', 'Base', 'audio', 'pcm', 'FunAudioLLM/Fun-CosyVoice3-0.5B-2512']);
      assert.ok(!('voice' in r.body) && !('speed' in r.body), 'no preset voice beside the clip, no speed on a stream');
    }
    assert.equal(cosy.rate, OUTPUT_RATE);
    assert.ok(Math.abs(toneHz(cosy.pcm, OUTPUT_RATE) - toneFrequency(wav.toString('base64'))) < 5, 'the clone spoke');

    const ryan = await turn(llm, client, 'Ryan', 'Preset here.');
    const preset = server.of('POST', '/v1/audio/speech').at(-1);
    assert.deepEqual([preset?.status, preset?.body.voice, preset?.body.ref_audio], [200, 'ryan', undefined]);
    assert.ok(Math.abs(toneHz(ryan.pcm, OUTPUT_RATE) - toneFrequency('ryan')) < 5);
    assert.equal(client.ofType('error').length, 0);
  });

  test('GET /api/voices/engines lists the server’s own voices and the clone method', async () => {
    const { engines } = (await (await fetch(`${chorus.httpUrl}/api/voices/engines`)).json()) as { engines: Array<{ engine: string; methods: string[]; voices: string[] }> };
    const openai = engines.find((e) => e.engine === 'openai');
    assert.deepEqual(openai?.methods, ['preset', 'clone']);
    assert.deepEqual(openai?.voices, ['vivian', 'ryan', 'aiden']);
  });
});

describe('Chatterbox TTS API (TTS_REFERENCE_AUDIO=chatterbox)', () => {
  let server: CloneServer;
  let registry: TtsRegistry;
  let chorus: ChorusUnderTest;
  let clips: ClipStore;

  before(async () => {
    server = await startChatterboxServer();
    registry = await engineFor(server, 'chatterbox', 'chatterbox');
    clips = new ClipStore(join(dataDir, 'chatterbox'));
    chorus = await startChorus({ database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', AUDIO_LEAD_MS: '0' }, tts: registry, clips });
  });
  after(async () => {
    await chorus?.close();
    await registry?.close();
    await server?.close();
  });

  test('a clone voice’s clip is put in the voice library once and named in every streamed request; the WAV header is read, not played', async () => {
    const wav = toneClipWav(350);
    const stored = await clips.save(wav, 'Chatterbox reads only the audio.');
    await chorus.repo.createVoice({ voice: 'boxy', method: 'clone', engine: 'openai', ...stored });
    clips.release(stored);
    await chorus.repo.createCharacter({ name: 'Boxy', voice: 'boxy', system_prompt: 'You are Boxy.', talkativeness: 0 });
    const client = await connect(chorus);
    const reply = 'This is the first one. Here is the second one. And now the third one.';
    const boxy = await turn(llm, client, 'Boxy', reply);

    const name = `chorus-${stored.audio_path.slice(0, 16)}`;
    assert.deepEqual(server.of('GET', `/v1/voices/${name}`).map((r) => r.status), [404], 'looked up once (an unknown name would silently speak the default voice)');
    const uploads = server.of('POST', '/v1/voices');
    assert.equal(uploads.length, 1, 'uploaded once for three sentences');
    assert.equal(uploads[0]?.body.voice_name, name);
    assert.deepEqual(uploads[0]?.file?.bytes, wav);
    const speech = server.of('POST', '/v1/audio/speech/stream');
    assert.equal(speech.length, 3);
    for (const r of speech) assert.deepEqual([r.status, r.body.voice, 'speed' in r.body], [200, name, false]);
    assert.equal(boxy.rate, OUTPUT_RATE);
    // Exactly the samples the server generated (20 ms a character): none of the three 44-byte headers was played as sound.
    const generated = speech.reduce((n, r) => n + Math.round(String(r.body.input).length * 0.02 * OUTPUT_RATE), 0);
    assert.equal(boxy.pcm.length / 2, generated);
    assert.ok(Math.abs(toneHz(boxy.pcm, OUTPUT_RATE) - toneFrequency(wav.toString('base64'))) < 5, 'the clone spoke');

    // Another process (a new engine) finds the voice in the library and does not upload it again.
    const again = await engineFor(server, 'chatterbox', 'chatterbox');
    try {
      const engine = again.get('openai');
      assert.ok(engine);
      for await (const _ of engine.synthesize('Four.', { engineVoice: 'alloy', speed: 1, pitch: 1, clone: await clips.load(stored.audio_path, stored.text_path) }, new AbortController().signal)) {
        // drained
      }
    } finally {
      await again.close();
    }
    assert.deepEqual(server.of('GET', `/v1/voices/${name}`).map((r) => r.status), [404, 200]);
    assert.equal(server.of('POST', '/v1/voices').length, 1);
  });

  test('a WAV at another rate than TTS_SAMPLE_RATE is an error naming both rates, not noise', async () => {
    const engine = createOpenAiTtsEngine({ baseUrl: server.baseUrl, apiKey: undefined, model: 'chatterbox', sampleRate: 22_050, defaultVoice: 'alloy', referenceAudio: 'chatterbox', timeoutMs: 5000 });
    await assert.rejects(
      (async () => {
        for await (const _ of engine.synthesize('Hello.', engine.defaultVoice, new AbortController().signal)) {
          // drained
        }
      })(),
      /sent 24000 Hz audio where 22050 Hz was configured \(TTS_SAMPLE_RATE\)/,
    );
  });
});
