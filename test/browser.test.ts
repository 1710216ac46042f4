// End-to-end tests of the web client in headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core) against the real server: the built client (web/dist) served by the real
// app, a loopback LLM (engine-server), real espeak speech, and a fake microphone playing a WAV
// of espeak speech. A recording proxy (test/support/browser.ts) sits between page and server
// so the tests can see every frame and hold, drop or cut the server's. Every wait is on page
// or proxy state, never a fixed sleep. Also: the capture resampler, checked in Node.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Character, Conversation, Message, Voice } from '../src/protocol.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';
import type { ChorusDebug } from '../web/src/debug.ts';
import { Resampler } from '../web/src/resampler.ts';
import { launchBrowser, type ProxyConnection, TestProxy } from './support/browser.ts';
import { createOpenAiSttEngine } from '../src/transcribe/engines/openai.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { encodeWav, type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const WEB_DIST = 'web/dist';
/** An ignored folder, so a test run leaves the tree clean; `npm run screenshots` points it at docs/. */
const SCREENSHOT = join(process.env.SCREENSHOT_DIR ?? 'test-output', 'screenshot-chat.png');

let llm: EngineServer;
let tts: TtsEngine;
let chorus: ChorusUnderTest;
let proxy: TestProxy;
let browser: Browser;
let tmp: string;
let context: BrowserContext | undefined;
let page: Page;
/** Uncaught page errors and dialogs (alert() must never run). */
let pageErrors: string[] = [];
let dialogs: string[] = [];

type Debug = ChorusDebug;

