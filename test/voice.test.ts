// Speech input over the WebSocket: real espeak speech at 16 kHz through the real Silero VAD,
// transcribed by a loopback OpenAI-compatible server; the transcript becomes a turn, and
// speaking over a character cuts it off (barge-in).
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import { createOpenAiSttEngine } from '../src/transcribe/engines/openai.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';
import { frames, loudest, msToSamples, Speaker, track } from './support/speech-audio.ts';

let engines: EngineServer;
let speaker: Speaker;
let chorus: ChorusUnderTest;
let env: Record<string, string>;
let engineSet: Pick<Parameters<typeof startChorus>[0], 'stt' | 'tts'>;
const clients: TestClient[] = [];

const connect = async (to = chorus) => {
  const client = await TestClient.connect(to.wsUrl);
  clients.push(client);
  return client;
};

/** Sends PCM as the original client does: 256 ms binary frames. */
const speak = (client: TestClient, pcm: Int16Array) => {
  for (const frame of frames(pcm, () => 4096)) client.sendRaw(frame, true);
};

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  engines = await startEngineServer();
  speaker = await Speaker.start();
  const stt = createOpenAiSttEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'whisper-1', language: 'en', timeoutMs: 2000 });
  const tts = createOpenAiTtsEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'tts-1', sampleRate: 24_000, timeoutMs: 2000, defaultVoice: 'alloy' });
  env = { LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k', STT_MIN_SPEECH_MS: '100', BARGE_IN_MIN_MS: '400' };
  engineSet = { stt, tts };
  chorus = await startChorus({ database: db.database, env, ...engineSet });
});

beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  engines.reset();
  await resetData((await openTestDatabases())[0]!.database);
  // Talkativeness 0: under the default strategy (natural) only the characters a message names answer.
  await chorus.repo.createCharacter({ name: 'Ada', system_prompt: 'A mathematician.', talkativeness: 0 });
  await chorus.repo.createCharacter({ name: 'Bob', system_prompt: 'A baker.', talkativeness: 0 });
});

after(async () => {
  for (const c of clients.splice(0)) await c.close();
  await chorus.close();
  await speaker.close();
  await engines.close();
});

