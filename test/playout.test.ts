// History keeps only what was heard: real WebSocket clients, the real server, the loopback LLM
// and a loopback /v1/audio/speech server that makes audio in real time (60 ms per character),
// streamed to the client paced to playback. A reply is interrupted at a known playback position
// (the client's playback_position) or at the server's estimate, and the stored message, the
// next LLM prompt and message_truncated all keep the same, heard text.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { Character, Message } from '../src/protocol.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import { wordCut } from '../src/session/playout.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const MS_PER_CHAR = 60;
const SAMPLE_RATE = 24_000;
const S1 = 'First sentence is here.';
const S2 = 'Second sentence follows now.';
const S3 = 'Third one ends it all.';
const REPLY = `${S1} ${S2} ${S3}`;

let engines: EngineServer;
let tts: TtsEngine;
let chorus: ChorusUnderTest;
let ada: Character;
const clients: TestClient[] = [];

const connect = async () => {
  const client = await TestClient.connect(chorus.wsUrl);
  clients.push(client);
  return client;
};

/** Milliseconds of a message's audio the client has received. */
function receivedMs(client: TestClient, messageId: string): number {
  let bytes = 0;
  client.frames.forEach((f, i) => {
    const next = client.frames[i + 1];
    if (f.type === 'audio_chunk' && f.data.message_id === messageId && next?.type === 'binary') bytes += next.data.length;
  });
  return bytes / 2 / (SAMPLE_RATE / 1000);
}

const waitForAudio = (client: TestClient, messageId: string, ms: number) =>
  client.waitFor(() => receivedMs(client, messageId) >= ms, `${ms} ms of audio of ${messageId}`, 20_000);

async function storedReply(conversationId: string): Promise<Message> {
  return eventually(async () => {
    const messages = await chorus.repo.listMessages({ conversation_id: conversationId });
    return messages.find((m) => m.role === 'assistant');
  }, 'the stored reply');
}

/** Starts a turn whose reply streams at once and is spoken in real time; returns its message id. */
async function startReply(client: TestClient): Promise<string> {
  engines.chat.enqueue({ tokens: tokenize(REPLY) });
  client.send({ type: 'user_message', data: { text: 'Ada, say three things.' } });
  const start = await client.next('text_stream_start');
  return start.data.message_id;
}

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  engines = await startEngineServer({ speech: { realtimeFactor: 1, msPerChar: MS_PER_CHAR, sampleRate: SAMPLE_RATE } });
  tts = createOpenAiTtsEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'tts-1', sampleRate: SAMPLE_RATE, timeoutMs: 5000, defaultVoice: 'alloy' });
  chorus = await startChorus({ database: db.database, env: { LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k', AUDIO_LEAD_MS: '200', USER_NAME: 'Jay' }, tts });
});

beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  engines.reset();
  await resetData((await openTestDatabases())[0]!.database);
  await chorus.repo.createVoice({ voice: 'ada-voice', engine: 'openai', engine_voice: 'nova' });
  ada = await chorus.repo.createCharacter({ name: 'Ada', voice: 'ada-voice', system_prompt: 'You are Ada.' });
});

after(async () => {
  for (const c of clients.splice(0)) await c.close();
  await chorus.close();
  await engines.close();
});

