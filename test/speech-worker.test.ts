// The speech worker (Speech) alone, with an engine the test controls: its own generation checks
// drop what an interrupt cancelled, whatever the audio streamer after it would do. Then the
// whole server with that engine: audio held until after interrupt_ack, then released, never leaves.
import assert from 'node:assert/strict';
import { after, afterEach, test } from 'node:test';
import { pino } from 'pino';
import type { EngineVoice, TtsEngine } from '../src/speech/engine.ts';
import { Speech } from '../src/speech/speech.ts';
import type { VoiceResolver } from '../src/speech/voices.ts';
import type { AudioItem, SentenceItem, Speaker } from '../src/session/items.ts';
import { AsyncQueue } from '../src/util/async-queue.ts';
import { startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { closeTestDatabases, openTestDatabases } from './support/db.ts';
import { startEngineServer, tokenize } from './support/engine-server.ts';

const VOICE: EngineVoice = { engineVoice: 'v', speed: 1, pitch: 1 };

/** An engine whose chunks the test releases one by one; it ignores aborts, like a slow server. */
class HeldEngine implements TtsEngine {
  readonly name = 'openai';
  readonly sampleRate = 24_000;
  readonly defaultVoice = VOICE;
  readonly texts: string[] = [];
  private releases: Array<() => void> = [];
  /** Releases given before the engine got to wait for them. */
  private credits = 0;
  private started: Array<() => void> = [];
  private finishedWakes: Array<() => void> = [];
  finished = 0;

  async *synthesize(text: string): AsyncIterable<Buffer> {
    this.texts.push(text);
    for (const wake of this.started.splice(0)) wake();
    try {
      for (let i = 0; i < 2; i++) {
        if (this.credits > 0) this.credits--;
        else await new Promise<void>((resolve) => this.releases.push(resolve));
        yield Buffer.alloc(100, i);
      }
    } finally {
      // Also when the consumer stops early: the chunk it was handed has been dealt with.
      this.finished++;
      for (const wake of this.finishedWakes.splice(0)) wake();
    }
  }

  /** Resolves once `n` syntheses have ended (all chunks yielded, or the consumer stopped). */
  async finishedCount(n: number): Promise<void> {
    while (this.finished < n) await new Promise<void>((resolve) => this.finishedWakes.push(resolve));
  }

  /** Lets the next held chunk out. */
  release(): void {
    const wake = this.releases.shift();
    if (wake) wake();
    else this.credits++;
  }

  /** Resolves once `n` syntheses have started. */
  async startedCount(n: number): Promise<void> {
    while (this.texts.length < n) await new Promise<void>((resolve) => this.started.push(resolve));
  }

  async listVoices(): Promise<string[]> {
    return [];
  }
  async close(): Promise<void> {}
}

const speaker = (message_id: string): Speaker => ({ character_id: 'c', character_name: 'C', message_id, voice: null });
const sentence = (id: string, generation: number, text: string): SentenceItem => ({ kind: 'sentence', speaker: speaker(id), generation, turn: generation, sentence_index: 0, text });
const end = (id: string, generation: number): SentenceItem => ({ kind: 'end', speaker: speaker(id), generation });

const running: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of running.splice(0)) await stop();
});

function worker() {
  const engine = new HeldEngine();
  const sentences = new AsyncQueue<SentenceItem>();
  const audio = new AsyncQueue<AudioItem>();
  const errors: string[] = [];
  let generation = 0;
  const voices = { resolve: async () => VOICE } as unknown as VoiceResolver;
  const speech = new Speech({ engine, voices, sentences, audio, generation: () => generation, error: (code) => errors.push(code), logger: pino({ level: 'silent' }) });
  const done = speech.run();
  running.push(async () => {
    sentences.close();
    for (let i = 0; i < 4; i++) engine.release();
    await done;
  });
  return { engine, sentences, audio, speech, errors, interrupt: () => (generation++, speech.interrupt()) };
}

/** The next item on the audio queue. */
const nextAudio = (audio: AsyncQueue<AudioItem>) => audio.shift() as Promise<AudioItem>;

test('a chunk the engine yields after the interrupt is not queued; the next generation is', async () => {
  const w = worker();
  w.sentences.push(sentence('old', 0, 'First words here.'));
  await w.engine.startedCount(1);
  w.engine.release();
  const first = await nextAudio(w.audio);
  assert.equal(first.kind === 'chunk' && first.speaker.message_id, 'old');
  w.interrupt();
  w.engine.release(); // the engine ignores the abort and yields its second chunk anyway
  w.sentences.push(sentence('new', 1, 'Second words here.'));
  await w.engine.startedCount(2);
  w.engine.release();
  // The queue is in order: a chunk of "old" would come before this one.
  const next = await nextAudio(w.audio);
  assert.equal(next.kind === 'chunk' && next.speaker.message_id, 'new');
  assert.deepEqual(w.errors, []);
});

test('sentences and ends of an older generation still queued are never synthesized or passed on', async () => {
  const w = worker();
  w.sentences.push(sentence('busy', 0, 'Keeps the worker busy.'));
  await w.engine.startedCount(1);
  w.sentences.push(sentence('old', 0, 'Never spoken.'));
  w.sentences.push(end('old', 0));
  w.interrupt();
  w.engine.release();
  w.engine.release(); // "busy" finishes (its chunks after the interrupt are dropped)
  w.sentences.push(end('new', 1));
  const next = await nextAudio(w.audio);
  assert.deepEqual([next.kind, next.speaker.message_id], ['end', 'new']);
  assert.deepEqual(w.engine.texts, ['Keeps the worker busy.']);
});

after(closeTestDatabases);

test('through the server: audio held until after interrupt_ack, then released, never leaves', async () => {
  const [db] = await openTestDatabases();
  const llm = await startEngineServer();
  const engine = new HeldEngine();
  // No pacing: a released chunk that got through would be sent at once, before the pong.
  const chorus = await startChorus({ database: db!.database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', AUDIO_LEAD_MS: '0' }, tts: engine });
  let client: TestClient | undefined;
  try {
    await chorus.repo.createCharacter({ name: 'Ada', system_prompt: 'You are Ada.' });
    llm.chat.enqueue({ tokens: tokenize('Hello there, my good friend.') });
    client = await TestClient.connect(chorus.wsUrl);
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    await engine.startedCount(1);
    engine.release();
    await client.next('binary'); // the first chunk is out; the second is held in the engine
    client.send({ type: 'interrupt' });
    await client.next('interrupt_ack');
    const ackAt = client.frames.findIndex((f) => f.type === 'interrupt_ack');
    for (let i = 0; i < 4; i++) engine.release();
    await engine.finishedCount(engine.texts.length); // every held chunk has reached the speech worker
    // The pong is sent after anything already on its way, so a cancelled frame would precede it.
    const pong = await client.request({ type: 'ping' });
    assert.equal(pong.type, 'pong');
    assert.deepEqual(client.frames.slice(ackAt + 1).map((f) => f.type), ['pong']);
  } finally {
    await client?.close();
    await chorus.close();
    await llm.close();
  }
});