describe('speech input', () => {
  test('a spoken question is transcribed live and becomes a turn for the character it names', async () => {
    engines.transcription.script(() => ({ text: 'Bob, what bread do you bake?' }));
    const question = await speaker.say('Bob, what bread do you bake?');
    const client = await connect();
    client.send({ type: 'start_listening' });
    assert.equal((await client.next('stt_state')).data.state, 'listening');
    speak(client, track({ silenceMs: 400 }, question, { silenceMs: 1200 }).pcm);

    const final = await client.next('stt_final', 10_000);
    assert.equal(final.text, 'Bob, what bread do you bake?');
    const start = await client.next('text_stream_start');
    assert.equal(start.data.character_name, 'Bob', 'the transcript addressed Bob alone');
    const stop = await client.next('text_stream_stop');
    assert.equal(stop.data.text, 'Reply to: Bob, what bread do you bake?');

    const states = client.ofType('stt_state').map((s) => s.data.state);
    assert.deepEqual(states.slice(0, 4), ['listening', 'recording', 'transcribing', 'listening']);
    const finalRequest = engines.transcription.requests.at(-1)!;
    const spokenMs = (question.pcm.length / 16_000) * 1000;
    assert.ok(finalRequest.wav && finalRequest.wav.durationMs >= spokenMs, `the final transcription got ${finalRequest.wav?.durationMs} ms for ${spokenMs} ms of speech`);
    assert.ok(finalRequest.wav.durationMs < spokenMs + 1200, 'and not the trailing silence');
    const stored = await chorus.repo.listMessages({ conversation_id: client.ofType('session')[0]!.data.conversation_id! });
    assert.equal(stored[0]?.content, 'Bob, what bread do you bake?');
  });

  test('speaking over a character pauses it, the words interrupt it, and the new utterance is the next turn', async () => {
    engines.speech.script(() => ({ realtimeFactor: 1 })); // a reply that takes seconds to play
    engines.chat.enqueue({ tokens: tokenize('Let me tell you a long, long story about flour and water and time.') });
    engines.transcription.script(() => ({ text: 'Ada, stop please.' }));
    const client = await connect();
    client.send({ type: 'start_listening' });
    client.send({ type: 'user_message', data: { text: 'Bob, tell me a story.' } });
    const first = await client.next('text_stream_start');
    await client.next('binary');

    speak(client, track(await speaker.say('Ada, stop please.'), { silenceMs: 1200 }).pcm);
    await client.next('audio_paused', 10_000); // the barge-in: playback pauses at once
    const final = await client.next('stt_final', 10_000); // words: the interrupt completes
    assert.equal(final.text, 'Ada, stop please.');
    await client.next('interrupt_ack', 10_000);
    const cut = client.ofType('audio_stream_stop').find((s) => s.data.message_id === first.data.message_id);
    assert.equal(cut?.data.interrupted, true, 'the playing audio was stopped as interrupted');
    assert.equal(client.ofType('audio_resumed').length, 0);
    const next = await client.next('text_stream_start');
    assert.equal(next.data.character_name, 'Ada');

    // What was heard is what is kept: a strict prefix of the story, in the store and in Ada's prompt.
    const story = 'Let me tell you a long, long story about flour and water and time.';
    const truncated = client.ofType('message_truncated').find((t) => t.data.message_id === first.data.message_id);
    assert.ok(truncated && story.startsWith(truncated.data.text) && truncated.data.text.length < story.length, `a heard prefix: ${JSON.stringify(truncated)}`);
    const prompt = (await engines.chat.waitForRequests(2))[1]!.body.messages!.filter((m) => m.role !== 'system').map((m) => m.content);
    assert.deepEqual(prompt.slice(0, 2), ['Bob, tell me a story.', ...(truncated.data.text === '' ? [] : [`Bob: ${truncated.data.text}`])].slice(0, 2), 'Ada hears Bob\'s reply as it was cut');
    const conversation = client.ofType('session')[0]!.data.conversation_id!;
    const stored = await eventually(async () => (await chorus.repo.listMessages({ conversation_id: conversation })).find((m) => m.message_id === first.data.message_id), 'the cut reply stored');
    assert.deepEqual([stored.content, stored.status], [truncated.data.text, 'interrupted']);
  });

  test('a blip shorter than the barge-in minimum does not interrupt', async () => {
    engines.speech.script(() => ({ realtimeFactor: 1 }));
    engines.chat.enqueue({ tokens: tokenize('A short reply, spoken in full.') });
    engines.transcription.script(() => ({ text: '' })); // the blip is not words
    const client = await connect();
    client.send({ type: 'start_listening' });
    client.send({ type: 'user_message', data: { text: 'Bob?' } });
    const start = await client.next('text_stream_start');
    await client.next('binary');
    const blip = loudest((await speaker.say('Mm-hmm, yes.')).pcm, msToSamples(250));
    speak(client, track({ silenceMs: 100 }, { text: 'blip', pcm: blip }, { silenceMs: 1000 }).pcm);
    // The VAD heard it (it started recording) …
    await client.waitFor((f) => f.type === 'stt_state' && f.data.state === 'recording', 'the blip to be heard', 5000);
    // … yet the reply plays to its end.
    const stop = await client.waitFor((f) => f.type === 'audio_stream_stop' && f.data.message_id === start.data.message_id, 'the reply audio to finish', 15_000);
    assert.equal(stop.type === 'audio_stream_stop' && stop.data.interrupted, undefined);
    assert.equal(client.ofType('interrupt_ack').length, 0);
  });

  test('with BARGE_IN=off, speaking over a character is heard but does not cut it off', async () => {
    const [db] = await openTestDatabases();
    const noBarge = await startChorus({ database: db!.database, env: { ...env, BARGE_IN: 'off' }, ...engineSet });
    try {
      engines.speech.script(() => ({ realtimeFactor: 1 })); // seconds of playback to talk over
      engines.chat.enqueue({ tokens: tokenize('Let me tell you a long, long story about flour and water and time.') });
      engines.transcription.script(() => ({ text: '' }));
      const client = await connect(noBarge);
      client.send({ type: 'start_listening' });
      client.send({ type: 'user_message', data: { text: 'Bob, tell me a story.' } });
      const start = await client.next('text_stream_start');
      await client.next('binary');
      speak(client, track(await speaker.say('Ada, stop please.'), { silenceMs: 1200 }).pcm);
      // Long enough to barge in (it was transcribed), yet the reply plays to its end.
      await client.waitFor((f) => f.type === 'stt_state' && f.data.state === 'transcribing', 'the utterance to end', 10_000);
      const stop = await client.waitFor((f) => f.type === 'audio_stream_stop' && f.data.message_id === start.data.message_id, 'the reply audio to finish', 20_000);
      assert.equal(stop.type === 'audio_stream_stop' && stop.data.interrupted, undefined);
      assert.equal(client.ofType('interrupt_ack').length, 0);
    } finally {
      for (const c of clients.splice(0)) await c.close();
      await noBarge.close();
    }
  });

  test('bad audio frames get bad_audio and listening goes on', async () => {
    engines.transcription.script(() => ({ text: 'Ada, hello.' }));
    const client = await connect();
    client.send({ type: 'start_listening' });
    client.sendRaw(Buffer.alloc(333), true);
    const odd = await client.next('error');
    assert.equal(odd.data.code, 'bad_audio');
    assert.match(odd.data.message, /333 bytes/);
    client.sendRaw(Buffer.alloc(64_000), true);
    assert.equal((await client.next('error')).data.code, 'bad_audio');
    speak(client, track({ silenceMs: 300 }, await speaker.say('Ada, hello.'), { silenceMs: 1200 }).pcm);
    assert.equal((await client.next('stt_final', 10_000)).text, 'Ada, hello.');
  });

  test('audio before start_listening is dropped quietly; a failing transcription server gives stt_error', async () => {
    engines.transcription.script(() => ({ failure: { status: 503, body: 'busy' } }));
    const client = await connect();
    const hello = await speaker.say('Ada, hello there.');
    speak(client, track(hello, { silenceMs: 1200 }).pcm); // not listening: nothing happens
    const pong = await client.request({ type: 'ping' });
    assert.equal(pong.type, 'pong');
    assert.equal(client.ofType('stt_state').length, 0);
    client.send({ type: 'start_listening' });
    speak(client, track({ silenceMs: 300 }, hello, { silenceMs: 1200 }).pcm);
    const error = await client.waitFor((f) => f.type === 'error' && f.data.code === 'stt_error', 'an stt_error', 10_000);
    assert.match(error.type === 'error' ? error.data.message : '', /503/);
    engines.transcription.script(() => ({ text: 'Ada, hello there.' }));
    speak(client, track({ silenceMs: 300 }, hello, { silenceMs: 1200 }).pcm);
    assert.equal((await client.next('stt_final', 10_000)).text, 'Ada, hello there.', 'listening went on');
  });
});

