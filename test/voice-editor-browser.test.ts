// The voice editor in headless Chromium against the real server (web/dist served by the real app,
// through the recording proxy): engines espeak and Higgs v2 (a loopback server of its protocol),
// reference clips stored under a temporary DATA_DIR, and Chromium's fake microphone playing a WAV
// of espeak speech, and a loopback STT server. Each method shows its own fields and no internal
// ones, espeak voices are listed by language and variant, a preview speaks the unsaved settings (a
// definition reaches the server and is what the engine is asked for), a recorded clip is uploaded
// as the WebM the browser recorded, its transcript pre-filled by the STT engine (or a clear note
// when the server has none), a stored clip's transcript and audio are shown, the Higgs v3 delivery
// style is edited for that engine only; the character editor sets narration, the narrator's voice
// and the character's own style.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Voice } from '../src/protocol.ts';
import { ClipStore } from '../src/speech/clip-store.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';
import { createHiggsV2Engine } from '../src/speech/engines/higgs-v2.ts';
import { createHiggsEngine } from '../src/speech/engines/higgs.ts';
import { createOpenAiSttEngine } from '../src/transcribe/engines/openai.ts';
import { TtsRegistry } from '../src/speech/registry.ts';
import { launchBrowser, type ProxyConnection, TestProxy } from './support/browser.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { encodeWav, type EngineServer, parseWav, startEngineServer } from './support/engine-server.ts';
import { type HiggsServer, startHiggsServer } from './support/higgs-server.ts';

const WEB_DIST = 'web/dist';
let espeak: TtsEngine;
let v2: HiggsServer;
let v3: HiggsServer;
let stt: EngineServer;
let registry: TtsRegistry;
let wav: string;
let chorus: ChorusUnderTest;
let proxy: TestProxy;
let browser: Browser;
let context: BrowserContext | undefined;
let page: Page;
let tmp: string;
const pageErrors: string[] = [];

