// Turn-taking over the WebSocket, end to end: real espeak speech streamed at real time through
// the real Silero VAD, the loopback STT/LLM/TTS servers (test/support/engine-server.ts) and the
// real server. Preemptive replies (a reply started on the user's paused words, held until the
// final transcript confirms it) and interruptions that can be taken back (a barge-in pauses the
// reply; no words → it resumes where it stopped; words → the interrupt completes). The test
// client knows nothing of audio_paused / audio_resumed beyond their schema, as the original
// client: what it receives is what such a client gets. No timing is asserted, only order.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { renderMetrics } from '../src/metrics.ts';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import { createOpenAiSttEngine } from '../src/transcribe/engines/openai.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { type Frame, TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';
import { eventually } from './support/eventually.ts';
import { Speaker, streamRealtime, track, type TrackPart } from './support/speech-audio.ts';

let engines: EngineServer;
let speaker: Speaker;
let chorus: ChorusUnderTest;
const clients: TestClient[] = [];

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  engines = await startEngineServer();
  speaker = await Speaker.start();
  const stt = createOpenAiSttEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'whisper-1', language: 'en', timeoutMs: 5000 });
  const tts = createOpenAiTtsEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'tts-1', sampleRate: 24_000, timeoutMs: 5000, defaultVoice: 'alloy' });
  // No periodic live transcriptions: the transcription requests are exactly each pause's closing one and each final.
  const env = { LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k', STT_MIN_SPEECH_MS: '100', BARGE_IN_MIN_MS: '300', STT_REALTIME_INTERVAL_MS: '0' };
  chorus = await startChorus({ database: db.database, env, stt, tts });
});

beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await chorus.settled();
  engines.reset();
  await resetData((await openTestDatabases())[0]!.database);
  await chorus.repo.createCharacter({ name: 'Ada', system_prompt: 'A mathematician.', talkativeness: 0 });
  await chorus.repo.createCharacter({ name: 'Bob', system_prompt: 'A baker.', talkativeness: 0 });
});

after(async () => {
  for (const c of clients.splice(0)) await c.close();
  await chorus.close();
  await speaker.close();
  await engines.close();
});

async function listeningClient(): Promise<TestClient> {
  const client = await TestClient.connect(chorus.wsUrl);
  clients.push(client);
  client.send({ type: 'start_listening' });
  await client.next('stt_state');
  return client;
}

/** Speaks `parts` into the connection as a microphone would, in real time. */
async function say(client: TestClient, ...parts: TrackPart[]): Promise<void> {
  await streamRealtime((frame) => client.sendRaw(frame, true), track(...parts).pcm);
}

const indexOf = (client: TestClient, f: Frame | undefined) => (f === undefined ? -1 : client.frames.indexOf(f));
const conversationOf = (client: TestClient) => client.ofType('session')[0]!.data.conversation_id!;

/** The stored messages of the client's conversation, once there are `n`. */
const stored = (client: TestClient, n: number) =>
  eventually(async () => {
    const messages = await chorus.repo.listMessages({ conversation_id: conversationOf(client) });
    return messages.length >= n ? messages : undefined;
  }, `${n} stored messages`);

/** The binary frames of one message, with their audio_chunk headers, in order. */
function audioOf(client: TestClient, messageId: string): Array<{ at: number; sentence: number; chunk: number; bytes: number }> {
  const out = [];
  for (let i = 0; i < client.frames.length - 1; i++) {
    const header = client.frames[i]!;
    const frame = client.frames[i + 1]!;
    if (header.type === 'audio_chunk' && header.data.message_id === messageId && frame.type === 'binary') {
      out.push({ at: i + 1, sentence: header.data.sentence_index, chunk: header.data.chunk_index, bytes: frame.data.length });
    }
  }
  return out;
}

/** Every chunk once, in order: sentence by sentence, each sentence's chunks 0, 1, 2 … with none missing. */
function assertGapless(frames: ReturnType<typeof audioOf>): void {
  for (let i = 1; i < frames.length; i++) {
    const [a, b] = [frames[i - 1]!, frames[i]!];
    const next = b.sentence === a.sentence ? b.chunk === a.chunk + 1 : b.sentence > a.sentence && b.chunk === 0;
    assert.ok(next, `chunk ${b.sentence}/${b.chunk} follows ${a.sentence}/${a.chunk}: a frame repeated or lost`);
  }
}

