// The web client's card features in headless Chromium against the real server (web/dist served by
// the real app, a loopback LLM, no speech): two cards imported at once by the file picker, every
// card field shown in the editor (long ones collapsible) and saved, and a new conversation that
// opens with the imported character's greeting, macros replaced, stored as its first message.
// Then a persona with a picture chosen for the conversation becomes {{user}} in the next prompt
// and its picture is on the user's messages, and two more cards dropped on the Characters panel
// are imported. A SillyTavern-shaped V3 card's every field (V3's, the extensions, talkativeness,
// its own lorebook entry by entry) is shown, edited and saved, and a standalone lorebook's entries
// are edited, added and deleted in the Lorebooks panel.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Character, Lorebook, Message } from '../src/protocol.ts';
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

/** A 1×1 PNG as a data: URL (a persona's picture link). */
const KIT_PICTURE = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

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
    await page.locator('input[name="persona_image_url"]').fill(KIT_PICTURE);
    await page.locator('input[name="persona_image_url"]').blur();
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
    // The user's message shows who it was sent as: the persona's name and picture.
    const mine = page.locator('.msg-user[data-message-id]', { hasText: 'Ione, the fog?' });
    await mine.locator('.msg-name', { hasText: 'Kit' }).waitFor();
    assert.equal(await mine.locator('.avatar img').getAttribute('src'), KIT_PICTURE);
    // After a reload the stored messages show it too; one stored under a name no persona has shows its initial.
    const other = await fetch(`${chorus.httpUrl}/api/conversations/${conversationId}/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ role: 'user', name: 'Jay', content: 'An older line.' }) });
    assert.equal(other.status, 201);
    await page.reload();
    await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');
    const reloaded = page.locator('.msg-user', { hasText: 'Ione, the fog?' });
    await reloaded.locator('.avatar img').waitFor();
    assert.equal(await reloaded.locator('.avatar img').getAttribute('src'), KIT_PICTURE);
    const older = page.locator('.msg-user', { hasText: 'An older line.' });
    assert.equal(await older.locator('.avatar').textContent(), 'J');
    assert.equal(await older.locator('.avatar img').count(), 0);

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
  test('a SillyTavern V3 card: V3 fields, extensions, talkativeness and its own lorebook shown, edited entry by entry, saved', async () => {
    const stExtensions = { exclude_recursion: false, probability: 100, useProbability: true, group: '', scan_depth: null, match_whole_words: null, case_sensitive: null, vectorized: false, sticky: 0 };
    const v3 = {
      spec: 'chara_card_v3',
      spec_version: '3.0',
      data: {
        ...card('Navigator Sable', 'Charts ready.', []).data,
        nickname: 'Sab',
        group_only_greetings: ['Gather round, crew.'],
        creator_notes_multilingual: { fr: 'Lentement.' },
        assets: [{ type: 'icon', uri: 'ccdefault:', name: 'main', ext: 'png' }],
        source: ['https://example.invalid/sable'],
        creation_date: 1_700_000_000,
        extensions: { talkativeness: '0.8', fav: true, world: 'Eldoria', depth_prompt: { prompt: 'Sable counts the stars.', depth: 2, role: 'user' }, chub: { id: 7 } },
        character_book: {
          name: 'Sable lore',
          entries: [
            { id: 0, keys: ['chart'], secondary_keys: ['night'], comment: 'Charts', content: 'The charts are old.', constant: false, selective: true, insertion_order: 10, enabled: true, position: 'before_char', use_regex: true, extensions: { position: 0, selectiveLogic: 0, depth: 4, ...stExtensions } },
            { id: 1, keys: ['storm'], content: 'Storms come at dusk.', enabled: true, insertion_order: 20, position: 'after_char', extensions: { position: 4, depth: 2, role: 1 } },
          ],
        },
      },
    };
    const res = await fetch(`${chorus.httpUrl}/api/characters/import`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(v3) });
    assert.equal(res.status, 201, await res.clone().text());
    const [imported] = ((await res.json()) as { characters: Character[] }).characters;
    await page.goto(chorus.httpUrl);
    await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');
    await page.locator('.nav-characters').click();
    await page.locator('.char-row', { hasText: 'Navigator Sable' }).click();
    const form = page.locator('form.char-form');
    await form.locator('h3', { hasText: 'Edit Navigator Sable' }).waitFor();

    // Shown: talkativeness, the V3 fields (source and dates read-only), SillyTavern's extensions as fields, the rest as JSON, the lorebook's entries.
    assert.equal(await form.locator('input[name="talkativeness"]').inputValue(), '0.8');
    assert.equal(await form.locator('.talkativeness-value').textContent(), '80%');
    assert.equal(await form.locator('input[name="nickname"]').inputValue(), 'Sab');
    assert.deepEqual(await form.locator('textarea[name="group_only_greeting"]').evaluateAll((areas) => areas.map((a) => (a as HTMLTextAreaElement).value)), ['Gather round, crew.']);
    assert.deepEqual(JSON.parse(await form.locator('textarea[name="creator_notes_multilingual"]').inputValue()), { fr: 'Lentement.' });
    assert.deepEqual(JSON.parse(await form.locator('textarea[name="assets"]').inputValue()), v3.data.assets);
    assert.equal(await form.locator('.card-source').textContent(), 'https://example.invalid/sable');
    assert.match((await form.locator('.card-creation-date').textContent()) ?? '', /2023-11-14 22:13:20 UTC \(1700000000\)/);
    assert.deepEqual(
      [await form.locator('textarea[name="depth_prompt_prompt"]').inputValue(), await form.locator('input[name="depth_prompt_depth"]').inputValue(), await form.locator('select[name="depth_prompt_role"]').inputValue(), await form.locator('input[name="world"]').inputValue(), await form.locator('input[name="fav"]').isChecked()],
      ['Sable counts the stars.', '2', 'user', 'Eldoria', true],
    );
    assert.deepEqual(JSON.parse(await form.locator('textarea[name="extensions_json"]').inputValue()), { chub: { id: 7 } }, 'only the keys without fields of their own');
    const entries = form.locator('details.lore-entry');
    assert.equal(await entries.count(), 2);
    assert.deepEqual(await form.locator('input[name="lore_keys"]').evaluateAll((inputs) => inputs.map((i) => (i as HTMLInputElement).value)), ['chart', 'storm']);
    assert.deepEqual(await form.locator('select[name="lore_position"]').evaluateAll((s) => s.map((x) => (x as HTMLSelectElement).value)), ['0', '4']);
    assert.equal(await entries.nth(1).locator('input[name="lore_depth"]').inputValue(), '2');
    assert.equal(await entries.nth(1).locator('select[name="lore_role"]').inputValue(), '1');
    assert.equal(await entries.nth(0).locator('.lore-depth').isHidden(), true, 'depth and role only for a place in the conversation');

    // Edit: nickname, talkativeness, the character's note, the other extensions (bad JSON first), an entry, one deleted, one added.
    await form.locator('input[name="nickname"]').fill('Sabby');
    await form.locator('input[name="talkativeness"]').evaluate((el) => {
      (el as HTMLInputElement).value = '0.3';
      el.dispatchEvent(new Event('input', { bubbles: true }));
    });
    assert.equal(await form.locator('.talkativeness-value').textContent(), '30%');
    await form.locator('textarea[name="depth_prompt_prompt"]').fill('Sable watches {{user}}.');
    await form.locator('textarea[name="extensions_json"]').fill('{"chub": {"id": 8}');
    await form.locator('.json-error', { hasText: 'Other extensions is not valid JSON' }).waitFor();
    await form.locator('button.save').click();
    await form.locator('.form-error', { hasText: 'Other extensions is not valid JSON' }).waitFor();
    await form.locator('textarea[name="extensions_json"]').fill('{"chub": {"id": 8}}');
    assert.equal(await form.locator('label.json-field:has(textarea[name="extensions_json"]) .json-error').textContent(), '');
    await entries.nth(0).locator('summary').click();
    await entries.nth(0).locator('textarea[name="lore_content"]').fill('The charts are older than the ship.');
    await entries.nth(0).locator('select[name="lore_logic"]').selectOption('3');
    await entries.nth(1).locator('summary').click();
    await entries.nth(1).locator('.remove-lore-entry').click();
    await form.locator('.add-lore-entry').click();
    const added = form.locator('details.lore-entry').nth(1);
    await added.locator('input[name="lore_keys"]').fill('river, ford');
    await added.locator('textarea[name="lore_content"]').fill('The river is cold.');
    await added.locator('select[name="lore_position"]').selectOption('4');
    await added.locator('input[name="lore_depth"]').fill('1');
    await added.locator('select[name="lore_role"]').selectOption('2');
    await added.locator('input[name="lore_constant"]').check();
    await form.locator('button.save').click();
    await page.locator('.toast', { hasText: 'Saved Navigator Sable.' }).waitFor();

    const saved = (await (await fetch(`${chorus.httpUrl}/api/characters/${imported!.id}`)).json()) as Character;
    assert.deepEqual([saved.nickname, saved.talkativeness, saved.group_only_greetings, saved.source, saved.creation_date], ['Sabby', 0.3, ['Gather round, crew.'], ['https://example.invalid/sable'], 1_700_000_000]);
    assert.deepEqual(saved.extensions, { talkativeness: '0.8', fav: true, world: 'Eldoria', depth_prompt: { prompt: 'Sable watches {{user}}.', depth: 2, role: 'user' }, chub: { id: 8 } });
    const [first, river] = saved.character_book!.entries as Array<Record<string, unknown>>;
    assert.deepEqual(first, { ...v3.data.character_book.entries[0], content: 'The charts are older than the ship.', extensions: { ...v3.data.character_book.entries[0]!.extensions, selectiveLogic: 3 } }, 'every other field as the card had it, SillyTavern\'s nulls too');
    assert.deepEqual(river, { id: 2, keys: ['river', 'ford'], secondary_keys: [], comment: '', content: 'The river is cold.', enabled: true, constant: true, selective: true, insertion_order: 100, position: 'after_char', extensions: { position: 4, depth: 1, role: 2 } });
    assert.equal(saved.character_book!.entries.length, 2);
    assert.equal(saved.character_book!.name, 'Sable lore');
    await page.locator('dialog.characters-panel .panel-close').click();
    assert.deepEqual(pageErrors, []);
  });

  test('the Lorebooks panel shows a book\'s entries and edits, adds and deletes them', async () => {
    const worldInfo = {
      entries: {
        '0': { uid: 0, key: ['harbour'], keysecondary: [], comment: 'Harbour', content: 'Boats come in at dawn.', constant: false, selective: false, order: 10, position: 0, disable: false, probability: 100, vectorized: false },
        '1': { uid: 1, key: ['lighthouse'], keysecondary: ['storm'], comment: 'Light', content: 'The light is dark.', constant: false, selective: true, order: 20, position: 1, disable: false },
      },
    };
    const res = await fetch(`${chorus.httpUrl}/api/lorebooks/import?name=Harbour`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(worldInfo) });
    assert.equal(res.status, 201);
    const [book] = ((await res.json()) as { lorebooks: Lorebook[] }).lorebooks;
    await page.goto(chorus.httpUrl);
    await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');
    await page.locator('.nav-lorebooks').click();
    const panel = page.locator('dialog.lorebooks-panel');
    await panel.locator('.lorebook-row', { hasText: '2 entries' }).click();
    const form = panel.locator('form.lorebook-form');
    await form.locator('h3', { hasText: 'Edit Harbour' }).waitFor();
    const entries = form.locator('details.lore-entry');
    assert.deepEqual(await form.locator('textarea[name="lore_content"]').evaluateAll((a) => a.map((x) => (x as HTMLTextAreaElement).value)), ['Boats come in at dawn.', 'The light is dark.']);
    assert.deepEqual(await entries.locator('.lore-title').allTextContents(), ['Harbour', 'Light']);
    assert.deepEqual(await form.locator('input[name="lore_secondary_keys"]').evaluateAll((a) => a.map((x) => (x as HTMLInputElement).value)), ['', 'storm']);

    await form.locator('input[name="lorebook_name"]').fill('Harbour lore');
    await entries.nth(0).locator('summary').click();
    await entries.nth(0).locator('input[name="lore_keys"]').fill('harbour, quay');
    await entries.nth(0).locator('input[name="lore_constant"]').check();
    await entries.nth(0).locator('input[name="lore_order"]').fill('5');
    await entries.nth(1).locator('summary').click();
    await entries.nth(1).locator('input[name="lore_enabled"]').uncheck();
    await entries.nth(1).locator('input[name="lore_comment"]').fill('The old light');
    await form.locator('.add-lore-entry').click();
    const added = form.locator('details.lore-entry').nth(2);
    await added.locator('input[name="lore_keys"]').fill('gull');
    await added.locator('input[name="lore_secondary_keys"]').fill('storm');
    await added.locator('select[name="lore_logic"]').selectOption('2');
    await added.locator('textarea[name="lore_content"]').fill('Gulls fly low.');
    await added.locator('select[name="lore_position"]').selectOption('6');
    await form.locator('button.save-lorebook').click();
    await page.locator('.toast', { hasText: 'Saved Harbour lore.' }).waitFor();
    await panel.locator('.lorebook-row', { hasText: '3 entries' }).waitFor();

    const stored = (await (await fetch(`${chorus.httpUrl}/api/lorebooks/${book!.id}`)).json()) as Lorebook;
    assert.equal(stored.name, 'Harbour lore');
    const [harbour, light, gull] = stored.book.entries as Array<Record<string, unknown>>;
    assert.deepEqual([harbour!.keys, harbour!.constant, harbour!.insertion_order, harbour!.extensions], [['harbour', 'quay'], true, 5, { probability: 100, vectorized: false, position: 0 }], 'the world-info fields kept');
    assert.deepEqual([harbour!.id, light!.id, gull!.id], [0, 1, 2], 'the fields the editor does not show are kept');
    assert.deepEqual([light!.enabled, light!.comment, light!.secondary_keys, light!.selective], [false, 'The old light', ['storm'], true]);
    assert.deepEqual([gull!.keys, gull!.secondary_keys, gull!.content, gull!.position, gull!.extensions], [['gull'], ['storm'], 'Gulls fly low.', 'after_char', { position: 6, selectiveLogic: 2 }]);

    // Deleting an entry, and a new empty lorebook.
    const again = form.locator('details.lore-entry');
    await again.nth(0).locator('summary').click();
    await again.nth(0).locator('.remove-lore-entry').click();
    await form.locator('button.save-lorebook').click();
    await panel.locator('.lorebook-row', { hasText: '2 entries' }).waitFor();
    assert.deepEqual(((await (await fetch(`${chorus.httpUrl}/api/lorebooks/${book!.id}`)).json()) as Lorebook).book.entries.map((e) => e.content), ['The light is dark.', 'Gulls fly low.']);
    await panel.locator('.new-lorebook').click();
    await panel.locator('.lorebook-row', { hasText: 'New lorebook' }).waitFor();
    await panel.locator('form.lorebook-form h3', { hasText: 'Edit New lorebook' }).waitFor();
    assert.deepEqual(pageErrors, []);
  });
});
