// Several speech engines at once, each through its real protocol against loopback servers that
// record what they receive: a Higgs v3 clone voice (registered once as a custom voice, registered
// again when the server forgets it), a Higgs v2 description voice and clone voice (streamed chat
// completions with audio), an openai preset voice (at 16 kHz, resampled) and an espeak voice, in
// one conversation; every stream leaves at OUTPUT_SAMPLE_RATE with its tone's frequency intact.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { ClipStore } from '../src/speech/clip-store.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';
import { createHiggsV2Engine, higgsSystemPrompt } from '../src/speech/engines/higgs-v2.ts';
import { createHiggsEngine } from '../src/speech/engines/higgs.ts';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import { TtsRegistry, stripInlineTags } from '../src/speech/registry.ts';
import { createTtsEngine } from '../src/speech/tts.ts';
import { mergeStyles, withStyleTags } from '../src/speech/voice-style.ts';
import { loadConfig } from '../src/config.ts';
import type { EngineVoice, TtsEngine } from '../src/speech/engine.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { closeTestDatabases, openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, voiceFrequency } from './support/engine-server.ts';
import { type HiggsServer, startHiggsServer, toneFrequency } from './support/higgs-server.ts';
import { turn as speak, toneClipWav, toneHz } from './support/speech-turns.ts';

const OUTPUT_RATE = 24_000;
let llm: EngineServer;
let kokoro: EngineServer; // an OpenAI-compatible preset server at 16 kHz
let v3: HiggsServer;
let v2: HiggsServer;
let registry: TtsRegistry;
let clips: ClipStore;
let dataDir: string;
let chorus: ChorusUnderTest;
const clients: TestClient[] = [];

const clipWav = (frequency: number) => toneClipWav(frequency);
const turn = (client: TestClient, name: string, reply: string) => speak(llm, client, name, reply);

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  dataDir = await mkdtemp(join(tmpdir(), 'chorus-higgs-'));
  llm = await startEngineServer();
  kokoro = await startEngineServer({ speech: { sampleRate: 16_000, msPerChar: 20 } });
  v3 = await startHiggsServer();
  v2 = await startHiggsServer();
  const limits = { timeoutMs: 5000 };
  const espeak = await createEspeakEngine({ workers: 1 });
  registry = new TtsRegistry(
    [
      espeak,
      createOpenAiTtsEngine({ ...limits, baseUrl: kokoro.baseUrl, apiKey: undefined, model: 'kokoro', sampleRate: 16_000, defaultVoice: 'af_bella' }),
      createHiggsEngine({ ...limits, baseUrl: v3.baseUrl, apiKey: 'k', model: 'higgs-audio-v3-tts', defaultVoice: 'default', customVoices: true }),
      createHiggsV2Engine({ ...limits, baseUrl: v2.baseUrl, apiKey: undefined, model: 'higgs-audio-v2-generation-3B-base', defaultVoice: 'en_woman' }),
    ],
    espeak,
    OUTPUT_RATE,
  );
  clips = new ClipStore(dataDir);
  chorus = await startChorus({ database: db.database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', AUDIO_LEAD_MS: '0' }, tts: registry, clips });
});

beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await resetData((await openTestDatabases())[0]!.database);
  for (const server of [v3, v2]) server.requests.length = 0;
  kokoro.reset();
});

after(async () => {
  for (const c of clients.splice(0)) await c.close();
  await chorus?.close();
  await registry?.close();
  await Promise.all([llm?.close(), kokoro?.close(), v3?.close(), v2?.close()]);
  await rm(dataDir, { recursive: true, force: true });
  await closeTestDatabases();
});

