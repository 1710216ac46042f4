// Speech output end to end: real WebSocket clients, the real server, real espeak synthesis in
// worker threads, and the openai engine against a loopback /v1/audio/speech server.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { Character } from '../src/protocol.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import { MAX_QUEUED_AUDIO_BYTES } from '../src/speech/speech.ts';
import { AUDIO_HIGH_WATER_BYTES } from '../src/session/writer.ts';
import { medianPitchHz, rms, samples } from './support/audio.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { type Frame, TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, synthesizeSpeech, tokenize } from './support/engine-server.ts';

let engines: EngineServer;
let espeak: TtsEngine;
let openai: TtsEngine;
let withEspeak: ChorusUnderTest;
let withOpenai: ChorusUnderTest;
const clients: TestClient[] = [];

const connect = async (chorus: ChorusUnderTest) => {
  const client = await TestClient.connect(chorus.wsUrl);
  clients.push(client);
  return client;
};

const ofMessage = (f: Frame, messageId: string) => 'data' in f && (f.data as { message_id?: string }).message_id === messageId;

/** Waits for a message's audio to finish and returns its start, PCM and stop. */
async function audioOf(client: TestClient, messageId: string) {
  await client.waitFor((f) => f.type === 'audio_stream_stop' && ofMessage(f, messageId), `audio_stream_stop of ${messageId}`, 15_000);
  const frames = client.frames;
  const pcm: Buffer[] = [];
  const headers: Array<{ sentence_index: number; chunk_index: number }> = [];
  frames.forEach((f, i) => {
    if (f.type !== 'audio_chunk' || f.data.message_id !== messageId) return;
    headers.push(f.data);
    const next = frames[i + 1];
    assert.equal(next?.type, 'binary', 'an audio_chunk header is immediately followed by its frame');
    if (next?.type === 'binary') pcm.push(next.data);
  });
  const start = client.ofType('audio_stream_start').find((s) => s.data.message_id === messageId);
  const stop = client.ofType('audio_stream_stop').find((s) => s.data.message_id === messageId);
  assert.ok(start && stop);
  return { start, stop, headers, pcm: Buffer.concat(pcm) };
}

/** Every binary frame follows an audio_chunk header, and every header is followed by one. */
function assertAdjacency(frames: Frame[]): void {
  frames.forEach((f, i) => {
    if (f.type === 'binary') assert.equal(frames[i - 1]?.type, 'audio_chunk', `binary frame ${i} follows its header`);
    if (f.type === 'audio_chunk') assert.equal(frames[i + 1]?.type, 'binary', `header ${i} is followed by its frame`);
  });
}

async function character(chorus: ChorusUnderTest, name: string, voice: string | null): Promise<Character> {
  // Talkativeness 0: under the default strategy (natural) only the characters a message names answer.
  return chorus.repo.createCharacter({ name, voice, system_prompt: `You are ${name}.`, talkativeness: 0 });
}

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  engines = await startEngineServer();
  espeak = await createEspeakEngine({ workers: 2 });
  openai = createOpenAiTtsEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'tts-1', sampleRate: 24_000, timeoutMs: 2000, defaultVoice: 'alloy' });
  const env = { LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k' };
  withEspeak = await startChorus({ database: db.database, env, tts: espeak });
  withOpenai = await startChorus({ database: db.database, env, tts: openai });
});

beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  engines.reset();
  await resetData((await openTestDatabases())[0]!.database);
  const repo = withEspeak.repo;
  await repo.createVoice({ voice: 'bright', engine: 'espeak', engine_voice: 'en-us+f3' });
  await repo.createVoice({ voice: 'deep', engine: 'espeak', engine_voice: 'en-gb-x-rp+m3' });
  await repo.createVoice({ voice: 'nova', engine: 'openai', engine_voice: 'nova', speed: 1.25 });
});

