// The connection panel and the listening controls in headless Chromium, at 1280×800 and 390×844,
// against the real server (the built client), a loopback LLM / speech-input server
// (engine-server) and real espeak speech: a server without a working language model leads to the
// panel from its first screen; the panel sets the LLM (models listed, tested, saved), a message
// gets its reply, and after a restart on the same database it is still set; muted playback sends
// nothing to the output (an AnalyserNode put in front of the destination hears it); the chosen
// microphone's deviceId reaches getUserMedia (Chromium's fake devices); no mic button without
// speech input, and the controls say why in plain words.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Database } from '../src/db/client.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';
import { createOpenAiSttEngine } from '../src/transcribe/engines/openai.ts';
import type { ChorusDebug } from '../web/src/debug.ts';
import { launchBrowser } from './support/browser.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const WEB_DIST = 'web/dist';
const KEY = 'sk-setup-browser-0123456789-k3y9';
const SECRETS_KEY = 'cd'.repeat(32);
/** A port nothing listens on: the language model is unreachable. */
const NOWHERE = 'http://127.0.0.1:9/v1';
const SIZES = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'phone', width: 390, height: 844 },
] as const;
/** Set by `npm run screenshots`: the views this file opens are saved there too. */
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR;

let engines: EngineServer;
let tts: TtsEngine;
let database: Database;
let browser: Browser;
let context: BrowserContext | undefined;
let page: Page;
let pageErrors: string[] = [];
const servers: ChorusUnderTest[] = [];

declare global {
  interface Window {
    __chorus: ChorusDebug;
    /** The loudest sample heard at the output, and how many times it was sampled while sources played. */
    __output: { peak: number; samplesWhilePlaying: number; reset(): void };
    __gumCalls: MediaStreamConstraints[];
    __rates: number[];
  }
}