describe('several engines in one conversation', () => {
  test('a Higgs v3 clone, a Higgs v2 description voice, a preset voice and an espeak voice answer in turn, each through its protocol, all at OUTPUT_SAMPLE_RATE', async () => {
    const repo = chorus.repo;
    const clipOfAda = clipWav(300);
    const stored = await clips.save(clipOfAda, 'This is how Ada sounds.');
    await repo.createVoice({ voice: 'ada-clone', method: 'clone', engine: 'higgs', ...stored });
    await repo.createVoice({ voice: 'bo-described', method: 'description', engine: 'higgs-v2', speaker_desc: 'an old sailor, gravelly', scene_prompt: 'A quiet harbour at dusk.' });
    await repo.createVoice({ voice: 'cy-preset', engine: 'openai', engine_voice: 'am_adam' });
    await repo.createVoice({ voice: 'di-espeak', engine: 'espeak', engine_voice: 'en-us+m3' });
    for (const [name, voice] of [['Ada', 'ada-clone'], ['Bo', 'bo-described'], ['Cy', 'cy-preset'], ['Di', 'di-espeak']] as const) {
      await repo.createCharacter({ name, voice, system_prompt: `You are ${name}.`, talkativeness: 0 });
    }
    const client = await TestClient.connect(chorus.wsUrl);
    clients.push(client);

    const ada = await turn(client, 'Ada', 'Hello there. I am the first. I am cloned.');
    assert.equal(ada.rate, OUTPUT_RATE);
    // Registered once, with the clip and its transcript; every sentence then names the custom voice.
    const registrations = v3.of('/v1/voices');
    assert.equal(registrations.length, 1, 'one registration for three sentences');
    assert.equal(registrations[0]?.body.ref_audio, clipOfAda.toString('base64'));
    assert.equal(registrations[0]?.body.ref_text, 'This is how Ada sounds.');
    const adaSpeech = v3.of('/v1/audio/speech');
    assert.equal(adaSpeech.length, 3);
    const customId = [...v3.voices.keys()][0];
    for (const r of adaSpeech) {
      assert.deepEqual([r.body.voice, r.body.ref_audio, r.body.stream, r.body.response_format], [customId, undefined, true, 'pcm']);
    }
    assert.ok(Math.abs(toneHz(ada.pcm, OUTPUT_RATE) - toneFrequency(customId!)) < 5, 'the clone voice spoke');

    const bo = await turn(client, 'Bo', 'Ahoy there, my friends. The tide turns tonight.');
    assert.equal(bo.rate, OUTPUT_RATE);
    const chats = v2.of('/v1/chat/completions');
    assert.equal(chats.length, 2, 'one streamed chat completion per sentence');
    const spoken: unknown[] = [];
    for (const chat of chats) {
      const turns = chat.body.messages as Array<{ role: string; content: unknown }>;
      assert.equal(turns[0]?.role, 'system');
      assert.match(String(turns[0]?.content), /^Generate audio following instruction\.\n\n<\|scene_desc_start\|>\nA quiet harbour at dusk\.\n\nSPEAKER0: an old sailor, gravelly\n<\|scene_desc_end\|>$/);
      assert.equal(turns.length, 2, 'no clip for a description voice');
      spoken.push(turns[1]?.content);
    }
    assert.equal(spoken.join(' '), 'Ahoy there, my friends. The tide turns tonight.');
    const messages = chats[0]?.body.messages as Array<{ role: string; content: unknown }>;
    assert.ok(Math.abs(toneHz(bo.pcm, OUTPUT_RATE) - toneFrequency(String(messages[0]?.content))) < 5);

    // The 16 kHz preset server's tone arrives resampled to 24 kHz, at the same pitch.
    const cy = await turn(client, 'Cy', 'Preset voices still work.');
    assert.equal(cy.rate, OUTPUT_RATE);
    assert.equal(kokoro.speech.requests[0]?.body.voice, 'am_adam');
    const expected = voiceFrequency('am_adam');
    const heard = toneHz(cy.pcm, OUTPUT_RATE);
    assert.ok(Math.abs(heard - expected) < 5, `the tone is ${heard.toFixed(1)} Hz after resampling, not ${expected} Hz`);
    const seconds = cy.pcm.length / 2 / OUTPUT_RATE;
    const sent = kokoro.speech.requests.reduce((a, r) => a + r.sent.reduce((b, s) => b + (s.bytes ?? 0), 0), 0) / 2 / 16_000;
    assert.ok(Math.abs(seconds - sent) < 0.05, `${seconds.toFixed(3)} s out for ${sent.toFixed(3)} s in`);

    const di = await turn(client, 'Di', 'And espeak too.');
    assert.equal(di.rate, OUTPUT_RATE);
    assert.ok(di.pcm.length / 2 / OUTPUT_RATE > 0.5, 'espeak audio, resampled from 22050 Hz');
    assert.equal(v3.of('/v1/voices').length, 1, 'no engine saw another engine’s voice');
  });

  test('a custom voice the server forgot is registered again, and the sentence is still spoken', async () => {
    const stored = await clips.save(clipWav(410), 'A second voice.');
    await chorus.repo.createVoice({ voice: 'eve-clone', method: 'clone', engine: 'higgs', ...stored });
    await chorus.repo.createCharacter({ name: 'Eve', voice: 'eve-clone', system_prompt: 'You are Eve.', talkativeness: 0 });
    const client = await TestClient.connect(chorus.wsUrl);
    clients.push(client);
    await turn(client, 'Eve', 'First words.');
    const before = v3.of('/v1/voices').length;
    v3.forget();
    const again = await turn(client, 'Eve', 'Second words.');
    assert.equal(v3.of('/v1/voices').length, before + 1, 'registered again');
    const speech = v3.of('/v1/audio/speech');
    assert.deepEqual(speech.slice(-2).map((r) => r.status), [404, 200], 'the forgotten id was refused, then the new one spoken');
    assert.ok(again.pcm.length > 0);
    assert.equal(client.ofType('error').length, 0, 'no error for the client');
  });

  test('a Higgs v2 clone sends the clip as base64 WAV after its transcript, the same clip for every sentence', async () => {
    const wav = clipWav(250);
    const stored = await clips.save(wav, 'Reference words.');
    await chorus.repo.createVoice({ voice: 'fay-clone', method: 'clone', engine: 'higgs-v2', ...stored });
    await chorus.repo.createCharacter({ name: 'Fay', voice: 'fay-clone', system_prompt: 'You are Fay.', talkativeness: 0 });
    const client = await TestClient.connect(chorus.wsUrl);
    clients.push(client);
    await turn(client, 'Fay', 'One sentence. Two sentences.');
    const chats = v2.of('/v1/chat/completions');
    assert.equal(chats.length, 2);
    // The sentences are synthesized ahead (TTS_LOOKAHEAD), so the requests may arrive in either order.
    const said = chats.map((chat) => (chat.body.messages as Array<{ role: string; content: unknown }>).slice(1));
    said.sort((a, b) => String(a[2]?.content).localeCompare(String(b[2]?.content)));
    for (const [i, messages] of said.entries()) {
      assert.deepEqual(messages, [
        { role: 'user', content: 'Reference words.' },
        { role: 'assistant', content: [{ type: 'input_audio', input_audio: { data: wav.toString('base64'), format: 'wav' } }] },
        { role: 'user', content: ['One sentence.', 'Two sentences.'][i] },
      ]);
    }
  });

  test('a clone voice on an engine without clones speaks in that engine’s default, with one voice_fallback warning', async () => {
    const stored = await clips.save(clipWav(330), 'Words.');
    await chorus.repo.createVoice({ voice: 'gus-clone', method: 'clone', engine: 'espeak', ...stored });
    await chorus.repo.createCharacter({ name: 'Gus', voice: 'gus-clone', system_prompt: 'You are Gus.', talkativeness: 0 });
    const client = await TestClient.connect(chorus.wsUrl);
    clients.push(client);
    const first = await turn(client, 'Gus', 'I still speak. Twice.');
    await turn(client, 'Gus', 'And again.');
    assert.ok(first.pcm.length > 0, 'spoken in the default voice');
    const warnings = client.ofType('error').filter((e) => e.data.code === 'voice_fallback');
    assert.equal(warnings.length, 1, 'told once');
    assert.match(warnings[0]!.data.message, /gus-clone.*espeak engine cannot speak clone voices/);
  });
});

