// AudioStreamer and SocketWriter over a real loopback WebSocket: stream framing, generation
// drops, interrupt, and header/frame adjacency under back-pressure.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { AudioStreamer } from '../src/session/audio-streamer.ts';
import type { AudioItem, Speaker } from '../src/session/items.ts';
import { AUDIO_HIGH_WATER_BYTES, SocketWriter } from '../src/session/writer.ts';
import { AsyncQueue } from '../src/util/async-queue.ts';
import { TestClient } from './support/client.ts';

let server: WebSocketServer;
let url: string;
const accepted: WebSocket[] = [];
let onAccept: ((ws: WebSocket) => void) | undefined;

before(async () => {
  server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  server.on('connection', (ws) => {
    accepted.push(ws);
    onAccept?.(ws);
  });
  await new Promise((resolve) => server.once('listening', resolve));
  url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  for (const ws of accepted) ws.terminate();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Closed after each test, passed or failed, so a failure never leaves a socket open. */
const opened: Array<{ audio: AsyncQueue<AudioItem>; done: Promise<void>; client: TestClient }> = [];
afterEach(async () => {
  for (const p of opened.splice(0)) {
    p.audio.close();
    await p.done;
    await p.client.close();
  }
});

/** A client and, on the server side, a streamer over a real socket. */
async function pair(leadMs = 0) {
  const serverSide = new Promise<WebSocket>((resolve) => (onAccept = resolve));
  const client = await TestClient.connect(url, { waitForSession: false });
  const ws = await serverSide;
  const audio = new AsyncQueue<AudioItem>();
  let generation = 0;
  let released = 0;
  const writer = new SocketWriter(ws);
  const streamer = new AudioStreamer({ audio, writer, generation: () => generation, released: (n) => (released += n), leadMs });
  const done = streamer.run();
  opened.push({ audio, done, client });
  return {
    client, audio, streamer, writer, done,
    bump: () => generation++,
    get generation() { return generation; },
    get released() { return released; },
  };
}

const speaker = (message_id: string): Speaker => ({ character_id: 'c-001', character_name: 'C', message_id, voice: null });
const chunk = (id: string, generation: number, chunk_index: number, bytes = 100): AudioItem => ({
  kind: 'chunk', speaker: speaker(id), generation, sample_rate: 24_000, sentence_index: 0, chunk_index, pcm: Buffer.alloc(bytes, chunk_index),
});
const end = (id: string, generation: number): AudioItem => ({ kind: 'end', speaker: speaker(id), generation });

test('a message is framed start → (header, frame)* → stop; an end with no frames sends nothing', async () => {
  const p = await pair();
  p.audio.push(end('none', 0));
  p.audio.push(chunk('a', 0, 0));
  p.audio.push(chunk('a', 0, 1));
  p.audio.push(end('a', 0));
  await p.client.next('audio_stream_stop');
  assert.equal(p.client.summary(), 'audio_stream_start, audio_chunk, binary, audio_chunk, binary, audio_stream_stop');
  assert.equal(p.client.ofType('audio_stream_start')[0]?.data.sample_rate, 24_000);
  assert.equal(p.released, 200);
});

test('items of an older generation are dropped wherever they wait, and their bytes released', async () => {
  const p = await pair();
  p.audio.push(chunk('old', 0, 0));
  p.audio.push(chunk('old', 0, 1));
  p.audio.push(end('old', 0));
  p.bump(); // an interrupt happened before the streamer got to them
  p.audio.push(chunk('new', 1, 0));
  p.audio.push(end('new', 1));
  await p.client.next('audio_stream_stop');
  assert.equal(p.client.summary(), 'audio_stream_start, audio_chunk, binary, audio_stream_stop');
  assert.equal(p.client.ofType('audio_stream_start')[0]?.data.message_id, 'new');
  assert.equal(p.released, 300);
});

test('interrupt closes the open stream as interrupted; a late chunk of it is never sent', async () => {
  const p = await pair();
  p.audio.push(chunk('a', 0, 0));
  await p.client.next('binary');
  p.bump();
  p.streamer.interrupt();
  p.audio.push(chunk('a', 0, 1)); // synthesized before the interrupt, arriving after it
  p.audio.push(end('a', 0));
  p.audio.push(chunk('b', 1, 0));
  p.audio.push(end('b', 1));
  await p.client.next('audio_stream_stop');
  const stops = await p.client.next('audio_stream_stop');
  assert.equal(stops.data.message_id, 'b');
  assert.equal(p.client.summary(), 'audio_stream_start, audio_chunk, binary, audio_stream_stop, audio_stream_start, audio_chunk, binary, audio_stream_stop');
  assert.equal(p.client.ofType('audio_stream_stop')[0]?.data.interrupted, true);
});

test('a chunk already taken and waiting on pacing when the interrupt comes is dropped, not sent', async () => {
  const p = await pair(100);
  p.audio.push(chunk('a', 0, 0, 48_000)); // one second of audio: the next chunk waits ~0.9 s to be paced
  await p.client.next('binary');
  p.audio.push(chunk('a', 0, 1, 48_000));
  await waitFor(() => p.audio.size === 0, 'the streamer to take the second chunk');
  // The streamer's checks before the wait run in microtasks; a macrotask turn sees them done.
  await new Promise((resolve) => setImmediate(resolve));
  p.bump();
  p.streamer.interrupt(); // wakes the paced wait: only the re-check after it stands between the chunk and the socket
  p.audio.push(chunk('b', 1, 0));
  p.audio.push(end('b', 1));
  const stop = await p.client.waitFor((f) => f.type === 'audio_stream_stop' && f.data.message_id === 'b', 'the stop of b');
  assert.equal(stop.type, 'audio_stream_stop');
  assert.equal(p.client.summary(), 'audio_stream_start, audio_chunk, binary, audio_stream_stop, audio_stream_start, audio_chunk, binary, audio_stream_stop');
  assert.equal(p.released, 48_000 * 2 + 100);
});

test('a slow reader: the streamer waits, headers stay next to their frames, nothing is lost', async () => {
  const p = await pair();
  p.client.ws.pause();
  const frames = 200;
  const size = 32 * 1024;
  for (let i = 0; i < frames; i++) p.audio.push(chunk('big', 0, i, size));
  p.audio.push(end('big', 0));
  await waitFor(() => p.writer.congested, 'the writer to report congestion');
  assert.ok(p.writer.unwrittenBytes <= AUDIO_HIGH_WATER_BYTES + size + 1024, `writer holds ${p.writer.unwrittenBytes} bytes`);
  assert.ok(p.audio.size > 0, 'the rest waits in the queue instead of the socket');
  p.client.ws.resume();
  await p.client.next('audio_stream_stop', 15_000);
  const types = p.client.frames.map((f) => f.type);
  assert.equal(types.filter((t) => t === 'binary').length, frames);
  types.forEach((t, i) => {
    if (t === 'audio_chunk') assert.equal(types[i + 1], 'binary');
  });
  const indexes = p.client.ofType('audio_chunk').map((h) => h.data.chunk_index);
  assert.deepEqual(indexes, Array.from({ length: frames }, (_, i) => i));
});

function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = () => (condition() ? resolve() : Date.now() > deadline ? reject(new Error(`timed out waiting for ${what}`)) : setTimeout(check, 2));
    check();
  });
}
