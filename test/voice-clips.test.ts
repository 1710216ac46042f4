// Reference clip uploads (POST /api/voices/{voice}/reference) and their life: real espeak speech,
// encoded by the test as 16-bit WAV, 44.1 kHz stereo float WAV, MP3 (LAME), FLAC (libFLAC), Ogg
// Opus and WebM Opus (libopus, muxed by mediabunny as a browser's MediaRecorder writes them),
// decoded in-process, trimmed of their silent ends, checked and stored as mono PCM16 WAV at the
// voice's engine's rate beside the transcript; bad clips (under 3 s, over 30 s, silent, clipped,
// not audio, no transcript) are a 400 with the reason. The stored clip is what a Higgs v3 clone
// registers (at its engine's rate even after the voice changed engine), what GET …/reference shows,
// and it goes with its voice: deleted with it, replaced with a new upload, swept at start-up when
// nothing names it. POST /api/transcriptions gives a recording's text from the STT engine.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import wavefile from 'wavefile';
import { ClipStore } from '../src/speech/clip-store.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';
import { createHiggsEngine } from '../src/speech/engines/higgs.ts';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import { TtsRegistry } from '../src/speech/registry.ts';
import { createOpenAiSttEngine } from '../src/transcribe/engines/openai.ts';
import { medianPitchHz } from './support/audio.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { closeTestDatabases, openTestDatabases, resetData } from './support/db.ts';
import { flacOf, mp3Of, oggOpusOf, webmOpusOf } from './support/encoders.ts';
import { encodeWav, type EngineServer, parseWav, startEngineServer, tokenize } from './support/engine-server.ts';
import { eventually } from './support/eventually.ts';
import { type HiggsServer, startHiggsServer } from './support/higgs-server.ts';

const TRANSCRIPT = 'The quick brown fox jumps over the lazy dog, and then it runs far away into the woods.';
let espeak: TtsEngine;
let speech: Buffer; // espeak PCM16 at 22050 Hz, with silence added at both ends
let llm: EngineServer;
let stt: EngineServer; // an OpenAI-compatible /v1/audio/transcriptions server
let kokoro: EngineServer; // an OpenAI-compatible speech server at 16 kHz (clone voices by ref_audio)
let higgs: HiggsServer;
let registry: TtsRegistry;
let dataDir: string;
let chorus: ChorusUnderTest;
let clips: ClipStore;
let database: Awaited<ReturnType<typeof openTestDatabases>>[number]['database'];

const voicesDir = () => join(dataDir, 'voices');
const upload = (voice: string, file: Buffer, name: string, transcript = TRANSCRIPT, url = chorus.httpUrl) => {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(file)]), name);
  if (transcript !== '') form.append('transcript', transcript);
  return fetch(`${url}/api/voices/${voice}/reference`, { method: 'POST', body: form });
};
type Uploaded = { voice: { method: string; audio_path: string; text_path: string }; clip: { seconds: number; sample_rate: number; format: string } };

/** 44.1 kHz stereo 32-bit float WAV of the speech (upsampled by repetition: only the decoding is tested). */
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
  database = db.database;
  dataDir = await mkdtemp(join(tmpdir(), 'chorus-clips-'));
  espeak = await createEspeakEngine({ workers: 1 });
  const parts: Buffer[] = [];
  for await (const c of espeak.synthesize(TRANSCRIPT, { engineVoice: 'en-us+m3', speed: 1, pitch: 1 }, new AbortController().signal)) parts.push(c);
  const silence = Buffer.alloc(espeak.sampleRate); // 0.5 s at each end: trimmed away
  speech = Buffer.concat([silence, ...parts, silence]);
  llm = await startEngineServer();
  stt = await startEngineServer({ transcription: { text: 'the words heard' } });
  kokoro = await startEngineServer({ speech: { sampleRate: 16_000, msPerChar: 5 } });
  higgs = await startHiggsServer();
  const kokoroEngine = createOpenAiTtsEngine({ baseUrl: kokoro.baseUrl, apiKey: undefined, model: 'kokoro', sampleRate: 16_000, defaultVoice: 'af_bella', referenceAudio: 'ref_audio', timeoutMs: 5000 });
  registry = new TtsRegistry([espeak, kokoroEngine, createHiggsEngine({ baseUrl: higgs.baseUrl, apiKey: undefined, model: 'higgs-audio-v3-tts', defaultVoice: 'default', customVoices: true, timeoutMs: 5000 })], espeak, 24_000);
  const sttEngine = createOpenAiSttEngine({ baseUrl: stt.baseUrl, apiKey: undefined, model: 'whisper-1', language: undefined, timeoutMs: 5000 });
  chorus = await startChorus({ database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k' }, tts: registry, stt: sttEngine, clips: (clips = new ClipStore(dataDir)) });
});

