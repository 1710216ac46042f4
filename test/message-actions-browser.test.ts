// The web client's message actions and the display of a cut reply, in headless Chromium
// (playwright-core) against the real server: the built client (web/dist), a loopback LLM and a
// loopback speech server that makes audio in real time. A recording proxy between page and
// server shows what the page sent. Every wait is on page, proxy or database state.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Message } from '../src/protocol.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import { launchBrowser, type ProxyConnection, TestProxy } from './support/browser.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const WEB_DIST = 'web/dist';
const SAMPLE_RATE = 24_000;
const REPLY = 'First sentence is here. Second sentence follows now. Third one ends it all.';

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

beforeEach(async () => {
  engines.reset();
  proxy.policy = undefined;
  await resetData((await openTestDatabases())[0]!.database);
  await chorus.repo.createVoice({ voice: 'ada-voice', engine: 'openai', engine_voice: 'nova' });
  await chorus.repo.createCharacter({ name: 'Ada', voice: 'ada-voice', system_prompt: 'You are Ada.' });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: proxy.url });
  page = await context.newPage();
  pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

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

const conversationOf = (conn: ProxyConnection) => String(conn.serverMessages('session')[0]?.data?.conversation_id);

const stored = (conversationId: string, ready: (m: Message[]) => boolean) =>
  eventually(async () => {
    const messages = await chorus.repo.listMessages({ conversation_id: conversationId });
    return ready(messages) ? messages : undefined;
  }, 'the stored messages');

/** Milliseconds of a message's audio the server sent. */
function sentMs(conn: ProxyConnection, messageId: string): number {
  let bytes = 0;
  const all = conn.fromServer;
  for (let i = 0; i < all.length - 1; i++) {
    const f = all[i]!;
    if (f.json?.type === 'audio_chunk' && f.json.data?.message_id === messageId && all[i + 1]!.binary) bytes += all[i + 1]!.data.length;
  }
  return bytes / 2 / (SAMPLE_RATE / 1000);
}

describe('a cut reply', () => {
  test('Stop sends playback_position, then the unheard rest is shown greyed out and the kept text is stored', async () => {
    engines.chat.enqueue({ tokens: tokenize(REPLY) });
    const conn = await openApp();
    await typeAndSend('Ada, say three things.');
    const reply = page.locator('.msg-char');
    await reply.locator('.msg-text', { hasText: 'Third one' }).waitFor();
    const messageId = String(await reply.getAttribute('data-message-id'));
    await proxy.waitFor(() => (sentMs(conn, messageId) > 2500 ? true : undefined), '2.5 s of audio sent');
    await page.locator('.stop-btn').click();

    const truncated = await proxy.waitFor(() => conn.serverMessages('message_truncated')[0], 'message_truncated');
    const position = conn.clientMessages('playback_position')[0];
    assert.equal(position?.data?.message_id, messageId, 'the page said how much it played');
    assert.ok(Number(position?.data?.played_ms) > 0);
    const types = conn.clientMessages().map((m) => m.type);
    assert.ok(types.indexOf('playback_position') < types.indexOf('interrupt'), 'before the interrupt');

    const kept = String(truncated.data?.text);
    assert.ok(kept.length < REPLY.length && REPLY.startsWith(kept), `a prefix: "${kept}"`);
    await page.locator('.msg-char.is-truncated').waitFor();
    assert.equal(await reply.locator('.msg-unheard').textContent(), REPLY.slice(kept.length));
    assert.equal(await reply.locator('.msg-text').textContent(), REPLY, 'all of it is still shown');
    assert.match((await reply.locator('.msg-status').textContent()) ?? '', /interrupted/);
    const color = await reply.locator('.msg-unheard').evaluate((el) => getComputedStyle(el).textDecorationLine);
    assert.equal(color, 'line-through');

    const messages = await stored(conversationOf(conn), (m) => m.length === 2);
    assert.equal(messages[1]!.content, kept);
    assert.equal(messages[1]!.status, 'interrupted');

    // Reopened, the conversation shows just what was kept.
    await page.reload();
    await page.locator('.conn-pill[data-state="connected"]').waitFor();
    await page.locator('.msg-char .msg-text', { hasText: kept.slice(0, 20) }).waitFor();
    assert.equal(await page.locator('.msg-char .msg-text').textContent(), kept);
  });
});