describe('inline tags', () => {
  test('Higgs v3 receives <|…|> tags as written; other engines never do', async () => {
    await chorus.repo.createVoice({ voice: 'hal-preset', engine: 'higgs', engine_voice: 'jake' });
    await chorus.repo.createVoice({ voice: 'ivy-preset', engine: 'openai', engine_voice: 'af_bella' });
    await chorus.repo.createCharacter({ name: 'Hal', voice: 'hal-preset', system_prompt: 'You are Hal.', talkativeness: 0 });
    await chorus.repo.createCharacter({ name: 'Ivy', voice: 'ivy-preset', system_prompt: 'You are Ivy.', talkativeness: 0 });
    const client = await TestClient.connect(chorus.wsUrl);
    clients.push(client);
    await turn(client, 'Hal', '<|emotion:joy|>Welcome to the show!');
    assert.equal(v3.of('/v1/audio/speech')[0]?.body.input, '<|emotion:joy|>Welcome to the show!');
    await turn(client, 'Ivy', '<|emotion:joy|>Welcome back!');
    assert.equal(kokoro.speech.requests[0]?.body.input, 'Welcome back!');
  });

  test('stripInlineTags removes every tag kind and nothing else', () => {
    assert.equal(stripInlineTags('<|emotion:enthusiasm|>Go! <|prosody:pause|>Now <|sfx:laugh|>.'), 'Go! Now .');
    assert.equal(stripInlineTags('a < b | c > d'), 'a < b | c > d');
  });

  test('the Higgs v2 system message carries the scene and speaker descriptions, or only the instruction', () => {
    assert.equal(higgsSystemPrompt({ engineVoice: 'x', speed: 1, pitch: 1 }), 'Generate audio following instruction.');
    assert.equal(
      higgsSystemPrompt({ engineVoice: 'x', speed: 1, pitch: 1, description: { speaker: 'a child', scene: null } }),
      'Generate audio following instruction.\n\n<|scene_desc_start|>\nSPEAKER0: a child\n<|scene_desc_end|>',
    );
  });
});