beforeEach(async () => {
  await resetData(database);
  higgs.requests.length = 0;
  stt.reset();
  kokoro.reset();
});

after(async () => {
  await chorus?.close();
  await registry?.close();
  await Promise.all([llm?.close(), stt?.close(), kokoro?.close(), higgs?.close()]);
  await rm(dataDir, { recursive: true, force: true });
  await closeTestDatabases();
});

const spokenSeconds = () => (speech.length / 2 - espeak.sampleRate) / espeak.sampleRate; // without the added silence

describe('every listed format', () => {
  for (const [format, encode, name] of [
    ['16-bit WAV', async () => encodeWav(speech, espeak.sampleRate), 'WAV'],
    ['44.1 kHz stereo float WAV', async () => floatStereoWav(speech), 'WAV'],
    ['MP3', async () => mp3Of(speech, espeak.sampleRate), 'MP3'],
    ['FLAC', () => flacOf(speech, espeak.sampleRate), 'FLAC'],
    ['Ogg Opus', () => oggOpusOf(speech, espeak.sampleRate), 'Ogg Opus'],
    ['WebM Opus', () => webmOpusOf(speech, espeak.sampleRate), 'WebM'],
  ] as const) {
    test(`a ${format} clip is decoded, trimmed and stored as mono WAV at its engine's rate (Higgs v3: 24 kHz) with its transcript`, async () => {
      await chorus.repo.createVoice({ voice: 'narrator', engine: 'higgs' });
      const response = await upload('narrator', await encode(), 'clip');
      const body = (await response.json()) as Uploaded;
      assert.equal(response.status, 200, JSON.stringify(body));
      assert.equal(body.voice.method, 'clone');
      assert.equal(body.clip.format, name);
      const stored = await readFile(join(voicesDir(), body.voice.audio_path));
      const wav = parseWav(stored);
      assert.deepEqual([wav.sampleRate, wav.channels, wav.bitsPerSample], [24_000, 1, 16]);
      const seconds = wav.data.length / 2 / 24_000;
      assert.ok(Math.abs(seconds - body.clip.seconds) < 0.01);
      // The added second of silence is gone; the speech itself is kept (within espeak's own quiet ends and the codecs' padding).
      assert.ok(seconds < spokenSeconds() + 0.3 && seconds > spokenSeconds() - 0.6, `${seconds.toFixed(2)} s stored of ${spokenSeconds().toFixed(2)} s spoken`);
      const pitch = medianPitchHz(wav.data, 24_000);
      const original = medianPitchHz(speech, espeak.sampleRate);
      assert.ok(Math.abs(pitch - original) / original < 0.08, `pitch ${pitch.toFixed(0)} Hz, was ${original.toFixed(0)} Hz`);
      assert.equal(await readFile(join(voicesDir(), body.voice.text_path), 'utf8'), TRANSCRIPT);
    });
  }
});

test('a clip is stored at its voice’s engine’s rate: 16 kHz for a 16 kHz openai server, 22 050 Hz for the default engine (espeak)', async () => {
  await chorus.repo.createVoice({ voice: 'on-kokoro', engine: 'openai' });
  await chorus.repo.createVoice({ voice: 'on-default' });
  for (const [voice, rate] of [['on-kokoro', 16_000], ['on-default', 22_050]] as const) {
    const response = await upload(voice, encodeWav(speech, espeak.sampleRate), 'clip.wav');
    const body = (await response.json()) as Uploaded;
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.equal(body.clip.sample_rate, rate);
    assert.equal(parseWav(await readFile(join(voicesDir(), body.voice.audio_path))).sampleRate, rate);
  }
});

test('bad clips are refused with the reason: under 3 s, over 30 s, silent, clipped, not audio, no transcript; an unknown voice is 404', async () => {
  await chorus.repo.createVoice({ voice: 'narrator', engine: 'higgs' });
  const rate = espeak.sampleRate;
  const short = encodeWav(speech.subarray(0, rate * 2 * 2), rate); // 2 s with 0.5 s silence
  const long = encodeWav(Buffer.concat(Array.from({ length: Math.ceil(32 / spokenSeconds()) }, () => speech)), rate); // speech back to back: > 30 s
  const silent = encodeWav(Buffer.alloc(rate * 2 * 5), rate);
  const loud = Buffer.alloc(speech.length);
  for (let i = 0; i < speech.length / 2; i++) loud.writeInt16LE(Math.max(-32768, Math.min(32767, speech.readInt16LE(i * 2) * 40)), i * 2);
  const cases: Array<[string, Buffer, RegExp, string?]> = [
    ['under 3 s', short, /clip is 1\.\d s of sound after trimming silence; it must be 3–30 s/],
    ['over 30 s', long, /clip is 3\d\.\d s of sound after trimming silence; it must be 3–30 s/],
    ['silent', silent, /silent/],
    ['clipped', encodeWav(loud, rate), /clipped/],
    ['not audio', Buffer.from('hello, not audio at all'), /not WAV, MP3, Ogg Opus, FLAC or WebM\/Opus/],
    ['no transcript', encodeWav(speech, rate), /transcript/, ''],
  ];
  const filesBefore = (await readdir(voicesDir()).catch(() => [])).sort();
  for (const [what, file, reason, transcript] of cases) {
    const response = await upload('narrator', file, 'clip', transcript);
    const body = (await response.json()) as { error: string };
    assert.equal(response.status, 400, `${what}: ${body.error}`);
    assert.match(body.error, reason, what);
  }
  assert.equal((await chorus.repo.getVoice('narrator')).method, 'preset', 'nothing was stored');
  assert.deepEqual((await readdir(voicesDir()).catch(() => [])).sort(), filesBefore, 'no file was left behind');
  assert.equal((await upload('nobody', encodeWav(speech, rate), 'clip')).status, 404);
});

