// Reference clip uploads (POST /api/voices/{voice}/reference): real espeak speech, encoded by the
// test as 16-bit WAV, 48 kHz stereo float WAV and MP3, decoded in-process, trimmed of its silent
// ends, checked and stored as mono 24 kHz PCM16 WAV beside its transcript; bad clips are a 400 with
// the reason. The stored clip is then what a Higgs v3 clone voice registers.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { Mp3Encoder } from '@breezystack/lamejs';
import wavefile from 'wavefile';
import { ClipStore } from '../src/speech/clip-store.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';
import { createHiggsEngine } from '../src/speech/engines/higgs.ts';
import { TtsRegistry } from '../src/speech/registry.ts';
import { medianPitchHz } from './support/audio.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { closeTestDatabases, openTestDatabases, resetData } from './support/db.ts';
import { encodeWav, type EngineServer, parseWav, startEngineServer, tokenize } from './support/engine-server.ts';
import { type HiggsServer, startHiggsServer } from './support/higgs-server.ts';

const TRANSCRIPT = 'The quick brown fox jumps over the lazy dog, and then it runs far away into the woods.';
let espeak: TtsEngine;
let speech: Buffer; // espeak PCM16 at 22050 Hz, with silence added at both ends
let llm: EngineServer;
let higgs: HiggsServer;
let registry: TtsRegistry;
let dataDir: string;
let chorus: ChorusUnderTest;

const upload = (voice: string, file: Buffer, name: string, transcript = TRANSCRIPT) => {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(file)]), name);
  if (transcript !== '') form.append('transcript', transcript);
  return fetch(`${chorus.httpUrl}/api/voices/${voice}/reference`, { method: 'POST', body: form });
};

function mp3Of(pcm: Buffer, rate: number): Buffer {
  const encoder = new Mp3Encoder(1, rate, 96);
  const samples = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length / 2);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < samples.length; i += 1152) parts.push(encoder.encodeBuffer(samples.subarray(i, i + 1152)));
  parts.push(encoder.flush());
  return Buffer.concat(parts.map((p) => Buffer.from(p)));
}

/** 48 kHz stereo 32-bit float WAV of the speech (upsampled by repetition: only the decoding is tested). */
function floatStereoWav(pcm: Buffer): Buffer {
  const left: number[] = [];
  for (let i = 0; i < pcm.length / 2; i++) {
    const v = pcm.readInt16LE(i * 2) / 32768;
    left.push(v, v); // 22050 → 44100
  }
  const wav = new wavefile.WaveFile();
  wav.fromScratch(2, 44_100, '32f', [left, left]);
  return Buffer.from(wav.toBuffer());
}

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  dataDir = await mkdtemp(join(tmpdir(), 'chorus-clips-'));
  espeak = await createEspeakEngine({ workers: 1 });
  const parts: Buffer[] = [];
  for await (const c of espeak.synthesize(TRANSCRIPT, { engineVoice: 'en-us+m3', speed: 1, pitch: 1 }, new AbortController().signal)) parts.push(c);
  const silence = Buffer.alloc(espeak.sampleRate); // 0.5 s at each end: trimmed away
  speech = Buffer.concat([silence, ...parts, silence]);
  llm = await startEngineServer();
  higgs = await startHiggsServer();
  registry = new TtsRegistry([espeak, createHiggsEngine({ baseUrl: higgs.baseUrl, apiKey: undefined, model: 'higgs-audio-v3-tts', defaultVoice: 'default', customVoices: true, timeoutMs: 5000 })], espeak, 24_000);
  chorus = await startChorus({ database: db.database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k' }, tts: registry, clips: new ClipStore(dataDir) });
});

beforeEach(async () => {
  await resetData((await openTestDatabases())[0]!.database);
  higgs.requests.length = 0;
});

after(async () => {
  await chorus?.close();
  await registry?.close();
  await Promise.all([llm?.close(), higgs?.close()]);
  await rm(dataDir, { recursive: true, force: true });
  await closeTestDatabases();
});

const spokenSeconds = () => (speech.length / 2 - espeak.sampleRate) / espeak.sampleRate; // without the added silence