describe('OpenAI-compatible servers with reference clips', () => {
  test('TTS_REFERENCE_AUDIO=ref_audio sends a clone voice’s clip as base64 ref_audio with its ref_text, instead of a voice (a Boson-protocol server); without it the engine has no clone voices', async () => {
    const wav = clipWav(220);
    const clip = { wav, transcript: 'The reference words.', id: 'c'.repeat(64) };
    const cloning = createOpenAiTtsEngine({ baseUrl: v3.baseUrl, apiKey: undefined, model: 'higgs-audio-v3-tts', sampleRate: 24_000, defaultVoice: 'default', referenceAudio: 'ref_audio', timeoutMs: 5000 });
    assert.deepEqual(cloning.methods, ['preset', 'clone']);
    for (const text of ['One.', 'Two.']) {
      for await (const _ of cloning.synthesize(text, { engineVoice: 'af_bella', speed: 1, pitch: 1, clone: clip }, new AbortController().signal)) {
        // drained
      }
    }
    assert.deepEqual(v3.of('/v1/audio/speech').map((r) => [r.status, r.body.input, r.body.voice, r.body.ref_audio, r.body.ref_text]), [
      [200, 'One.', undefined, wav.toString('base64'), 'The reference words.'],
      [200, 'Two.', undefined, wav.toString('base64'), 'The reference words.'],
    ]);
    const plain = createOpenAiTtsEngine({ baseUrl: kokoro.baseUrl, apiKey: undefined, model: 'kokoro', sampleRate: 16_000, defaultVoice: 'af_bella', timeoutMs: 5000 });
    assert.deepEqual(plain.methods, ['preset'], 'clone voices on it fall back (voice_fallback)');
  });
});