test('an uploaded clip is what a Higgs v3 clone voice registers, with its transcript, at the engine’s rate even after the voice changed engine', async () => {
  await chorus.repo.createVoice({ voice: 'narrator', engine: 'openai' });
  const response = await upload('narrator', encodeWav(speech, espeak.sampleRate), 'clip.wav');
  const { voice } = (await response.json()) as Uploaded;
  assert.equal(parseWav(await readFile(join(voicesDir(), voice.audio_path))).sampleRate, 16_000, 'stored for the openai engine');
  const patched = await fetch(`${chorus.httpUrl}/api/voices/narrator`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: '{"engine":"higgs"}' });
  assert.equal(patched.status, 200);
  await chorus.repo.createCharacter({ name: 'Ada', voice: 'narrator', system_prompt: 'You are Ada.', talkativeness: 0 });
  const client = await TestClient.connect(chorus.wsUrl);
  try {
    llm.chat.enqueue({ tokens: tokenize('Hello from my own voice.') });
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    await client.next('audio_stream_stop', 15_000);
    const [registration] = higgs.of('/v1/voices');
    assert.equal(registration?.body.ref_text, TRANSCRIPT);
    const sent = parseWav(Buffer.from(String(registration?.body.ref_audio), 'base64'));
    assert.deepEqual([sent.sampleRate, sent.channels], [24_000, 1], 'converted to Higgs v3’s 24 kHz');
    const stored = parseWav(await readFile(join(voicesDir(), voice.audio_path)));
    assert.ok(Math.abs(sent.durationMs - stored.durationMs) < 5, `${sent.durationMs} ms sent for ${stored.durationMs} ms stored`);
    assert.ok(Math.abs(medianPitchHz(sent.data, 24_000) - medianPitchHz(stored.data, 16_000)) < 10, 'the same speech');
  } finally {
    await client.close();
  }
});

test('GET …/reference shows the stored clip’s transcript, length and rate, and …/reference/audio plays it; 404 without a clip', async () => {
  await chorus.repo.createVoice({ voice: 'narrator', engine: 'higgs' });
  assert.equal((await fetch(`${chorus.httpUrl}/api/voices/narrator/reference`)).status, 404);
  const { voice, clip } = (await (await upload('narrator', encodeWav(speech, espeak.sampleRate), 'clip.wav')).json()) as Uploaded;
  const info = await fetch(`${chorus.httpUrl}/api/voices/narrator/reference`);
  assert.equal(info.status, 200);
  assert.deepEqual(await info.json(), { transcript: TRANSCRIPT, seconds: clip.seconds, sample_rate: 24_000 });
  const audio = await fetch(`${chorus.httpUrl}/api/voices/narrator/reference/audio`);
  assert.equal(audio.headers.get('content-type'), 'audio/wav');
  assert.deepEqual(Buffer.from(await audio.arrayBuffer()), await readFile(join(voicesDir(), voice.audio_path)));
  assert.equal((await fetch(`${chorus.httpUrl}/api/voices/nobody/reference/audio`)).status, 404);
});