before(async () => {
  assert.ok(existsSync(join(WEB_DIST, 'index.html')), `${WEB_DIST} is not built: run npm run build:web`);
  const [db] = await openTestDatabases();
  assert.ok(db);
  tmp = mkdtempSync(join(tmpdir(), 'chorus-browser-'));
  // Speech input answers with no words: the fake microphone never makes a turn of its own.
  llm = await startEngineServer({ transcription: { text: '' } });
  tts = await createEspeakEngine({ workers: 1 });
  // The fake microphone: real espeak speech as a 16-bit mono WAV.
  const pcm: Buffer[] = [];
  const voice = { engineVoice: 'en-us+m3', speed: 1, pitch: 1 };
  for await (const chunk of tts.synthesize('Hello Mira. Can you hear me? This is a test of the microphone, one two three.', voice, new AbortController().signal)) pcm.push(chunk);
  const wav = join(tmp, 'speech.wav');
  // Chromium loops the file: the silence after the speech is where an utterance ends.
  const silence = Buffer.alloc(Math.round(tts.sampleRate * 1.5) * 2);
  writeFileSync(wav, encodeWav(Buffer.concat([...pcm, silence]), tts.sampleRate));
  // With speech input (the mic button shows only then), no barge-in: the fake mic talks over every reply.
  const stt = createOpenAiSttEngine({ baseUrl: llm.baseUrl, apiKey: undefined, model: 'whisper-1', language: 'en', timeoutMs: 3000 });
  chorus = await startChorus({ database: db.database, env: { WEB_DIR: WEB_DIST, LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', BARGE_IN: 'false', PREEMPTIVE_GENERATION: 'false' }, tts, stt });
  proxy = await TestProxy.start(chorus.httpUrl);
  browser = await launchBrowser(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wav}`]);
});

beforeEach(async () => {
  llm.reset();
  proxy.policy = undefined;
  const [db] = await openTestDatabases();
  await resetData(db!.database);
  await chorus.repo.ensureStarterCast();
  // Talkativeness 0: under the default strategy (natural) only the characters a message names answer.
  for (const c of await chorus.repo.listCharacters()) await chorus.repo.updateCharacter({ id: c.id, talkativeness: 0 });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, colorScheme: 'dark' });
  await context.addInitScript(recordSourceStarts);
  page = await context.newPage();
  pageErrors = [];
  dialogs = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
});

afterEach(async () => {
  await context?.close();
  context = undefined;
  await chorus.settled();
  assert.deepEqual(pageErrors, [], 'the page threw');
  assert.deepEqual(dialogs, [], 'the page opened a dialog (alert/confirm)');
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await chorus?.close();
  await llm?.close();
  await tts?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ───────────────────────────── helpers ─────────────────────────────

async function rest<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${chorus.httpUrl}${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as T };
}

const characters = async () => (await rest<Character[]>('GET', '/api/characters')).body;
const characterNamed = async (name: string) => (await characters()).find((c) => c.name === name);

/** Opens the client through the proxy and waits until its session has started. */
async function openApp(query = ''): Promise<ProxyConnection> {
  const before = proxy.connections.length;
  await page.goto(`${proxy.url}/${query}`);
  await page.waitForFunction(() => window.__chorus?.connection.sessions >= 1 && window.__chorus.connection.state === 'connected');
  await page.locator('.conn-pill[data-state="connected"]').waitFor();
  return proxy.waitFor(() => proxy.connections[before], 'the page to connect');
}

const debugState = () => page.evaluate(() => JSON.parse(JSON.stringify(window.__chorus)) as Debug);

/** One real AudioBufferSourceNode.start() call: context time at the call, when it plays, how long. */
type SourceStart = { calledAt: number; startsAt: number; duration: number };

/**
 * Runs in the page before its scripts: records every AudioBufferSourceNode.start() call as the
 * Web Audio API sees it (start() with no time, or a past one, plays at once), so playback is
 * checked against what was really scheduled, not the player's own account of it.
 */
function recordSourceStarts(): void {
  const starts: SourceStart[] = [];
  (window as unknown as { __sourceStarts: SourceStart[] }).__sourceStarts = starts;
  const original = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (this: AudioBufferSourceNode, when?: number, ...rest: number[]) {
    const calledAt = this.context.currentTime;
    starts.push({ calledAt, startsAt: Math.max(when ?? 0, calledAt), duration: this.buffer?.duration ?? 0 });
    return original.call(this, when, ...rest);
  };
}

const sourceStarts = () => page.evaluate(() => (window as unknown as { __sourceStarts: SourceStart[] }).__sourceStarts);

async function typeAndSend(text: string): Promise<void> {
  await page.locator('.composer-input').fill(text);
  await page.locator('.composer-input').press('Enter');
}

/** The binary frames of one message the server sent (each right after its audio_chunk header). */
function serverAudio(conn: ProxyConnection, messageId: string): { frames: number; bytes: number } {
  let frames = 0;
  let bytes = 0;
  const all = conn.fromServer;
  for (let i = 0; i < all.length - 1; i++) {
    const f = all[i]!;
    if (f.json?.type === 'audio_chunk' && f.json.data?.message_id === messageId && all[i + 1]!.binary) {
      frames++;
      bytes += all[i + 1]!.data.length;
    }
  }
  return { frames, bytes };
}

const serverMessageIds = (conn: ProxyConnection, type: string) => conn.serverMessages(type).map((m) => String(m.data?.message_id));

// ───────────────────────────── chat, streaming, playback ─────────────────────────────

describe('chat', () => {
  test('each reply streams in under its character, and its speech is scheduled gaplessly at 22050 Hz, messages in order', async () => {
    const replies = {
      harlan: 'Evening. Something about your question does not add up, but I will allow it.',
      mira: 'Clear skies tonight, friend. The stars are out, and so is the whole crew.',
      pip: 'Hello hello! I was just soldering a kettle that sings in three-part harmony!',
    };
    // All three named: they answer in order of mention (Harlan, Mira, Pip).
    llm.chat.enqueue(
      { tokens: tokenize(replies.harlan), tokenDelayMs: 40 },
      { tokens: tokenize(replies.mira), tokenDelayMs: 15 },
      { tokens: tokenize(replies.pip), tokenDelayMs: 15 },
    );
    const conn = await openApp();
    await page.locator('.cast-bar').getByText('Harlan, Mira, Pip').waitFor();
    // Every state Harlan's bubble passes through, as the page renders it (a MutationObserver sees
    // each task's result; polling could miss the moment between text and speech).
    await page.evaluate(() => {
      const seen: { replying: boolean; status: string; text: string }[] = [];
      (window as unknown as { __harlanStates: typeof seen }).__harlanStates = seen;
      new MutationObserver(() => {
        const el = document.querySelector('.msg-char[data-character-name="Harlan Graves"]');
        if (!el) return;
        const state = { replying: el.classList.contains('is-replying'), status: el.querySelector('.msg-status')?.textContent ?? '', text: el.querySelector('.msg-text')?.textContent ?? '' };
        const last = seen.at(-1);
        if (!last || last.replying !== state.replying || last.status !== state.status || last.text !== state.text) seen.push(state);
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await typeAndSend('Hello Harlan, Mira and Pip, how is the evening treating you?');
    await page.locator('.msg-user .msg-text', { hasText: 'Hello Harlan' }).waitFor();

    for (const [name, text] of [['Harlan Graves', replies.harlan], ['Mira Vance', replies.mira], ['Pip Sprocket', replies.pip]] as const) {
      const msg = page.locator(`.msg-char[data-character-name="${name}"]`);
      await msg.locator('.msg-text', { hasText: text }).waitFor();
      assert.equal(await msg.locator('.msg-name').textContent(), name);
      assert.equal(await msg.locator('.avatar').textContent(), name[0], 'an initial-letter avatar');
      assert.equal(await msg.locator('.msg-text').textContent(), text);
    }
    // Text appeared as it streamed: the bubble held part of the reply, marked replying.
    const states = await page.evaluate(() => (window as unknown as { __harlanStates: { replying: boolean; status: string; text: string }[] }).__harlanStates);
    assert.ok(
      states.some((s) => s.replying && /replying/.test(s.status) && s.text.length > 0 && s.text.length < replies.harlan.length && replies.harlan.startsWith(s.text)),
      `a partial reply marked replying among ${JSON.stringify(states.slice(0, 6))}`,
    );
    const names = await page.locator('.msg-char .msg-name').allTextContents();
    assert.deepEqual(names, ['Harlan Graves', 'Mira Vance', 'Pip Sprocket']);
    await page.waitForFunction(() => document.querySelectorAll('.msg-char.is-replying').length === 0);

    // The page shows who is speaking while the audio plays (seconds of it are still to come here).
    await page.locator('.msg-char.is-speaking .msg-status', { hasText: 'speaking' }).first().waitFor();
    await page.locator('.status-line .activity', { hasText: 'is speaking' }).waitFor();
    await page.locator('.conv-row .conv-title', { hasText: 'Hello Harlan' }).waitFor();
    await page.screenshot({ path: SCREENSHOT });

    // Playback: every frame the server sent for each message is on the clock, and nothing else.
    await proxy.waitFor(() => conn.serverMessages('audio_stream_stop').length === 3, 'three audio streams to finish', 30_000);
    const ids = serverMessageIds(conn, 'audio_stream_start');
    const sent = ids.map((id) => serverAudio(conn, id));
    const totalFrames = sent.reduce((a, s) => a + s.frames, 0);
    await page.waitForFunction((n) => window.__chorus.playback.scheduledFrames === n, totalFrames);
    const playback = (await debugState()).playback;
    assert.deepEqual(playback.sampleRates, [22050]);
    for (const [i, id] of ids.entries()) assert.equal(playback.framesByMessage[id], sent[i]!.frames, `frames of message ${i + 1}`);
    const seconds = sent.reduce((a, s) => a + s.bytes, 0) / 2 / 22050;
    assert.ok(Math.abs(playback.scheduledSeconds - seconds) < 1e-3, `scheduled ${playback.scheduledSeconds} s, the server sent ${seconds} s`);
    assert.ok(seconds > 3 && seconds < 40, `plausible length of speech: ${seconds} s`);
    assert.deepEqual(playback.order, ids, 'messages play first in first out');
    // Gapless, read from the real start() calls: each frame starts exactly where the one before
    // it ends, unless it only arrived after that one had finished playing (an underrun: a gap is
    // then unavoidable); no frame ever overlaps the one before it.
    const timeline = playback.timeline;
    const starts = await sourceStarts();
    assert.equal(timeline.length, totalFrames);
    assert.equal(starts.length, totalFrames, 'one start() per frame');
    let late = 0;
    for (let i = 1; i < starts.length; i++) {
      const [prevId] = timeline[i - 1]!;
      const [id] = timeline[i]!;
      const prevEnd = starts[i - 1]!.startsAt + starts[i - 1]!.duration;
      const { calledAt: at, startsAt: start } = starts[i]!;
      assert.ok(start >= prevEnd - 1e-6, `frame ${i} overlaps the one before it`);
      if (Math.abs(start - prevEnd) < 1e-6) continue;
      assert.ok(at > prevEnd - 0.1, `frame ${i} (${id === prevId ? 'same' : 'next'} message) was on hand ${prevEnd - at} s before the previous one ended, yet starts ${start - prevEnd} s after it`);
      if (id === prevId) late++;
    }
    assert.equal(playback.underruns, late, 'underruns counted');
    assert.ok(late <= 2, `${late} frames inside a message arrived too late to play gaplessly`);
    assert.equal(playback.discardedFrames, 0);

  });

  test('stop cuts the sound at once, and frames of the cancelled message that still arrive are not scheduled', async () => {
    const long = Array.from({ length: 8 }, (_, i) => `Idea number ${i + 1} is a clockwork umbrella that opens when it hears thunder.`).join(' ');
    llm.chat.enqueue({ tokens: tokenize(long), tokenDelayMs: 25 });
    const conn = await openApp();
    // Let ten audio frames (about a second) through, then hold everything the server sends.
    let forwarded = 0;
    proxy.policy = (frame) => (frame.binary && ++forwarded > 10 ? 'hold' : 'pass');
    await typeAndSend('Pip, what are you building?');
    const id = await proxy.waitFor(() => serverMessageIds(conn, 'audio_stream_start')[0], 'audio to start');
    await proxy.waitFor(() => conn.held.filter((f) => f.binary).length >= 3, 'the server to send more frames');
    // Sound is playing when stop is pressed.
    await page.waitForFunction((mid) => window.__chorus.playback.framesByMessage[mid] === 10 && window.__chorus.playback.activeSources > 0, id);

    await page.locator('.stop-btn').click();
    // Silent within a render quantum: every source is stopped and the output disconnected.
    await page.waitForFunction(() => window.__chorus.playback.activeSources === 0 && window.__chorus.playback.stops === 1);
    await proxy.waitFor(() => conn.clientMessages('interrupt').length === 1, 'interrupt to reach the server');
    const scheduled = (await debugState()).playback.scheduledFrames;

    // Now the held frames of the cancelled message arrive, then the server's acknowledgement.
    const heldAudio = conn.held.filter((f) => f.binary).length;
    proxy.policy = undefined;
    conn.release();
    await proxy.waitFor(() => conn.delivered.some((f) => f.json?.type === 'interrupt_ack'), 'interrupt_ack');
    await page.waitForFunction((n) => window.__chorus.playback.discardedFrames >= n, heldAudio);
    const after = (await debugState()).playback;
    assert.equal(after.scheduledFrames, scheduled, 'no frame scheduled after stop');
    assert.equal(after.framesByMessage[id], 10);
    assert.ok(after.cancelled.includes(id));
    assert.ok(after.discardedFrames >= 3);
    await page.locator(`.msg-char[data-message-id="${id}"] .badge`, { hasText: 'interrupted' }).waitFor();

    // Typing while a character speaks interrupts it first: interrupt, then user_message.
    llm.chat.enqueue({ tokens: tokenize(long), tokenDelayMs: 25 }, { tokens: tokenize('All right, all right, I will stop.') });
    await typeAndSend('Pip, again please.');
    const second = await proxy.waitFor(() => serverMessageIds(conn, 'audio_stream_start')[1], 'the second reply to be spoken');
    await page.waitForFunction((mid) => (window.__chorus.playback.framesByMessage[mid] ?? 0) > 0, second);
    const sentBefore = conn.clientMessages().length;
    await typeAndSend('Pip, stop!');
    await proxy.waitFor(() => conn.clientMessages('user_message').length === 3, 'the third message');
    // (playback_position, before the interrupt, says how much was heard: test/message-actions-browser.test.ts.)
    const sentTypes = conn.clientMessages().slice(sentBefore).map((m) => m.type).filter((t) => t !== 'playback_position');
    assert.deepEqual(sentTypes.slice(0, 2), ['interrupt', 'user_message']);
    await page.waitForFunction((mid) => window.__chorus.playback.cancelled.includes(mid), second);
    const cut = (await debugState()).playback.framesByMessage[second];
    await page.locator('.msg-char .msg-text', { hasText: 'I will stop.' }).waitFor();
    await proxy.waitFor(() => conn.serverMessages('audio_stream_stop').length === 3, 'the last reply to be spoken', 30_000);
    assert.equal((await debugState()).playback.framesByMessage[second], cut, 'nothing more of the interrupted message');
  });
});

describe('errors', () => {
  test("the server's errors are shown in plain words", async () => {
    const conn = await openApp();
    // A failing LLM: the server's `error` (llm_error) is said in plain words (web/src/errors.ts) in
    // the reply's own bubble, not in a toast over the conversation.
    llm.chat.enqueue({ tokens: [], failure: { status: 500 } });
    await typeAndSend('Mira, are you there?');
    const error = await proxy.waitFor(() => conn.serverMessages('error')[0], 'an error from the server');
    assert.equal((error.data as { code?: string }).code, 'llm_error');
    await page.locator('.msg-char.is-failed .msg-cut-reason', { hasText: 'The language model did not answer properly' }).waitFor();
    assert.equal(await page.locator('.toast').count(), 0, 'no toast for what the bubble says');

    // A refused change (a voice name that exists): the server's reason, naming it, in the form.
    await page.locator('.nav-voices').click();
    await page.locator('.new-voice').click();
    await page.locator('form.voice-form input[name="voice"]').fill('mira-warm');
    await page.locator('form.voice-form .save').click();
    await page.locator('form.voice-form .form-error', { hasText: 'voice "mira-warm" already exists' }).waitFor();
  });
});

describe('a reply cut short', () => {
  test('by an LLM failure is marked failed in its bubble, with what did arrive', async () => {
    await openApp();
    llm.chat.enqueue({ tokens: tokenize('The tide turns at nine tonight'), failure: { cutAfterTokens: 3 } });
    await typeAndSend('Mira, when is the tide?');
    const bubble = page.locator('.msg-char.is-failed');
    await bubble.locator('.badge-danger', { hasText: 'failed' }).waitFor();
    assert.equal((await bubble.locator('.msg-text').textContent())?.trim(), tokenize('The tide turns at nine tonight').slice(0, 3).join('').trim());
    assert.equal(await page.locator('.msg-char .badge-warn', { hasText: 'interrupted' }).count(), 0, 'failed, not interrupted');
  });
});

// ───────────────────────────── records through the UI ─────────────────────────────

describe('characters and voices', () => {
  test('create, search, edit (picture upload with a size limit), deactivate and delete a character; read back over REST', async () => {
    await openApp();
    await page.locator('.nav-characters').click();
    const panel = page.locator('dialog.characters-panel');
    await panel.locator('.char-row', { hasText: 'Mira Vance' }).waitFor();

    // Create.
    await panel.locator('.new-character').click();
    const form = panel.locator('form.char-form');
    await form.locator('input[name="name"]').fill('Ada Quill');
    await form.locator('textarea[name="system_prompt"]').fill('You are Ada Quill, a cartographer of imaginary islands.');
    await form.locator('select[name="voice"]').selectOption('harlan-dry');
    await form.locator('input[name="image_url"]').fill('javascript:alert(1)');
    await form.locator('input[name="image_url"]').blur();
    await form.locator('.picture-error', { hasText: 'must start with http' }).waitFor();
    await form.locator('input[name="image_url"]').fill('https://example.com/ada.png');
    await form.locator('input[name="image_url"]').blur();
    await form.locator('.save').click();
    await panel.locator('.char-row', { hasText: 'Ada Quill' }).waitFor();
    let ada = await characterNamed('Ada Quill');
    assert.ok(ada, 'the character was stored');
    assert.equal(ada.system_prompt, 'You are Ada Quill, a cartographer of imaginary islands.');
    assert.equal(ada.voice, 'harlan-dry');
    assert.equal(ada.image_url, 'https://example.com/ada.png');
    assert.equal(ada.is_active, true);

    // Search.
    await panel.locator('input[name="search"]').fill('cartographer');
    await page.waitForFunction(() => document.querySelectorAll('dialog.characters-panel .char-row').length === 1);
    assert.equal(await panel.locator('.char-row .record-name').textContent(), 'Ada Quill');
    await panel.locator('input[name="search"]').fill('');
    await page.waitForFunction(() => document.querySelectorAll('dialog.characters-panel .char-row').length === 4);

    // Edit: a picture over the limit is refused with a clear message; a small one is stored inline.
    await panel.locator('.char-row', { hasText: 'Ada Quill' }).click();
    await form.locator('textarea[name="system_prompt"]').fill('You are Ada Quill, who maps islands that do not exist.');
    await form.locator('input[name="image_file"]').setInputFiles({ name: 'huge.png', mimeType: 'image/png', buffer: Buffer.alloc(600 * 1024, 1) });
    await form.locator('.picture-error', { hasText: 'the limit is 512 KB' }).waitFor();
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
    await form.locator('input[name="image_file"]').setInputFiles({ name: 'ada.png', mimeType: 'image/png', buffer: png });
    await form.locator('.picture-note', { hasText: 'Uploaded picture' }).waitFor();
    assert.equal(await form.locator('.picture-error').textContent(), '');
    await form.locator('.save').click();
    await page.waitForFunction(async (id) => (await (await fetch(`/api/characters/${id}`)).json()).image_url?.startsWith('data:'), ada.id);
    ada = await characterNamed('Ada Quill');
    await panel.locator(`form.char-form[data-updated-at="${ada?.updated_at}"]`).waitFor(); // the editor shows the saved record
    assert.equal(ada?.system_prompt, 'You are Ada Quill, who maps islands that do not exist.');
    assert.equal(ada?.image_url, `data:image/png;base64,${png.toString('base64')}`);
    await panel.locator('.char-row', { hasText: 'Ada Quill' }).locator('.avatar img').waitFor();

    // Deactivate with the switch.
    await panel.locator('.char-row', { hasText: 'Ada Quill' }).locator('input.switch').uncheck();
    await page.waitForFunction(async () => (await (await fetch('/api/characters?active=true')).json()).length === 3);
    assert.equal((await characterNamed('Ada Quill'))?.is_active, false);

    // Delete asks first: cancel keeps it, confirm deletes it.
    await panel.locator('.char-row', { hasText: 'Ada Quill' }).click();
    await form.locator('button.delete').click();
    await page.locator('dialog.confirm').getByText('Cancel').click();
    assert.equal((await rest('GET', `/api/characters/${ada!.id}`)).status, 200);
    await form.locator('button.delete').click();
    await page.locator('dialog.confirm .confirm-ok').click();
    await panel.locator('.char-row', { hasText: 'Ada Quill' }).waitFor({ state: 'detached' });
    assert.equal((await rest('GET', `/api/characters/${ada!.id}`)).status, 404);
  });

  test('create and edit a voice with an engine voice from the engine list, preview it, delete it', async () => {
    const conn = await openApp();
    await page.locator('.nav-voices').click();
    const panel = page.locator('dialog.voices-panel');
    await panel.locator('.voice-row', { hasText: 'mira-warm' }).waitFor();
    await panel.locator('.new-voice').click();
    const form = panel.locator('form.voice-form');
    await form.locator('input[name="voice"]').fill('captain-low');
    await form.locator('select[name="engine"]').selectOption('espeak');
    // The engine voice list comes from GET /api/voices/engines.
    await page.waitForFunction(() => document.querySelectorAll('dialog.voices-panel select[name="engine_voice"] option').length > 20);
    await form.locator('select[name="engine_voice"]').selectOption('en-us+m3');
    await form.locator('input[aria-label="speed"]').fill('0.8');
    await form.locator('input[aria-label="pitch"]').fill('0.6');
    await form.locator('.save').click();
    await panel.locator('.voice-row', { hasText: 'captain-low' }).waitFor();
    let voice = (await rest<Voice>('GET', '/api/voices/captain-low')).body;
    assert.deepEqual(
      { e: voice.engine, ev: voice.engine_voice, s: voice.speed, p: voice.pitch, m: voice.method, a: voice.audio_path, t: voice.text_path },
      { e: 'espeak', ev: 'en-us+m3', s: 0.8, p: 0.6, m: 'preset', a: null, t: null },
    );

    // Edit.
    await form.locator('input[aria-label="speed"]').fill('1.25');
    await form.locator('.save').click();
    await page.waitForFunction(async () => (await (await fetch('/api/voices/captain-low')).json()).speed === 1.25);
    voice = (await rest<Voice>('GET', '/api/voices/captain-low')).body;
    assert.equal(voice.speed, 1.25);
    await panel.locator(`form.voice-form[data-updated-at="${voice.updated_at}"]`).waitFor(); // the editor shows the saved record

    // Preview plays the form's settings (a definition) through the normal audio path.
    await form.locator('input[name="preview_text"]').fill('Ahoy there.');
    await form.locator('button.preview').click();
    const preview = await proxy.waitFor(() => conn.clientMessages('preview_voice')[0], 'preview_voice');
    assert.deepEqual(preview.data, {
      voice: { voice: 'captain-low', engine: 'espeak', engine_voice: 'en-us+m3', speed: 1.25, pitch: 0.6, method: 'preset', speaker_desc: null, scene_prompt: null, style: null },
      text: 'Ahoy there.',
    });
    await proxy.waitFor(() => conn.serverMessages('audio_stream_stop').length === 1, 'the preview audio');
    const id = serverMessageIds(conn, 'audio_stream_start')[0]!;
    const frames = serverAudio(conn, id).frames;
    assert.ok(frames > 0);
    await page.waitForFunction(([mid, n]) => window.__chorus.playback.framesByMessage[mid as string] === n, [id, frames] as const);

    // Delete.
    await form.locator('button.delete').click();
    await page.locator('dialog.confirm .confirm-ok').click();
    await panel.locator('.voice-row', { hasText: 'captain-low' }).waitFor({ state: 'detached' });
    assert.equal((await rest('GET', '/api/voices/captain-low')).status, 404);
  });

  test('a name that looks like HTML is shown as text, and unsafe picture URLs are never loaded', async () => {
    for (const c of await characters()) await rest('PATCH', `/api/characters/${c.id}`, { is_active: false });
    const evil = '<img src=x onerror=alert(1)>';
    // A picture URL that is not http(s)/data:image must not become an <img>.
    await rest('POST', '/api/characters', { name: 'Script Kiddie', image_url: 'javascript:alert(2)', is_active: false });
    await openApp();
    await page.locator('.nav-characters').click();
    const panel = page.locator('dialog.characters-panel');
    await panel.locator('.new-character').click();
    await panel.locator('input[name="name"]').fill(evil);
    await panel.locator('textarea[name="system_prompt"]').fill('<script>alert(3)</script>');
    await panel.locator('.save').click();
    const row = panel.locator('.char-row').filter({ hasText: 'onerror' });
    await row.waitFor();
    assert.equal(await row.locator('.record-name').textContent(), evil);
    assert.equal(await panel.locator('.char-row', { hasText: 'Script Kiddie' }).locator('img').count(), 0);
    assert.equal(await panel.locator('.char-row', { hasText: 'Script Kiddie' }).locator('.avatar').textContent(), 'S');
    await panel.locator('.panel-close').click();

    llm.chat.enqueue({ tokens: tokenize('<b>bold</b> and <img src=y onerror=alert(4)> are just text.') });
    await typeAndSend('Hello <i>there</i>');
    const reply = page.locator('.msg-char').first();
    await reply.locator('.msg-text', { hasText: 'are just text.' }).waitFor();
    assert.equal(await reply.locator('.msg-name').textContent(), evil);
    assert.equal(await reply.locator('.msg-text').textContent(), '<b>bold</b> and <img src=y onerror=alert(4)> are just text.');
    assert.equal(await page.locator('.msg-user .msg-text').textContent(), 'Hello <i>there</i>');
    // No element was made from any of it.
    const injected = await page.evaluate(() => ({
      imgs: [...document.querySelectorAll('img')].map((i) => i.getAttribute('src')),
      tags: document.querySelectorAll('.chat-list b, .chat-list i:not(.dots i):not(.eq i), .chat-list script, dialog script').length,
    }));
    assert.deepEqual(injected, { imgs: [], tags: 0 });
    assert.equal(await page.locator('.cast-bar .cast-names').textContent(), '<img');
  });
});

describe('conversations', () => {
  test('list newest first, open one (history shown, chat resumes it), rename and delete through the UI', async () => {
    const mira = (await characterNamed('Mira Vance'))!;
    const make = async (title: string, lines: Array<[string, string]>) => {
      const c = (await rest<Conversation>('POST', '/api/conversations', { title, active_characters: [mira.id] })).body;
      for (const [who, content] of lines) {
        await rest('POST', `/api/conversations/${c.conversation_id}/messages`, who === 'user' ? { role: 'user', name: 'User', content } : { role: 'assistant', name: 'Mira Vance', character_id: mira.id, content });
      }
      return c;
    };
    const older = await make('Charting the Kestrel Nebula', [['user', 'Where are we headed?'], ['mira', 'Toward the Kestrel Nebula, bearing two-seven-zero.']]);
    const newer = await make('Night watch', [['user', 'Anything on the scope?'], ['mira', 'Only a comet, and it is waving.']]);
    const conn = await openApp();

    await page.waitForFunction(() => document.querySelectorAll('.conv-row').length === 2);
    assert.deepEqual(await page.locator('.conv-row .conv-title').allTextContents(), ['Night watch', 'Charting the Kestrel Nebula']);

    // Open the older one: its history is shown, under the character's name.
    await page.locator('.conv-row', { hasText: 'Charting the Kestrel Nebula' }).locator('.conv-open').click();
    await page.locator('.msg-char .msg-text', { hasText: 'bearing two-seven-zero' }).waitFor();
    assert.equal(await page.locator('.msg-char .msg-name').textContent(), 'Mira Vance');
    assert.equal(await page.locator('.msg-user .msg-text').textContent(), 'Where are we headed?');
    assert.equal(await page.locator('.conv-heading').textContent(), 'Charting the Kestrel Nebula');
    assert.deepEqual(conn.clientMessages('load_conversation').map((m) => m.data), [{ conversation_id: older.conversation_id }]);

    // The chat resumes it: a new message is stored in it, and the reply sees its history.
    llm.chat.enqueue({ tokens: tokenize('Steady as she goes.') });
    await typeAndSend('Mira, keep our course.');
    await page.locator('.msg-char .msg-text', { hasText: 'Steady as she goes.' }).waitFor();
    const lastChat = llm.chat.requests[llm.chat.requests.length - 1]!;
    assert.ok(JSON.stringify(lastChat.body.messages).includes('bearing two-seven-zero'), 'the LLM saw the loaded history');
    // A reply is stored once its audio has played (docs/protocol.md, "What was heard").
    const stored = await eventually(async () => {
      const messages = (await rest<Message[]>('GET', `/api/conversations/${older.conversation_id}/messages`)).body;
      return messages.length === 4 ? messages : undefined;
    }, 'the reply stored');
    assert.deepEqual(stored.map((m) => m.content).slice(2), ['Mira, keep our course.', 'Steady as she goes.']);
    // It is now the newest.
    await page.waitForFunction(() => document.querySelector('.conv-row .conv-title')?.textContent === 'Charting the Kestrel Nebula');

    // Rename in place.
    await page.locator('.conv-row', { hasText: 'Night watch' }).hover();
    await page.locator('.conv-row', { hasText: 'Night watch' }).locator('.conv-rename').click();
    await page.locator('.conv-title-input').fill('Comet sighting');
    await page.locator('.conv-title-input').press('Enter');
    await page.locator('.conv-row .conv-title', { hasText: 'Comet sighting' }).waitFor();
    assert.equal((await rest<Conversation>('GET', `/api/conversations/${newer.conversation_id}`)).body.title, 'Comet sighting');

    // Delete the open one: asks first, then it is gone and a new conversation starts.
    await page.locator('.conv-row.is-current').hover();
    await page.locator('.conv-row.is-current .conv-delete').click();
    await page.locator('dialog.confirm .confirm-ok').click();
    await page.locator('.conv-row', { hasText: 'Charting the Kestrel Nebula' }).waitFor({ state: 'detached' });
    assert.equal((await rest('GET', `/api/conversations/${older.conversation_id}`)).status, 404);
    assert.equal((await rest('GET', `/api/conversations/${older.conversation_id}/messages`)).status, 404);
    await page.locator('.chat-empty h2', { hasText: 'A new conversation' }).waitFor();
    await proxy.waitFor(() => conn.serverMessages('history_cleared').length === 1, 'a new conversation');
    assert.equal(await page.locator('.conv-heading').textContent(), 'New conversation');
  });
});

// ───────────────────────────── connection ─────────────────────────────

describe('connection', () => {
  test('after the server closes the socket the client reconnects and resumes its conversation', async () => {
    llm.chat.enqueue({ tokens: tokenize('The lighthouse is lit.') });
    const first = await openApp();
    await typeAndSend('Mira, is the lighthouse lit?');
    await page.locator('.msg-char .msg-text', { hasText: 'The lighthouse is lit.' }).waitFor();
    const conversationId = (await debugState()).connection.conversationId;
    assert.ok(conversationId);
    // Stored once its audio has played (a reply cut by the close would keep only what was heard).
    await eventually(async () => ((await rest<Message[]>('GET', `/api/conversations/${conversationId}/messages`)).body.length === 2 ? true : undefined), 'the reply stored');

    first.closeFromServer(1012, 'restarting');
    await page.locator('.conn-banner', { hasText: 'Reconnecting' }).waitFor();
    await page.waitForFunction(() => window.__chorus.connection.sessions === 2 && window.__chorus.connection.state === 'connected');
    const second = proxy.last;
    assert.notEqual(second, first);
    const load = await proxy.waitFor(() => second.clientMessages('load_conversation')[0], 'load_conversation on the new connection');
    assert.deepEqual(load.data, { conversation_id: conversationId });
    await proxy.waitFor(() => second.serverMessages('conversation_loaded').length === 1, 'conversation_loaded');
    const history = (await debugState()).connection.history;
    assert.deepEqual(history.slice(-3), ['reconnecting', 'connecting', 'connected']);
    assert.equal(await page.locator('.conn-banner').isHidden(), true);
    // The history is still on screen and the next message goes to the same conversation.
    await page.locator('.msg-char .msg-text', { hasText: 'The lighthouse is lit.' }).waitFor();
    llm.chat.enqueue({ tokens: tokenize('And the fog is lifting.') });
    await typeAndSend('Mira, and the fog?');
    await page.locator('.msg-char .msg-text', { hasText: 'And the fog is lifting.' }).waitFor();
    assert.equal((await debugState()).connection.conversationId, conversationId);
    await page.waitForFunction(async (id) => (await (await fetch(`/api/conversations/${id}/messages`)).json()).length === 4, conversationId);
    const lastChat = llm.chat.requests[llm.chat.requests.length - 1]!;
    assert.ok(JSON.stringify(lastChat.body.messages).includes('The lighthouse is lit.'), 'the resumed session has the history');
  });

  test('a socket that stops answering pings is declared dead and replaced; settings are sent again on connect', async () => {
    const first = await openApp('?heartbeat=1500');
    // Settings are remembered and sent on every connect.
    await page.locator('.nav-settings').click();
    await page.locator('input[name="temperature"]').fill('1.3');
    await proxy.waitFor(() => first.clientMessages('model_settings').find((m) => m.data?.temperature === 1.3), 'model_settings');
    await proxy.waitFor(() => first.serverMessages('model_settings_updated').find((m) => m.data?.temperature === 1.3), 'model_settings_updated');
    await page.locator('dialog.settings-panel .panel-close').click();

    // The server goes silent (no pong): the client gives up on the socket and reconnects.
    await proxy.waitFor(() => first.clientMessages('ping')[0], 'a ping from the page');
    proxy.policy = (_frame, conn) => (conn === first ? 'drop' : 'pass');
    await page.waitForFunction(() => window.__chorus.connection.sessions === 2 && window.__chorus.connection.state === 'connected', undefined, { timeout: 20_000 });
    const second = proxy.last;
    assert.notEqual(second, first);
    await proxy.waitFor(() => second.clientMessages('model_settings').find((m) => m.data?.temperature === 1.3), 'model_settings again');
    // Ping/pong keeps the new socket alive.
    await proxy.waitFor(() => second.serverMessages('pong').length >= 2, 'pongs on the new socket');
    assert.equal((await debugState()).connection.sessions, 2);
  });
});

// ───────────────────────────── microphone ─────────────────────────────

describe('microphone', () => {
  test('mic frames are PCM16 16 kHz of 20–100 ms; speech input reports its state; once the mic is off no frame is sent', async () => {
    const conn = await openApp();
    // Hold the server's answers to start_listening until 25 mic frames (1 s) have reached it.
    proxy.policy = (_frame, c) => (c.clientMessages('start_listening').length > 0 && c.clientBinary().length < 25 ? 'hold' : 'pass');
    await page.locator('.mic-btn').click();
    await proxy.waitFor(() => conn.clientBinary().length >= 25, '25 binary frames from the microphone');
    conn.release();
    proxy.policy = undefined;

    const frames = conn.clientBinary();
    const start = conn.clientMessages('start_listening');
    assert.equal(start.length, 1);
    for (const f of frames) {
      assert.equal(f.data.length % 2, 0, 'whole PCM16 samples');
      const ms = (f.data.length / 2 / 16_000) * 1000;
      assert.ok(ms >= 20 && ms <= 100, `frame of ${ms} ms`);
    }
    // It is the fake microphone's speech, not silence.
    const pcm = Buffer.concat(frames.map((f) => f.data));
    let sum = 0;
    for (let i = 0; i < pcm.length; i += 2) sum += pcm.readInt16LE(i) ** 2;
    const rms = Math.sqrt(sum / (pcm.length / 2));
    assert.ok(rms > 200, `speech level ${rms}`);
    const dbg = (await debugState()).mic;
    assert.ok(dbg.framesSent >= 25);
    assert.equal(dbg.frameBytes[0], 1280);
    assert.ok(dbg.contextRate > 0);

    // Speech input reports its state and the mic stays on.
    await page.locator('.stt-chip').waitFor();
    assert.equal((await debugState()).mic.on, true);

    // Off: across a whole chat round trip (far longer than a 40 ms frame), the page sends
    // nothing more, and the proxy got exactly what it sent.
    await page.locator('.mic-btn').click();
    await proxy.waitFor(() => conn.clientMessages('stop_listening').length === 1, 'stop_listening');
    await page.waitForFunction(() => !window.__chorus.mic.on && document.querySelector('.mic-btn')?.getAttribute('aria-pressed') === 'false');
    const sentAtOff = (await debugState()).mic.framesSent;
    llm.chat.enqueue({ tokens: tokenize('Loud and clear.') });
    await typeAndSend('Mira, radio check.');
    await page.locator('.msg-char .msg-text', { hasText: 'Loud and clear.' }).waitFor();
    assert.equal((await debugState()).mic.framesSent, sentAtOff, 'frames stop when the mic turns off');
    assert.equal(conn.clientBinary().length, sentAtOff);
  });

  test('full duplex and reconnect: the mic stays open during playback, and after a reconnect listening resumes on the same stream', async () => {
    const first = await openApp();
    await page.locator('.mic-btn').click();
    await page.waitForFunction(() => window.__chorus.mic.on && window.__chorus.mic.framesSent > 3);
    const trackId = (await debugState()).mic.trackId;
    assert.ok(trackId);

    // A reply plays while the mic keeps sending (echo cancellation on, so the user can barge in).
    llm.chat.enqueue({ tokens: tokenize('I can hear you perfectly well over the hum of the engines, captain.') });
    await typeAndSend('Mira, can you hear me?');
    await page.waitForFunction(() => window.__chorus.playback.activeSources > 0);
    const during = first.clientBinary().length;
    await proxy.waitFor(() => first.clientBinary().length >= during + 5, 'mic frames during playback');
    assert.equal((await debugState()).mic.on, true);

    first.closeFromServer();
    await page.waitForFunction(() => window.__chorus.connection.sessions === 2 && window.__chorus.connection.state === 'connected');
    const second = proxy.last;
    await proxy.waitFor(() => second.clientMessages('start_listening').length === 1, 'start_listening again');
    await proxy.waitFor(() => second.clientBinary().length >= 5, 'mic frames on the new socket');
    const state = await debugState();
    assert.equal(state.mic.on, true);
    assert.equal(state.mic.trackId, trackId, 'the same capture stream');
    assert.equal(await page.locator('.mic-btn').getAttribute('aria-pressed'), 'true');

    // Turning it off tells the server and stops the frames.
    await page.locator('.mic-btn').click();
    await proxy.waitFor(() => second.clientMessages('stop_listening').length === 1, 'stop_listening');
    await page.waitForFunction(() => !window.__chorus.mic.on);
  });
});

// ───────────────────────────── the capture resampler (Node) ─────────────────────────────

describe('speech input end to end', () => {
  test('the fake microphone speech is transcribed live, the transcript shows, and the character answers', async () => {
    const [db] = await openTestDatabases();
    const stt = createOpenAiSttEngine({ baseUrl: llm.baseUrl, apiKey: undefined, model: 'whisper-1', language: 'en', timeoutMs: 3000 });
    const listening = await startChorus({
      database: db!.database,
      env: { WEB_DIR: WEB_DIST, LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', STT_REALTIME_INTERVAL_MS: '300' },
      tts,
      stt,
    });
    try {
      llm.transcription.script(() => ({ text: 'Hello Mira. Can you hear me?' }));
      await page.goto(`${listening.httpUrl}/`);
      await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');
      await page.locator('.mic-btn').click();
      await page.locator('.stt-chip').waitFor();
      // The transcript of the utterance becomes the user's message, and Mira (mentioned) answers it.
      await page
        .locator('.msg-user .msg-text', { hasText: 'Hello Mira. Can you hear me?' })
        .first()
        .waitFor({ timeout: 20_000 })
        .catch(async (e: Error) => {
          const mic = (await debugState()).mic;
          throw new Error(`${e.message}\n(transcriptions: ${llm.transcription.requests.length}, mic: ${JSON.stringify(mic)})`);
        });
      const mira = page.locator('.msg-char[data-character-name="Mira Vance"]').first();
      await mira.locator('.msg-text', { hasText: 'Reply to: Hello Mira. Can you hear me?' }).waitFor({ timeout: 10_000 });
      const wavs = llm.transcription.requests.map((r) => r.wav).filter((w) => w !== undefined);
      assert.ok(wavs.length >= 2, 'live and final transcriptions');
      assert.ok(wavs.every((w) => w.sampleRate === 16_000 && w.channels === 1), 'the page sent 16 kHz mono');
      const longest = Math.max(...wavs.map((w) => w.durationMs));
      assert.ok(longest > 1000, `the final transcription covered the utterance (${longest} ms)`);
      await page.locator('.mic-btn').click();
      await page.waitForFunction(() => !window.__chorus.mic.on);
    } finally {
      await page.close();
      await listening.close();
    }
  });
});

describe('capture resampler', () => {
  const tone = (hz: number, rate: number, seconds: number) => Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => 0.5 * Math.sin((2 * Math.PI * hz * i) / rate));
  /** Streams in AudioWorklet-sized blocks of 128. */
  const run = (r: Resampler, input: Float32Array) => {
    const out: number[] = [];
    for (let i = 0; i < input.length; i += 128) out.push(...r.push(input.subarray(i, i + 128)));
    return Float32Array.from(out);
  };
  const rms = (x: Float32Array, from = 0) => Math.sqrt(x.subarray(from).reduce((a, v) => a + v * v, 0) / (x.length - from));
  /** Frequency by counting rising zero crossings. */
  const frequency = (x: Float32Array, rate: number) => {
    let crossings = 0;
    for (let i = 1; i < x.length; i++) if (x[i - 1]! < 0 && x[i]! >= 0) crossings++;
    return (crossings * rate) / x.length;
  };

  for (const inRate of [48_000, 44_100, 96_000, 22_050]) {
    test(`${inRate} Hz → 16 kHz keeps a 1 kHz tone's pitch and level, and the length`, () => {
      const out = run(new Resampler(inRate, 16_000), tone(1000, inRate, 1));
      assert.ok(Math.abs(out.length - 16_000) <= 64, `length ${out.length}`);
      assert.ok(Math.abs(frequency(out.subarray(200), 16_000) - 1000) < 15, `frequency ${frequency(out.subarray(200), 16_000)}`);
      assert.ok(Math.abs(rms(out, 200) - 0.5 / Math.SQRT2) < 0.01, `level ${rms(out, 200)}`);
    });
  }

  test('48 kHz → 16 kHz removes what would alias (a 12 kHz tone) instead of folding it to 4 kHz', () => {
    const out = run(new Resampler(48_000, 16_000), tone(12_000, 48_000, 0.5));
    assert.ok(rms(out, 200) < 0.005, `aliased level ${rms(out, 200)}`);
    const edge = run(new Resampler(48_000, 16_000), tone(6000, 48_000, 0.5));
    assert.ok(rms(edge, 200) > 0.3, `6 kHz passes (${rms(edge, 200)})`);
  });

  test('block size does not change the output, and equal rates pass through', () => {
    const input = tone(440, 44_100, 0.3);
    const a = run(new Resampler(44_100, 16_000), input);
    const b = new Resampler(44_100, 16_000).push(input);
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-6);
    const same = new Resampler(16_000, 16_000).push(input);
    assert.deepEqual(same, input);
  });
});