/** Every chunk of one synthesis, concatenated. */
async function drain(engine: TtsEngine, text: string, voice: EngineVoice): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of engine.synthesize(text, voice, new AbortController().signal)) parts.push(chunk);
  return Buffer.concat(parts);
}

describe('delivery styles (Higgs v3 emotion, style and prosody tags)', () => {
  test('a voice’s style leads every sentence on Higgs v3; the character’s overrides it part by part; other engines never see it', async () => {
    await chorus.repo.createVoice({ voice: 'jo-v3', engine: 'higgs', engine_voice: 'jake', style: { emotion: 'contentment', style: 'whispering', prosody: ['speed_slow', 'pitch_low'] } });
    await chorus.repo.createVoice({ voice: 'jo-kokoro', engine: 'openai', engine_voice: 'af_bella', style: { emotion: 'anger', prosody: ['speed_fast'] } });
    await chorus.repo.createCharacter({ name: 'Jo', voice: 'jo-v3', system_prompt: 'You are Jo.', talkativeness: 0, style: { emotion: 'elation', prosody: ['pitch_high'] } });
    await chorus.repo.createCharacter({ name: 'Kit', voice: 'jo-v3', system_prompt: 'You are Kit.', talkativeness: 0 });
    await chorus.repo.createCharacter({ name: 'Lu', voice: 'jo-kokoro', system_prompt: 'You are Lu.', talkativeness: 0, style: { style: 'shouting' } });
    const client = await TestClient.connect(chorus.wsUrl);
    clients.push(client);

    await turn(client, 'Jo', 'What a day this has been. <|emotion:sadness|>But it is over now.');
    assert.deepEqual(
      v3.of('/v1/audio/speech').map((r) => r.body.input),
      [
        // The character's emotion and pitch over the voice's; the voice's style and speed kept.
        '<|emotion:elation|><|style:whispering|><|prosody:speed_slow|><|prosody:pitch_high|>What a day this has been.',
        // A sentence that sets its own emotion keeps it.
        '<|style:whispering|><|prosody:speed_slow|><|prosody:pitch_high|><|emotion:sadness|>But it is over now.',
      ],
    );
    v3.requests.length = 0;
    await turn(client, 'Kit', 'Only the voice speaks for me.');
    assert.deepEqual(v3.of('/v1/audio/speech').map((r) => r.body.input), ['<|emotion:contentment|><|style:whispering|><|prosody:speed_slow|><|prosody:pitch_low|>Only the voice speaks for me.']);
    await turn(client, 'Lu', 'No tags reach this engine.');
    assert.deepEqual(kokoro.speech.requests.map((r) => r.body.input), ['No tags reach this engine.']);
  });

  test('a preview of an unsaved voice speaks its style', async () => {
    const client = await TestClient.connect(chorus.wsUrl);
    clients.push(client);
    client.send({ type: 'preview_voice', data: { voice: { engine: 'higgs', engine_voice: 'jake', style: { style: 'singing' } }, text: 'La la la.' } });
    await client.next('audio_stream_stop', 15_000);
    assert.equal(v3.of('/v1/audio/speech')[0]?.body.input, '<|style:singing|>La la la.');
  });

  test('a bad style is refused with the field named: an unknown emotion, two speeds', async () => {
    for (const [style, reason] of [
      [{ emotion: 'glee' }, /style\.emotion/],
      [{ prosody: ['speed_slow', 'speed_fast'] }, /at most one speed, one pitch and one expressiveness/],
    ] as const) {
      const response = await fetch(`${chorus.httpUrl}/api/voices`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ voice: 'bad', style }) });
      assert.equal(response.status, 400);
      assert.match(((await response.json()) as { error: string }).error, reason);
    }
  });

  test('mergeStyles and withStyleTags: part by part, nothing for an empty style, the sentence’s own tags first in their category', () => {
    assert.equal(mergeStyles(null, null), undefined);
    assert.equal(mergeStyles({ emotion: null, prosody: [] }, {}), undefined);
    assert.deepEqual(mergeStyles({ emotion: 'awe', prosody: ['speed_fast', 'expressive_low'] }, { prosody: ['speed_very_slow'] }), { emotion: 'awe', style: null, prosody: ['speed_very_slow', 'expressive_low'] });
    assert.equal(withStyleTags('Hi.', undefined), 'Hi.');
    assert.equal(withStyleTags('<|prosody:speed_fast|>Hi.', { prosody: ['speed_slow', 'pitch_low'] }), '<|prosody:pitch_low|><|prosody:speed_fast|>Hi.');
    assert.equal(withStyleTags('<|sfx:laughter|>Haha.', { emotion: 'amusement' }), '<|emotion:amusement|><|sfx:laughter|>Haha.', 'a sound effect is not a delivery setting');
  });
});

