// Synthesis ahead (TTS_LOOKAHEAD) against a real-time-paced speech server: the next sentences
// are requested while the current one streams, never more than the lookahead at once, their
// audio reaches the client whole and in sentence order, and an interrupt closes every request,
// the ones ahead included, with nothing of the cancelled message sent after interrupt_ack.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { closeTestDatabases, openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, type RecordedSpeechRequest, startEngineServer, synthesizeSpeech, tokenize } from './support/engine-server.ts';
import { eventually } from './support/eventually.ts';

const SENTENCES = ['The first sentence is here.', 'Then comes the second one.', 'A third follows it closely.', 'And the fourth ends it all.'];
let llm: EngineServer;
let tts: EngineServer;
let engine: TtsEngine;
const servers: ChorusUnderTest[] = [];
const clients: TestClient[] = [];

async function chorusWith(lookahead: number): Promise<ChorusUnderTest> {
  const [db] = await openTestDatabases();
  const chorus = await startChorus({ database: db!.database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', TTS_LOOKAHEAD: String(lookahead) }, tts: engine });
  servers.push(chorus);
  await chorus.repo.createCharacter({ name: 'Ada', system_prompt: 'You are Ada.' });
  return chorus;
}

async function connect(chorus: ChorusUnderTest): Promise<TestClient> {
  const client = await TestClient.connect(chorus.wsUrl);
  clients.push(client);
  return client;
}

/** The most speech requests that were open at the same moment. */
function mostOpenAtOnce(requests: RecordedSpeechRequest[]): number {
  const events = requests.flatMap((r) => [
    { at: r.receivedAt, delta: 1 },
    { at: r.closedAt ?? BigInt(Number.MAX_SAFE_INTEGER), delta: -1 },
  ]);
  events.sort((a, b) => (a.at === b.at ? a.delta - b.delta : a.at < b.at ? -1 : 1));
  let open = 0;
  let most = 0;
  for (const e of events) most = Math.max(most, (open += e.delta));
  return most;
}

before(async () => {
  llm = await startEngineServer();
  // Real time, with a first-byte delay: without synthesis ahead every boundary would wait for it.
  tts = await startEngineServer({ speech: { realtimeFactor: 1, firstByteDelayMs: 40, msPerChar: 8 } });
  engine = createOpenAiTtsEngine({ baseUrl: tts.baseUrl, apiKey: undefined, model: 'tts-1', sampleRate: 24_000, timeoutMs: 10_000, defaultVoice: 'alloy' });
});

beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const s of servers.splice(0)) await s.close();
  await resetData((await openTestDatabases())[0]!.database);
  llm.reset();
  tts.reset();
});

after(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const s of servers.splice(0)) await s.close();
  await llm.close();
  await tts.close();
  await closeTestDatabases();
});

test('with TTS_LOOKAHEAD=2 the next sentences are requested while one streams, at most 3 open at once, and the audio arrives whole and in order', async () => {
  const chorus = await chorusWith(2);
  const client = await connect(chorus);
  llm.chat.enqueue({ tokens: tokenize(SENTENCES.join(' ')) });
  client.send({ type: 'user_message', data: { text: 'Ada?' } });
  await client.next('audio_stream_stop', 20_000);
  const requests = tts.speech.requests;
  assert.deepEqual(requests.map((r) => r.body.input), SENTENCES, 'each sentence requested once, in order');
  const [first, second] = requests;
  assert.ok(first?.closedAt !== undefined && second !== undefined && second.receivedAt < first.closedAt, 'sentence 2 was requested before sentence 1 had finished streaming');
  assert.ok(mostOpenAtOnce(requests) <= 3, 'the one being spoken and at most 2 ahead');
  // Order: every chunk of sentence n before any of n+1, chunk indexes counting up within each; and
  // each sentence's audio is exactly what the server sent for it.
  const frames = client.frames;
  const bySentence = new Map<number, Buffer[]>();
  let last = { sentence: -1, chunk: -1 };
  frames.forEach((f, i) => {
    if (f.type !== 'audio_chunk') return;
    const { sentence_index: sentence, chunk_index: chunk } = f.data;
    assert.ok(sentence > last.sentence ? chunk === 0 : sentence === last.sentence && chunk === last.chunk + 1, `chunk ${sentence}/${chunk} after ${last.sentence}/${last.chunk}`);
    last = { sentence, chunk };
    const pcm = frames[i + 1];
    assert.equal(pcm?.type, 'binary');
    if (pcm?.type === 'binary') bySentence.set(sentence, [...(bySentence.get(sentence) ?? []), pcm.data]);
  });
  assert.equal(bySentence.size, SENTENCES.length);
  SENTENCES.forEach((text, i) => {
    const expected = synthesizeSpeech(text, 'alloy', { msPerChar: 8 });
    assert.ok(Buffer.concat(bySentence.get(i) ?? []).equals(expected), `sentence ${i}'s audio is whole`);
  });
});

test('TTS_LOOKAHEAD bounds the requests ahead: 0 asks for one sentence at a time, 1 for at most two', async () => {
  for (const [lookahead, most] of [[0, 1], [1, 2]] as const) {
    tts.reset();
    llm.reset();
    const chorus = await chorusWith(lookahead);
    const client = await connect(chorus);
    llm.chat.enqueue({ tokens: tokenize(SENTENCES.join(' ')) });
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    await client.next('audio_stream_stop', 20_000);
    const requests = tts.speech.requests;
    assert.equal(requests.length, SENTENCES.length);
    assert.equal(mostOpenAtOnce(requests), most, `TTS_LOOKAHEAD=${lookahead}`);
    await client.close();
    await chorus.close();
    servers.splice(servers.indexOf(chorus), 1);
    await resetData((await openTestDatabases())[0]!.database);
  }
});

test('an interrupt closes every speech request, the ones ahead too, and nothing of the message follows interrupt_ack', async () => {
  const chorus = await chorusWith(2);
  const client = await connect(chorus);
  // Long sentences: the interrupt lands while the first streams and the next two are being synthesized ahead.
  const long = SENTENCES.map((s) => `${s} ${'It goes on and on for a good while longer, '.repeat(6)}done.`);
  llm.chat.enqueue({ tokens: tokenize(long.join(' ')) });
  client.send({ type: 'user_message', data: { text: 'Ada?' } });
  await client.next('binary', 10_000);
  // The one being spoken and at least one ahead are open (the long sentences take seconds each).
  const open = await eventually(async () => {
    const now = tts.speech.requests.filter((r) => r.closedAt === undefined);
    return now.length >= 2 ? now : undefined;
  }, 'a sentence requested ahead while one streams');
  client.send({ type: 'interrupt' });
  await client.next('interrupt_ack');
  const ackAt = client.frames.findIndex((f) => f.type === 'interrupt_ack');
  for (const request of open) await tts.waitForClose(request, 5000);
  assert.ok(open.every((r) => !r.completed), 'each open request was cut short, not streamed to its end');
  const pong = await client.request({ type: 'ping' });
  assert.equal(pong.type, 'pong');
  const after = client.frames.slice(ackAt + 1).map((f) => f.type);
  assert.ok(!after.includes('binary') && !after.includes('audio_chunk'), `after the ack: ${after.join(', ')}`);
  const requested = tts.speech.requests.length;
  const pong2 = await client.request({ type: 'ping' });
  assert.equal(pong2.type, 'pong');
  assert.equal(tts.speech.requests.length, requested, 'no sentence was requested after the interrupt');
});
