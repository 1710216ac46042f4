// The voice editor in headless Chromium against the real server (web/dist served by the real app,
// through the recording proxy): engines espeak and Higgs v2 (a loopback server of its protocol),
// reference clips stored under a temporary DATA_DIR, and Chromium's fake microphone playing a WAV
// of espeak speech. Each method shows its own fields and no internal ones, espeak voices are
// listed by language and variant, a preview speaks the unsaved settings (a definition reaches the
// server and is what the engine is asked for), and a recorded clip is uploaded to the voice.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Voice } from '../src/protocol.ts';
import { ClipStore } from '../src/speech/clip-store.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';
import { createHiggsV2Engine } from '../src/speech/engines/higgs-v2.ts';
import { TtsRegistry } from '../src/speech/registry.ts';
import { launchBrowser, type ProxyConnection, TestProxy } from './support/browser.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { encodeWav } from './support/engine-server.ts';
import { type HiggsServer, startHiggsServer } from './support/higgs-server.ts';

const WEB_DIST = 'web/dist';
let espeak: TtsEngine;
let v2: HiggsServer;
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
  const higgsV2 = createHiggsV2Engine({ timeoutMs: 5000, baseUrl: v2.baseUrl, apiKey: undefined, model: 'higgs-audio-v2-generation-3B-base', defaultVoice: 'en_woman' });
  const registry = new TtsRegistry([espeak, higgsV2], espeak, 24_000);
  // The fake microphone: real espeak speech (about 4 s), then a little silence; Chromium loops it.
  const pcm: Buffer[] = [];
  const sentence = 'This is my reference clip. I speak slowly and clearly, so that my voice can be copied well by the engine.';
  for await (const chunk of espeak.synthesize(sentence, { engineVoice: 'en-us+m3', speed: 1, pitch: 1 }, new AbortController().signal)) pcm.push(chunk);
  const wav = join(tmp, 'speech.wav');
  writeFileSync(wav, encodeWav(Buffer.concat([...pcm, Buffer.alloc(Math.round(espeak.sampleRate * 0.3) * 2)]), espeak.sampleRate));
  chorus = await startChorus({ database: db.database, env: { WEB_DIR: WEB_DIST, LLM_API_KEY: 'k', LLM_BASE_URL: 'http://127.0.0.1:9/v1' }, tts: registry, clips: new ClipStore(join(tmp, 'data')) });
  proxy = await TestProxy.start(chorus.httpUrl);
  browser = await launchBrowser(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wav}`]);
});

beforeEach(async () => {
  await context?.close();
  v2.requests.length = 0;
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
  await v2?.close();
  await espeak?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  assert.deepEqual(pageErrors, [], 'the page threw');
});

async function openEditor(): Promise<{ conn: ProxyConnection; panel: ReturnType<Page['locator']> }> {
  const before = proxy.connections.length;
  await page.goto(`${proxy.url}/`);
  await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');
  const conn = await proxy.waitFor(() => proxy.connections[before], 'the page to connect');
  await page.locator('.nav-voices').click();
  const panel = page.locator('dialog.voices-panel');
  await panel.locator('form.voice-form').waitFor();
  return { conn, panel };
}

const visible = (page: Page, name: string) => page.locator(`dialog.voices-panel form.voice-form [name="${name}"]`).isVisible();

describe('the voice editor', () => {
  test('engines are the configured ones, espeak voices by language and variant, each method its own fields, no internal ones', async () => {
    const { panel } = await openEditor();
    const form = panel.locator('form.voice-form');
    const engines = await form.locator('select[name="engine"] option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
    assert.deepEqual(engines, ['', 'espeak', 'higgs-v2'], 'only the configured engines (openai and higgs are not)');

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
    const { conn, panel } = await openEditor();
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
      voice: { voice: 'sailor', engine: 'higgs-v2', engine_voice: 'en-us+m3', speed: 1, pitch: 1, method: 'description', speaker_desc: 'An old sailor with a gravelly voice.', scene_prompt: 'A windy deck.' },
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

  test('a clip recorded with the microphone is uploaded to the voice, which becomes a clone', async () => {
    await chorus.repo.createVoice({ voice: 'mimic', engine: 'higgs-v2', method: 'clone' });
    const { panel } = await openEditor();
    await panel.locator('.voice-row', { hasText: 'mimic' }).click();
    const form = panel.locator('form.voice-form', { hasText: 'Edit mimic' });
    await form.waitFor();
    assert.ok(await form.locator('button.record-clip').isVisible(), 'a clone voice shows its clip fields');
    await form.locator('button.record-clip').click();
    await form.locator('button.record-clip', { hasText: 'Stop recording' }).waitFor();
    // A clip must hold at least 3 s of sound: record 4.5 s of the fake microphone's speech.
    const started = await page.evaluate(() => performance.now());
    await page.waitForFunction((t) => performance.now() - t > 4500, started, { polling: 100 });
    await form.locator('button.record-clip').click();
    await form.locator('audio.clip-player:not([hidden])').waitFor({ state: 'attached' });
    await form.locator('textarea[name="clip_transcript"]').fill('This is my reference clip.');
    await form.locator('button.upload-clip').click();
    const voice: Voice = await eventually(async () => {
      const v = await chorus.repo.getVoice('mimic');
      return v.audio_path ? v : undefined;
    }, 'the voice to name its clip');
    assert.equal(voice.method, 'clone');
    assert.ok(voice.text_path);
    // The editor shows the saved voice, with its clip.
    await panel.locator('.clip-status', { hasText: 'A reference clip is stored for this voice.' }).waitFor();
    assert.deepEqual(pageErrors, []);
  });
});
