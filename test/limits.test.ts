// Bounded by construction: the WebSocket heartbeat, MAX_SESSIONS, the per-connection rate
// limits, the slow-client close and the TTS first-byte timeout, each against the real server
// over real sockets, with a loopback engine server standing in for the LLM and the TTS server.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { loadConfig } from '../src/config.ts';
import type { Database } from '../src/db/client.ts';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import { createTtsEngine } from '../src/speech/tts.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { closeTestDatabases, openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

let database: Database;
let engines: EngineServer;
const clients: TestClient[] = [];
const servers: ChorusUnderTest[] = [];

async function chorus(env: Record<string, string>, tts?: TtsEngine): Promise<ChorusUnderTest> {
  const server = await startChorus({ database, env: { LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k', ...env }, ...(tts ? { tts } : {}) });
  servers.push(server);
  return server;
}

async function connect(server: ChorusUnderTest): Promise<TestClient> {
  const client = await TestClient.connect(server.wsUrl);
  clients.push(client);
  return client;
}

/** `promise`, or a clear failure when it has not settled within `ms`. */
async function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A raw ws client's close: code and reason. */
const closeOf = (ws: WebSocket, what: string) =>
  within(new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))), what);

before(async () => {
  database = (await openTestDatabases())[0]!.database;
  engines = await startEngineServer();
});

beforeEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const server of servers.splice(0)) await server.close();
  engines.reset();
  await resetData(database);
});

after(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const server of servers.splice(0)) await server.close();
  await engines.close();
  await closeTestDatabases();
});

describe('connection limits', () => {
  test('a client that does not answer pings is terminated; one that answers stays', async () => {
    const server = await chorus({ WS_PING_INTERVAL_MS: '500' });
    const answering = await connect(server);
    const mute = new WebSocket(server.wsUrl, { autoPong: false });
    let pinged = 0;
    mute.on('ping', () => pinged++);
    const { code } = await closeOf(mute, 'the server to drop the client that does not answer pings');
    assert.equal(code, 1006, 'terminated: no close handshake with a peer that is gone');
    assert.ok(pinged >= 1, 'it was pinged before being terminated');
    // Three pings later the answering client is still there, and still served.
    await within(
      new Promise<void>((resolve) => {
        let n = 0;
        answering.ws.on('ping', () => ++n === 3 && resolve());
      }),
      'three pings',
    );
    assert.equal(answering.ws.readyState, WebSocket.OPEN);
    assert.equal((await answering.request({ type: 'ping' })).type, 'pong');
  });

  test('a server stalled past a tick does not hold its own delay against a client whose pong is waiting', async () => {
    const server = await chorus({ WS_PING_INTERVAL_MS: '250' });
    const client = await connect(server);
    // The client answers the first ping at once (ws pongs before it emits 'ping'), then this
    // process (the server's too) is held busy for four intervals: the heartbeat's next tick comes
    // before the loop has read that pong. Three pings later the client is still connected.
    let n = 0;
    const threePings = new Promise<void>((resolve) =>
      client.ws.on('ping', () => {
        if (++n === 1) {
          const until = performance.now() + 1000;
          while (performance.now() < until);
        }
        if (n === 3) resolve();
      }),
    );
    const closed = new Promise<string>((resolve) => client.ws.once('close', () => resolve('closed')));
    assert.equal(await within(Promise.race([threePings.then(() => 'pinged'), closed]), 'three pings or a close'), 'pinged');
    assert.equal((await client.request({ type: 'ping' })).type, 'pong');
  });

  test('over MAX_SESSIONS a connection is closed with 1013 and a reason, before any session', async () => {
    const server = await chorus({ MAX_SESSIONS: '2' });
    const first = await connect(server);
    await connect(server);
    const third = new WebSocket(server.wsUrl);
    const received: string[] = [];
    third.on('message', (data: Buffer) => received.push(data.toString()));
    const { code, reason } = await closeOf(third, 'the connection over MAX_SESSIONS to be closed');
    assert.equal(code, 1013);
    assert.match(reason, /limit of 2 sessions \(MAX_SESSIONS\)/);
    assert.deepEqual(received, [], 'no session was made for it');
    assert.equal((await first.request({ type: 'ping' })).type, 'pong', 'the admitted sessions are untouched');
  });
});

describe('rate limits', () => {
  test('a burst over the limit is refused with rate_limited and a wait; ping and interrupt still work; later requests run', async () => {
    const server = await chorus({ RATE_LIMIT_REQUESTS: '3', RATE_LIMIT_TURNS: '2', RATE_LIMIT_WINDOW_MS: '1000' });
    const client = await connect(server);
    for (const id of ['r1', 'r2', 'r3', 'r4']) client.send({ type: 'get_voices', request_id: id });
    client.send({ type: 'ping', request_id: 'p' });
    client.send({ type: 'interrupt' });
    const replyTo = (id: string) => client.waitFor((f) => 'request_id' in f && f.request_id === id, `the reply to ${id}`);

    for (const id of ['r1', 'r2', 'r3']) assert.equal((await replyTo(id)).type, 'voices_data');
    const refused = await replyTo('r4');
    assert.ok(refused.type === 'error');
    assert.equal(refused.data.code, 'rate_limited');
    assert.equal(refused.data.request_type, 'get_voices');
    assert.match(refused.data.message, /RATE_LIMIT_REQUESTS/);
    const wait = refused.data.retry_after_ms;
    assert.ok(wait !== undefined && wait > 0 && wait <= 1000, `retry_after_ms within the window: ${wait}`);
    assert.equal((await replyTo('p')).type, 'pong', 'ping is never limited');
    await client.next('interrupt_ack');

    // Turns have their own budget: the third message in the burst is refused, by its request_id.
    for (const id of ['u1', 'u2', 'u3']) client.send({ type: 'user_message', data: { text: 'Anyone?' }, request_id: id });
    const turnRefused = await replyTo('u3');
    assert.ok(turnRefused.type === 'error');
    assert.equal(turnRefused.data.code, 'rate_limited');
    assert.equal(turnRefused.data.request_type, 'user_message');
    assert.match(turnRefused.data.message, /RATE_LIMIT_TURNS/);

    // The server said when; after that wait the connection is served again.
    await delay(wait);
    assert.equal((await client.request({ type: 'get_voices' })).type, 'voices_data');
  });
});

