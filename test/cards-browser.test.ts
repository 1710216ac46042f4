// The web client's card features in headless Chromium against the real server (web/dist served by
// the real app, a loopback LLM, no speech): two cards imported at once by the file picker, every
// card field shown in the editor (long ones collapsible) and saved, and a new conversation that
// opens with the imported character's greeting, macros replaced, stored as its first message.
// Then a persona chosen for the conversation becomes {{user}} in the next prompt, and two more
// cards dropped on the Characters panel are imported.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Character, Message } from '../src/protocol.ts';
import { launchBrowser } from './support/browser.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const WEB_DIST = 'web/dist';
let llm: EngineServer;
let chorus: ChorusUnderTest;
let browser: Browser;
let page: Page;
let tmp: string;
const pageErrors: string[] = [];

before(async () => {
  assert.ok(existsSync(join(WEB_DIST, 'index.html')), `${WEB_DIST} is not built: run npm run build:web`);
  const [db] = await openTestDatabases();
  assert.ok(db);
  await resetData(db.database);
  tmp = mkdtempSync(join(tmpdir(), 'chorus-cards-'));
  llm = await startEngineServer();
  chorus = await startChorus({ database: db.database, env: { WEB_DIR: WEB_DIST, LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', TTS_ENGINE: 'none', USER_NAME: 'Jay' } });
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
});
after(async () => {
  await browser?.close();
  await chorus?.close();
  await llm?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const card = (name: string, first_mes: string, alternate_greetings: string[]) => ({
  spec: 'chara_card_v2',
  spec_version: '2.0',
  data: {
    name, first_mes, alternate_greetings, description: '{{char}} keeps the harbour.', personality: 'gruff', scenario: 'A foggy pier.', mes_example: '<START>\n{{char}}: Hm.',
    creator_notes: 'Slow model.', system_prompt: 'You are {{char}}.', post_history_instructions: 'Stay gruff.', tags: ['sea', 'mentor'], creator: 'tester', character_version: '1.2', extensions: {},
  },
});

async function messagesOf(conversationId: string): Promise<Message[]> {
  return (await (await fetch(`${chorus.httpUrl}/api/conversations/${conversationId}/messages`)).json()) as Message[];
}

describe('cards in the web client', () => {
  test('import two cards by the file picker, see and edit every field, and a new conversation opens with the greeting', async () => {
    const ione = join(tmp, 'ione.json');
    const sable = join(tmp, 'sable.json');
    writeFileSync(ione, JSON.stringify(card('Captain Ione', 'Mind the ropes, {{user}}. {{char}} does not repeat herself.', ['Fog again, {{user}}.'])));
    writeFileSync(sable, JSON.stringify(card('Sable', '', [])));
    await page.goto(chorus.httpUrl);
    await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');

    await page.locator('.nav-characters').click();
    await page.locator('input[name="card_files"]').setInputFiles([ione, sable]);
    await page.locator('.char-row', { hasText: 'Captain Ione' }).waitFor();
    await page.locator('.char-row', { hasText: 'Sable' }).waitFor();
    const form = page.locator('form.char-form');
    await form.locator('h3', { hasText: 'Edit Captain Ione' }).waitFor();
    // Every card field is in the editor; the long ones are collapsible sections (open when filled).
    const expected: Record<string, string> = {
      system_prompt: 'You are {{char}}.', description: '{{char}} keeps the harbour.', personality: 'gruff', scenario: 'A foggy pier.', first_mes: 'Mind the ropes, {{user}}. {{char}} does not repeat herself.',
      mes_example: '<START>\n{{char}}: Hm.', post_history_instructions: 'Stay gruff.', creator_notes: 'Slow model.',
    };
    for (const [name, value] of Object.entries(expected)) {
      assert.equal(await form.locator(`details[data-field="${name}"]`).getAttribute('open'), '', `${name} is open`);
      assert.equal(await form.locator(`textarea[name="${name}"]`).inputValue(), value, name);
    }
    assert.deepEqual(await form.locator('textarea[name="alternate_greeting"]').evaluateAll((areas) => areas.map((a) => (a as HTMLTextAreaElement).value)), ['Fog again, {{user}}.']);
    assert.equal(await form.locator('input[name="tags"]').inputValue(), 'sea, mentor');
    assert.equal(await form.locator('input[name="creator"]').inputValue(), 'tester');
    assert.equal(await form.locator('input[name="character_version"]').inputValue(), '1.2');
    assert.match((await form.locator('a.export-png').getAttribute('href')) ?? '', /\/export\?format=png&spec=v2$/);

    // Collapse one with the keyboard, edit fields, save: the record has them.
    await form.locator('details[data-field="creator_notes"] > summary').focus();
    await page.keyboard.press('Enter');
    assert.equal(await form.locator('details[data-field="creator_notes"]').getAttribute('open'), null, 'collapsed');
    await form.locator('textarea[name="personality"]').fill('gruff, kind');
    await form.locator('.add-greeting').click();
    await form.locator('textarea[name="alternate_greeting"]').nth(1).fill('You are late, {{user}}.');
    await form.locator('button.save').click();
    await page.locator('.toast', { hasText: 'Saved Captain Ione.' }).waitFor();
    const characters = (await (await fetch(`${chorus.httpUrl}/api/characters`)).json()) as Character[];
    const saved = characters.find((c) => c.name === 'Captain Ione')!;
    assert.equal(saved.personality, 'gruff, kind');
    assert.deepEqual(saved.alternate_greetings, ['Fog again, {{user}}.', 'You are late, {{user}}.']);
    assert.equal(saved.mes_example, '<START>\n{{char}}: Hm.', 'untouched fields kept');
    await page.locator('dialog.characters-panel .panel-close').click();

    // A new conversation opens with the greeting, macros replaced, and stores it as the first message.
    await page.locator('.new-chat').click();
    const greeting = 'Mind the ropes, Jay. Captain Ione does not repeat herself.';
    await page.locator('.msg-char .msg-text', { hasText: greeting }).waitFor();
    const conversationId = await page.evaluate(() => window.__chorus.connection.conversationId);
    assert.ok(conversationId);
    const stored = await eventually(async () => {
      const messages = await messagesOf(conversationId);
      return messages.length > 0 ? messages : undefined;
    }, 'the stored greeting');
    assert.deepEqual([stored[0]!.name, stored[0]!.content, stored[0]!.alternatives], ['Captain Ione', greeting, [greeting, 'Fog again, Jay.', 'You are late, Jay.']]);

    // A persona chosen for this conversation is {{user}} from the next turn on.
    await page.locator('.nav-personas').click();
    await page.locator('.new-persona').click();
    await page.locator('input[name="persona_name"]').fill('Kit');
    await page.locator('textarea[name="persona_description"]').fill('Kit is a courier.');
    await page.locator('button.save-persona').click();
    await page.locator('.persona-row', { hasText: 'Kit' }).waitFor();
    await page.locator('select[name="conversation_persona"]').selectOption({ label: 'Kit' });
    await page.locator('.toast', { hasText: 'now speaks as Kit' }).waitFor();
    await page.locator('dialog.personas-panel .panel-close').click();
    llm.chat.enqueue({ tokens: tokenize('Hm.') });
    await page.locator('.composer-input').fill('Ione, the fog?');
    await page.locator('.composer-input').press('Enter');
    const [request] = await llm.chat.waitForRequests(1, 10_000);
    const system = String(request!.body.messages?.[0]?.content);
    assert.ok(system.endsWith('Kit is a courier.'), system);
    assert.ok(system.includes('The others in this conversation are Sable and Kit.') || system.includes('talking with Kit'), system);

    // Cards dropped on the Characters panel are imported too (two at once).
    await page.locator('.nav-characters').click();
    const dropped = await page.evaluateHandle(
      (cards: Array<[string, string]>) => {
        const transfer = new DataTransfer();
        for (const [name, json] of cards) transfer.items.add(new File([json], name, { type: 'application/json' }));
        return transfer;
      },
      [['wren.json', JSON.stringify(card('Wren', '', []))], ['tam.json', JSON.stringify(card('Tam', '', []))]] as Array<[string, string]>,
    );
    await page.dispatchEvent('dialog.characters-panel .records', 'dragover', { dataTransfer: dropped });
    await page.dispatchEvent('dialog.characters-panel .records', 'drop', { dataTransfer: dropped });
    await page.locator('.char-row', { hasText: 'Wren' }).waitFor();
    await page.locator('.char-row', { hasText: 'Tam' }).waitFor();
    assert.deepEqual(pageErrors, []);
  });
});