before(async () => {
  assert.ok(existsSync(join(WEB_DIST, 'index.html')), `${WEB_DIST} is not built: run npm run build:web`);
  const [db] = await openTestDatabases();
  assert.ok(db);
  tmp = mkdtempSync(join(tmpdir(), 'chorus-voice-editor-'));
  espeak = await createEspeakEngine({ workers: 1 });
  v2 = await startHiggsServer();
  v3 = await startHiggsServer();
  stt = await startEngineServer({ transcription: { text: 'This is my reference clip, as heard.' } });
  const higgsV2 = createHiggsV2Engine({ timeoutMs: 5000, baseUrl: v2.baseUrl, apiKey: undefined, model: 'higgs-audio-v2-generation-3B-base', defaultVoice: 'en_woman' });
  const higgsV3 = createHiggsEngine({ timeoutMs: 5000, baseUrl: v3.baseUrl, apiKey: undefined, model: 'higgs-audio-v3-tts', defaultVoice: 'default', customVoices: true });
  registry = new TtsRegistry([espeak, higgsV2, higgsV3], espeak, 24_000);
  // The fake microphone: real espeak speech (about 4 s), then a little silence; Chromium loops it.
  const pcm: Buffer[] = [];
  const sentence = 'This is my reference clip. I speak slowly and clearly, so that my voice can be copied well by the engine.';
  for await (const chunk of espeak.synthesize(sentence, { engineVoice: 'en-us+m3', speed: 1, pitch: 1 }, new AbortController().signal)) pcm.push(chunk);
  wav = join(tmp, 'speech.wav');
  writeFileSync(wav, encodeWav(Buffer.concat([...pcm, Buffer.alloc(Math.round(espeak.sampleRate * 0.3) * 2)]), espeak.sampleRate));
  const sttEngine = createOpenAiSttEngine({ baseUrl: stt.baseUrl, apiKey: undefined, model: 'whisper-1', language: undefined, timeoutMs: 5000 });
  chorus = await startChorus({ database: db.database, env: { WEB_DIR: WEB_DIST, LLM_API_KEY: 'k', LLM_BASE_URL: 'http://127.0.0.1:9/v1' }, tts: registry, stt: sttEngine, clips: new ClipStore(join(tmp, 'data')) });
  proxy = await TestProxy.start(chorus.httpUrl);
  browser = await launchBrowser(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wav}`]);
});

beforeEach(async () => {
  await context?.close();
  v2.requests.length = 0;
  v3.requests.length = 0;
  stt.reset();
  await resetData((await openTestDatabases())[0]!.database);
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

after(async () => {
  await context?.close();
  await browser?.close();
  await proxy?.close();
  await chorus?.close();
  await Promise.all([v2?.close(), v3?.close(), stt?.close()]);
  await registry?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  assert.deepEqual(pageErrors, [], 'the page threw');
});

async function openEditor(url = proxy.url): Promise<{ conn: ProxyConnection | undefined; panel: ReturnType<Page['locator']> }> {
  const before = proxy.connections.length;
  await page.goto(`${url}/`);
  await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');
  const conn = url === proxy.url ? await proxy.waitFor(() => proxy.connections[before], 'the page to connect') : undefined;
  await page.locator('.nav-voices').click();
  const panel = page.locator('dialog.voices-panel');
  await panel.locator('form.voice-form').waitFor();
  return { conn, panel };
}

/** Records `ms` of the fake microphone's speech with the form's Record button. */
async function record(form: ReturnType<Page['locator']>, ms: number): Promise<void> {
  await form.locator('button.record-clip').click();
  await form.locator('button.record-clip', { hasText: 'Stop recording' }).waitFor();
  const started = await page.evaluate(() => performance.now());
  await page.waitForFunction(([t, wait]) => performance.now() - t > wait, [started, ms] as const, { polling: 100 });
  await form.locator('button.record-clip').click();
  await form.locator('audio.clip-player:not([hidden])').waitFor({ state: 'attached' });
}

const visible = (page: Page, name: string) => page.locator(`dialog.voices-panel form.voice-form [name="${name}"]`).isVisible();

describe('the voice editor', () => {
  test('engines are the configured ones, espeak voices by language and variant, each method its own fields, no internal ones', async () => {
    const { panel } = await openEditor();
    const form = panel.locator('form.voice-form');
    const engines = await form.locator('select[name="engine"] option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
    assert.deepEqual(engines, ['', 'espeak', 'higgs-v2', 'higgs'], 'only the configured engines (openai is not)');

    await form.locator('select[name="engine"]').selectOption('espeak');
    const label = await form.locator('select[name="engine_voice"] option[value="en-us+f3"]').textContent();
    assert.equal(label, 'English (America), female 3');
    assert.equal(await form.locator('select[name="engine_voice"] option[value="de"]').textContent(), 'German');
    assert.deepEqual(await form.locator('select[name="method"] option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)), ['preset'], 'espeak speaks presets only');

    await form.locator('select[name="engine"]').selectOption('higgs-v2');
    await form.locator('select[name="method"]').selectOption('clone');
    assert.ok(await form.locator('input[name="clip_file"]').isVisible());
    assert.ok(await form.locator('textarea[name="clip_transcript"]').isVisible());
    assert.ok(await form.locator('button.record-clip').isVisible());
    for (const hidden of ['speaker_desc', 'scene_prompt', 'engine_voice']) assert.equal(await visible(page, hidden), false, `${hidden} is not a clone field`);

    await form.locator('select[name="method"]').selectOption('description');
    assert.ok(await visible(page, 'speaker_desc'));
    assert.ok(await visible(page, 'scene_prompt'));
    for (const hidden of ['clip_file', 'clip_transcript', 'engine_voice']) assert.equal(await visible(page, hidden), false, `${hidden} is not a description field`);

    await form.locator('select[name="method"]').selectOption('preset');
    assert.ok(await visible(page, 'engine_voice'));
    assert.equal(await visible(page, 'speaker_desc'), false);
    // The server's own fields are never in the form, shown or not.
    for (const internal of ['audio_tokens', 'audio_path', 'text_path']) assert.equal(await form.locator(`[name="${internal}"]`).count(), 0, `${internal} is not in the form`);
  });

  test('preview speaks the unsaved settings: a definition reaches the server and the engine is asked for it, the panel stays open', async () => {
    await chorus.repo.createVoice({ voice: 'sailor', engine: 'espeak', engine_voice: 'en-us+m3' });
    const { conn: connected, panel } = await openEditor();
    const conn = connected!;
    await panel.locator('.voice-row', { hasText: 'sailor' }).click();
    const form = panel.locator('form.voice-form', { hasText: 'Edit sailor' });
    await form.waitFor();
    // Changed, not saved: another engine, a description.
    await form.locator('select[name="engine"]').selectOption('higgs-v2');
    await form.locator('select[name="method"]').selectOption('description');
    await form.locator('textarea[name="speaker_desc"]').fill('An old sailor with a gravelly voice.');
    await form.locator('textarea[name="scene_prompt"]').fill('A windy deck.');
    await form.locator('input[name="preview_text"]').fill('Hoist the sails.');
    await form.locator('button.preview').click();
    const preview = await proxy.waitFor(() => conn.clientMessages('preview_voice')[0], 'preview_voice');
    assert.deepEqual(preview.data, {
      voice: { voice: 'sailor', engine: 'higgs-v2', engine_voice: 'en-us+m3', speed: 1, pitch: 1, method: 'description', speaker_desc: 'An old sailor with a gravelly voice.', scene_prompt: 'A windy deck.', style: null },
      text: 'Hoist the sails.',
    });
    await proxy.waitFor(() => conn.serverMessages('audio_stream_stop').length === 1, 'the preview audio');
    // Higgs v2 was asked with the description, as it is in the form (the stored voice is an espeak preset).
    const asked = JSON.stringify(v2.requests.map((r) => r.body));
    assert.match(asked, /An old sailor with a gravelly voice\./);
    assert.match(asked, /Hoist the sails\./);
    assert.ok(await panel.isVisible(), 'the panel stays open while the preview plays');
    assert.equal((await chorus.repo.getVoice('sailor')).engine, 'espeak', 'nothing was saved');
    assert.equal(conn.serverMessages('error').length, 0);
  });

  test('a clip recorded with the microphone is uploaded as the WebM the browser recorded, its transcript pre-filled by the STT engine; the voice becomes a clone', async () => {
    await chorus.repo.createVoice({ voice: 'mimic', engine: 'higgs-v2', method: 'clone' });
    const { panel } = await openEditor();
    await panel.locator('.voice-row', { hasText: 'mimic' }).click();
    const form = panel.locator('form.voice-form', { hasText: 'Edit mimic' });
    await form.waitFor();
    assert.ok(await form.locator('button.record-clip').isVisible(), 'a clone voice shows its clip fields');
    await record(form, 4500);
    // The STT engine heard the recording (decoded on the server, sent as 16 kHz WAV) and filled in the transcript.
    await form.locator('.transcript-status', { hasText: 'Filled in by speech recognition' }).waitFor();
    assert.equal(await form.locator('textarea[name="clip_transcript"]').inputValue(), 'This is my reference clip, as heard.');
    const heard = stt.transcription.requests[0]?.wav;
    assert.deepEqual([heard?.sampleRate, heard?.channels], [16_000, 1]);
    assert.ok((heard?.durationMs ?? 0) > 3500, `${heard?.durationMs} ms of the recording transcribed`);
    await form.locator('textarea[name="clip_transcript"]').fill('This is my reference clip.');
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/voices/mimic/reference') && r.request().method() === 'POST');
    await form.locator('button.upload-clip').click();
    const { clip } = (await (await answered).json()) as { clip: { format: string; sample_rate: number } };
    assert.deepEqual([clip.format, clip.sample_rate], ['WebM', 24_000], 'the recording as recorded (not converted in the page), decoded by the server at the engine’s rate');
    const voice: Voice = await eventually(async () => {
      const v = await chorus.repo.getVoice('mimic');
      return v.audio_path ? v : undefined;
    }, 'the voice to name its clip');
    assert.equal(voice.method, 'clone');
    // The editor shows the saved voice, with its stored clip and transcript.
    await panel.locator('.clip-status', { hasText: /A reference clip is stored for this voice: \d+\.\d s at 24000 Hz\./ }).waitFor();
    assert.equal(await panel.locator('textarea[name="clip_transcript"]').inputValue(), 'This is my reference clip.');
    assert.deepEqual(pageErrors, []);
  });

  test('a stored clip is shown when the editor opens: its transcript, and its audio in the player', async () => {
    const pcm = parseWav(readFileSync(wav)).data;
    await chorus.repo.createVoice({ voice: 'keeper', engine: 'higgs-v2' });
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(encodeWav(pcm, 22_050))]), 'clip.wav');
    form.append('transcript', 'Words stored with the clip.');
    assert.equal((await fetch(`${chorus.httpUrl}/api/voices/keeper/reference`, { method: 'POST', body: form })).status, 200);
    const { panel } = await openEditor();
    await panel.locator('.voice-row', { hasText: 'keeper' }).click();
    const editor = panel.locator('form.voice-form', { hasText: 'Edit keeper' });
    await editor.locator('.clip-status', { hasText: 'at 24000 Hz' }).waitFor();
    assert.equal(await editor.locator('textarea[name="clip_transcript"]').inputValue(), 'Words stored with the clip.');
    const player = editor.locator('audio.clip-player');
    assert.equal(await player.getAttribute('src'), '/api/voices/keeper/reference/audio');
    await page.waitForFunction(() => (document.querySelector('audio.clip-player') as HTMLAudioElement | null)?.readyState === 4 || (document.querySelector('audio.clip-player') as HTMLAudioElement | null)?.duration! > 0);
    const duration = await player.evaluate((a) => (a as HTMLAudioElement).duration);
    assert.ok(duration > 3 && duration < 30, `the stored clip plays: ${duration} s`);
  });

  test('without a speech input engine the editor says so, and the transcript is typed', async () => {
    const bare = await startChorus({ database: (await openTestDatabases())[0]!.database, env: { WEB_DIR: WEB_DIST, LLM_API_KEY: 'k', LLM_BASE_URL: 'http://127.0.0.1:9/v1' }, tts: registry, clips: new ClipStore(join(tmp, 'bare')) });
    try {
      await bare.repo.createVoice({ voice: 'mimic', engine: 'higgs-v2', method: 'clone' });
      const { panel } = await openEditor(bare.httpUrl);
      await panel.locator('.voice-row', { hasText: 'mimic' }).click();
      const form = panel.locator('form.voice-form', { hasText: 'Edit mimic' });
      await form.waitFor();
      await record(form, 3500);
      await form.locator('.transcript-status', { hasText: 'Speech input is not configured on this server: type what is said in the clip.' }).waitFor();
      assert.equal(await form.locator('textarea[name="clip_transcript"]').inputValue(), '');
    } finally {
      await context?.close();
      context = undefined;
      await bare.close();
    }
  });

  test('the Higgs v3 delivery style shows for that engine only and is saved with the voice', async () => {
    const { panel } = await openEditor();
    const form = panel.locator('form.voice-form');
    await form.locator('select[name="engine"]').selectOption('espeak');
    assert.equal(await form.locator('select[name="style_emotion"]').isVisible(), false, 'espeak reads no style');
    await form.locator('select[name="engine"]').selectOption('higgs');
    await form.locator('input[name="voice"]').fill('whisperer');
    await form.locator('select[name="style_emotion"]').selectOption('contentment');
    await form.locator('select[name="style_style"]').selectOption('whispering');
    await form.locator('select[name="style_speed"]').selectOption('speed_slow');
    await form.locator('select[name="style_expressiveness"]').selectOption('expressive_high');
    await form.locator('button.save').click();
    const voice = await eventually(async () => chorus.repo.getVoice('whisperer'), 'the voice to be saved');
    assert.deepEqual(voice.style, { emotion: 'contentment', style: 'whispering', prosody: ['speed_slow', 'expressive_high'] });
    // Reopened, the fields hold the stored style.
    await panel.locator('.voice-row', { hasText: 'whisperer' }).click();
    const edit = panel.locator('form.voice-form', { hasText: 'Edit whisperer' });
    assert.equal(await edit.locator('select[name="style_style"]').inputValue(), 'whispering');
    assert.equal(await edit.locator('select[name="style_pitch"]').inputValue(), '');
  });
});

describe('the character editor', () => {
  test('narration, the narrator’s voice and the character’s own style are edited and saved', async () => {
    await chorus.repo.createVoice({ voice: 'bard', engine: 'higgs' });
    await chorus.repo.createVoice({ voice: 'teller', engine: 'espeak', engine_voice: 'en-us+m3' });
    const ada = await chorus.repo.createCharacter({ name: 'Ada', voice: 'bard', system_prompt: 'You are Ada.' });
    await page.goto(`${proxy.url}/`);
    await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');
    await page.locator('.nav-characters').click();
    await page.locator('dialog.characters-panel .char-row', { hasText: 'Ada' }).click();
    const form = page.locator('form.char-form', { hasText: 'Edit Ada' });
    await form.waitFor();
    assert.equal(await form.locator('select[name="narration"]').inputValue(), '', 'the server default');
    assert.ok(await form.locator('select[name="narrator_voice"]').isVisible(), 'the default may narrate apart: the narrator can be chosen');
    await form.locator('select[name="narration"]').selectOption('dialogue_only');
    assert.equal(await form.locator('select[name="narrator_voice"]').isVisible(), false, 'no narrator when only dialogue is spoken');
    await form.locator('select[name="narration"]').selectOption('narrated');
    await form.locator('select[name="narrator_voice"]').selectOption('teller');
    await form.locator('select[name="style_emotion"]').selectOption('elation');
    await form.locator('select[name="style_pitch"]').selectOption('pitch_high');
    await form.locator('button.save').click();
    const saved = await eventually(async () => {
      const c = await chorus.repo.getCharacter(ada.id);
      return c.narration === 'narrated' ? c : undefined;
    }, 'the character to be saved');
    assert.deepEqual([saved.narration, saved.narrator_voice, saved.style], ['narrated', 'teller', { emotion: 'elation', style: null, prosody: ['pitch_high'] }]);
    // Back to the defaults: null again, on the form the page re-renders from the saved
    // character (an edit made before that re-render would be thrown away with the old form).
    const again = page.locator(`form.char-form[data-updated-at="${new Date(saved.updated_at).toISOString()}"]`);
    await again.waitFor();
    await again.locator('select[name="narration"]').selectOption('');
    await again.locator('select[name="narrator_voice"]').selectOption('');
    await again.locator('select[name="style_emotion"]').selectOption('');
    await again.locator('select[name="style_pitch"]').selectOption('');
    await again.locator('button.save').click();
    const cleared = await eventually(async () => {
      const c = await chorus.repo.getCharacter(ada.id);
      return c.narration === null ? c : undefined;
    }, 'the defaults to be saved');
    assert.deepEqual([cleared.narrator_voice, cleared.style], [null, null]);
    assert.deepEqual(pageErrors, []);
  });
});