for (const [format, encode] of [
  ['16-bit WAV', () => encodeWav(speech, espeak.sampleRate)],
  ['44.1 kHz stereo float WAV', () => floatStereoWav(speech)],
  ['MP3', () => mp3Of(speech, espeak.sampleRate)],
] as const) {
  test(`a ${format} clip is decoded, trimmed and stored as mono 24 kHz WAV with its transcript`, async () => {
    await chorus.repo.createVoice({ voice: 'narrator', engine: 'higgs' });
    const response = await upload('narrator', encode(), 'clip');
    const body = (await response.json()) as { voice: { method: string; audio_path: string; text_path: string }; clip: { seconds: number; sample_rate: number } };
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.equal(body.voice.method, 'clone');
    const stored = await readFile(join(dataDir, 'voices', body.voice.audio_path));
    const wav = parseWav(stored);
    assert.deepEqual([wav.sampleRate, wav.channels, wav.bitsPerSample], [24_000, 1, 16]);
    const seconds = wav.data.length / 2 / 24_000;
    assert.ok(Math.abs(seconds - body.clip.seconds) < 0.01);
    // The added second of silence is gone; the speech itself is kept (within espeak's own quiet ends and MP3's padding).
    assert.ok(seconds < spokenSeconds() + 0.3 && seconds > spokenSeconds() - 0.6, `${seconds.toFixed(2)} s stored of ${spokenSeconds().toFixed(2)} s spoken`);
    const pitch = medianPitchHz(wav.data, 24_000);
    const original = medianPitchHz(speech, espeak.sampleRate);
    assert.ok(Math.abs(pitch - original) / original < 0.08, `pitch ${pitch.toFixed(0)} Hz, was ${original.toFixed(0)} Hz`);
    assert.equal(await readFile(join(dataDir, 'voices', body.voice.text_path), 'utf8'), TRANSCRIPT);
  });
}

test('bad clips are refused with the reason: too short, silent, clipped, not audio, WebM, no transcript; an unknown voice is 404', async () => {
  await chorus.repo.createVoice({ voice: 'narrator', engine: 'higgs' });
  const short = encodeWav(speech.subarray(0, espeak.sampleRate * 2 * 2), espeak.sampleRate); // 2 s with 0.5 s silence
  const silent = encodeWav(Buffer.alloc(espeak.sampleRate * 2 * 5), espeak.sampleRate);
  const loud = Buffer.alloc(speech.length);
  for (let i = 0; i < speech.length / 2; i++) loud.writeInt16LE(Math.max(-32768, Math.min(32767, speech.readInt16LE(i * 2) * 40)), i * 2);
  const webm = Buffer.concat([Buffer.from([0x1a, 0x45, 0xdf, 0xa3]), Buffer.alloc(100)]);
  const cases: Array<[Buffer, RegExp, string?]> = [
    [short, /must be 3–30 s/],
    [silent, /silent/],
    [encodeWav(loud, espeak.sampleRate), /clipped/],
    [Buffer.from('hello, not audio at all'), /not WAV, MP3, Ogg Opus or FLAC/],
    [webm, /WebM/],
    [encodeWav(speech, espeak.sampleRate), /transcript/, ''],
  ];
  for (const [file, reason, transcript] of cases) {
    const response = await upload('narrator', file, 'clip', transcript);
    const body = (await response.json()) as { error: string };
    assert.equal(response.status, 400, body.error);
    assert.match(body.error, reason);
  }
  assert.equal((await chorus.repo.getVoice('narrator')).method, 'preset', 'nothing was stored');
  assert.equal((await upload('nobody', encodeWav(speech, espeak.sampleRate), 'clip')).status, 404);
});

test('an uploaded clip is what a Higgs v3 clone voice registers, with its transcript', async () => {
  await chorus.repo.createVoice({ voice: 'narrator', engine: 'higgs' });
  const response = await upload('narrator', encodeWav(speech, espeak.sampleRate), 'clip.wav');
  const { voice } = (await response.json()) as { voice: { audio_path: string } };
  await chorus.repo.createCharacter({ name: 'Ada', voice: 'narrator', system_prompt: 'You are Ada.', talkativeness: 0 });
  const client = await TestClient.connect(chorus.wsUrl);
  try {
    llm.chat.enqueue({ tokens: tokenize('Hello from my own voice.') });
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    await client.next('audio_stream_stop', 15_000);
    const [registration] = higgs.of('/v1/voices');
    const stored = await readFile(join(dataDir, 'voices', voice.audio_path));
    assert.equal(registration?.body.ref_audio, stored.toString('base64'));
    assert.equal(registration?.body.ref_text, TRANSCRIPT);
  } finally {
    await client.close();
  }
});
