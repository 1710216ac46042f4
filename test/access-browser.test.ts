// Who may reach the server, seen from a real browser (headless Chromium via playwright-core):
// a page of another origin (a second tiny server on another port) tries to open Chorus's
// WebSocket and to delete a character, and is refused while Chorus's own page works; a DNS
// rebinding name (Chromium's resolver maps it to 127.0.0.1) is refused; and with AUTH_TOKEN the
// built web client asks for the token once, logs in and remembers it (the cookie).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Browser, BrowserContext } from 'playwright-core';
import { launchBrowser } from './support/browser.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { closeTestDatabases, openTestDatabases, resetData } from './support/db.ts';

const WEB_DIST = 'web/dist';
const TOKEN = 'browser-token-0123456789abcdef';
const REBIND_NAME = 'rebind.test';

/** The attacker's page: it tries what the issue describes and publishes what happened. */
const ATTACK_PAGE = `<!doctype html><meta charset="utf-8"><title>Totally harmless</title>
<script>
const target = new URL(location.hash.slice(1));
const id = new URLSearchParams(location.search).get('id');
const socket = new Promise((resolve) => {
  const ws = new WebSocket(target.href.replace(/^http/, 'ws') + 'ws');
  let opened = false;
  ws.onopen = () => { opened = true; ws.send(JSON.stringify({ type: 'delete_character', data: { id } })); };
  ws.onmessage = (ev) => { if (JSON.parse(ev.data).type === 'character_deleted') resolve('deleted'); };
  ws.onclose = () => resolve(opened ? 'opened' : 'refused');
});
const rest = fetch(new URL('/api/characters/' + id, target), { method: 'DELETE' }).then((r) => 'HTTP ' + r.status, () => 'blocked');
window.attack = Promise.all([socket, rest]).then(([socket, rest]) => ({ socket, rest }));
</script>`;

let browser: Browser;
let context: BrowserContext | undefined;
let attacker: Server;
let attackerUrl: string;

before(async () => {
  assert.ok(existsSync(join(WEB_DIST, 'index.html')), `${WEB_DIST} is not built: run npm run build:web`);
  attacker = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(ATTACK_PAGE));
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  attackerUrl = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`;
  browser = await launchBrowser([`--host-resolver-rules=MAP ${REBIND_NAME} 127.0.0.1`]);
});

afterEach(async () => {
  await context?.close();
  context = undefined;
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => attacker?.close(resolve));
  await closeTestDatabases();
});

async function newPage() {
  context = await browser.newContext();
  return context.newPage();
}

describe('a server without a token (the loopback default)', () => {
  let chorus: ChorusUnderTest;
  before(async () => {
    const [db] = await openTestDatabases();
    assert.ok(db);
    await resetData(db.database);
    chorus = await startChorus({ database: db.database, env: { WEB_DIR: WEB_DIST } });
  });
  after(() => chorus?.close());

  test('a page of another origin can neither open /ws nor delete data; the own page connects', async () => {
    const victim = await chorus.repo.createCharacter({ name: 'Victim', system_prompt: 'x' });
    const page = await newPage();
    await page.goto(`${attackerUrl}?id=${victim.id}#${chorus.httpUrl}/`);
    const outcome = await page.evaluate(() => (window as unknown as { attack: Promise<Record<string, string>> }).attack);
    assert.equal(outcome.socket, 'refused');
    assert.equal(outcome.rest, 'blocked');
    assert.equal((await chorus.repo.getCharacter(victim.id)).name, 'Victim');
    assert.equal(chorus.sessions.size, 0);

    await page.goto(chorus.httpUrl);
    await page.locator('.conn-pill[data-state="connected"]').waitFor();
    await page.locator('.cast-names', { hasText: 'Victim' }).waitFor();
    // The own page may change data.
    const status = await page.evaluate(async (id) => (await fetch(`/api/characters/${id}`, { method: 'DELETE' })).status, victim.id);
    assert.equal(status, 200);
  });

  test('a DNS rebinding name pointed at Chorus gets 403, and so does its WebSocket', async () => {
    const page = await newPage();
    const rebound = `http://${REBIND_NAME}:${new URL(chorus.httpUrl).port}`;
    const response = await page.goto(`${rebound}/`);
    assert.equal(response?.status(), 403);
    assert.match(await page.locator('body').innerText(), /ALLOWED_HOSTS/);
    const socket = await page.evaluate(
      (url) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url);
          ws.onopen = () => resolve('opened');
          ws.onclose = () => resolve('refused');
        }),
      `${rebound.replace(/^http/, 'ws')}/ws`,
    );
    assert.equal(socket, 'refused');
    assert.equal(chorus.sessions.size, 0);
  });
});

describe('a server with AUTH_TOKEN', () => {
  let chorus: ChorusUnderTest;
  before(async () => {
    const [db] = await openTestDatabases();
    assert.ok(db);
    await resetData(db.database);
    chorus = await startChorus({ database: db.database, env: { WEB_DIR: WEB_DIST, AUTH_TOKEN: TOKEN } });
    await chorus.repo.createCharacter({ name: 'Warden', system_prompt: 'x' });
  });
  after(() => chorus?.close());

  test('the web client asks for the token once in a dialog, logs in, connects and remembers it', async () => {
    const page = await newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(chorus.httpUrl);
    const form = page.getByRole('dialog', { name: 'Access token' });
    await form.waitFor();
    assert.equal(chorus.sessions.size, 0);

    await form.getByLabel('Token').fill('not-the-token');
    await form.getByRole('button', { name: 'Unlock' }).click();
    await form.getByRole('alert').filter({ hasText: 'not the right token' }).waitFor();

    await form.getByLabel('Token').fill(TOKEN);
    await form.getByRole('button', { name: 'Unlock' }).click();
    await form.waitFor({ state: 'detached' });
    await page.locator('.conn-pill[data-state="connected"]').waitFor();
    await page.locator('.cast-names', { hasText: 'Warden' }).waitFor();

    const cookie = (await context?.cookies())?.find((c) => c.name === 'chorus_session');
    assert.ok(cookie, 'the login cookie is set');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(cookie.path, '/');
    assert.notEqual(cookie.value, TOKEN);
    assert.equal(await page.evaluate(() => document.cookie), '', 'the page cannot read it');

    await page.reload();
    await page.locator('.conn-pill[data-state="connected"]').waitFor();
    assert.equal(await page.getByRole('dialog', { name: 'Access token' }).count(), 0, 'remembered: no second question');

    // The cookie is gone (cleared, or AUTH_TOKEN changed): the next REST call asks again, then goes on.
    await context?.clearCookies();
    await chorus.repo.createCharacter({ name: 'Latecomer', system_prompt: 'x' });
    await page.locator('.nav-characters').click();
    const again = page.getByRole('dialog', { name: 'Access token' });
    await again.getByLabel('Token').fill(TOKEN);
    await again.getByRole('button', { name: 'Unlock' }).click();
    await again.waitFor({ state: 'detached' });
    await page.locator('dialog.panel', { hasText: 'Latecomer' }).waitFor();
    assert.deepEqual(dialogs, [], 'no window.prompt/alert');
  });
});