describe('auto-mode and the user\'s voice', () => {
  test('speaking over the characters\' chatter stops it at once: the next turn answers what was said', async () => {
    engines.speech.script(() => ({ realtimeFactor: 1 })); // replies take seconds to play
    engines.transcription.script(() => ({ text: 'Ada, wait a moment.' }));
    const client = await connect();
    const conversationId = client.ofType('session')[0]!.data.conversation_id!;
    client.send({ type: 'start_listening' });
    engines.chat.enqueue(
      { tokens: tokenize('Hello there.') },
      { tokens: tokenize('Numbers are fun. They go on and on. And on, and on, for ever and ever.') },
    );
    client.send({ type: 'user_message', data: { text: 'Bob, hello.' } });
    await client.next('text_stream_stop');
    // Bob (named) answered the user; pooled: Ada, who has not spoken since, goes on by herself.
    await client.request({ type: 'update_conversation', data: { conversation_id: conversationId, reply_strategy: 'pooled', auto_mode: true, auto_mode_delay_ms: 30 } });
    const auto = await client.waitFor((f) => f.type === 'text_stream_start' && f.data.character_name === 'Ada', 'the chatter to start', 15_000);
    // Its second sentence is being sent: some of it has been heard, so it is kept (and is a reply to go on from).
    const autoId = auto.type === 'text_stream_start' ? auto.data.message_id : '';
    await client.waitFor((f) => f.type === 'audio_chunk' && f.data.message_id === autoId && f.data.sentence_index === 1, 'its second sentence', 10_000);

    speak(client, track(await speaker.say('Ada, wait a moment.'), { silenceMs: 1200 }).pcm);
    await client.waitFor((f) => f.type === 'interrupt_ack', 'the barge-in', 10_000);
    await client.waitFor((f) => f.type === 'stt_final', 'the transcript', 10_000);
    // Far more than the 30 ms delay passed while the utterance was transcribed: without the
    // pause an auto turn would have come first.
    const toUser = await eventuallyRequest((body) => body.includes('Ada, wait a moment.'));
    assert.equal(engines.chat.requests.indexOf(toUser), 2, `the request after the cut auto turn answers the user: ${engines.chat.requests.map((r) => r.lastUserMessage).join(' | ')}`);
    await client.request({ type: 'update_conversation', data: { conversation_id: conversationId, auto_mode: false } });
  });
});

/** The first chat request whose last user message satisfies `match` (waits for it). */
async function eventuallyRequest(match: (lastUserMessage: string) => boolean) {
  for (let n = 1; ; n++) {
    const requests = await engines.chat.waitForRequests(n, 15_000);
    const found = requests.find((r) => match(r.lastUserMessage));
    if (found) return found;
  }
}

describe('retry', () => {
  test('regenerate of a reply cut before a word of it was heard (Retry as it starts) answers the user message anew', async () => {
    const client = await connect();
    // The reply's speech holds its first byte: nothing of it is heard when the retry comes.
    engines.speech.enqueue({ firstByteDelayMs: 3000 });
    engines.chat.enqueue({ tokens: tokenize('Half an answer and then') });
    client.send({ type: 'user_message', data: { text: 'Ada, tell me something.' } });
    const first = await client.next('text_stream_stop');
    engines.chat.enqueue({ tokens: tokenize('A whole answer this time.') });
    client.send({ type: 'regenerate', data: { message_id: first.data.message_id } });
    const answer = await client.waitFor((f) => f.type === 'error' || (f.type === 'text_stream_stop' && f.data.text !== first.data.text), 'the new reply (or an error)', 10_000);
    assert.equal(answer.type, 'text_stream_stop', JSON.stringify(answer));
    assert.ok(answer.type === 'text_stream_stop');
    assert.equal(answer.data.text, 'A whole answer this time.');
    assert.equal(answer.data.character_name, 'Ada');
  });
});
