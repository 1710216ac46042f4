// Self-test of the fake engine server (test/support/engine-server.ts), kept out of the product's suite (npm run test:fixtures),
// driven by the real `openai` client the product uses, so the fixture is known to speak the protocols faithfully.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import OpenAI, { APIConnectionError, APIError, APIUserAbortError, AuthenticationError, toFile } from 'openai';
import {
  type EngineServer,
  type EngineServerOptions,
  msBetween,
  now,
  speechSampleCount,
  startEngineServer,
  synthesizeSpeech,
  voiceFrequency,
} from './engine-server.ts';

async function setup(t: TestContext, opts?: EngineServerOptions, apiKey = 'test-key'): Promise<{ server: EngineServer; client: OpenAI }> {
  const server = await startEngineServer(opts);
  t.after(() => server.close());
  return { server, client: new OpenAI({ baseURL: server.baseUrl, apiKey, maxRetries: 0, timeout: 5_000 }) };
}

const userTurn = (content: string) => ({ model: 'test-model', messages: [{ role: 'user' as const, content }] });

/** Reads a fetch body chunk by chunk; returns the bytes received and the error that ended it, if any. */
async function drain(body: ReadableStream<Uint8Array> | null): Promise<{ bytes: Buffer; error?: unknown }> {
  assert.ok(body, 'response has a body');
  const reader = body.getReader();
  const chunks: Buffer[] = [];
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { bytes: Buffer.concat(chunks) };
      chunks.push(Buffer.from(value));
    }
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error };
  }
}