describe('Higgs v3 clips sent inline, and the custom-voice route', () => {
  const clone = (frequency: number, transcript: string): EngineVoice => {
    const wav = clipWav(frequency);
    return { engineVoice: 'default', speed: 1, pitch: 1, clone: { wav, transcript, id: String(frequency).padStart(64, '0') } };
  };

  test('HIGGS_CUSTOM_VOICES=false: every sentence carries ref_audio and ref_text, and no voice is registered', async () => {
    const server = await startHiggsServer();
    try {
      const engine = createHiggsEngine({ timeoutMs: 5000, baseUrl: server.baseUrl, apiKey: undefined, model: 'higgs-audio-v3-tts', defaultVoice: 'default', customVoices: false });
      const voice = clone(310, 'Inline words.');
      for (const text of ['One.', 'Two.']) assert.ok((await drain(engine, text, voice)).length > 0);
      assert.equal(server.requests.filter((r) => r.path.endsWith('/voices')).length, 0);
      assert.deepEqual(server.of('/v1/audio/speech').map((r) => [r.status, r.body.voice, r.body.ref_audio, r.body.ref_text]), [
        [200, undefined, voice.clone?.wav.toString('base64'), 'Inline words.'],
        [200, undefined, voice.clone?.wav.toString('base64'), 'Inline words.'],
      ]);
    } finally {
      await server.close();
    }
  });

  test('a server without custom voices (neither route): both routes tried once, then the clip goes inline for good', async () => {
    const server = await startHiggsServer({ voicesPath: null });
    try {
      const engine = createHiggsEngine({ timeoutMs: 5000, baseUrl: server.baseUrl, apiKey: undefined, model: 'higgs-audio-v3-tts', defaultVoice: 'default', customVoices: true });
      const voice = clone(320, 'No custom voices here.');
      const first = await drain(engine, 'First.', voice);
      await drain(engine, 'Second.', clone(330, 'Another clip.'));
      assert.deepEqual(server.requests.filter((r) => r.path.endsWith('/voices')).map((r) => [r.path, r.status]), [['/v1/voices', 404], ['/v1/audio/voices', 404]], 'asked once, not per clip');
      assert.deepEqual(server.of('/v1/audio/speech').map((r) => [r.status, r.body.ref_text]), [[200, 'No custom voices here.'], [200, 'Another clip.']]);
      assert.ok(Math.abs(toneHz(first, 24_000) - toneFrequency(voice.clone!.wav.toString('base64'))) < 5);
    } finally {
      await server.close();
    }
  });

  test('a server that has only POST /v1/audio/voices (Boson’s OpenAPI copy): used after one 404 on /v1/voices, and remembered', async () => {
    const server = await startHiggsServer({ voicesPath: '/v1/audio/voices' });
    try {
      const engine = createHiggsEngine({ timeoutMs: 5000, baseUrl: server.baseUrl, apiKey: undefined, model: 'higgs-audio-v3-tts', defaultVoice: 'default', customVoices: true });
      await drain(engine, 'First.', clone(340, 'First clip.'));
      await drain(engine, 'Second.', clone(350, 'Second clip.'));
      assert.deepEqual(server.requests.filter((r) => r.path.endsWith('/voices')).map((r) => [r.path, r.status]), [['/v1/voices', 404], ['/v1/audio/voices', 200], ['/v1/audio/voices', 200]]);
      const ids = [...server.voices.keys()];
      assert.deepEqual(server.of('/v1/audio/speech').map((r) => [r.status, r.body.voice, r.body.ref_audio]), [[200, ids[0], undefined], [200, ids[1], undefined]]);
    } finally {
      await server.close();
    }
  });
});

