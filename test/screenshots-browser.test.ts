// The README's screenshots: each view of the web client (the conversation, Characters, Voices,
// Settings, Connection, Listening, and the phone's drawer) at 1280×800 and 390×844, saved into
// SCREENSHOT_DIR (`npm run screenshots` sets it to docs/screenshots). Without SCREENSHOT_DIR the
// test is skipped and starts nothing, so `npm test` writes no tracked file. It checks only that
// each view opened; the behaviour of each is tested in its own file.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';
import { createOpenAiSttEngine } from '../src/transcribe/engines/openai.ts';
import { launchBrowser } from './support/browser.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const WEB_DIST = 'web/dist';
const DIR = process.env.SCREENSHOT_DIR;
const SIZES = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'phone', width: 390, height: 844 },
] as const;

let engines: EngineServer;
let tts: TtsEngine;
let chorus: ChorusUnderTest;
let browser: Browser;

describe('screenshots for the README', { skip: DIR ? false : 'SCREENSHOT_DIR is not set (npm run screenshots sets it)' }, () => {
  before(async () => {
    assert.ok(existsSync(join(WEB_DIST, 'index.html')), `${WEB_DIST} is not built: run npm run build:web`);
    mkdirSync(DIR as string, { recursive: true });
    const [db] = await openTestDatabases();
    assert.ok(db);
    await resetData(db.database);
    engines = await startEngineServer({ transcription: { text: '' } });
    tts = await createEspeakEngine({ workers: 1 });
    const stt = createOpenAiSttEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'whisper-1', language: 'en', timeoutMs: 3000 });
    chorus = await startChorus({ database: db.database, env: { WEB_DIR: WEB_DIST, LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k' }, tts, stt });
    await chorus.repo.ensureStarterCast();
    for (const c of await chorus.repo.listCharacters()) await chorus.repo.updateCharacter({ id: c.id, talkativeness: 0 });
    browser = await launchBrowser(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream']);
  });

  after(async () => {
    await browser?.close();
    await chorus?.close();
    await engines?.close();
    await tts?.close();
  });

  for (const size of SIZES) {
    test(`every view at ${size.width}×${size.height}`, async () => {
      const context = await browser.newContext({ viewport: { width: size.width, height: size.height }, deviceScaleFactor: 1, colorScheme: 'dark' });
      try {
        await context.grantPermissions(['microphone']);
        const page = await context.newPage();
        const shot = (view: string) => page.screenshot({ path: join(DIR as string, `${view}-${size.name}.png`), animations: 'disabled' });
        await page.goto(`${chorus.httpUrl}/`);
        await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');

        // The conversation, two characters having answered (their speech muted: nothing to hear here).
        engines.chat.enqueue(
          { tokens: tokenize('Evening. Something about your question does not add up, but I will allow it.') },
          { tokens: tokenize('Clear skies tonight, friend. The stars are out, and so is the whole crew.') },
        );
        await page.locator('.composer-input').fill('Hello Harlan and Mira, how is the evening treating you?');
        await page.locator('.composer-input').press('Enter');
        await page.locator('.msg-char[data-character-name="Mira Vance"] .msg-text', { hasText: 'whole crew' }).waitFor();
        await page.waitForFunction(() => document.querySelectorAll('.msg-char.is-replying').length === 0);
        await shot('conversation');

        const viaNav = async (button: string, dialog: string, view: string) => {
          if (await page.locator('.menu-btn').isVisible()) await page.locator('.menu-btn').click();
          await page.locator(button).click();
          await page.locator(`dialog.${dialog}`).waitFor();
          await page.locator(`dialog.${dialog} .panel-body > *`).first().waitFor();
          await shot(view);
          await page.locator(`dialog.${dialog} .panel-close`).click();
          await page.locator(`dialog.${dialog}`).waitFor({ state: 'detached' });
          await page.evaluate(() => document.body.classList.remove('sidebar-open'));
        };
        await viaNav('.nav-characters', 'characters-panel', 'characters');
        await viaNav('.nav-voices', 'voices-panel', 'voices');
        await viaNav('.nav-settings', 'settings-panel', 'settings');
        await viaNav('.nav-connection', 'connection-panel', 'connection');

        await page.locator('.listening-btn').click();
        await page.locator('dialog.listening-panel select[name="mic"]').waitFor();
        await shot('listening');
        await page.locator('dialog.listening-panel .panel-close').click();

        if (await page.locator('.menu-btn').isVisible()) {
          await page.locator('.menu-btn').click();
          await page.waitForFunction(() => document.body.classList.contains('sidebar-open'));
          await page.locator('.sidebar .nav-connection').waitFor();
          await shot('drawer');
        }
      } finally {
        await context.close();
      }
    });
  }
});