describe('a clip lives as long as its voice', () => {
  test('deleting the voice deletes its clip and transcript', async () => {
    await chorus.repo.createVoice({ voice: 'narrator', engine: 'higgs' });
    await chorus.repo.createVoice({ voice: 'other', engine: 'higgs' });
    const { voice } = (await (await upload('narrator', encodeWav(speech, espeak.sampleRate), 'clip.wav')).json()) as Uploaded;
    const kept = (await (await upload('other', await flacOf(speech, espeak.sampleRate), 'clip.flac', 'Other words.')).json()) as Uploaded;
    assert.ok(existsSync(join(voicesDir(), voice.audio_path)));
    assert.equal((await fetch(`${chorus.httpUrl}/api/voices/narrator`, { method: 'DELETE' })).status, 200);
    await eventually(async () => (existsSync(join(voicesDir(), voice.audio_path)) || existsSync(join(voicesDir(), voice.text_path)) ? undefined : true), 'the clip files to go');
    assert.ok(existsSync(join(voicesDir(), kept.voice.audio_path)) && existsSync(join(voicesDir(), kept.voice.text_path)), 'another voice’s clip stays');
  });

  test('a new clip replaces the old one’s files; the same clip on two voices stays while one names it', async () => {
    await chorus.repo.createVoice({ voice: 'narrator', engine: 'higgs' });
    await chorus.repo.createVoice({ voice: 'twin', engine: 'higgs' });
    const first = (await (await upload('narrator', encodeWav(speech, espeak.sampleRate), 'clip.wav')).json()) as Uploaded;
    const twin = (await (await upload('twin', encodeWav(speech, espeak.sampleRate), 'clip.wav')).json()) as Uploaded;
    assert.equal(twin.voice.audio_path, first.voice.audio_path, 'one file for one content');
    const second = (await (await upload('narrator', mp3Of(speech, espeak.sampleRate), 'clip.mp3', 'New words.')).json()) as Uploaded;
    await clips.sweep(() => chorus.repo.listVoices()); // after the sweep the upload started
    assert.ok(existsSync(join(voicesDir(), first.voice.audio_path)), 'the twin still names the first clip');
    await chorus.repo.deleteVoice('twin');
    // The delete through the repository announces nothing: a REST change does (the sweep's trigger).
    assert.equal((await fetch(`${chorus.httpUrl}/api/voices/narrator`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: '{"speed":1.1}' })).status, 200);
    await eventually(async () => (existsSync(join(voicesDir(), first.voice.audio_path)) ? undefined : true), 'the replaced clip to go');
    assert.ok(existsSync(join(voicesDir(), second.voice.audio_path)) && existsSync(join(voicesDir(), second.voice.text_path)), 'the new clip stays');
  });

  test('at start-up, clip files no voice names are swept; named ones stay', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chorus-sweep-'));
    try {
      await mkdir(join(dir, 'voices'));
      const named = { audio_path: `${'a'.repeat(64)}.wav`, text_path: `${'b'.repeat(64)}.txt` };
      const orphans = [`${'c'.repeat(64)}.wav`, `${'d'.repeat(64)}.txt`];
      for (const name of [...Object.values(named), ...orphans]) await writeFile(join(dir, 'voices', name), 'x');
      await writeFile(join(dir, 'voices', 'notes.md'), 'not a clip: never touched');
      await chorus.repo.createVoice({ voice: 'kept', method: 'clone', engine: 'higgs', ...named });
      const second = await startChorus({ database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k' }, tts: registry, clips: new ClipStore(dir) });
      await second.close();
      assert.deepEqual((await readdir(join(dir, 'voices'))).sort(), [...Object.values(named), 'notes.md'].sort());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('POST /api/transcriptions', () => {
  const transcribe = (file: Buffer, url = chorus.httpUrl) => {
    const form = new FormData();
    form.append('audio', new Blob([new Uint8Array(file)]), 'recording.webm');
    return fetch(`${url}/api/transcriptions`, { method: 'POST', body: form });
  };

  test('a recording (WebM Opus, as a browser records) is decoded and sent to the STT engine as 16 kHz mono WAV; its text comes back', async () => {
    const response = await transcribe(await webmOpusOf(speech, espeak.sampleRate));
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { text: 'the words heard' });
    const [request] = stt.transcription.requests;
    assert.deepEqual([request?.wav?.sampleRate, request?.wav?.channels], [16_000, 1]);
    const seconds = (request?.wav?.durationMs ?? 0) / 1000;
    assert.ok(Math.abs(seconds - speech.length / 2 / espeak.sampleRate) < 0.1, `${seconds} s sent`);
  });

  test('not audio is a 400; an STT failure is a 502 with the reason', async () => {
    const bad = await transcribe(Buffer.from('plain text'));
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /not WAV, MP3/);
    stt.transcription.enqueue({ failure: { status: 500 } });
    const failed = await transcribe(encodeWav(speech, espeak.sampleRate));
    assert.equal(failed.status, 502);
    assert.match(((await failed.json()) as { error: string }).error, /could not transcribe/);
  });

  test('without a speech input engine it is a 503 saying how to configure one', async () => {
    const none = await startChorus({ database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k' } });
    try {
      const response = await transcribe(encodeWav(speech, espeak.sampleRate), none.httpUrl);
      assert.equal(response.status, 503);
      const body = (await response.json()) as { error: string; code: string };
      assert.equal(body.code, 'stt_not_configured');
      assert.match(body.error, /Speech input is not configured on this server.*STT_ENGINE.*type the transcript/);
    } finally {
      await none.close();
    }
  });
});
