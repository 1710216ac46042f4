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
import { eventually } from './support/eventually.ts';
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

/** axe-core on the page as it is: no serious or critical WCAG 2.x A/AA violation. */
async function checkAxe(view: string): Promise<void> {
  // Evaluated over the DevTools protocol: the page's CSP (script-src 'self') does not apply.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE);
  // Colours are judged when still: a message fading in is not yet at its contrast.
  await page.evaluate(() => Promise.all(document.getAnimations().filter((a) => a.effect?.getComputedTiming().iterations !== Infinity).map((a) => a.finished.catch(() => undefined))));
  const found = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }> } }).axe;
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] } });
    return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 4).map((n) => n.target.join(' ')).join(' | ')}`);
  });
  assert.deepEqual(found, [], `axe on ${view}`);
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
      assert.doesNotMatch(await page.locator('.characters-panel').innerText(), /\b[A-Z]{3,}_[A-Z_]+\b|payload|HTTP \d/, 'no setting names or protocol words in the editor');
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
      assert.doesNotMatch(text, /payload|top_k|llm_|LLM|request_id|HTTP \d/);
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

    test('a reply whose speech failed says so in its bubble (no toast), with a Retry; one stopped by the user says it was stopped', async () => {
      engines.speech.enqueue({ failure: { status: 500 } }, { failure: { status: 500 } }, { failure: { status: 500 } });
      engines.chat.enqueue({ tokens: tokenize('Nothing of this can be spoken. Nor this.') });
      await openApp();
      await typeAndSend('Ada, say it.');
      const reply = page.locator('.msg-char.is-cut[data-cut="speech"]');
      await reply.waitFor();
      assert.match(String(await reply.locator('.msg-cut-reason').textContent()), /could not be spoken/);
      assert.ok(await reply.locator('.msg-retry').isVisible());
      assert.equal(await page.locator('.toast').count(), 0);

      engines.speech.script();
      engines.chat.enqueue({ tokens: tokenize('A long answer to be stopped. It has a second sentence too, and more.') });
      await typeAndSend('Ada, go on.');
      await page.locator('.msg-char.is-speaking').waitFor();
      await page.locator('.stop-btn').click();
      const stopped = page.locator('.msg-char.is-cut[data-cut="stopped"]');
      await stopped.waitFor();
      assert.match(String(await stopped.locator('.msg-cut-reason').textContent()), /Stopped before the end/);
      assert.ok(await stopped.locator('.msg-retry').isVisible(), 'the last reply can be retried');
      assert.ok(!(await reply.locator('.msg-retry').isVisible()), 'an earlier one cannot (regenerate is for the last)');
    });

    test('a toast during the chat does not cover the user message', async () => {
      await openApp();
      // The server's answers are held back: the message is shown, the conversation not stored yet.
      proxy.policy = () => 'drop';
      await typeAndSend('Zed, are you here?');
      await page.locator('.msg-user').waitFor();
      await page.locator('.export-menu > summary').click();
      await page.locator('.export-markdown').click();
      const toast = page.locator('.toast', { hasText: 'nothing to export' });
      await toast.waitFor();
      assert.ok(await topmostAtCentre('.toast'));
      const [t, u] = [await toast.boundingBox(), await page.locator('.msg-user').boundingBox()];
      assert.ok(t && u);
      const overlaps = t.x < u.x + u.width && u.x < t.x + t.width && t.y < u.y + u.height && u.y < t.y + t.height;
      assert.ok(!overlaps, `the toast ${JSON.stringify(t)} covers the user's message ${JSON.stringify(u)}`);
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

    test('keyboard: box focused on load, skip link, `/` focuses the box, Esc stops playback from anywhere', async () => {
      engines.chat.enqueue({ tokens: tokenize('One long sentence to speak for a while here. And a second sentence to keep the voice going on.') });
      const conn = await openApp();
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'message-box', 'the message box has focus on load');
      // The skip link is the first Tab stop and leads to the box.
      // Start from the top of the page (the body focused), as on arrival.
      await page.evaluate(() => {
        document.body.tabIndex = -1;
        document.body.focus();
        document.body.removeAttribute('tabindex');
      });
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement?.className), 'skip-link');
      assert.ok(await topmostAtCentre('.skip-link'), 'the focused skip link is visible');
      await page.keyboard.press('Enter');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'message-box');
      // `/` from elsewhere focuses the box; typed in a field it is just a character.
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      await page.keyboard.press('/');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'message-box');
      await page.keyboard.type('a/b');
      assert.equal(await page.locator('.composer-input').inputValue(), 'a/b');
      await page.locator('.composer-input').fill('');
      // Esc while focus is on a message (not the box) stops the speaking reply.
      await typeAndSend('Ada, talk.');
      await page.locator('.msg-char.is-speaking').waitFor();
      await page.locator('.msg-user').focus();
      await page.keyboard.press('Escape');
      await proxy.waitFor(() => conn.clientMessages('interrupt')[0], 'interrupt sent');
      await page.locator('.msg-char.is-speaking').waitFor({ state: 'detached' });
      // Focus is visible (a :focus-visible outline) on a focused control.
      await page.keyboard.press('Tab');
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement as Element).outlineStyle);
      assert.notEqual(outline, 'none');
    });

    test('focus kept: Enter on a character row keeps focus on the row; Esc while renaming returns it to the rename control', async () => {
      engines.chat.enqueue({ tokens: tokenize('Hello.') });
      await openApp();
      await typeAndSend('Ada, hi.');
      await page.locator('.msg-char .msg-text', { hasText: 'Hello.' }).waitFor();
      await page.locator('.conv-row .conv-rename').first().waitFor({ state: 'attached' });
      if (await page.locator('.menu-btn').isVisible()) await page.locator('.menu-btn').click();
      const rename = page.locator('.conv-row .conv-rename').first();
      const id = await page.locator('.conv-row').first().getAttribute('data-id');
      await rename.focus();
      await page.keyboard.press('Enter');
      await page.locator('.conv-title-input').waitFor();
      await page.keyboard.press('Escape');
      await page.locator('.conv-title-input').waitFor({ state: 'detached' });
      await page.waitForFunction((cid) => document.activeElement?.closest(`.conv-row[data-id="${cid}"]`) !== null && document.activeElement?.classList.contains('conv-rename'), id);

      await page.locator('.nav-characters').click();
      const row = page.locator('.char-row', { hasText: 'Ada' });
      await row.focus();
      await page.keyboard.press('Enter');
      await page.locator('.char-form h3', { hasText: 'Edit Ada' }).waitFor();
      assert.equal(await page.evaluate(() => (document.activeElement as HTMLElement | null)?.classList.contains('char-row') && (document.activeElement as HTMLElement).textContent?.includes('Ada')), true, 'focus stays on the row');
    });

    test('the drawer closes on Esc, an outside tap, New conversation and opening a panel (phone); axe finds nothing serious', async () => {
      await openApp();
      if (size.name === 'phone') {
        const drawerOpen = () => page.evaluate(() => document.body.classList.contains('sidebar-open'));
        const menu = page.locator('.menu-btn');
        await menu.click();
        assert.ok(await drawerOpen());
        await checkAxe('drawer open');
        await page.keyboard.press('Escape');
        assert.ok(!(await drawerOpen()), 'Esc closes it');
        assert.equal(await page.evaluate(() => document.activeElement?.classList.contains('menu-btn')), true, 'focus back on the menu button');
        await menu.click();
        await page.mouse.click(370, 500);
        assert.ok(!(await drawerOpen()), 'a tap outside closes it');
        await menu.click();
        await page.locator('.new-chat').click();
        assert.ok(!(await drawerOpen()), 'New conversation closes it');
        await menu.click();
        await page.locator('.nav-settings').click();
        await page.locator('.settings-panel').waitFor();
        assert.ok(!(await drawerOpen()), 'opening a panel closes it');
        await page.locator('.settings-panel .panel-close').click();
        assert.ok(!(await drawerOpen()), 'and it stays closed when the panel closes');
        assert.ok(await topmostAtCentre('.menu-btn'), 'the menu button is not covered');
        // Choosing a conversation closes it too.
        engines.chat.enqueue({ tokens: tokenize('Hi.') });
        await typeAndSend('Ada, hello.');
        await page.locator('.msg-char:not(.is-replying)').waitFor();
        await menu.click();
        await page.locator('.conv-row .conv-open').first().click();
        assert.ok(!(await drawerOpen()), 'choosing a conversation closes it');
      }
      await checkAxe('main');
      await page.emulateMedia({ colorScheme: 'light' });
      await checkAxe('main, light theme');
      await page.emulateMedia({ colorScheme: 'dark' });
      for (const [nav, panel] of [['.nav-characters', '.characters-panel'], ['.nav-voices', '.voices-panel'], ['.nav-personas', '.personas-panel'], ['.nav-lorebooks', '.lorebooks-panel'], ['.nav-settings', '.settings-panel'], ['.nav-connection', '.connection-panel']] as const) {
        await openNav(nav);
        await page.locator(`dialog${panel}[open]`).waitFor();
        await checkAxe(panel);
        if (panel === '.characters-panel') {
          await page.locator('.char-row', { hasText: 'Ada' }).click();
          await page.locator('.char-form h3', { hasText: 'Edit Ada' }).waitFor();
          await checkAxe('the character editor with Ada open');
        }
        await page.locator(`${panel} .panel-close`).click();
        await page.locator(`dialog${panel}`).waitFor({ state: 'detached' });
      }
      await page.locator('.listening-btn').click();
      await page.locator('dialog.listening-panel[open]').waitFor();
      await checkAxe('.listening-panel');
    });

    test('replies: markdown, *actions* as narration, raw HTML inert; search highlights and jumps; export as Markdown and JSON', async () => {
      engines.chat.enqueue({ tokens: tokenize('*waves* Hello **friend**. <img src=x onerror="window.__pwned=1"> and a lighthouse.') });
      await openApp();
      await typeAndSend('Ada, greet me.');
      const text = page.locator('.msg-char .msg-text');
      await text.locator('strong', { hasText: 'friend' }).waitFor();
      await page.locator('.msg-char:not(.is-replying)').waitFor();
      assert.equal(await text.locator('em.narration').textContent(), 'waves');
      assert.equal(await text.locator('img').count(), 0, 'no picture element from a reply');
      assert.match(String(await text.textContent()), /<img src=x onerror=/);
      assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);

      await page.locator('.search-open').click();
      await page.locator('.search-input').fill('lighthouse');
      await page.locator('.search-count', { hasText: '1 of 1' }).waitFor();
      assert.equal(await page.evaluate(() => CSS.highlights.get('chorus-search')?.size), 1);
      assert.equal(await page.locator('.msg-char.is-search-current').count(), 1);
      await page.locator('.search-input').fill('zebra');
      await page.locator('.search-count', { hasText: 'No matches' }).waitFor();
      await page.locator('.search-input').press('Escape');

      // Export reads what is stored: the reply is, once its playback has ended.
      const conversationId = String(await page.evaluate(() => localStorage.getItem('chorus.conversation')));
      await eventually(async () => ((await chorus.repo.listMessages({ conversation_id: conversationId })).length === 2 ? true : undefined), 'the reply stored');
      await page.locator('.export-menu > summary').click();
      const [md] = await Promise.all([page.waitForEvent('download'), page.locator('.export-markdown').click()]);
      const markdown = readFileSync(String(await md.path()), 'utf8');
      assert.match(markdown, /\*\*Ada\*\*/);
      assert.match(markdown, /Ada, greet me\./);
      await page.locator('.export-menu > summary').click();
      const [js] = await Promise.all([page.waitForEvent('download'), page.locator('.export-json').click()]);
      const json = JSON.parse(readFileSync(String(await js.path()), 'utf8')) as { messages: { content: string }[] };
      assert.equal(json.messages.length, 2);
      assert.match(json.messages[1]!.content, /lighthouse/);
    });

    test('status line shows replying and speaking at once; latency readout; distinct avatar colours; a deleted character keeps its picture', async () => {
      const picture = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
      const pip = await chorus.repo.createCharacter({ name: 'Pip Sprocket', system_prompt: 'p', image_url: picture, is_active: false });
      await chorus.repo.createCharacter({ name: 'Narrator', system_prompt: 'n', is_active: false });
      await chorus.repo.createCharacter({ name: 'Harlan Graves', system_prompt: 'h', is_active: false });
      await page.addInitScript(() => localStorage.setItem('chorus.latency', 'on'));
      engines.chat.enqueue({ tokens: tokenize('First sentence is spoken now. Then more words come slowly one by one until the end.'), tokenDelayMs: 120 });
      await openApp();
      await typeAndSend('Ada, speak.');
      await page.locator('.activity', { hasText: /replying.*speaking/ }).waitFor();
      await page.locator('.latency', { hasText: /first text \d+ ms · first audio \d+ ms/ }).waitFor();
      await page.locator('.msg-char:not(.is-replying)').waitFor();
      // Distinct colours: every character's avatar in the Characters panel has its own hue.
      await openNav('.nav-characters');
      await page.locator('.char-row', { hasText: 'Pip Sprocket' }).waitFor();
      // (By the name hash alone, Pip Sprocket and Narrator were 3° apart.)
      const hues = await page.locator('.char-row .avatar').evaluateAll((els) => els.map((el) => Number((el as HTMLElement).style.getPropertyValue('--avatar-hue'))));
      assert.equal(hues.length, 4);
      for (let i = 0; i < hues.length; i++) {
        for (let j = i + 1; j < hues.length; j++) {
          const d = Math.abs(hues[i]! - hues[j]!) % 360;
          assert.ok(Math.min(d, 360 - d) >= 30, `hues ${hues.join(', ')}: ${hues[i]} and ${hues[j]} are too close`);
        }
      }
      await page.locator('.characters-panel .panel-close').click();

      // Pip's picture was seen (the characters list); a line of Pip's is stored, then Pip is deleted.
      await page.waitForFunction(() => (localStorage.getItem('chorus.pictures') ?? '').includes('data:image/png'));
      const convId = String(await page.evaluate(() => localStorage.getItem('chorus.conversation')));
      await chorus.repo.createMessage({ conversation_id: convId, role: 'assistant', name: 'Pip Sprocket', character_id: pip.id, content: 'An old line from Pip.' });
      await chorus.repo.deleteCharacter(pip.id);
      await page.reload();
      await page.locator('.conn-pill[data-state="connected"]').waitFor();
      const old = page.locator('.msg-char', { hasText: 'An old line from Pip.' });
      await old.waitFor();
      assert.equal(await old.locator('.avatar img').getAttribute('src'), picture);
    });

    test('Create / Save is on screen without scrolling in the character, voice and persona editors', async () => {
      await openApp();
      for (const [nav, panel, button] of [
        ['.nav-characters', '.characters-panel', '.char-form .save'],
        ['.nav-voices', '.voices-panel', 'form.voice-form .save'],
        ['.nav-personas', '.personas-panel', '.persona-form .save-persona'],
      ] as const) {
        await openNav(nav);
        const save = page.locator(button);
        await save.waitFor();
        const box = await save.boundingBox();
        assert.ok(box);
        assert.ok(box.y >= 0 && box.y + box.height <= size.height, `${button} is at y=${box.y} in a ${size.height}px window`);
        assert.ok(await topmostAtCentre(button), `nothing covers ${button}`);
        await page.locator(`${panel} .panel-close`).click();
        await page.locator(`dialog${panel}`).waitFor({ state: 'detached' });
      }
    });
  });
}