describe('an interrupted reply keeps what was heard', () => {
  test('at the client\'s playback_position, after the LLM finished: stored, in the next prompt, and told', async () => {
    const client = await connect();
    const session = client.frames.find((f) => f.type === 'session');
    assert.ok(session?.type === 'session');
    const messageId = await startReply(client);
    const stop = await client.next('text_stream_stop');
    assert.equal(stop.data.interrupted, undefined, 'the LLM finished before the interrupt');

    // All of S1 and 60 % of S2 played: the cut falls at the word boundary before that point.
    const played = S1.length * MS_PER_CHAR + 0.6 * S2.length * MS_PER_CHAR;
    await waitForAudio(client, messageId, played + 100);
    client.send({ type: 'playback_position', data: { message_id: messageId, played_ms: played } });
    client.send({ type: 'interrupt' });
    const truncated = await client.next('message_truncated');
    await client.next('interrupt_ack');
    const kept = `${S1} Second sentence`;
    assert.deepEqual(truncated.data, { message_id: messageId, text: kept });
    assert.ok(client.frames.indexOf(truncated) < client.frames.findIndex((f) => f.type === 'interrupt_ack'), 'told before the ack');

    const stored = await storedReply(session.data.conversation_id as string);
    assert.equal(stored.message_id, messageId, 'the stored message has the id its stream carried');
    assert.equal(stored.content, kept);
    assert.equal(stored.status, 'interrupted');
    assert.equal(stored.interrupted, true);

    engines.chat.enqueue({ tokens: tokenize('Go on.') });
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    const [, next] = await engines.chat.waitForRequests(2);
    assert.deepEqual(next!.body.messages!.slice(1), [
      { role: 'user', name: 'Jay', content: 'Ada, say three things.' },
      { role: 'assistant', name: 'Ada', content: kept },
      { role: 'user', name: 'Jay', content: 'Ada?' },
    ]);
    assert.deepEqual(client.errors, []);
  });

  test('at the server\'s estimate (no playback_position): the played sentences, none that was not sent', async () => {
    const client = await connect();
    const messageId = await startReply(client);
    // Well into S2's audio: S1 has played by any estimate; S3's audio has not been sent.
    await client.waitFor(() => client.ofType('audio_chunk').some((c) => c.data.message_id === messageId && c.data.sentence_index === 1), 'S2 audio', 20_000);
    await waitForAudio(client, messageId, S1.length * MS_PER_CHAR + 600);
    client.send({ type: 'interrupt' });
    const truncated = await client.next('message_truncated');
    await client.next('interrupt_ack');
    const text = truncated.data.text;
    assert.ok(text.startsWith(S1), `kept S1: "${text}"`);
    assert.ok(!text.includes('Third'), `S3 was not heard: "${text}"`);
    assert.ok(REPLY.startsWith(text) && text.length < REPLY.length, 'a prefix of the reply');
    assert.ok(REPLY[text.length] === ' ', 'cut at a word boundary');
    const session = client.frames.find((f) => f.type === 'session');
    assert.ok(session?.type === 'session');
    const stored = await storedReply(session.data.conversation_id as string);
    assert.equal(stored.content, text);
    assert.equal(stored.status, 'interrupted');
  });

  test('while the LLM still streams: the stream stops interrupted and the stored text is the heard part', async () => {
    const client = await connect();
    const session = client.frames.find((f) => f.type === 'session');
    assert.ok(session?.type === 'session');
    const long = `${REPLY} ${'And it goes on and on for a while. '.repeat(20)}`.trim();
    engines.chat.enqueue({ tokens: tokenize(long), tokenDelayMs: 60 });
    client.send({ type: 'user_message', data: { text: 'Ada, talk.' } });
    const messageId = (await client.next('text_stream_start')).data.message_id;
    await waitForAudio(client, messageId, S1.length * MS_PER_CHAR + 100);
    client.send({ type: 'playback_position', data: { message_id: messageId, played_ms: S1.length * MS_PER_CHAR } });
    client.send({ type: 'interrupt' });
    const stop = await client.next('text_stream_stop');
    assert.equal(stop.data.interrupted, true, 'the LLM was still streaming');
    assert.ok(stop.data.text.length > S1.length, 'more was generated than heard');
    assert.deepEqual((await client.next('message_truncated')).data, { message_id: messageId, text: S1 });
    await client.next('interrupt_ack');
    const stored = await storedReply(session.data.conversation_id as string);
    assert.equal(stored.content, S1);
    assert.equal(stored.status, 'interrupted');
    engines.chat.enqueue({ tokens: tokenize('Fine.') });
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    const [, next] = await engines.chat.waitForRequests(2);
    assert.deepEqual(next!.body.messages!.slice(1).map((m) => m.content), ['Ada, talk.', S1, 'Ada?']);
  });

  test('a reply played to the end is stored whole and complete, after its playback', async () => {
    const client = await connect();
    const messageId = await startReply(client);
    await client.waitFor((f) => f.type === 'audio_stream_stop' && f.data.message_id === messageId, 'the end of the audio', 20_000);
    const session = client.frames.find((f) => f.type === 'session');
    assert.ok(session?.type === 'session');
    const stored = await storedReply(session.data.conversation_id as string);
    assert.equal(stored.content, REPLY);
    assert.equal(stored.status, 'complete');
    assert.equal(client.ofType('message_truncated').length, 0);
  });

  test('a message sent while a reply still plays is stored after it, and the reply is kept whole once played', async () => {
    const client = await connect();
    const session = client.frames.find((f) => f.type === 'session');
    assert.ok(session?.type === 'session');
    const first = await startReply(client);
    await client.next('text_stream_stop');
    engines.chat.enqueue({ tokens: tokenize('Next one.') });
    client.send({ type: 'user_message', data: { text: 'Ada, and then?' } });
    const [, second] = await engines.chat.waitForRequests(2, 10_000);
    assert.deepEqual(second!.body.messages!.slice(1).map((m) => m.content), ['Ada, say three things.', REPLY, 'Ada, and then?'], 'the next prompt has the reply');
    await client.waitFor((f) => f.type === 'audio_stream_stop' && f.data.message_id !== first, 'the second reply spoken', 30_000);
    const messages = await eventually(async () => {
      const stored = await chorus.repo.listMessages({ conversation_id: session.data.conversation_id as string });
      return stored.length === 4 ? stored : undefined;
    }, 'four messages');
    assert.deepEqual(messages.map((m) => [m.content, m.status]), [
      ['Ada, say three things.', 'complete'],
      [REPLY, 'complete'],
      ['Ada, and then?', 'complete'],
      ['Next one.', 'complete'],
    ]);
    assert.equal(messages[1]!.message_id, first);
  });

  test('load_conversation and clear_history cut the playing reply the same way', async () => {
    const client = await connect();
    const session = client.frames.find((f) => f.type === 'session');
    assert.ok(session?.type === 'session');
    const first = await startReply(client);
    await waitForAudio(client, first, S1.length * MS_PER_CHAR + 400);
    client.send({ type: 'playback_position', data: { message_id: first, played_ms: S1.length * MS_PER_CHAR } });
    client.send({ type: 'clear_history' });
    assert.deepEqual((await client.next('message_truncated')).data, { message_id: first, text: S1 });
    await client.next('history_cleared');
    assert.equal((await storedReply(session.data.conversation_id as string)).content, S1);

    const second = await startReply(client);
    await waitForAudio(client, second, S1.length * MS_PER_CHAR + 400);
    const newConversation = (await eventually(async () => (await chorus.repo.listConversations({})).find((c) => c.conversation_id !== session.data.conversation_id), 'the second conversation')).conversation_id;
    client.send({ type: 'playback_position', data: { message_id: second, played_ms: S1.length * MS_PER_CHAR } });
    client.send({ type: 'load_conversation', data: { conversation_id: session.data.conversation_id } });
    assert.deepEqual((await client.next('message_truncated')).data, { message_id: second, text: S1 });
    await client.next('conversation_loaded');
    assert.equal((await storedReply(newConversation)).content, S1);
  });

  test('a connection that closes mid-reply stores the heard part as interrupted', async () => {
    const client = await connect();
    const session = client.frames.find((f) => f.type === 'session');
    assert.ok(session?.type === 'session');
    const messageId = await startReply(client);
    await waitForAudio(client, messageId, S1.length * MS_PER_CHAR + 600);
    await client.close();
    const stored = await storedReply(session.data.conversation_id as string);
    assert.equal(stored.status, 'interrupted');
    assert.ok(stored.content.startsWith(S1) && !stored.content.includes('Third'), stored.content);
  });

  test('playback_position is schema-validated', async () => {
    const client = await connect();
    const reply = await client.request({ type: 'playback_position', data: { message_id: 'nope', played_ms: -1 } });
    assert.equal(reply.type, 'error');
    assert.ok(reply.type === 'error' && reply.data.code === 'invalid_payload');
  });
});

describe('wordCut', () => {
  test('cuts before the first unplayed word', () => {
    const text = 'one two three four';
    assert.equal(text.slice(0, wordCut(text, 0, text.length, 0.5)), 'one two');
    assert.equal(text.slice(0, wordCut(text, 0, text.length, 0.1)), '');
    assert.equal(text.slice(0, wordCut(text, 0, text.length, 1)), text);
    assert.equal(text.slice(0, wordCut(text, 4, text.length, 0.99)), 'one two three');
  });
});