describe('engines assembled from configuration', () => {
  test('HIGGS_BASE_URL and HIGGS_V2_BASE_URL make both Higgs engines live beside espeak, with their models, keys and defaults; a v2 preset goes through /v1/audio/speech', async () => {
    const a = await startHiggsServer();
    const b = await startHiggsServer();
    const config = loadConfig({
      TTS_ENGINE: 'higgs',
      HIGGS_BASE_URL: a.baseUrl,
      HIGGS_API_KEY: 'v3-key',
      HIGGS_MODEL: 'higgs-v3-served',
      HIGGS_DEFAULT_VOICE: 'jake',
      HIGGS_V2_BASE_URL: b.baseUrl,
      HIGGS_V2_MODEL: 'higgs-v2-served',
      ESPEAK_WORKERS: '1',
    });
    const built = await createTtsEngine(config.tts);
    assert.ok(built);
    try {
      assert.deepEqual(built.list().map((e) => [e.name, e.defaultVoice.engineVoice, e.methods]), [
        ['higgs', 'jake', ['preset', 'clone']],
        ['espeak', 'en-us+f3', ['preset']],
        ['higgs-v2', 'en_woman', ['preset', 'clone', 'description']],
      ]);
      assert.ok((await drain(built, 'Default engine.', built.defaultVoice)).length > 0);
      const v2engine = built.get('higgs-v2');
      assert.ok(v2engine);
      const preset = await drain(built, 'A preset voice.', { engineVoice: 'belinda', speed: 1.25, pitch: 1, engine: v2engine });
      const [spoken] = a.of('/v1/audio/speech');
      assert.deepEqual([spoken?.status, spoken?.body.model, spoken?.body.voice, spoken?.authorization], [200, 'higgs-v3-served', 'jake', 'Bearer v3-key']);
      const [v2preset] = b.of('/v1/audio/speech');
      assert.deepEqual([v2preset?.status, v2preset?.body.model, v2preset?.body.voice, v2preset?.body.speed, v2preset?.body.response_format, v2preset?.authorization], [200, 'higgs-v2-served', 'belinda', 1.25, 'pcm', undefined]);
      assert.equal(b.of('/v1/chat/completions').length, 0, 'a preset needs no chat completion');
      assert.ok(Math.abs(toneHz(preset, 24_000) - toneFrequency('belinda')) < 5);
    } finally {
      await built.close();
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('GET /api/voices/engines lists each engine’s methods', async () => {
    const { engines } = (await (await fetch(`${chorus.httpUrl}/api/voices/engines`)).json()) as { engines: Array<{ engine: string; methods: string[] }> };
    assert.deepEqual(engines.map((e) => [e.engine, e.methods]), [
      ['espeak', ['preset']],
      ['openai', ['preset']],
      ['higgs', ['preset', 'clone']],
      ['higgs-v2', ['preset', 'clone', 'description']],
    ]);
  });
});