after(async () => {
  for (const c of clients.splice(0)) await c.close();
  await withEspeak.close();
  await withOpenai.close();
  await espeak.close();
  await engines.close();
});

describe('espeak speech', () => {
  test('a reply is heard: non-silent PCM of plausible length at the announced rate, after its text starts', async () => {
    const ada = await character(withEspeak, 'Ada', 'bright');
    engines.chat.enqueue({ tokens: tokenize('Hello there, my friend. It is a fine day for a long walk in the park.') });
    const client = await connect(withEspeak);
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    const textStart = await client.next('text_stream_start');
    assert.equal(textStart.data.character_id, ada.id);
    const { start, headers, pcm } = await audioOf(client, textStart.data.message_id);
    assert.equal(start.data.sample_rate, 22_050);
    assert.equal(start.data.character_name, 'Ada');
    const seconds = pcm.length / 2 / 22_050;
    assert.ok(seconds > 2 && seconds < 8, `${seconds} s of audio for 15 words`);
    assert.ok(rms(samples(pcm)) > 500, 'the audio is not silence');
    assert.ok(new Set(headers.map((h) => h.sentence_index)).size >= 2, 'the first fragment and the rest are separate sentences');
    const frames = client.frames.map((f) => f.type);
    assert.ok(frames.indexOf('text_stream_start') < frames.indexOf('audio_stream_start'));
    assertAdjacency(client.frames);
    assert.deepEqual(client.errors, []);
  });

  test('two characters speak the same words in audibly different voices', async () => {
    await character(withEspeak, 'Ada', 'bright');
    await character(withEspeak, 'Bob', 'deep');
    const line = 'I would like a cup of tea with some honey please.';
    engines.chat.enqueue({ tokens: tokenize(line) }, { tokens: tokenize(line) });
    const client = await connect(withEspeak);
    client.send({ type: 'user_message', data: { text: 'Ada, Bob?' } });
    const first = await client.next('text_stream_start');
    const second = await client.next('text_stream_start');
    const high = await audioOf(client, first.data.message_id);
    const low = await audioOf(client, second.data.message_id);
    const [f3, m3] = [medianPitchHz(high.pcm, 22_050), medianPitchHz(low.pcm, 22_050)];
    assert.ok(f3 > m3 * 1.3, `en-us+f3 at ${f3.toFixed(0)} Hz should be well above en-gb-x-rp+m3 at ${m3.toFixed(0)} Hz`);
  });

  test('a character without a usable voice speaks in the default voice, not silence', async () => {
    await character(withEspeak, 'Cy', null);
    await character(withEspeak, 'Di', 'nova'); // a voice of the openai engine
    const client = await connect(withEspeak);
    client.send({ type: 'user_message', data: { text: 'Hello Cy and Di, how are things?' } });
    for (const _ of [1, 2]) {
      const start = await client.next('text_stream_start');
      const { pcm } = await audioOf(client, start.data.message_id);
      assert.ok(rms(samples(pcm)) > 500);
    }
  });

  test('preview_voice speaks a sample through the audio path; an unknown voice is not_found', async () => {
    const client = await connect(withEspeak);
    client.send({ type: 'preview_voice', data: { voice: 'deep', text: 'Testing one two three.' } });
    const start = await client.next('audio_stream_start');
    assert.equal(start.data.character_name, 'deep');
    const { pcm } = await audioOf(client, start.data.message_id);
    assert.ok(pcm.length > 22_050, 'more than half a second of audio');
    const reply = await client.request({ type: 'preview_voice', data: { voice: 'nobody' } });
    assert.equal(reply.type === 'error' && reply.data.code, 'not_found');
  });

  test('GET /api/voices/engines lists the engine voice ids', async () => {
    const body = (await (await fetch(`${withEspeak.httpUrl}/api/voices/engines`)).json()) as { engines: Array<{ engine: string; sample_rate: number; voices: string[] }> };
    assert.equal(body.engines[0]?.engine, 'espeak');
    assert.equal(body.engines[0]?.sample_rate, 22_050);
    assert.ok(body.engines[0]?.voices.includes('en-us+f3'));
    assert.ok(body.engines[0]?.voices.includes('en-gb-x-rp'));
  });

  test('GET /api/voices/engines names espeak voices by language and variant', async () => {
    type Labelled = { voices: string[]; voice_labels?: Array<{ voice: string; language: string; variant: string | null }> };
    const [espeakInfo] = ((await (await fetch(`${withEspeak.httpUrl}/api/voices/engines`)).json()) as { engines: Labelled[] }).engines;
    const labels = new Map(espeakInfo?.voice_labels?.map((l) => [l.voice, l]));
    assert.deepEqual([...labels.keys()], espeakInfo?.voices, 'one label per voice id, in the same order');
    assert.deepEqual(labels.get('en-us+f3'), { voice: 'en-us+f3', language: 'English (America)', variant: 'female 3' });
    assert.deepEqual(labels.get('de'), { voice: 'de', language: 'German', variant: null });
    const [openaiInfo] = ((await (await fetch(`${withOpenai.httpUrl}/api/voices/engines`)).json()) as { engines: Labelled[] }).engines;
    assert.equal(openaiInfo?.voice_labels, undefined, 'an engine that has no names for its voices lists ids only');
  });
});