/** PCM bytes the speech server sent for every request so far. */
const speechBytes = () => engines.speech.requests.reduce((n, r) => n + r.sent.reduce((m, c) => m + (c.bytes ?? 0), 0), 0);

/** The counters of a labelled Chorus metric, by outcome. */
async function counts(name: string): Promise<Record<string, number>> {
  const { body } = await renderMetrics();
  const out: Record<string, number> = {};
  for (const [, outcome, value] of body.matchAll(new RegExp(`^${name}\\{outcome="(\\w+)"\\} (\\S+)$`, 'gm'))) out[outcome!] = Number(value);
  return out;
}
const delta = (before: Record<string, number>, after: Record<string, number>) =>
  Object.fromEntries(Object.keys(after).map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)]));

describe('preemptive replies', () => {
  const QUESTION = 'Bob what bread do you bake today?';

  test('a reply starts on the paused words and is sent once the final transcript confirms them: one reply, nothing twice, the LLM asked before stt_final', async () => {
    engines.transcription.script(() => ({ text: QUESTION }));
    engines.chat.enqueue({ tokens: tokenize('Rye and spelt, mostly. And a little sourdough on Sundays.') });
    const before = await counts('chorus_preemptive_turns_total');
    const client = await listeningClient();
    await say(client, { silenceMs: 300 }, await speaker.say(QUESTION), { silenceMs: 900 });

    const final = await client.next('stt_final', 10_000);
    assert.equal(final.text, QUESTION);
    const stop = await client.waitFor((f) => f.type === 'audio_stream_stop', 'the reply audio to end', 15_000);
    // The LLM was asked before the final transcription was even requested (on the closing transcription of the pause).
    const [closing, finalRequest] = engines.transcription.requests;
    assert.equal(engines.transcription.requests.length, 2, 'one closing transcription, one final');
    assert.equal(engines.chat.requests.length, 1, 'one LLM request: the preemptive one, confirmed');
    const chat = engines.chat.requests[0]!;
    assert.ok(closing!.sent[0]!.at <= chat.receivedAt && chat.receivedAt < finalRequest!.receivedAt, 'the LLM request came between the pause and the final transcription');
    assert.equal(chat.lastUserMessage, QUESTION);

    // Nothing of the turn before stt_final; then all of it once, in order.
    const at = client.frames.indexOf(final);
    const turnTypes = new Set(['user_message_accepted', 'text_stream_start', 'text_chunk', 'text_stream_stop', 'audio_stream_start', 'audio_chunk', 'binary']);
    assert.deepEqual(client.frames.slice(0, at).filter((f) => turnTypes.has(f.type)).map((f) => f.type), []);
    assert.equal(client.ofType('user_message_accepted').length, 1);
    assert.equal(client.ofType('text_stream_start').length, 1);
    assert.equal(client.ofType('audio_stream_start').length, 1);
    assert.equal(client.ofType('text_stream_start')[0]!.data.character_name, 'Bob');
    assert.equal(client.ofType('text_stream_stop')[0]!.data.text, 'Rye and spelt, mostly. And a little sourdough on Sundays.');
    const messageId = stop.type === 'audio_stream_stop' ? stop.data.message_id : '';
    const frames = audioOf(client, messageId);
    assertGapless(frames);
    assert.equal(frames.reduce((n, f) => n + f.bytes, 0), speechBytes(), 'every byte the speech server made, sent once');

    const messages = await stored(client, 2);
    assert.deepEqual(messages.map((m) => [m.role, m.content]), [
      ['user', QUESTION],
      ['assistant', 'Rye and spelt, mostly. And a little sourdough on Sundays.'],
    ]);
    assert.deepEqual(delta(before, await counts('chorus_preemptive_turns_total')), { started: 1, committed: 1, cancelled: 0 });
  });

  test('a final transcript with other words cancels it: its LLM request is closed, nothing of it is sent or stored, and the final is answered', async () => {
    const other = 'Ada what do you compute today?';
    engines.transcription.enqueue({ text: QUESTION }, { text: other });
    engines.chat.enqueue({ tokens: tokenize('Rye and spelt.'), firstTokenDelayMs: 4000 }, { tokens: tokenize('Prime numbers, all day.') });
    const before = await counts('chorus_preemptive_turns_total');
    const client = await listeningClient();
    await say(client, { silenceMs: 300 }, await speaker.say(QUESTION), { silenceMs: 900 });

    assert.equal((await client.next('stt_final', 10_000)).text, other);
    await client.waitFor((f) => f.type === 'text_stream_stop', 'the reply to the final', 10_000);
    const [preemptive, answer] = await engines.chat.waitForRequests(2);
    assert.equal(preemptive!.lastUserMessage, QUESTION);
    assert.equal(answer!.lastUserMessage, other);
    const closed = await engines.chat.waitForClose(preemptive!);
    assert.ok(closed.aborted && closed.sent.length === 0, 'the preemptive LLM request was closed before it answered');
    assert.ok(closed.closedAt! <= answer!.receivedAt, 'and before the final was answered');

    assert.deepEqual(client.ofType('text_stream_start').map((s) => s.data.character_name), ['Ada']);
    assert.deepEqual(client.ofType('user_message_accepted').map((m) => m.data.text), [other]);
    assert.ok(!client.ofType('text_chunk').some((c) => c.data.text.includes('Rye')));
    const messages = await stored(client, 2);
    assert.deepEqual(messages.map((m) => [m.role, m.content]), [
      ['user', other],
      ['assistant', 'Prime numbers, all day.'],
    ]);
    assert.deepEqual(delta(before, await counts('chorus_preemptive_turns_total')), { started: 1, committed: 0, cancelled: 1 });
  });

  test('the user speaking again after a pause cancels it (its LLM request closed); the reply to the whole utterance is the one sent', async () => {
    const start = 'Bob what bread';
    engines.transcription.enqueue({ text: start }, { text: QUESTION }, { text: QUESTION });
    engines.chat.enqueue({ tokens: tokenize('Sourdough.'), firstTokenDelayMs: 4000 }, { tokens: tokenize('Rye, mostly.') });
    const before = await counts('chorus_preemptive_turns_total');
    const client = await listeningClient();
    // A mid-sentence pause: long enough to count as a pause, too short to end the turn.
    await say(client, { silenceMs: 300 }, await speaker.say(start), { silenceMs: 250 }, await speaker.say('do you bake today?'), { silenceMs: 900 });

    assert.equal((await client.next('stt_final', 10_000)).text, QUESTION);
    await client.waitFor((f) => f.type === 'text_stream_stop', 'the reply', 10_000);
    assert.equal(engines.transcription.requests.length, 3, 'two pauses, each transcribed, and the final');
    const [first, second] = engines.chat.requests;
    assert.equal(engines.chat.requests.length, 2);
    assert.equal(first!.lastUserMessage, start);
    assert.equal(second!.lastUserMessage, QUESTION);
    const closed = await engines.chat.waitForClose(first!);
    assert.ok(closed.aborted && closed.sent.length === 0, 'the first preemptive request was closed unanswered');
    assert.ok(closed.closedAt! <= second!.receivedAt, 'as soon as the user spoke again');

    assert.equal(client.ofType('stt_final').length, 1);
    assert.deepEqual(client.ofType('user_message_accepted').map((m) => m.data.text), [QUESTION], 'the first start sent nothing');
    assert.equal(client.ofType('text_stream_start').length, 1);
    assert.deepEqual(client.ofType('text_stream_stop').map((s) => s.data.text), ['Rye, mostly.']);
    assert.ok(!client.ofType('text_chunk').some((c) => c.data.text.includes('Sourdough')));
    const messages = await stored(client, 2);
    assert.deepEqual(messages.map((m) => m.content), [QUESTION, 'Rye, mostly.']);
    assert.deepEqual(delta(before, await counts('chorus_preemptive_turns_total')), { started: 2, committed: 1, cancelled: 1 });
  });
});