before(async () => {
  assert.ok(existsSync(join(WEB_DIST, 'index.html')), `${WEB_DIST} is not built: run npm run build:web`);
  const [db] = await openTestDatabases();
  assert.ok(db);
  database = db.database;
  engines = await startEngineServer({ requireApiKey: KEY });
  tts = await createEspeakEngine({ workers: 1 });
  browser = await launchBrowser(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream']);
});

beforeEach(async () => {
  engines.reset();
  await resetData(database);
  pageErrors = [];
});

afterEach(async () => {
  await context?.close();
  context = undefined;
  for (const s of servers.splice(0)) {
    await s.settled();
    await s.close();
  }
  assert.deepEqual(pageErrors, [], 'the page threw');
});

after(async () => {
  await browser?.close();
  await engines?.close();
  await tts?.close();
});

// ───────────────────────────── helpers ─────────────────────────────

async function serve(env: Record<string, string>, opts: { speech?: boolean; stt?: boolean } = {}): Promise<ChorusUnderTest> {
  const stt = opts.stt ? createOpenAiSttEngine({ baseUrl: engines.baseUrl, apiKey: KEY, model: 'whisper-1', language: 'en', timeoutMs: 3000 }) : undefined;
  const chorus = await startChorus({ database, env: { WEB_DIR: WEB_DIST, SECRETS_KEY, ...env }, ...(opts.speech ? { tts } : {}), ...(stt ? { stt } : {}) });
  servers.push(chorus);
  await chorus.repo.ensureStarterCast();
  // Talkativeness 0: only the characters a message names answer.
  for (const c of await chorus.repo.listCharacters()) await chorus.repo.updateCharacter({ id: c.id, talkativeness: 0 });
  return chorus;
}

async function newPage(size: (typeof SIZES)[number]): Promise<Page> {
  context = await browser.newContext({ viewport: { width: size.width, height: size.height }, deviceScaleFactor: 1, colorScheme: 'dark' });
  await context.grantPermissions(['microphone']);
  // As source text, with the helper tsx's transform may call (esbuild's keepNames __name).
  await context.addInitScript({ content: `var __name = (f) => f; (${tapOutput.toString()})();` });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  return page;
}

async function openApp(chorus: ChorusUnderTest): Promise<void> {
  await page.goto(`${chorus.httpUrl}/`);
  await page.waitForFunction(() => window.__chorus?.connection.state === 'connected' && window.__chorus.connection.sessions >= 1);
}

async function send(text: string): Promise<void> {
  await page.locator('.composer-input').fill(text);
  await page.locator('.composer-input').press('Enter');
}

/** Opens the connection panel from the side navigation (the drawer on a phone). */
async function openConnectionFromNav(): Promise<void> {
  if (await page.locator('.menu-btn').isVisible()) await page.locator('.menu-btn').click();
  await page.locator('.nav-connection').click();
  await page.locator('dialog.connection-panel .endpoint-llm').waitFor();
}

async function closePanel(cls: string): Promise<void> {
  await page.locator(`dialog.${cls} .panel-close`).click();
  await page.locator(`dialog.${cls}`).waitFor({ state: 'detached' });
}

async function shot(name: string, size: (typeof SIZES)[number]): Promise<void> {
  if (SCREENSHOT_DIR) await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-${size.name}.png`), animations: 'disabled' });
}

/**
 * Runs in the page before its scripts: every connection to the speakers (an AudioDestinationNode)
 * goes through one AnalyserNode instead, which is sampled every 10 ms; the loudest sample is
 * kept, and how often it was sampled while the player had sources playing. So what reaches the
 * output is measured on the real audio graph, whatever the player does inside.
 */
function tapOutput(): void {
  const taps = new WeakMap<BaseAudioContext, AnalyserNode>();
  const output = { peak: 0, samplesWhilePlaying: 0, reset: () => ((output.peak = 0), (output.samplesWhilePlaying = 0)) };
  window.__output = output;
  const connect = AudioNode.prototype.connect as (this: AudioNode, ...args: unknown[]) => unknown;
  AudioNode.prototype.connect = function (this: AudioNode, destination: unknown, ...rest: unknown[]) {
    if (destination instanceof AudioDestinationNode) {
      let tap = taps.get(destination.context);
      if (!tap) {
        tap = destination.context.createAnalyser();
        tap.fftSize = 2048;
        connect.call(tap, destination);
        taps.set(destination.context, tap);
        const samples = new Float32Array(tap.fftSize);
        const analyser = tap;
        window.setInterval(() => {
          analyser.getFloatTimeDomainData(samples);
          let peak = 0;
          for (const s of samples) peak = Math.max(peak, Math.abs(s));
          output.peak = Math.max(output.peak, peak);
          if ((window.__chorus?.playback.activeSources ?? 0) > 0) output.samplesWhilePlaying++;
        }, 10);
      }
      return connect.call(this, tap, ...rest);
    }
    return connect.call(this, destination, ...rest);
  } as typeof AudioNode.prototype.connect;
  // Every AudioBufferSourceNode.start(): the rate it plays at.
  window.__rates = [];
  const start = AudioBufferSourceNode.prototype.start as (this: AudioBufferSourceNode, ...args: unknown[]) => void;
  AudioBufferSourceNode.prototype.start = function (this: AudioBufferSourceNode, ...args: unknown[]) {
    window.__rates.push(this.playbackRate.value);
    return start.call(this, ...args);
  } as typeof AudioBufferSourceNode.prototype.start;
  // getUserMedia's constraints, as the page asked for them.
  window.__gumCalls = [];
  const media = navigator.mediaDevices;
  if (media) {
    const gum = media.getUserMedia.bind(media);
    media.getUserMedia = (constraints?: MediaStreamConstraints) => {
      window.__gumCalls.push(JSON.parse(JSON.stringify(constraints ?? {})) as MediaStreamConstraints);
      return gum(constraints);
    };
  }
}

// ───────────────────────────── the connection panel ─────────────────────────────

for (const size of SIZES) {
  describe(`setup inside the app at ${size.width}×${size.height}`, () => {
    test('without a working language model the first screen says so, the status is not "Connected", and sending leads to the connection panel', async () => {
      const chorus = await serve({ LLM_BASE_URL: NOWHERE, LLM_API_KEY: 'k' });
      await newPage(size);
      await openApp(chorus);
      // The check of the unreachable endpoint may finish after this session began: it is pushed then.
      await page.waitForFunction(() => window.__chorus.connection.llm === 'unreachable');
      const notice = page.locator('.setup-notice');
      await notice.waitFor();
      assert.match((await notice.textContent()) ?? '', /language model .* not answering/);
      assert.equal((await page.locator('.conn-pill').textContent())?.trim(), 'Needs setup');
      await shot('setup-notice', size);

      await send('Mira, are you there?');
      await page.locator('dialog.connection-panel .endpoint-llm').waitFor();
      assert.equal(await page.locator('.composer-input').inputValue(), 'Mira, are you there?', 'the message stays in the box');
      assert.equal(engines.chat.requests.length, 0);
      const sent = await page.evaluate(() => window.__chorus.connection.sent);
      assert.ok(!sent.includes('user_message'), 'nothing was sent to fail');
      await closePanel('connection-panel');
      await page.locator('.setup-open').click();
      await page.locator('dialog.connection-panel .endpoint-llm').waitFor();
    });

    test('the connection panel sets the language model: models listed, tested, saved; a message is answered; after a restart it is still set', async () => {
      let chorus = await serve({ LLM_BASE_URL: NOWHERE, LLM_API_KEY: '' });
      await newPage(size);
      await openApp(chorus);
      await page.locator('.setup-notice').waitFor();
      await page.locator('.setup-open').click();
      const llm = page.locator('dialog.connection-panel .endpoint-llm');
      await llm.waitFor();
      await llm.locator('input[name="base_url"]').fill(engines.baseUrl);
      await llm.locator('input[name="api_key"]').fill(KEY);
      await llm.locator('.load-models').click();
      await llm.locator('datalist option[value="test-model"]').waitFor({ state: 'attached' });
      await llm.locator('input[name="model"]').fill('test-model');
      await llm.locator('.test-endpoint').click();
      await llm.locator('.endpoint-result[data-ok="true"]', { hasText: 'test-model' }).waitFor();
      await shot('connection-tested', size);
      await llm.locator('.save-endpoint').click();
      await llm.locator('.endpoint-result', { hasText: 'Saved: the language model answers.' }).waitFor();
      assert.match((await llm.locator('input[name="api_key"]').getAttribute('placeholder')) ?? '', /ends in k3y9/);
      assert.equal(await llm.locator('input[name="api_key"]').inputValue(), '', 'the key is not shown again');
      await closePanel('connection-panel');
      await page.locator('.setup-notice').waitFor({ state: 'hidden' });
      assert.equal((await page.locator('.conn-pill').textContent())?.trim(), 'Connected');

      // Talk: the session opened before the save now gets its reply from the new endpoint.
      await send('Mira, can you hear the new model?');
      await page.locator('.msg-char .msg-text', { hasText: 'Reply to: Mira, can you hear the new model?' }).waitFor();
      assert.equal(engines.chat.requests.at(-1)?.headers.authorization, `Bearer ${KEY}`);

      // Restart on the same database: still set (the page's socket is cut by the shutdown).
      servers.splice(servers.indexOf(chorus), 1);
      await chorus.close();
      chorus = await serve({ LLM_BASE_URL: NOWHERE, LLM_API_KEY: '' });
      await openApp(chorus);
      assert.equal((await page.locator('.conn-pill').textContent())?.trim(), 'Connected');
      assert.equal(await page.locator('.setup-notice').isVisible(), false);
      await openConnectionFromNav();
      assert.equal(await llm.locator('input[name="base_url"]').inputValue(), engines.baseUrl);
      assert.equal(await llm.locator('input[name="model"]').inputValue(), 'test-model');
      assert.match((await llm.locator('.endpoint-status').textContent()) ?? '', /Set in the app/);
      await closePanel('connection-panel');
      await send('Mira, still there after the restart?');
      await page.locator('.msg-char .msg-text', { hasText: 'Reply to: Mira, still there after the restart?' }).waitFor();
    });
  });

  // ───────────────────────────── listening controls ─────────────────────────────

  describe(`listening controls at ${size.width}×${size.height}`, () => {
    test('muted playback sends no audio to the output; unmuted, the same reply is heard', async () => {
      const chorus = await serve({ LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: KEY }, { speech: true });
      await newPage(size);
      await openApp(chorus);
      await page.locator('.listening-btn').click();
      await page.locator('dialog.listening-panel input[name="muted"]').check();
      await closePanel('listening-panel');
      assert.equal(await page.evaluate(() => window.__chorus.listening?.muted), true);

      const line = 'Quiet as the stars tonight, every word of it.';
      engines.chat.enqueue({ tokens: tokenize(line) }, { tokens: tokenize(line) });
      await page.evaluate(() => window.__output.reset());
      await send('Mira, say something.');
      // The reply's audio plays (sources started on the clock) for a while, and ends.
      await page.waitForFunction(() => window.__chorus.playback.scheduledFrames > 0 && window.__output.samplesWhilePlaying >= 20, undefined, { timeout: 20_000 });
      await page.waitForFunction(() => window.__chorus.playback.activeSources === 0 && document.querySelectorAll('.msg-char.is-speaking').length === 0, undefined, { timeout: 30_000 });
      const muted = await page.evaluate(() => ({ ...window.__output }));
      assert.equal(muted.peak, 0, `muted, yet the output carried audio (peak ${muted.peak})`);

      // Unmuted (kept in localStorage across a reload): the output carries the speech.
      await page.locator('.listening-btn').click();
      await page.locator('dialog.listening-panel input[name="muted"]').uncheck();
      await closePanel('listening-panel');
      await page.reload();
      await page.waitForFunction(() => window.__chorus?.connection.state === 'connected' && window.__chorus.listening?.muted === false);
      await page.evaluate(() => window.__output.reset());
      await send('Mira, say it again.');
      await page.waitForFunction(() => window.__output.peak > 0.01, undefined, { timeout: 20_000 });
    });

    test('speech off drops a reply’s audio; auto-play off holds the next until Play; at 1.5× its sources play at that rate', async () => {
      const chorus = await serve({ LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: KEY }, { speech: true });
      await newPage(size);
      await openApp(chorus);
      await page.locator('.listening-btn').click();
      await page.locator('dialog.listening-panel input[name="speech"]').uncheck();
      await closePanel('listening-panel');
      await send('Mira, say one thing.');
      await page.locator('.msg-char .msg-text', { hasText: 'Reply to: Mira, say one thing.' }).waitFor();
      await page.waitForFunction(() => window.__chorus.playback.discardedFrames >= 5, undefined, { timeout: 20_000 });
      assert.equal(await page.evaluate(() => window.__chorus.playback.scheduledFrames), 0, 'speech off, yet audio was scheduled');
      assert.deepEqual(await page.evaluate(() => window.__rates), []);

      await page.locator('.listening-btn').click();
      await page.locator('dialog.listening-panel input[name="speech"]').check();
      await page.locator('dialog.listening-panel input[name="autoplay"]').uncheck();
      await page.locator('dialog.listening-panel select[name="rate"]').selectOption('1.5');
      await closePanel('listening-panel');
      await send('Mira, say another thing.');
      await page.locator('.msg-char .msg-text', { hasText: 'Reply to: Mira, say another thing.' }).waitFor();
      const play = page.locator('.play-held');
      await play.waitFor();
      assert.equal(await page.evaluate(() => window.__chorus.playback.scheduledFrames), 0, 'auto-play off, yet the reply started');
      await play.click();
      await page.waitForFunction(() => window.__chorus.playback.scheduledFrames > 0);
      await play.waitFor({ state: 'hidden' });
      const rates = await page.evaluate(() => window.__rates);
      assert.ok(rates.length > 0 && rates.every((r) => r === 1.5), `source rates ${JSON.stringify(rates)}`);
    });

    test('the chosen microphone’s deviceId goes into getUserMedia, the level meter moves, and the choice is kept', async () => {
      const chorus = await serve({ LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: KEY }, { stt: true });
      await newPage(size);
      await openApp(chorus);
      await page.locator('.listening-btn').click();
      const select = page.locator('dialog.listening-panel select[name="mic"]');
      // Chromium's fake devices, listed by enumerateDevices.
      await page.waitForFunction(() => document.querySelectorAll('dialog.listening-panel select[name="mic"] option').length >= 2);
      const devices = await page.evaluate(async () => (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audioinput' && d.deviceId !== 'default').map((d) => d.deviceId));
      const chosen = devices.at(-1);
      assert.ok(chosen, `fake audio inputs: ${JSON.stringify(devices)}`);
      await select.selectOption(chosen);
      await closePanel('listening-panel');

      await page.locator('.mic-btn').click();
      await page.waitForFunction(() => window.__chorus.mic.on && window.__gumCalls.length > 0);
      const constraints = await page.evaluate(() => window.__gumCalls.at(-1));
      assert.deepEqual((constraints?.audio as MediaTrackConstraints).deviceId, { exact: chosen });
      const track = await page.evaluate(() => window.__chorus.mic.trackId);
      assert.ok(track);

      // The level meter in the controls follows the microphone (the fake device plays a beep).
      await page.locator('.listening-btn').click();
      await page.waitForFunction(() => Number(document.querySelector('dialog.listening-panel .level-meter')?.getAttribute('aria-valuenow')) > 0, undefined, { timeout: 10_000 });
      await shot('listening-mic', size);
      await closePanel('listening-panel');
      await page.locator('.mic-btn').click();
      await page.waitForFunction(() => !window.__chorus.mic.on);

      // Kept across a visit.
      await page.reload();
      await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');
      assert.equal(await page.evaluate(() => window.__chorus.listening?.micDeviceId), chosen);
      await page.locator('.listening-btn').click();
      await page.waitForFunction((id) => (document.querySelector('dialog.listening-panel select[name="mic"]') as HTMLSelectElement | null)?.value === id, chosen);
    });

    test('without speech input on the server there is no mic button, and the controls explain in plain words', async () => {
      const chorus = await serve({ LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: KEY });
      await newPage(size);
      await openApp(chorus);
      await page.waitForFunction(() => window.__chorus.connection.sessions >= 1);
      assert.equal(await page.locator('.mic-btn').isVisible(), false);
      await page.locator('.listening-btn').click();
      const why = (await page.locator('dialog.listening-panel .mic-unavailable').textContent()) ?? '';
      assert.match(why, /not available on this server/);
      assert.doesNotMatch(why, /STT_|WHISPER|user_message|environment variable/i, 'no server admin setup text');
      assert.equal(await page.locator('dialog.listening-panel select[name="mic"]').count(), 0);
    });
  });
}