/** A canonical PCM16 WAV, built here independently of the fixture's own encoder. */
function wavFile(sampleRate: number, channels: number, seconds: number): Buffer {
  const frames = Math.round(sampleRate * seconds);
  const data = Buffer.alloc(frames * channels * 2);
  for (let i = 0; i < frames * channels; i++) data.writeInt16LE(Math.round(Math.sin(i / 5) * 8000), i * 2);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8, 'ascii');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * channels * 2, 28);
  header.writeUInt16LE(channels * 2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

// ───────────────────────────── chat ─────────────────────────────

test('chat: streamed tokens arrive in order with the scripted content and timing', async (t) => {
  const { server, client } = await setup(t);
  const tokens = ['Hel', 'lo', ', ', 'wor', 'ld', '!'];
  server.chat.script((request) => {
    assert.equal(request.lastUserMessage, 'hi there');
    return { tokens, firstTokenDelayMs: 60, tokenDelayMs: 15 };
  });

  const stream = await client.chat.completions.create({ ...userTurn('hi there'), stream: true });
  const deltas: string[] = [];
  const ids = new Set<string>();
  let finish: string | null = null;
  for await (const chunk of stream) {
    ids.add(chunk.id);
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(chunk.model, 'test-model');
    const choice = chunk.choices[0];
    if (choice?.delta.content) deltas.push(choice.delta.content);
    if (choice?.finish_reason) finish = choice.finish_reason;
  }
  assert.deepEqual(deltas, tokens);
  assert.equal(finish, 'stop');
  assert.equal(ids.size, 1);

  const [request] = await server.chat.waitForRequests(1, 1000);
  assert.ok(request);
  await server.chat.waitForClose(request, 1000);
  assert.equal(request.body.stream, true);
  assert.deepEqual(request.body.messages, [{ role: 'user', content: 'hi there' }]);
  assert.equal(request.headers.authorization, 'Bearer test-key');
  assert.equal(request.status, 200);
  assert.equal(request.completed, true);
  assert.equal(request.aborted, false);
  assert.deepEqual(
    request.sent.map((s) => s.text),
    tokens,
  );
  const first = request.sent[0];
  assert.ok(first);
  assert.ok(msBetween(request.receivedAt, first.at) >= 55, `first token after ${msBetween(request.receivedAt, first.at)} ms`);
  for (let i = 1; i < request.sent.length; i++) {
    const gap = msBetween((request.sent[i - 1] as { at: bigint }).at, (request.sent[i] as { at: bigint }).at);
    assert.ok(gap >= 12, `gap ${i} was ${gap} ms`);
  }
});

test('chat: default reply, non-streamed reply, usage chunk and the enqueue FIFO', async (t) => {
  const { server, client } = await setup(t);

  const plain = await client.chat.completions.create(userTurn('what now?'));
  assert.equal(plain.object, 'chat.completion');
  assert.equal(plain.choices[0]?.message.content, 'Reply to: what now?');
  assert.equal(plain.choices[0]?.finish_reason, 'stop');

  server.chat.enqueue({ tokens: ['first'] }, { tokens: ['sec', 'ond'] });
  server.chat.script(() => ({ tokens: ['scripted'] }));
  const texts: string[] = [];
  for (let i = 0; i < 3; i++) {
    const stream = await client.chat.completions.create({ ...userTurn(`n${i}`), stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: number | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage.completion_tokens;
    }
    texts.push(`${text}/${usage}`);
  }
  assert.deepEqual(texts, ['first/1', 'second/2', 'scripted/1']);
  assert.equal(server.chat.queued, 0);

  server.chat.script(); // back to the default
  const again = await client.chat.completions.create({ ...userTurn('x'), stream: true });
  let text = '';
  for await (const chunk of again) text += chunk.choices[0]?.delta.content ?? '';
  assert.equal(text, 'Reply to: x');
  assert.equal(server.chat.requests.length, 5);
  assert.deepEqual(
    server.chat.requests.map((r) => r.id),
    [1, 2, 3, 4, 5],
  );
});

test('chat: an HTTP 500 failure surfaces as an APIError', async (t) => {
  const { server, client } = await setup(t);
  server.chat.enqueue({ tokens: [], firstTokenDelayMs: 20, failure: { status: 500, body: JSON.stringify({ error: { message: 'engine exploded', type: 'server_error' } }) } });

  await assert.rejects(client.chat.completions.create({ ...userTurn('hi'), stream: true }), (error: unknown) => {
    assert.ok(error instanceof APIError, `got ${String(error)}`);
    assert.equal(error.status, 500);
    assert.match(error.message, /engine exploded/);
    return true;
  });
  const [request] = server.chat.requests;
  assert.ok(request);
  assert.equal(request.status, 500);
  assert.deepEqual(request.sent, []);
});

test('chat: cutAfterTokens surfaces as a stream error after exactly those tokens', async (t) => {
  const { server, client } = await setup(t);
  server.chat.enqueue({ tokens: ['a', 'b', 'c', 'd'], tokenDelayMs: 5, failure: { cutAfterTokens: 2 } });

  const stream = await client.chat.completions.create({ ...userTurn('hi'), stream: true });
  const deltas: string[] = [];
  await assert.rejects(async () => {
    for await (const chunk of stream) deltas.push(chunk.choices[0]?.delta.content ?? '');
  });
  assert.deepEqual(deltas, ['a', 'b']);
  const [request] = server.chat.requests;
  assert.ok(request);
  await server.chat.waitForClose(request, 1000);
  assert.equal(request.completed, false);
  assert.equal(request.aborted, false, 'a scripted cut is not a client abort');
  assert.equal(request.sent.length, 2);
});

test('chat: a client abort mid-stream is seen as closedAt at once, and sending stops', async (t) => {
  const { server, client } = await setup(t);
  const tokens = Array.from({ length: 200 }, (_, i) => ` t${i}`);
  server.chat.enqueue({ tokens, tokenDelayMs: 10 });

  const controller = new AbortController();
  const stream = await client.chat.completions.create({ ...userTurn('hi'), stream: true }, { signal: controller.signal });
  let received = 0;
  let abortedAt = 0n;
  try {
    for await (const _chunk of stream) {
      if (++received === 3) {
        abortedAt = now();
        controller.abort();
      }
    }
  } catch (error) {
    assert.ok(error instanceof APIUserAbortError || (error instanceof Error && error.name === 'AbortError'), `got ${String(error)}`);
  }
  assert.ok(abortedAt > 0n);

  const [request] = server.chat.requests;
  assert.ok(request);
  await server.chat.waitForClose(request, 1000);
  assert.ok(request.closedAt !== undefined);
  const latency = msBetween(abortedAt, request.closedAt);
  assert.ok(latency < 250, `server saw the abort ${latency} ms later`);
  assert.equal(request.aborted, true);
  assert.equal(request.completed, false);
  const sentAtClose = request.sent.length;
  assert.ok(sentAtClose < 50, `${sentAtClose} of 200 tokens sent`);
  await sleep(60);
  assert.equal(request.sent.length, sentAtClose, 'nothing is sent after the client went away');
});

test('chat: a hanging request is aborted by the client and released by close()', async (t) => {
  const { server, client } = await setup(t);
  server.chat.enqueue({ tokens: [], failure: { hang: true } }, { tokens: [], failure: { hang: true } });

  const controller = new AbortController();
  const pending = client.chat.completions.create({ ...userTurn('hi'), stream: true }, { signal: controller.signal });
  const [first] = await server.chat.waitForRequests(1, 1000);
  assert.ok(first);
  const abortedAt = now();
  controller.abort();
  await assert.rejects(pending, APIUserAbortError);
  await server.chat.waitForClose(first, 1000);
  assert.ok(first.closedAt !== undefined && msBetween(abortedAt, first.closedAt) < 250);
  assert.equal(first.aborted, true);
  assert.equal(first.status, undefined, 'a hang never answers');

  // close() must end a request that is still hanging, promptly, and fail pending waiters.
  const second = client.chat.completions.create({ ...userTurn('hi'), stream: true });
  await server.chat.waitForRequests(2, 1000);
  const waiter = server.chat.waitForRequests(3, 5_000).then(
    () => assert.fail('the waiter should fail when the server closes'),
    (error: unknown) => error,
  );
  const closingAt = now();
  await server.close();
  assert.ok(msBetween(closingAt, now()) < 500, 'close() is prompt');
  await assert.rejects(second, APIConnectionError);
  assert.match(String(await waiter), /engine-server: closed while waiting for 3 chat request\(s\) \(received 2\)/);
});

test('chat: a client abort cancels a pending delay (no timer left to keep the process alive)', async (t) => {
  const { server, client } = await setup(t);
  const timeouts = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
  server.chat.enqueue({ tokens: ['late'], firstTokenDelayMs: 60_000 });
  const controller = new AbortController();
  const stream = await client.chat.completions.create({ ...userTurn('hi'), stream: true }, { signal: controller.signal });
  const [request] = await server.chat.waitForRequests(1, 1000);
  assert.ok(request);
  const before = timeouts();
  controller.abort();
  for await (const _chunk of stream) assert.fail('no token was due');
  await server.chat.waitForClose(request, 1000);
  await sleep(0);
  assert.ok(timeouts() < before, `active timeouts: ${before} before the abort, ${timeouts()} after`);
  assert.deepEqual(request.sent, []);
});

test('waitForRequests and waitForClose reject with a clear message on timeout', async (t) => {
  const { server, client } = await setup(t);
  await assert.rejects(server.chat.waitForRequests(1, 30), /engine-server: timed out after 30 ms waiting for 1 chat request\(s\) \(received 0\)/);

  server.chat.enqueue({ tokens: [], failure: { hang: true } });
  const controller = new AbortController();
  const pending = client.chat.completions.create({ ...userTurn('hi'), stream: true }, { signal: controller.signal });
  const [request] = await server.chat.waitForRequests(1, 1000);
  assert.ok(request);
  await assert.rejects(server.chat.waitForClose(request, 30), /timed out after 30 ms waiting for chat request #1 to close/);
  controller.abort();
  await assert.rejects(pending, APIUserAbortError);
  await server.waitForClose(request, 1000);
});

// ───────────────────────────── speech ─────────────────────────────

test('speech: PCM16 of the expected length at the expected rate; voices differ; deterministic', async (t) => {
  const { server, client } = await setup(t);
  const input = 'Hello there, friend.';
  const speak = async (voice: string, speed?: number) => {
    const response = await client.audio.speech.create({ model: 'tts-1', input, voice, response_format: 'pcm', ...(speed ? { speed } : {}) });
    assert.equal(response.headers.get('content-type'), 'audio/pcm');
    return Buffer.from(await response.arrayBuffer());
  };

  const alloy = await speak('alloy');
  // 20 characters × 60 ms = 1.2 s at 24 kHz, 2 bytes a sample.
  assert.equal(alloy.length, 1.2 * 24_000 * 2);
  assert.equal(alloy.length, speechSampleCount(input) * 2);
  assert.deepEqual(alloy, synthesizeSpeech(input, 'alloy'));
  let peak = 0;
  let upward = 0;
  for (let i = 0; i < alloy.length / 2; i++) {
    const sample = alloy.readInt16LE(i * 2);
    peak = Math.max(peak, Math.abs(sample));
    if (i > 0 && alloy.readInt16LE(i * 2 - 2) < 0 && sample >= 0) upward++;
  }
  assert.ok(peak > 5000, `peak ${peak}: not silent`);
  const hz = upward / 1.2;
  assert.ok(Math.abs(hz - voiceFrequency('alloy')) < 5, `tone at ${hz} Hz, expected ${voiceFrequency('alloy')} Hz at 24 kHz`);

  const echo = await speak('echo');
  assert.equal(echo.length, alloy.length);
  assert.notDeepEqual(echo, alloy);
  assert.deepEqual(await speak('alloy'), alloy);
  assert.equal((await speak('alloy', 2)).length, alloy.length / 2);

  const request = server.speech.requests[0];
  assert.ok(request);
  assert.deepEqual(request.body, { model: 'tts-1', input, voice: 'alloy', response_format: 'pcm' });
  assert.equal(request.completed, true);
  // 20 ms chunks of 480 samples: 60 of them.
  assert.equal(request.sent.length, 60);
  assert.ok(request.sent.every((s) => s.bytes === 960));
});

test('speech: sample rate option, real-time pacing and first-byte delay', async (t) => {
  const { server, client } = await setup(t, { speech: { sampleRate: 16_000, realtimeFactor: 0.5, chunkMs: 40 } });
  server.speech.enqueue({ firstByteDelayMs: 50 });
  const response = await client.audio.speech.create({ model: 'tts-1', input: 'Hello', voice: 'nova', response_format: 'pcm' });
  const pcm = Buffer.from(await response.arrayBuffer());
  assert.equal(pcm.length, 0.3 * 16_000 * 2); // 5 × 60 ms at 16 kHz

  const [request] = server.speech.requests;
  assert.ok(request);
  assert.equal(request.sent.length, 8); // 300 ms in 40 ms chunks
  const first = request.sent[0];
  const last = request.sent.at(-1);
  assert.ok(first && last && request.headersAt !== undefined);
  assert.ok(msBetween(request.headersAt, first.at) >= 45, `first byte after ${msBetween(request.headersAt, first.at)} ms`);
  // The last chunk holds audio from 280 ms; at half real time it is due 140 ms after the first.
  const span = msBetween(first.at, last.at);
  assert.ok(span >= 135 && span < 600, `chunks spanned ${span} ms`);
});

test('speech: scripted failures — HTTP error, cut mid-stream, custom pcm', async (t) => {
  const { server, client } = await setup(t);
  server.speech.enqueue(
    { failure: { status: 503 } },
    { failure: { cutAfterBytes: 1000 } },
    { pcm: Buffer.from([1, 2, 3, 4]) },
  );
  const body = { model: 'tts-1', input: 'Hello there', voice: 'alloy', response_format: 'pcm' as const };

  await assert.rejects(client.audio.speech.create(body), (error: unknown) => error instanceof APIError && error.status === 503);

  const cut = await client.audio.speech.create(body);
  const { bytes, error } = await drain(cut.body);
  assert.ok(error, 'the cut surfaces as a body error');
  assert.equal(bytes.length, 1000);

  const custom = await client.audio.speech.create(body);
  assert.deepEqual(Buffer.from(await custom.arrayBuffer()), Buffer.from([1, 2, 3, 4]));

  const [, cutRequest] = server.speech.requests;
  assert.ok(cutRequest);
  await server.speech.waitForClose(cutRequest, 1000);
  assert.equal(cutRequest.completed, false);
  assert.equal(cutRequest.sent.reduce((n, s) => n + (s.bytes ?? 0), 0), 1000);
});

test('speech: a client abort stops a paced stream', async (t) => {
  const { server, client } = await setup(t, { speech: { realtimeFactor: 1 } });
  const controller = new AbortController();
  const response = await client.audio.speech.create(
    { model: 'tts-1', input: 'A long sentence that takes a few seconds to say.', voice: 'alloy', response_format: 'pcm' },
    { signal: controller.signal },
  );
  const reader = response.body?.getReader();
  assert.ok(reader);
  await reader.read();
  const abortedAt = now();
  controller.abort();
  await reader.read().catch(() => undefined);
  const [request] = server.speech.requests;
  assert.ok(request);
  await server.speech.waitForClose(request, 1000);
  assert.ok(request.closedAt !== undefined && msBetween(abortedAt, request.closedAt) < 250);
  assert.equal(request.aborted, true);
  const sent = request.sent.length;
  assert.ok(sent < 30, `${sent} chunks sent of 144`);
  await sleep(60);
  assert.equal(request.sent.length, sent);
});

// ───────────────────────────── transcription ─────────────────────────────

test('transcription: receives the WAV with the right duration and returns the scripted text', async (t) => {
  const { server, client } = await setup(t);
  server.transcription.script((request) => ({ text: `scripted for ${request.body.language}`, delayMs: 10 }));
  const wav = wavFile(16_000, 1, 1.5);

  const result = await client.audio.transcriptions.create({
    file: await toFile(wav, 'speech.wav', { type: 'audio/wav' }),
    model: 'whisper-1',
    language: 'en',
  });
  assert.equal(result.text, 'scripted for en');

  const [request] = server.transcription.requests;
  assert.ok(request?.wav && request.file);
  assert.equal(request.body.model, 'whisper-1');
  assert.equal(request.body.language, 'en');
  assert.equal(request.file.name, 'speech.wav');
  assert.equal(request.file.size, wav.length);
  assert.equal(request.wav.sampleRate, 16_000);
  assert.equal(request.wav.channels, 1);
  assert.equal(request.wav.bitsPerSample, 16);
  assert.equal(request.wav.dataBytes, 48_000);
  assert.equal(request.wav.durationMs, 1500);
  assert.deepEqual(request.wav.data, wav.subarray(44));
  assert.equal(request.status, 200);
  assert.equal(request.sent[0]?.text, 'scripted for en');

  // Stereo 48 kHz, default text, plain-text response format.
  server.transcription.script();
  const text = await client.audio.transcriptions.create({
    file: await toFile(wavFile(48_000, 2, 0.25), 'b.wav', { type: 'audio/wav' }),
    model: 'whisper-1',
    response_format: 'text',
  });
  assert.equal(String(text).trim(), 'Heard 250 ms of audio.');
  assert.equal(server.transcription.requests[1]?.wav?.durationMs, 250);
});

test('transcription: not a WAV is a 400, a scripted failure is an APIError', async (t) => {
  const { server, client } = await setup(t);
  await assert.rejects(
    client.audio.transcriptions.create({ file: await toFile(Buffer.from('ID3 not a wav'), 'a.mp3'), model: 'whisper-1' }),
    (error: unknown) => error instanceof APIError && error.status === 400 && /Invalid file format/.test(error.message),
  );
  assert.match(server.transcription.requests[0]?.wavError ?? '', /not a RIFF\/WAVE file/);

  server.transcription.enqueue({ failure: { status: 429, body: '{"error":{"message":"slow down"}}' } });
  await assert.rejects(
    client.audio.transcriptions.create({ file: await toFile(wavFile(16_000, 1, 0.1), 'a.wav'), model: 'whisper-1' }),
    (error: unknown) => error instanceof APIError && error.status === 429 && /slow down/.test(error.message),
  );
});

// ───────────────────────────── models and auth ─────────────────────────────

test('models: one model is listed', async (t) => {
  const { client } = await setup(t, { model: 'fake-llm' });
  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  assert.deepEqual(models, ['fake-llm']);
});

test('requireApiKey: a wrong key gets 401 everywhere, the right one works', async (t) => {
  const opts = { requireApiKey: 'sekret' };
  const { server, client: wrong } = await setup(t, opts, 'wrong');
  const right = new OpenAI({ baseURL: server.baseUrl, apiKey: 'sekret', maxRetries: 0 });

  await assert.rejects(wrong.chat.completions.create({ ...userTurn('hi'), stream: true }), AuthenticationError);
  await assert.rejects(wrong.models.list(), AuthenticationError);
  await assert.rejects(wrong.audio.speech.create({ model: 'tts-1', input: 'x', voice: 'alloy', response_format: 'pcm' }), AuthenticationError);
  await assert.rejects(
    wrong.audio.transcriptions.create({ file: await toFile(wavFile(16_000, 1, 0.1), 'a.wav'), model: 'whisper-1' }),
    AuthenticationError,
  );
  assert.equal(server.chat.requests[0]?.status, 401);

  const reply = await right.chat.completions.create(userTurn('hi'));
  assert.equal(reply.choices[0]?.message.content, 'Reply to: hi');
  assert.equal((await right.models.list()).data.length, 1);
  assert.equal(server.chat.requests[1]?.status, 200);
});