describe('interruptions that can be taken back', () => {
  const STORY = 'Let me tell you about flour and water and time. The dough rests through the night while the oven waits. In the morning the crust sings as it cools.';

  /** A reply playing for seconds, and a sound the user makes over it. */
  async function overAReply(transcript: string) {
    engines.speech.script(() => ({ realtimeFactor: 1 })); // the reply takes seconds to play
    engines.chat.enqueue({ tokens: tokenize(STORY) });
    engines.transcription.script(() => ({ text: transcript }));
    const client = await listeningClient();
    client.send({ type: 'user_message', data: { text: 'Bob, tell me a story.' } });
    const start = await client.next('audio_stream_start');
    await client.waitFor((f) => f.type === 'audio_chunk' && f.data.chunk_index === 10, 'some of the reply to be sent', 10_000);
    await say(client, await speaker.say('Oh, hmm.'), { silenceMs: 1000 }); // no words: the normal end silence ends it
    return { client, messageId: start.data.message_id };
  }

  test('a barge-in with no words pauses the reply and resumes it where it stopped: the same frames go on, none repeated or lost, history as if nothing happened', async () => {
    const before = await counts('chorus_barge_ins_total');
    const { client, messageId } = await overAReply(''); // a cough: no words
    const paused = await client.next('audio_paused', 10_000);
    const resumed = await client.next('audio_resumed', 10_000);
    const stop = await client.waitFor((f) => f.type === 'audio_stream_stop' && f.data.message_id === messageId, 'the reply audio to end', 30_000);

    assert.equal(stop.type === 'audio_stream_stop' && stop.data.interrupted, undefined, 'played to its end');
    const frames = audioOf(client, messageId);
    const [p, r] = [indexOf(client, paused), indexOf(client, resumed)];
    assert.deepEqual(frames.filter((f) => f.at > p && f.at < r), [], 'nothing was sent while paused');
    assert.ok(frames.some((f) => f.at < p) && frames.some((f) => f.at > r), 'frames before the pause and after the resume');
    assertGapless(frames);
    assert.equal(frames.reduce((n, f) => n + f.bytes, 0), speechBytes(), 'all of the reply, once');
    assert.equal(client.ofType('interrupt_ack').length, 0);
    assert.equal(client.ofType('message_truncated').length, 0);
    const messages = await stored(client, 2);
    assert.deepEqual(messages.map((m) => [m.content, m.status]), [
      ['Bob, tell me a story.', 'complete'],
      [STORY, 'complete'],
    ]);
    assert.deepEqual(delta(before, await counts('chorus_barge_ins_total')), { paused: 1, resumed: 1, interrupted: 0 });
  });

  test('an interrupt message while paused cuts the reply for good: it is not taken back', async () => {
    const before = await counts('chorus_barge_ins_total');
    const { client, messageId } = await overAReply('');
    await client.next('audio_paused', 10_000);
    client.send({ type: 'interrupt' });
    await client.next('interrupt_ack', 10_000);
    const cut = client.ofType('audio_stream_stop').find((s) => s.data.message_id === messageId);
    assert.equal(cut?.data.interrupted, true);
    // Cut while paused: counted as interrupted, and nothing is left to resume (its timer is gone with it) …
    assert.deepEqual(delta(before, await counts('chorus_barge_ins_total')), { paused: 1, resumed: 0, interrupted: 1 });
    // … however long the microphone goes on hearing silence.
    await say(client, { silenceMs: 1800 });
    const pong = await client.request({ type: 'ping' });
    assert.equal(pong.type, 'pong');
    assert.equal(client.ofType('audio_resumed').length, 0);
    assert.equal((await counts('chorus_barge_ins_total')).resumed, before.resumed ?? 0);
  });

  test('a barge-in with words pauses the reply, then the words interrupt it: what was heard is kept, and they are the next turn', async () => {
    const before = await counts('chorus_barge_ins_total');
    const { client, messageId } = await overAReply('Ada, wait.');
    const paused = await client.next('audio_paused', 10_000);
    const final = await client.next('stt_final', 10_000);
    const truncated = await client.next('message_truncated', 10_000);
    const ack = await client.next('interrupt_ack', 10_000);
    const next = await client.next('text_stream_start', 10_000);

    assert.equal(final.text, 'Ada, wait.');
    assert.equal(next.data.character_name, 'Ada');
    const cut = client.ofType('audio_stream_stop').find((s) => s.data.message_id === messageId);
    assert.equal(cut?.data.interrupted, true);
    assert.ok(indexOf(client, truncated) < indexOf(client, ack));
    assert.equal(client.ofType('audio_resumed').length, 0, 'an interrupt is not taken back');
    assert.deepEqual(audioOf(client, messageId).filter((f) => f.at > indexOf(client, paused)), [], 'nothing more of the reply after the pause');
    const heard = truncated.data.text;
    assert.ok(heard !== '' && heard.length < STORY.length && STORY.startsWith(heard), `kept what was heard before the pause: ${JSON.stringify(heard)}`);
    const messages = await stored(client, 3);
    assert.deepEqual(messages.slice(0, 3).map((m) => [m.content, m.status]), [
      ['Bob, tell me a story.', 'complete'],
      [heard, 'interrupted'],
      ['Ada, wait.', 'complete'],
    ]);
    assert.deepEqual(delta(before, await counts('chorus_barge_ins_total')), { paused: 1, resumed: 0, interrupted: 1 });
  });
});
