// The web client and interruptions that can be taken back, end to end in headless Chromium
// against the real server: a reply plays (real espeak speech), the user makes a sound over it
// (real espeak audio streamed in real time into the server, through the recording proxy, as the
// page's microphone would), the server pauses the reply (audio_paused), hears no words, and
// resumes it (audio_resumed). The page must fall silent at once, tell the server how much it
// played, and then play on from exactly where it stopped: every sample of every frame once,
// none twice, none skipped. What the Web Audio API was asked to do is recorded in the page (each
// source's buffer, offset, start and stop), so the check is on what was really scheduled.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';
import { createOpenAiSttEngine } from '../src/transcribe/engines/openai.ts';
import { launchBrowser, type ProxyConnection, TestProxy } from './support/browser.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';
import { Speaker, streamRealtime, track } from './support/speech-audio.ts';

const WEB_DIST = 'web/dist';

let engines: EngineServer;
let tts: TtsEngine;
let speaker: Speaker;
let chorus: ChorusUnderTest;
let proxy: TestProxy;
let browser: Browser;
let context: BrowserContext | undefined;
let page: Page;
const pageErrors: string[] = [];

before(async () => {
  assert.ok(existsSync(join(WEB_DIST, 'index.html')), `${WEB_DIST} is not built: run npm run build:web`);
  const [db] = await openTestDatabases();
  assert.ok(db);
  await resetData(db.database);
  engines = await startEngineServer();
  tts = await createEspeakEngine({ workers: 1 });
  speaker = await Speaker.start();
  const stt = createOpenAiSttEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'whisper-1', language: 'en', timeoutMs: 5000 });
  const env = { WEB_DIR: WEB_DIST, LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k', STT_MIN_SPEECH_MS: '100', BARGE_IN_MIN_MS: '300', FALSE_INTERRUPT_TIMEOUT_MS: '800' };
  chorus = await startChorus({ database: db.database, env, tts, stt });
  await chorus.repo.ensureStarterCast();
  for (const c of await chorus.repo.listCharacters()) await chorus.repo.updateCharacter({ id: c.id, talkativeness: 0 });
  proxy = await TestProxy.start(chorus.httpUrl);
  browser = await launchBrowser();
});

afterEach(async () => {
  await context?.close();
  context = undefined;
  await chorus.settled();
  assert.deepEqual(pageErrors.splice(0), [], 'the page threw');
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await chorus?.close();
  await engines?.close();
  await speaker?.close();
  await tts?.close();
});

/** One piece of audio the page put on the Web Audio clock: which frame (buffer), from where, when, and when it was stopped. */
interface Piece {
  buffer: number;
  bufferDuration: number;
  offset: number;
  calledAt: number;
  startsAt: number;
  stoppedAt?: number;
}

/** Runs in the page before its scripts: records every AudioBufferSourceNode start() and stop(). */
function recordPieces(): void {
  const pieces: Piece[] = [];
  const ids = new WeakMap<AudioBuffer, number>();
  let next = 0;
  const bySource = new WeakMap<AudioBufferSourceNode, Piece>();
  (window as unknown as { __pieces: Piece[] }).__pieces = pieces;
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (this: AudioBufferSourceNode, when?: number, offset?: number, ...rest: number[]) {
    const buffer = this.buffer as AudioBuffer;
    if (!ids.has(buffer)) ids.set(buffer, next++);
    const calledAt = this.context.currentTime;
    const piece: Piece = { buffer: ids.get(buffer) as number, bufferDuration: buffer.duration, offset: offset ?? 0, calledAt, startsAt: Math.max(when ?? 0, calledAt) };
    pieces.push(piece);
    bySource.set(this, piece);
    return start.call(this, when, offset, ...rest);
  };
  const stop = AudioBufferSourceNode.prototype.stop;
  AudioBufferSourceNode.prototype.stop = function (this: AudioBufferSourceNode, when?: number) {
    const piece = bySource.get(this);
    if (piece && piece.stoppedAt === undefined) piece.stoppedAt = this.context.currentTime;
    return stop.call(this, when);
  };
}

/** Seconds of its buffer a piece played. */
const played = (p: Piece) => Math.max(0, Math.min(p.bufferDuration - p.offset, (p.stoppedAt ?? Infinity) - p.startsAt));

const serverTypes = (conn: ProxyConnection) => conn.fromServer.map((f) => (f.binary ? 'binary' : String(f.json?.type)));