describe('message actions', () => {
  test('regenerate, versions by button and keyboard, continue, edit in place, copy and delete', async () => {
    engines.chat.enqueue({ tokens: tokenize('Alpha reply.') });
    const conn = await openApp();
    const conversation = conversationOf(conn);
    await typeAndSend('Ada, hello');
    const reply = page.locator('.msg-char');
    await reply.locator('.msg-text', { hasText: 'Alpha reply.' }).waitFor();
    // Stored once played: acting on a reply still playing would cut it to what was heard.
    await stored(conversation, (m) => m.length === 2);

    // The actions show on hover.
    const actions = reply.locator('.msg-actions');
    assert.equal(await actions.evaluate((el) => getComputedStyle(el).visibility), 'hidden');
    await reply.hover();
    await page.waitForFunction(() => getComputedStyle(document.querySelector('.msg-char .msg-actions')!).visibility === 'visible');

    engines.chat.enqueue({ tokens: tokenize('Beta reply.') });
    await reply.locator('.msg-act-regenerate').click();
    await reply.locator('.msg-versions', { hasText: '2/2' }).waitFor();
    assert.equal(await reply.locator('.msg-text').textContent(), 'Beta reply.');
    assert.equal(await page.locator('.msg-char').count(), 1, 'the same bubble');

    await reply.locator('.msg-act-prev').click();
    await reply.locator('.msg-versions', { hasText: '1/2' }).waitFor();
    assert.equal(await reply.locator('.msg-text').textContent(), 'Alpha reply.');

    // Keyboard: the focused message takes → (next version) and C (continue).
    await reply.focus();
    await page.keyboard.press('ArrowRight');
    await reply.locator('.msg-versions', { hasText: '2/2' }).waitFor();
    engines.chat.enqueue({ tokens: [' And', ' more.'] });
    await page.keyboard.press('c');
    await reply.locator('.msg-text', { hasText: 'Beta reply. And more.' }).waitFor();
    await stored(conversation, (m) => m[1]?.content === 'Beta reply. And more.');

    // Edit the user's message in place.
    const user = page.locator('.msg-user');
    await user.hover();
    await user.locator('.msg-act-edit').click();
    await user.locator('textarea.msg-edit').fill('Ada, hello there');
    await user.locator('textarea.msg-edit').press('Enter');
    await user.locator('.msg-text', { hasText: 'Ada, hello there' }).waitFor();

    // Copy puts the text on the clipboard.
    await reply.hover();
    await reply.locator('.msg-act-copy').click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'Beta reply. And more.');

    let messages = await stored(conversation, (m) => m[0]?.content === 'Ada, hello there' && m[1]?.content === 'Beta reply. And more.');
    assert.deepEqual(messages[1]!.alternatives, ['Alpha reply.', 'Beta reply. And more.']);
    assert.equal(messages[1]!.alternative_index, 1);

    // The next prompt is built from what the page shows.
    engines.chat.enqueue({ tokens: tokenize('Gamma.') });
    await typeAndSend('Ada, next');
    const [, , , prompt] = await engines.chat.waitForRequests(4);
    assert.deepEqual(prompt!.body.messages!.slice(1).map((m) => m.content), ['Ada, hello there', 'Beta reply. And more.', 'Ada, next']);
    await page.locator('.msg-char .msg-text', { hasText: 'Gamma.' }).waitFor();

    // Delete the first reply.
    await reply.first().hover();
    await reply.first().locator('.msg-act-delete').click();
    await page.waitForFunction(() => document.querySelectorAll('.msg-char').length === 1);
    messages = await stored(conversation, (m) => m.length === 3);
    assert.deepEqual(messages.map((m) => m.content), ['Ada, hello there', 'Ada, next', 'Gamma.']);
  });

  test('a failed reply has a retry button that asks for the reply again', async () => {
    engines.chat.enqueue({ tokens: [], failure: { status: 500 } });
    const conn = await openApp();
    await typeAndSend('Ada, are you there?');
    const failed = page.locator('.msg-char.is-failed');
    await failed.waitFor();
    engines.chat.enqueue({ tokens: tokenize('Here I am.') });
    await failed.locator('.msg-retry').click();
    await page.locator('.msg-char .msg-text', { hasText: 'Here I am.' }).waitFor();
    assert.equal(conn.clientMessages('regenerate').length, 1);
    assert.equal(await page.locator('.msg-char.is-failed').count(), 0, 'the empty failed reply made way for the new one');
    const messages = await stored(conversationOf(conn), (m) => m.length === 2);
    assert.deepEqual(messages.map((m) => m.content), ['Ada, are you there?', 'Here I am.']);
  });
});