describe('openai speech', () => {
  test('the server PCM is forwarded whole and in order, in the character voice', async () => {
    await character(withOpenai, 'Nova', 'nova');
    engines.chat.enqueue({ tokens: tokenize('First, a short fragment. Then a second, longer sentence follows it here! And a third one.') });
    const client = await connect(withOpenai);
    client.send({ type: 'user_message', data: { text: 'Nova?' } });
    const textStart = await client.next('text_stream_start');
    const { start, pcm, headers } = await audioOf(client, textStart.data.message_id);
    assert.equal(start.data.sample_rate, 24_000);
    const requests = engines.speech.requests;
    assert.ok(requests.length >= 3, `${requests.length} sentences synthesized`);
    for (const r of requests) {
      assert.equal(r.body.voice, 'nova');
      assert.equal(r.body.speed, 1.25);
    }
    const expected = Buffer.concat(requests.map((r) => synthesizeSpeech(r.body.input!, r.body.voice!, { sampleRate: 24_000, speed: 1.25 })));
    assert.ok(pcm.equals(expected), `received ${pcm.length} bytes, the server sent ${expected.length}`);
    const order = headers.map((h) => [h.sentence_index, h.chunk_index]);
    assert.deepEqual(order, [...order].sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!), 'frames in sentence and chunk order');
    assertAdjacency(client.frames);
  });

  test('interrupt mid-audio: upstream request closed, stream stopped before the ack, no frame of it after', async () => {
    await character(withOpenai, 'Nova', 'nova');
    engines.speech.script(() => ({ realtimeFactor: 1 })); // paced like a real server: audio is still coming
    engines.chat.enqueue({ tokens: tokenize('This is a sentence that takes several seconds to say out loud. And another.') });
    const client = await connect(withOpenai);
    client.send({ type: 'user_message', data: { text: 'Nova, talk.' } });
    const cut = await client.next('text_stream_start');
    await client.next('binary');
    client.send({ type: 'interrupt' });
    const stop = await client.next('audio_stream_stop');
    assert.equal(stop.data.message_id, cut.data.message_id);
    assert.equal(stop.data.interrupted, true);
    await client.next('interrupt_ack');
    const ackAt = client.frames.findIndex((f) => f.type === 'interrupt_ack');

    const [request] = engines.speech.requests;
    const closed = await engines.waitForClose(request!, 1000);
    assert.equal(closed.completed, false, 'the speech request was cut off');

    // A new turn runs to its end; nothing of the cancelled message may appear meanwhile.
    engines.speech.script();
    client.send({ type: 'user_message', data: { text: 'Nova, again.' } });
    const next = await client.next('text_stream_start');
    await audioOf(client, next.data.message_id);
    const late = client.frames.slice(ackAt).filter((f) => ofMessage(f, cut.data.message_id));
    assert.deepEqual(late.map((f) => f.type), [], 'no event of the cancelled message after interrupt_ack');
    const headersAfter = client.frames.slice(ackAt).filter((f) => f.type === 'audio_chunk');
    assert.ok(headersAfter.every((f) => ofMessage(f, next.data.message_id)));
    assertAdjacency(client.frames);
  });

  test('a failed sentence is skipped with tts_error; the text and the audio stream still complete', async () => {
    await character(withOpenai, 'Nova', 'nova');
    engines.speech.enqueue({ failure: { status: 500, body: 'voice melted' } });
    const text = 'First part, broken. The second sentence is spoken fine.';
    engines.chat.enqueue({ tokens: tokenize(text) });
    const client = await connect(withOpenai);
    client.send({ type: 'user_message', data: { text: 'Nova?' } });
    const start = await client.next('text_stream_start');
    const error = await client.next('error');
    assert.equal(error.data.code, 'tts_error');
    assert.match(error.data.message, /500/);
    const { pcm } = await audioOf(client, start.data.message_id);
    const spoken = engines.speech.requests.slice(1);
    const expected = Buffer.concat(spoken.map((r) => synthesizeSpeech(r.body.input!, r.body.voice!, { sampleRate: 24_000, speed: 1.25 })));
    assert.ok(pcm.equals(expected), 'every sentence but the failed one was heard');
    assert.equal(client.ofType('text_stream_stop')[0]?.data.text, text);
  });

  test('a speech server that is down never holds up the text', async () => {
    const db = (await openTestDatabases())[0]!.database;
    const dead = createOpenAiTtsEngine({ baseUrl: 'http://127.0.0.1:9/v1', apiKey: undefined, model: 'x', sampleRate: 24_000, timeoutMs: 500, defaultVoice: 'alloy' });
    const chorus = await startChorus({ database: db, env: { LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k' }, tts: dead });
    try {
      await character(chorus, 'Nova', 'nova');
      engines.chat.enqueue({ tokens: tokenize('Words, words. And more words here.') });
      const client = await connect(chorus);
      client.send({ type: 'user_message', data: { text: 'Nova?' } });
      const stop = await client.next('text_stream_stop');
      assert.equal(stop.data.text, 'Words, words. And more words here.');
      // The error may come before or after the text ends: looked for from the first frame.
      const error = await client.waitFor((f) => f.type === 'error', 'a tts_error');
      assert.ok(error.type === 'error');
      assert.equal(error.data.code, 'tts_error');
      assert.match(error.data.message, /127\.0\.0\.1:9/);
      assert.equal(client.ofType('audio_stream_start').length, 0);
      const pong = await client.request({ type: 'ping' });
      assert.equal(pong.type, 'pong');
    } finally {
      await chorus.close();
    }
  });

  test('a client that stops reading holds bounded memory, gets everything later, and others keep streaming', async () => {
    // Without pacing the server sends as fast as audio is made: only back-pressure holds it.
    const db = (await openTestDatabases())[0]!.database;
    const unpaced = await startChorus({ database: db, env: { LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k', AUDIO_LEAD_MS: '0' }, tts: openai });
    try {
      await backPressure(unpaced);
    } finally {
      await unpaced.close();
    }
  });

  test('audio is paced to playback: sent no further ahead of it than AUDIO_LEAD_MS', async () => {
    await character(withOpenai, 'Nova', 'nova');
    const text = 'A sentence of some length, spoken at an even pace. Then another one follows it.';
    engines.chat.enqueue({ tokens: tokenize(text) });
    const client = await connect(withOpenai);
    // Measured from before the request: a lower bound that a slow machine can only make larger.
    const sentAt = performance.now();
    client.send({ type: 'user_message', data: { text: 'Nova?' } });
    const start = await client.next('text_stream_start');
    const { pcm } = await audioOf(client, start.data.message_id);
    const binary = client.frames.flatMap((f, i) => (f.type === 'binary' ? [client.arrivedAt[i]!] : []));
    const elapsed = binary.at(-1)! - sentAt;
    const last = client.frames.filter((f) => f.type === 'binary').at(-1);
    const lastSeconds = last?.type === 'binary' ? last.data.length / 2 / 24_000 : 0;
    const seconds = pcm.length / 2 / 24_000;
    // The speech server made all of it in milliseconds; the last frame can only leave once the
    // client has less than the lead (1.5 s) left to play of the audio before it.
    assert.ok(seconds > 3, `${seconds} s of audio`);
    const earliest = (seconds - lastSeconds - 1.5) * 1000;
    assert.ok(elapsed >= earliest, `all ${seconds.toFixed(2)} s of audio arrived within ${elapsed.toFixed(0)} ms (paced, not before ${earliest.toFixed(0)} ms)`);
  });
});

async function backPressure(withOpenai: ChorusUnderTest): Promise<void> {
  {
    await character(withOpenai, 'Nova', 'nova');
    const long = Array.from({ length: 120 }, (_, i) => `Sentence ${i + 1} is here to make a very long spoken reply.`).join(' ');
    engines.chat.enqueue({ tokens: tokenize(long) }, { tokens: tokenize('A short answer for the other client.') });
    const slow = await connect(withOpenai);
    const fast = await connect(withOpenai);
    slow.ws.pause(); // stop reading from the socket: its buffers fill, then the server's
    slow.send({ type: 'user_message', data: { text: 'Nova, a long story please.' } });

    let peak = 0;
    const sample = setInterval(() => {
      for (const s of withOpenai.sessions) {
        const { unwrittenBytes, queuedAudioBytes } = s.stats();
        peak = Math.max(peak, unwrittenBytes + queuedAudioBytes);
      }
    }, 5);
    try {
      // The slow session fills up to its bound (the speech worker then waits) …
      await waitUntil(() => [...withOpenai.sessions].some((s) => s.stats().queuedAudioBytes >= MAX_QUEUED_AUDIO_BYTES * 0.9), 'the slow session to fill its audio bound', 15_000);
      // … while the other connection gets a whole spoken reply.
      fast.send({ type: 'user_message', data: { text: 'Nova, quickly?' } });
      const start = await fast.next('text_stream_start');
      const { pcm } = await audioOf(fast, start.data.message_id);
      assert.ok(pcm.length > 0);
    } finally {
      clearInterval(sample);
    }
    const bound = AUDIO_HIGH_WATER_BYTES + MAX_QUEUED_AUDIO_BYTES + 64 * 1024;
    assert.ok(peak <= bound, `peak ${peak} bytes held for one slow client, bound ${bound}`);
    const synthesized = engines.speech.requests.length;
    assert.ok(synthesized < 110, `the speech worker paused instead of synthesizing all 120 sentences (${synthesized})`);

    slow.ws.resume();
    const start = slow.ofType('text_stream_start')[0] ?? (await slow.next('text_stream_start'));
    const { pcm } = await audioOf(slow, start.data.message_id);
    const spoken = engines.speech.requests.filter((r) => r.body.input !== 'A short answer for the other client.');
    const expected = spoken.reduce((n, r) => n + synthesizeSpeech(r.body.input!, r.body.voice!, { sampleRate: 24_000, speed: 1.25 }).length, 0);
    assert.equal(pcm.length, expected, 'nothing was lost while the client was not reading');
  }
}

/** Resolves when `condition` holds, checking on every turn of the event loop; rejects after `timeoutMs`. */
function waitUntil(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = () => {
      if (condition()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 5);
    };
    check();
  });
}
