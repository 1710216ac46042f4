// The web client's cast bar in headless Chromium against the real server (web/dist served by the
// real app, a loopback LLM, no speech), with the recording proxy in between so the test sees the
// exact messages the page sends: add and remove members, mute, talkativeness, force-talk, the
// strategy, self-responses and auto-mode switches; each change stored with the conversation and
// shown again after a reload (the page resumes the conversation).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Character, Conversation } from '../src/protocol.ts';
import { launchBrowser, type ProxyConnection, TestProxy } from './support/browser.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const WEB_DIST = 'web/dist';
let llm: EngineServer;
let chorus: ChorusUnderTest;
let proxy: TestProxy;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
let ada: Character;
let bob: Character;
let cy: Character;

before(async () => {
  assert.ok(existsSync(join(WEB_DIST, 'index.html')), `${WEB_DIST} is not built: run npm run build:web`);
  const [db] = await openTestDatabases();
  assert.ok(db);
  await resetData(db.database);
  llm = await startEngineServer();
  chorus = await startChorus({ database: db.database, env: { WEB_DIR: WEB_DIST, LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', TTS_ENGINE: 'none', USER_NAME: 'Jay', REPLY_SEED: '7' } });
  ada = await chorus.repo.createCharacter({ name: 'Ada Lovelace', talkativeness: 0 });
  bob = await chorus.repo.createCharacter({ name: 'Bob', talkativeness: 0 });
  cy = await chorus.repo.createCharacter({ name: 'Cy Twombly', talkativeness: 0, is_active: false });
  proxy = await TestProxy.start(chorus.httpUrl);
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
});
after(async () => {
  await browser?.close();
  await proxy?.close();
  await chorus?.close();
  await llm?.close();
});

async function openApp(): Promise<ProxyConnection> {
  const before = proxy.connections.length;
  await page.goto(proxy.url);
  await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');
  return proxy.waitFor(() => proxy.connections[before], 'the page to connect');
}

/** The conversation as stored, once `ready` holds for it. */
async function storedConversation(id: string, ready: (c: Conversation) => boolean, what: string): Promise<Conversation> {
  return eventually(async () => {
    const c = await chorus.repo.getConversation(id);
    return ready(c) ? c : undefined;
  }, what);
}

const row = (name: string) => page.locator('.cast-member', { hasText: name });
const sent = (conn: ProxyConnection, type: string) => conn.clientMessages(type).map((m) => m.data);

describe('the cast bar', () => {
  test('add, remove, mute, talkativeness, force-talk, strategy and auto-mode: sent, stored, and shown after a reload', async () => {
    const conn = await openApp();
    const conversationId = await page.evaluate(() => window.__chorus.connection.conversationId);
    assert.ok(conversationId);
    await page.locator('.cast-bar .cast-names', { hasText: 'Ada, Bob' }).waitFor();
    await page.locator('.cast-bar').click();
    await row('Ada Lovelace').waitFor();
    assert.deepEqual(await page.locator('.cast-member .cast-member-name').allTextContents(), ['Ada Lovelace', 'Bob']);
    assert.equal(await page.locator('.cast-strategy').inputValue(), 'natural');
    assert.equal(await page.locator('.cast-auto').isChecked(), false);
    assert.equal(await page.locator('.cast-delay').inputValue(), '5');

    // Add Cy (not active: not in the default cast), then remove Ada.
    await page.locator('.cast-add-select').selectOption(cy.id);
    await page.locator('.cast-add-btn').click();
    await row('Cy Twombly').waitFor();
    await storedConversation(conversationId, (c) => c.active_characters.length === 3, 'Cy in the stored cast');
    await row('Ada Lovelace').locator('.cast-remove').click();
    await row('Ada Lovelace').waitFor({ state: 'detached' });
    await page.locator('.cast-bar .cast-names', { hasText: 'Bob, Cy' }).waitFor();
    assert.deepEqual(sent(conn, 'update_conversation').map((d) => (d as { active_characters?: string[] }).active_characters), [
      [ada.id, bob.id, cy.id],
      [bob.id, cy.id],
    ]);

    // Mute Bob; Cy's talkativeness to 1 (the character's own, over REST); the strategy and self-responses.
    await row('Bob').locator('.cast-mute').click();
    await row('Bob').locator('.cast-mute[aria-pressed="true"]').waitFor();
    await row('Cy Twombly').locator('.cast-talk').evaluate((el: HTMLInputElement) => {
      el.value = '1';
      el.dispatchEvent(new Event('input'));
      el.dispatchEvent(new Event('change'));
    });
    await row('Cy Twombly').locator('.cast-talk-value', { hasText: '100%' }).waitFor();
    await eventually(async () => ((await chorus.repo.getCharacter(cy.id)).talkativeness === 1 ? true : undefined), 'the talkativeness saved');
    await page.locator('.cast-strategy').selectOption('list');
    await page.locator('.cast-self').check();
    const rules = await storedConversation(conversationId, (c) => c.reply_strategy === 'list' && c.allow_self_responses, 'the rules stored');
    assert.deepEqual([rules.active_characters, rules.muted], [[bob.id, cy.id], [bob.id]]);

    // A message: list, Bob muted → Cy answers; Ada is named but not in the cast → a notice.
    llm.chat.enqueue({ tokens: tokenize('Cy speaking.') });
    await page.locator('.composer-input').fill('Ada, are you there?');
    await page.locator('.composer-input').press('Enter');
    await page.locator('.msg-char[data-character-name="Cy Twombly"] .msg-text', { hasText: 'Cy speaking.' }).waitFor();
    await page.locator('.msg-note', { hasText: "Ada Lovelace is not in this conversation's cast" }).waitFor();

    // Force-talk: the muted Bob speaks when asked to.
    llm.chat.enqueue({ tokens: tokenize('Bob, on request.') });
    await row('Bob').locator('.cast-talk-now').click();
    await page.locator('.msg-char[data-character-name="Bob"] .msg-text', { hasText: 'Bob, on request.' }).waitFor();
    assert.deepEqual(sent(conn, 'trigger_character'), [{ character_id: bob.id }]);

    // Auto-mode with a short delay: Cy (the only one not muted, self-responses on) goes on alone.
    await page.locator('.cast-delay').fill('0.2');
    await page.locator('.cast-delay').press('Enter');
    await storedConversation(conversationId, (c) => c.auto_mode_delay_ms === 200, 'the delay stored');
    await page.locator('.cast-auto').check();
    await page.waitForFunction(() => document.querySelectorAll('.msg-char[data-character-name="Cy Twombly"]').length >= 3);
    await page.locator('.cast-auto').uncheck();
    await storedConversation(conversationId, (c) => !c.auto_mode, 'auto-mode off stored');
    const session = [...chorus.sessions][0]!;
    assert.equal(session.autoModeState, 'off');

    // A reload resumes the conversation: the cast bar shows what is stored.
    await openApp();
    await page.locator('.cast-bar .cast-names', { hasText: 'Bob, Cy' }).waitFor();
    await page.locator('.cast-bar').click();
    await row('Bob').locator('.cast-mute[aria-pressed="true"]').waitFor();
    assert.equal(await page.locator('.cast-strategy').inputValue(), 'list');
    assert.equal(await page.locator('.cast-self').isChecked(), true);
    assert.equal(await page.locator('.cast-auto').isChecked(), false);
    assert.equal(await page.locator('.cast-delay').inputValue(), '0.2');
    assert.deepEqual(pageErrors, []);
  });
});