describe('interruptions that can be taken back, in the web client', () => {
  test('a barge-in with no words: the page falls silent at once, reports what it played, and resumes from that sample, nothing repeated or skipped', async () => {
    const story = Array.from({ length: 6 }, (_, i) => `Part ${i + 1} of the story is about a clockwork lighthouse that sings to passing ships.`).join(' ');
    engines.chat.enqueue({ tokens: tokenize(story), tokenDelayMs: 5 });
    engines.transcription.script(() => ({ text: '' })); // a cough: no words
    context = await browser.newContext();
    await context.addInitScript(recordPieces);
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const before = proxy.connections.length;
    await page.goto(`${proxy.url}/`);
    await page.waitForFunction(() => window.__chorus?.connection.state === 'connected');
    const conn = await proxy.waitFor(() => proxy.connections[before], 'the page to connect');

    await page.locator('.composer-input').fill('Pip, tell me a story.');
    await page.locator('.composer-input').press('Enter');
    const id = await proxy.waitFor(() => conn.serverMessages('audio_stream_start')[0]?.data?.message_id as string | undefined, 'the reply audio');
    await page.waitForFunction((mid) => (window.__chorus.playback.framesByMessage[mid] ?? 0) >= 20 && window.__chorus.playback.activeSources > 0, id);

    // The user's sound over the reply, into the server as the page's microphone would send it.
    conn.sendToServer(JSON.stringify({ type: 'start_listening' }), false);
    await streamRealtime((frame) => conn.sendToServer(frame, true), track(await speaker.say('Oh, hmm.'), { silenceMs: 1200 }).pcm);

    await page.waitForFunction(() => window.__chorus.playback.pauses === 1);
    assert.equal(await page.evaluate(() => window.__chorus.playback.activeSources), 0, 'silent at once: every source stopped');
    const reported = await proxy.waitFor(() => conn.clientMessages('playback_position').find((m) => m.data?.message_id === id), 'the page to report how much it played');
    assert.ok(Number(reported.data?.played_ms) > 0);

    await page.waitForFunction(() => window.__chorus.playback.resumes === 1, undefined, { timeout: 10_000 });
    await proxy.waitFor(() => conn.serverMessages('audio_stream_stop').some((m) => m.data?.message_id === id), 'the rest of the reply', 60_000);
    await page.waitForFunction(() => window.__chorus.playback.activeSources === 0 && document.querySelector('.activity')?.textContent === '', undefined, { timeout: 60_000 });

    // The server: paused, resumed, nothing sent between, the reply whole and not cut.
    const types = serverTypes(conn);
    const [p, r] = [types.indexOf('audio_paused'), types.indexOf('audio_resumed')];
    assert.ok(p > 0 && r > p, 'audio_paused, then audio_resumed');
    assert.deepEqual(types.slice(p + 1, r).filter((t) => t === 'binary' || t === 'audio_chunk'), [], 'no frame while paused');
    assert.equal(conn.serverMessages('interrupt_ack').length, 0);
    assert.ok(!conn.serverMessages('audio_stream_stop').some((m) => m.data?.interrupted === true));

    // The page: every frame's audio played exactly once, in order, and none of it while paused.
    const pieces = await page.evaluate(() => (window as unknown as { __pieces: Piece[] }).__pieces);
    const frames = (await page.evaluate((mid) => window.__chorus.playback.framesByMessage[mid], id)) ?? 0;
    const serverFrames = types.filter((t) => t === 'binary').length;
    assert.equal(frames, serverFrames, 'every frame the server sent was taken');
    const buffers = new Map<number, Piece[]>();
    for (const piece of pieces) buffers.set(piece.buffer, [...(buffers.get(piece.buffer) ?? []), piece]);
    assert.equal(buffers.size, frames);
    const cut = pieces.filter((piece) => piece.stoppedAt !== undefined && played(piece) < piece.bufferDuration - piece.offset - 1e-6);
    assert.ok(cut.length >= 1, 'the pause stopped audio that was still to play');
    const pausedAt = Math.min(...cut.map((piece) => piece.stoppedAt as number));
    for (const [buffer, parts] of buffers) {
      let at = 0;
      for (const part of parts) {
        assert.ok(Math.abs(part.offset - at) < 1e-3, `frame ${buffer}: a piece from ${part.offset.toFixed(4)} s, but ${at.toFixed(4)} s had played (repeated or skipped)`);
        at += played(part);
      }
      assert.ok(Math.abs(at - (parts[0] as Piece).bufferDuration) < 1e-3, `frame ${buffer}: ${at.toFixed(4)} s of ${(parts[0] as Piece).bufferDuration.toFixed(4)} s played`);
    }
    const resumed = pieces.filter((piece) => piece.calledAt > pausedAt);
    assert.ok(resumed.length > 0 && resumed.every((piece) => piece.startsAt > pausedAt), 'after the pause, pieces start only once resumed');
    assert.ok(cut.every((piece) => buffers.get(piece.buffer)!.indexOf(piece) < buffers.get(piece.buffer)!.length - 1), 'each frame the pause cut was played on afterwards');
  });
});