describe('slow clients', () => {
  test('a client that stops reading while audio streams is closed with the reason', async () => {
    const tts = createOpenAiTtsEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'tts-1', sampleRate: 24_000, timeoutMs: 30_000, defaultVoice: 'alloy' });
    // No pacing: audio leaves as fast as it is made, so only the client's reading holds it back.
    const server = await chorus({ AUDIO_LEAD_MS: '0', SLOW_CLIENT_TIMEOUT_MS: '300', WS_PING_INTERVAL_MS: '600000' }, tts);
    await server.repo.createCharacter({ name: 'Nova', voice: null, system_prompt: 'You are Nova.' });
    // Megabytes of audio per sentence: more than the kernel's socket buffers hold.
    engines.speech.script(() => ({ pcm: Buffer.alloc(4 * 1024 * 1024, 1), chunkMs: 500 }));
    engines.chat.enqueue({ tokens: tokenize('One sentence here. Two sentences here. Three sentences here.') });
    const client = await connect(server);
    const tcp = (client.ws as unknown as { _socket: Socket })._socket;
    tcp.pause();
    let closing: { code: number; reason: string };
    try {
      client.send({ type: 'user_message', data: { text: 'Nova?' } });
      const [session] = server.sessions;
      assert.ok(session);
      closing = await within(session.writer.closing, 'the server to close the client that stopped reading');
    } finally {
      tcp.resume(); // a paused client could not even take its close frame at cleanup
    }
    assert.equal(closing.code, 1008);
    assert.match(closing.reason, /SLOW_CLIENT_TIMEOUT_MS/);
    // A client that reads again gets what was sent, then the close and its reason.
    const { code, reason } = await closeOf(client.ws, 'the close frame after the buffered audio');
    assert.equal(code, 1008);
    assert.equal(reason, closing.reason);
    assert.ok(client.ofType('audio_chunk').length > 0, 'audio was streaming when the client stopped reading');
  });
});

describe('a hung speech server', () => {
  test('no first byte within TTS_FIRST_BYTE_TIMEOUT_MS skips the sentence; after 3 in a row the turn is text only, said once', async () => {
    const tts = await createTtsEngine(
      loadConfig({ TTS_ENGINE: 'openai', TTS_BASE_URL: engines.baseUrl, TTS_FIRST_BYTE_TIMEOUT_MS: '200', TTS_TIMEOUT_MS: '600000' }).tts,
    );
    assert.ok(tts);
    const server = await chorus({}, tts);
    await server.repo.createCharacter({ name: 'Nova', voice: null, system_prompt: 'You are Nova.' });
    // Every sentence hangs (no answer at all) except the next turn's.
    engines.speech.script((request) => (request.body.input?.includes('Zulu') ? {} : { failure: { hang: true } }));
    const text = 'Alpha goes first. Bravo goes second. Charlie goes third. Delta goes fourth. Echo goes fifth.';
    engines.chat.enqueue({ tokens: tokenize(text) }, { tokens: tokenize('Zulu speaks now.') });
    const client = await connect(server);

    client.send({ type: 'user_message', data: { text: 'Nova?' } });
    const stop = await client.next('text_stream_stop');
    assert.equal(stop.data.text, text, 'the whole text arrives whatever the speech server does');
    const error = await client.next('error', 10_000);
    assert.equal(error.data.code, 'tts_error');
    assert.match(error.data.message, /TTS_FIRST_BYTE_TIMEOUT_MS/);

    // The next turn's speech is queued behind the first's: once it is heard, the first is done.
    client.send({ type: 'user_message', data: { text: 'Nova, again?' } });
    const next = await client.next('text_stream_start');
    await client.waitFor((f) => f.type === 'audio_stream_stop' && f.data.message_id === next.data.message_id, 'the next turn is spoken', 10_000);

    const hung = engines.speech.requests.filter((r) => !r.body.input?.includes('Zulu'));
    assert.equal(hung.length, 3, 'three sentences were tried, the rest of the turn was text only');
    for (const request of hung) assert.ok((await engines.waitForClose(request)).aborted, 'each hung request was given up');
    assert.equal(client.ofType('error').filter((e) => e.data.code === 'tts_error').length, 1, 'said once');
    assert.ok(!client.ofType('audio_stream_start').some((s) => s.data.message_id === stop.data.message_id), 'no audio for the hung turn');
    await tts.close();
  });
});
