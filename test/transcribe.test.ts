// Speech input end to end: real espeak speech at 16 kHz through the real Silero VAD into
// Transcribe, with the openai engine talking to a real /v1/audio/transcriptions server on
// loopback (test/support/engine-server.ts) that records every WAV it receives.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.ts';
import type { SttState } from '../src/protocol.ts';
import type { SttEngine } from '../src/transcribe/engine.ts';
import { createSttEngine, SPEECH_INPUT_NOT_CONFIGURED } from '../src/transcribe/stt.ts';
import { MAX_FRAME_BYTES, Transcribe, type TranscribeEvents, type UtteranceInfo } from '../src/transcribe/transcribe.ts';
import { commonWordPrefix, endSilenceFor } from '../src/transcribe/transcript.ts';
import { loadTurnDetector, type TurnDetector } from '../src/transcribe/turn-detector.ts';
import { loadVad, VAD_WINDOW, type VadModel } from '../src/transcribe/vad.ts';
import { constantTurnModel } from './support/onnx.ts';
import { type EngineServer, msBetween, type RecordedTranscriptionRequest, startEngineServer } from './support/engine-server.ts';
import { frames, frameSizes, loudest, msToSamples, samplesToMs, Speaker, type SpeechClip, type Track, track } from './support/speech-audio.ts';

const FOX = 'The quick brown fox jumps over the lazy dog.';
const HEAR = 'Can you hear me now?';
const WINDOW_MS = samplesToMs(VAD_WINDOW);
const WAIT_MS = 8000; // failure guard only

let speaker: Speaker;
let vad: VadModel;
let server: EngineServer;
const clips = new Map<string, SpeechClip>();
const sessions: Transcribe[] = [];

before(async () => {
  [speaker, vad, server] = await Promise.all([Speaker.start(), loadVad(), startEngineServer()]);
  for (const text of [FOX, HEAR]) clips.set(text, await speaker.say(text));
});
after(async () => {
  await Promise.all([speaker.close(), server.close()]);
});
afterEach(() => {
  for (const s of sessions.splice(0)) s.close();
  server.reset();
});

const clip = (text: string) => clips.get(text) as SpeechClip;

// -- recording what Transcribe says ---------------------------------------------------------

type Event =
  | { type: 'state'; state: SttState }
  | { type: 'update'; text: string }
  | { type: 'stabilized'; text: string }
  | { type: 'final'; text: string }
  | { type: 'speechStart' }
  | { type: 'error'; code: 'stt_error' | 'bad_audio'; message: string }
  | { type: 'utterance'; info: UtteranceInfo }
  | { type: 'preemptive'; text: string }
  | { type: 'preemptiveCancelled' }
  | { type: 'turnJudged'; complete: boolean };
type Of<T extends Event['type']> = Extract<Event, { type: T }>;

class Recorder implements TranscribeEvents {
  readonly log: Event[] = [];
  private readonly waiters = new Set<() => void>();

  state(state: SttState) {
    this.push({ type: 'state', state });
  }
  update(text: string) {
    this.push({ type: 'update', text });
  }
  stabilized(text: string) {
    this.push({ type: 'stabilized', text });
  }
  final(text: string) {
    this.push({ type: 'final', text });
  }
  speechStart() {
    this.push({ type: 'speechStart' });
  }
  error(code: 'stt_error' | 'bad_audio', message: string) {
    this.push({ type: 'error', code, message });
  }
  utterance(info: UtteranceInfo) {
    this.push({ type: 'utterance', info });
  }
  turnJudged(complete: boolean) {
    this.push({ type: 'turnJudged', complete });
  }

  of<T extends Event['type']>(type: T): Array<Of<T>> {
    return this.log.filter((e): e is Of<T> => e.type === type);
  }

  get states(): SttState[] {
    return this.of('state').map((e) => e.state);
  }

  /** The `n`th event of `type` (1-based), once it has happened. */
  waitFor<T extends Event['type']>(type: T, n = 1, match: (e: Of<T>) => boolean = () => true): Promise<Of<T>> {
    const find = () => this.of(type).filter(match)[n - 1];
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = find();
        if (!hit) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no ${type} #${n} within ${WAIT_MS} ms; events: ${JSON.stringify(this.log)}`));
      }, WAIT_MS);
      this.waiters.add(check);
      check();
    });
  }

  /** The `n`th time the state became `state`. */
  waitForState(state: SttState, n = 1): Promise<Of<'state'>> {
    return this.waitFor('state', n, (e) => e.state === state);
  }

  /** A matcher for events logged after `event`. */
  after(event: Event): (e: Event) => boolean {
    return (e) => this.log.indexOf(e) > this.log.indexOf(event);
  }

  protected push(event: Event): void {
    this.log.push(event);
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** A listener of preemptive transcripts: Transcribe transcribes each pause for it. */
class PreemptiveRecorder extends Recorder {
  preemptive(text: string) {
    this.push({ type: 'preemptive', text });
  }
  preemptiveCancelled() {
    this.push({ type: 'preemptiveCancelled' });
  }
}

async function listen(env: Record<string, string> = {}, engine?: SttEngine, opts: { events?: Recorder; turnDetector?: TurnDetector } = {}) {
  const config = loadConfig({ STT_ENGINE: 'openai', STT_BASE_URL: server.baseUrl, STT_MODEL: 'test-model', STT_REALTIME_INTERVAL_MS: '0', ...env }).stt;
  const events = opts.events ?? new Recorder();
  const transcribe = new Transcribe({ engine: engine ?? ((await createSttEngine(config)) as SttEngine), vad, config, events, turnDetector: opts.turnDetector });
  sessions.push(transcribe);
  transcribe.startListening();
  return { transcribe, events, config };
}

const feedAll = (t: Transcribe, pcm: Int16Array, size: (i: number) => number = frameSizes['256 ms']) => {
  for (const frame of frames(pcm, size)) t.feed(frame);
};

/**
 * Plays audio at `speed`× real time, as a microphone would send it. The pace is the input under
 * test (live transcription runs on wall-clock intervals), not a way to wait for anything.
 */
async function play(t: Transcribe, pcm: Int16Array, speed: number, frameMs = 64): Promise<void> {
  const list = frames(pcm, () => msToSamples(frameMs));
  const start = performance.now();
  for (const [i, frame] of list.entries()) {
    const wait = start + (i * frameMs) / speed - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    t.feed(frame);
  }
}

interface Call {
  start: number;
  end?: number;
}

/** The real engine, noting when each transcription started and settled (performance.now()). */
function observed(engine: SttEngine): { engine: SttEngine; log: Call[] } {
  const log: Call[] = [];
  const transcribe: SttEngine['transcribe'] = async (pcm, signal) => {
    const call: Call = { start: performance.now() };
    log.push(call);
    try {
      return await engine.transcribe(pcm, signal);
    } finally {
      call.end = performance.now();
    }
  };
  return { engine: { name: engine.name, transcribe, close: () => engine.close() }, log };
}

const sentence = (text: string, leadMs = 1000, tailMs = 1500): Track => track({ silenceMs: leadMs }, clip(text), { silenceMs: tailMs });
const answerOf = (r: RecordedTranscriptionRequest) => r.sent[0]?.text;

// -- the tests ----------------------------------------------------------------------------------

describe('an utterance, transcribed', () => {
  test('events come in order and the WAV holds exactly the utterance with its pre-roll', async () => {
    server.transcription.enqueue({ text: 'The quick brown fox.' });
    const { transcribe, events, config } = await listen();
    const t = sentence(FOX);
    feedAll(transcribe, t.pcm);
    await events.waitFor('final');
    await events.waitForState('listening', 2);

    assert.deepEqual(events.states, ['listening', 'recording', 'transcribing', 'listening']);
    assert.deepEqual(events.log.filter((e) => e.type !== 'state').map((e) => e.type), ['speechStart', 'utterance', 'final']);
    assert.equal(events.of('final')[0]?.text, 'The quick brown fox.');
    assert.equal(transcribe.state, 'listening');

    const { info } = events.of('utterance')[0] as Of<'utterance'>;
    const truth = t.speech[0] as Track['speech'][number];
    assert.ok(Math.abs(info.speechStartMs - truth.startMs) <= 100, `speech starts at ${info.speechStartMs}, truth ${truth.startMs}`);
    assert.ok(Math.abs(info.speechEndMs - truth.endMs) <= 100, `speech ends at ${info.speechEndMs}, truth ${truth.endMs}`);
    assert.equal(info.audioStartMs, info.speechStartMs - config.preRollMs);
    assert.equal(info.audioEndMs, info.speechEndMs + 200);
    assert.equal(info.endSilenceMs, config.endSilenceMs);

    const [request] = server.transcription.requests;
    assert.equal(server.transcription.requests.length, 1);
    assert.ok(request?.wav, request?.wavError);
    assert.deepEqual([request.wav.sampleRate, request.wav.channels, request.wav.bitsPerSample, request.wav.audioFormat], [16_000, 1, 16, 1]);
    assert.equal(request.body.model, 'test-model');
    const expectedMs = truth.endMs - truth.startMs + config.preRollMs + 200;
    assert.ok(Math.abs(request.wav.durationMs - expectedMs) <= 100, `WAV of ${request.wav.durationMs} ms, utterance + pre-roll + tail ≈ ${expectedMs} ms`);
    const sent = t.pcm.subarray(msToSamples(info.audioStartMs), msToSamples(info.audioEndMs));
    assert.ok(request.wav.data.equals(Buffer.from(sent.buffer, sent.byteOffset, sent.byteLength)), 'the WAV holds other samples than the utterance');
  });

  test('two sentences 1 s apart are two finals, in order; a long pre-roll never reaches into the utterance before', async () => {
    server.transcription.enqueue({ text: 'first' }, { text: 'second' });
    const { transcribe, events } = await listen({ STT_PRE_ROLL_MS: '1000' });
    feedAll(transcribe, track({ silenceMs: 500 }, clip(HEAR), { silenceMs: 1000 }, clip(FOX), { silenceMs: 1500 }).pcm, frameSizes.random);
    await events.waitFor('final', 2);
    assert.deepEqual(events.of('final').map((e) => e.text), ['first', 'second']);
    const [first, second] = events.of('utterance').map((e) => e.info);
    assert.equal(first?.audioStartMs, 0, 'the first pre-roll is cut at the start of listening');
    assert.equal(second?.audioStartMs, first?.audioEndMs, 'the second pre-roll starts where the first utterance\'s audio ended');
    assert.ok((second?.speechStartMs as number) - (second?.audioStartMs as number) < 1000);
  });

  test('live updates: one request in flight at a time, at most one per interval, stabilized prefixes, final last', async () => {
    const words = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen'.split(' ');
    // Quick answers show the interval between requests; slow ones (longer than it) the single request in flight.
    server.transcription.script((r) => ({ text: words.slice(0, Math.max(1, Math.floor((r.wav?.durationMs ?? 0) / 250))).join(' '), delayMs: r.id % 2 ? 20 : 250 }));
    const interval = 150;
    const env = { STT_REALTIME_INTERVAL_MS: String(interval) };
    const calls = observed((await createSttEngine(loadConfig({ STT_BASE_URL: server.baseUrl, ...env }).stt)) as SttEngine);
    const { transcribe, events } = await listen(env, calls.engine);
    await play(transcribe, sentence(FOX, 500, 1000).pcm, 2);
    const final = await events.waitFor('final');

    const requests = server.transcription.requests;
    const live = requests.slice(0, -1);
    assert.ok(live.length >= 3, `only ${live.length} live requests`);
    assert.equal(calls.log.length, requests.length);
    for (let i = 1; i < calls.log.length; i++) {
      const [prev, next] = [calls.log[i - 1] as Call, calls.log[i] as Call];
      assert.ok(prev.end !== undefined && next.start >= prev.end, `transcription ${i + 1} started before transcription ${i} settled`);
      if (i < live.length) assert.ok(next.start - prev.start >= interval - 1, `live transcriptions ${i} and ${i + 1} started ${(next.start - prev.start).toFixed(0)} ms apart`);
    }
    const durations = live.map((r) => r.wav?.durationMs ?? 0);
    assert.deepEqual(durations, [...durations].sort((a, b) => a - b), 'each live transcription covers more of the utterance');

    const updates = events.of('update').map((e) => e.text);
    const answers = requests.map(answerOf);
    assert.ok(updates.length >= 2, `updates: ${JSON.stringify(updates)}`);
    for (const u of updates) assert.ok(answers.includes(u), `update ${JSON.stringify(u)} is no answer of the server`);
    const stabilized = events.of('stabilized');
    assert.ok(stabilized.length >= 1, 'nothing stabilized');
    for (const s of stabilized) {
      const update = events.of('update').filter((u) => events.log.indexOf(u) < events.log.indexOf(s)).at(-1) as Of<'update'>;
      assert.ok(s.text !== '' && `${update.text} `.startsWith(`${s.text} `), `stabilized ${JSON.stringify(s.text)} is not a word prefix of the update before it`);
    }
    assert.equal(final.text, answerOf(requests.at(-1) as RecordedTranscriptionRequest));
    const textEvents = events.log.filter((e) => e.type === 'update' || e.type === 'stabilized' || e.type === 'final');
    assert.equal(textEvents.at(-1)?.type, 'final', 'final comes after the last update');
  });

  test('the end of an utterance aborts its live transcription, and the final starts only once that has settled', async () => {
    server.transcription.enqueue({ failure: { hang: true } }, { text: 'all of it' });
    const env = { STT_REALTIME_INTERVAL_MS: '100' };
    const calls = observed((await createSttEngine(loadConfig({ STT_BASE_URL: server.baseUrl, ...env }).stt)) as SttEngine);
    const { transcribe, events } = await listen(env, calls.engine);
    feedAll(transcribe, sentence(HEAR).pcm);
    const final = await events.waitFor('final');
    assert.equal(final.text, 'all of it');
    const [live, last] = server.transcription.requests;
    assert.equal((await server.transcription.waitForClose(live as RecordedTranscriptionRequest)).aborted, true);
    assert.ok((last?.wav?.durationMs ?? 0) > (live?.wav?.durationMs ?? 0));
    assert.equal(calls.log.length, 2);
    assert.ok((calls.log[1]?.start as number) >= (calls.log[0]?.end as number), 'the final started while the live request was in flight');
    assert.deepEqual(events.of('error'), []);
  });

  test('stopping mid-utterance ends it there and still transcribes it; audio after stop is dropped', async () => {
    server.transcription.enqueue({ text: 'cut short' });
    const { transcribe, events } = await listen();
    const t = sentence(FOX, 500, 0);
    const half = t.pcm.subarray(0, msToSamples(1800));
    feedAll(transcribe, half);
    await events.waitForState('recording');
    await events.waitFor('speechStart'); // the VAD has gone through at least part of the speech
    transcribe.stopListening();
    feedAll(transcribe, t.pcm);
    const { info } = await events.waitFor('utterance');
    await events.waitForState('inactive');
    assert.equal(info.reason, 'stopped');
    assert.deepEqual(events.states, ['listening', 'recording', 'transcribing', 'inactive']);
    assert.equal(events.of('final')[0]?.text, 'cut short');
    assert.equal(server.transcription.requests.length, 1);
    assert.ok(info.audioEndMs <= 1800 + WINDOW_MS, `transcribed up to ${info.audioEndMs} ms`);
  });

  test('audio before startListening is dropped quietly; times count from the start of listening', async () => {
    const config = loadConfig({ STT_ENGINE: 'openai', STT_BASE_URL: server.baseUrl, STT_REALTIME_INTERVAL_MS: '0' }).stt;
    const events = new Recorder();
    const transcribe = new Transcribe({ engine: (await createSttEngine(config)) as SttEngine, vad, config, events });
    sessions.push(transcribe);
    feedAll(transcribe, sentence(FOX).pcm);
    transcribe.feed(Buffer.alloc(4097)); // not even checked: nobody listens
    assert.deepEqual(events.log, []);
    assert.equal(transcribe.state, 'inactive');
    transcribe.startListening();
    const t = sentence(HEAR, 700);
    feedAll(transcribe, t.pcm);
    const { info } = await events.waitFor('utterance');
    await events.waitFor('final');
    assert.equal(events.of('utterance').length, 1);
    assert.ok(Math.abs(info.speechStartMs - (t.speech[0]?.startMs as number)) <= 100, `speech at ${info.speechStartMs} ms`);
  });
});

describe('STT failures', () => {
  test('a server error is an stt_error and listening goes on to the next utterance', async () => {
    server.transcription.enqueue({ failure: { status: 500 } }, { text: 'second try' });
    const { transcribe, events } = await listen();
    feedAll(transcribe, track({ silenceMs: 500 }, clip(HEAR), { silenceMs: 1500 }, clip(FOX), { silenceMs: 1500 }).pcm);
    const error = await events.waitFor('error');
    const final = await events.waitFor('final');
    assert.equal(error.code, 'stt_error');
    assert.match(error.message, /HTTP 500/);
    assert.equal(final.text, 'second try');
    assert.equal(events.of('error').length, 1);
    await events.waitFor('state', 1, (e) => e.state === 'listening' && events.after(final)(e));
    assert.equal(transcribe.state, 'listening');
  });

  test('a server that hangs times out (STT_TIMEOUT_MS) with an stt_error; the request is closed; listening goes on', async () => {
    server.transcription.enqueue({ failure: { hang: true } });
    const { transcribe, events } = await listen({ STT_TIMEOUT_MS: '300' });
    feedAll(transcribe, sentence(HEAR).pcm);
    const error = await events.waitFor('error');
    assert.equal(error.code, 'stt_error');
    assert.match(error.message, /STT_TIMEOUT_MS/);
    const hung = await server.transcription.waitForClose(server.transcription.requests[0] as RecordedTranscriptionRequest);
    assert.equal(hung.aborted, true);
    await events.waitForState('listening', 2);

    feedAll(transcribe, sentence(FOX).pcm);
    const final = await events.waitFor('final');
    assert.match(final.text, /^Heard \d+ ms of audio\.$/);
  });

  test('live transcription failures are not reported on their own: the final still arrives', async () => {
    let n = 0;
    server.transcription.script(() => (++n === 1 ? { failure: { status: 503 } } : { text: 'made it' }));
    const { transcribe, events } = await listen({ STT_REALTIME_INTERVAL_MS: '100' });
    const t = sentence(HEAR, 1000, 0);
    feedAll(transcribe, t.pcm);
    const [first] = await server.transcription.waitForRequests(1);
    await server.transcription.waitForClose(first as RecordedTranscriptionRequest);
    feedAll(transcribe, new Int16Array(msToSamples(1500)));
    const final = await events.waitFor('final');
    assert.equal(final.text, 'made it');
    assert.equal(first?.status, 503);
    assert.deepEqual(events.of('error'), []);
  });
});

describe('barge-in signal', () => {
  test('speechStart fires once for a sentence, and not for a 120 ms burst of speech', async () => {
    const { transcribe, events, config } = await listen({ STT_MIN_SPEECH_MS: '60' });
    assert.equal(config.bargeInMinMs, 250);
    assert.equal(config.bargeIn, true);
    const burst = loudest(clip(FOX).pcm, msToSamples(120));
    feedAll(transcribe, track({ silenceMs: 1000 }, { text: 'burst', pcm: burst }, { silenceMs: 1000 }).pcm);
    const blip = await events.waitFor('utterance');
    await events.waitFor('final');
    assert.ok(blip.info.voicedMs < 250, `the burst held ${blip.info.voicedMs} ms of speech`);
    assert.deepEqual(events.of('speechStart'), [], 'a 120 ms burst was taken for the user talking');
    assert.ok(events.states.includes('recording'), 'the burst was not even recorded: the test proves nothing');

    feedAll(transcribe, sentence(FOX).pcm);
    await events.waitFor('utterance', 2);
    assert.equal(events.of('speechStart').length, 1);
    const at = (e: Event) => events.log.indexOf(e);
    const start = events.of('speechStart')[0] as Event;
    const secondRecording = events.of('state').filter((e) => e.state === 'recording')[1] as Event;
    assert.ok(at(secondRecording) < at(start) && at(start) < at(events.of('utterance')[1] as Event), 'speechStart comes while recording');
  });
});

describe('quicker turns', () => {
  /** The utterance's bounds when its latest live transcript is `text` before the silence comes. */
  async function endWith(text: string): Promise<UtteranceInfo> {
    server.transcription.script(() => ({ text }));
    const { transcribe, events } = await listen({ STT_REALTIME_INTERVAL_MS: '100' });
    feedAll(transcribe, sentence(HEAR, 500, 100).pcm);
    await events.waitFor('update'); // the transcript is known before any end of turn could be
    feedAll(transcribe, new Int16Array(msToSamples(2000)));
    const { info } = await events.waitFor('utterance');
    await events.waitFor('final');
    return info;
  }

  const cases: Array<[string, string, number]> = [
    ['a finished sentence ends the turn after the short silence', 'Can you hear me now?', 300],
    ['a trailing conjunction waits for the long silence', 'Can you hear me and', 1200],
    ['trailing off ("...") waits for the long silence', 'Can you hear me...', 1200],
    ['anything else waits for the normal silence', 'Can you hear me now', 800],
  ];
  for (const [name, text, silence] of cases) {
    test(`${name} (${silence} ms of audio)`, async () => {
      const info = await endWith(text);
      assert.equal(info.endSilenceMs, silence);
      const heard = info.endedAtMs - info.speechEndMs;
      assert.ok(heard >= silence && heard < silence + WINDOW_MS, `ended after ${heard} ms of silence`);
    });
  }

  test('an end-of-turn model (TURN_DETECTOR_MODEL), asked at the pause, chooses the end silence instead of the text', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chorus-turn-model-'));
    try {
      for (const [probability, expected] of [
        [0.9, 300],
        [0.1, 1200],
      ] as const) {
        const file = join(dir, `p${probability}.onnx`);
        await writeFile(file, constantTurnModel(probability));
        const config = loadConfig({ TURN_DETECTOR_MODEL: file }).stt;
        assert.equal(config.turnDetectorModel, file);
        const { transcribe, events } = await listen({}, undefined, { turnDetector: await loadTurnDetector(file) });
        server.transcription.script(() => ({ text: 'Can you hear me now' })); // the text alone would wait the normal 800 ms
        feedAll(transcribe, sentence(HEAR, 500, 200).pcm); // speech, then a pause shorter than any end silence
        const verdict = await events.waitFor('turnJudged');
        assert.equal(verdict.complete, probability >= 0.5);
        feedAll(transcribe, new Int16Array(msToSamples(2000)));
        const { info } = await events.waitFor('utterance');
        assert.equal(info.endSilenceMs, expected, `probability ${probability}`);
        const heard = info.endedAtMs - info.speechEndMs;
        assert.ok(heard >= expected && heard < expected + WINDOW_MS, `ended after ${heard} ms of silence`);
        await events.waitFor('final');
      }
      await assert.rejects(loadTurnDetector(join(dir, 'missing.onnx')), /^Error: TURN_DETECTOR_MODEL=.*missing\.onnx: the end-of-turn model could not be loaded/);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  test('the end silence is chosen from the text', () => {
    const silences = { endSilenceMs: 600, endSilenceShortMs: 300, endSilenceLongMs: 1200 };
    const table: Array<[string | undefined, number]> = [
      [undefined, 600],
      ['Hello there.', 300],
      ['Is it you?', 300],
      ['Wow!', 300],
      ['He said "stop."', 300],
      ['I think…', 1200],
      ['and then...', 1200],
      ['I went there but', 1200],
      ['because, um', 1200],
      ['so, uh.', 1200],
      ['Hello there', 600],
      ['android', 600],
    ];
    for (const [text, ms] of table) assert.equal(endSilenceFor(text, silences), ms, JSON.stringify(text));
  });

  test('the stable prefix is the words two partials share, ignoring case and punctuation', () => {
    assert.equal(commonWordPrefix('Hello there.', 'hello there my friend'), 'hello there');
    assert.equal(commonWordPrefix('I want', 'You want'), '');
    assert.equal(commonWordPrefix('', 'anything'), '');
  });
});

describe('pauses: the closing transcription', () => {
  test('the moment the user stops, the utterance is transcribed (ahead of the live interval) and announced before it ends; the final follows', async () => {
    server.transcription.script((r) => ({ text: r.id === 1 ? 'Can you' : 'Can you hear me now?' }));
    const { transcribe, events } = await listen({ STT_REALTIME_INTERVAL_MS: '60000' }, undefined, { events: new PreemptiveRecorder() });
    const t = sentence(HEAR, 600, 1000);
    await play(transcribe, t.pcm, 1, 20);
    const final = await events.waitFor('final');
    const [live, closing, last] = server.transcription.requests;
    assert.equal(server.transcription.requests.length, 3, 'one live request (the interval is a minute), the closing one, the final');
    const announced = events.of('preemptive');
    assert.deepEqual(announced.map((e) => e.text), ['Can you hear me now?']);
    const at = (e: Event) => events.log.indexOf(e);
    assert.ok(at(announced[0]!) < at(events.of('utterance')[0]!) && at(events.of('utterance')[0]!) < at(final), 'announced, then the end of the utterance, then the final');
    assert.deepEqual(events.of('preemptiveCancelled'), []);
    const speech = t.speech[0]!;
    const closingMs = closing!.wav!.durationMs;
    const preRoll = 300;
    assert.ok(closingMs >= speech.endMs - speech.startMs + preRoll - WINDOW_MS, `the closing transcription covers the speech (${closingMs} ms)`);
    assert.ok(closingMs < last!.wav!.durationMs, 'made as the user stopped: before the final');
    assert.ok(live!.wav!.durationMs < closingMs);
    assert.equal(events.of('utterance')[0]!.info.endSilenceMs, 300, 'its text ends a sentence: the short silence');
  });

  test('speaking again takes the announcement back; so does a final transcript with no words', async () => {
    server.transcription.enqueue({ text: 'Can you hear me' }, { text: 'Can you hear me can you hear me' }, { text: '' });
    const { transcribe, events } = await listen({}, undefined, { events: new PreemptiveRecorder() });
    // A pause shorter than the normal end silence, inside the utterance.
    await play(transcribe, track({ silenceMs: 500 }, clip(HEAR), { silenceMs: 350 }, clip(HEAR), { silenceMs: 1000 }).pcm, 1, 20);
    await events.waitForState('listening', 2);
    const kinds = events.log.filter((e) => ['preemptive', 'preemptiveCancelled', 'utterance', 'final'].includes(e.type)).map((e) => (e.type === 'preemptive' ? `preemptive:${e.text}` : e.type));
    assert.deepEqual(kinds, ['preemptive:Can you hear me', 'preemptiveCancelled', 'preemptive:Can you hear me can you hear me', 'utterance', 'preemptiveCancelled']);
    assert.equal(events.of('utterance').length, 1, 'one utterance across the pause');
    assert.equal(server.transcription.requests.length, 3);
  });
});

describe('bad input', () => {
  test('an odd-length or oversize frame is a bad_audio error and dropped; the next frames still work', async () => {
    server.transcription.enqueue({ text: 'still here' });
    const { transcribe, events } = await listen();
    transcribe.feed(Buffer.alloc(4097));
    transcribe.feed(Buffer.alloc(MAX_FRAME_BYTES + 2));
    transcribe.feed(Buffer.alloc(0));
    const errors = events.of('error');
    assert.deepEqual(errors.map((e) => e.code), ['bad_audio', 'bad_audio']);
    assert.match(errors[0]?.message as string, /4097 bytes.*even/);
    assert.match(errors[1]?.message as string, /32002 bytes.*1 s/);

    feedAll(transcribe, sentence(FOX).pcm, () => MAX_FRAME_BYTES / 2); // 1 s frames are fine
    const final = await events.waitFor('final');
    assert.equal(final.text, 'still here');
    assert.equal(events.of('error').length, 2);
  });
});

describe('engines', () => {
  test('openai: sends the WAV, model, language and key; returns the text', async () => {
    const keyed = await startEngineServer({ requireApiKey: 'sk-test' });
    try {
      keyed.transcription.enqueue({ text: '  Bonjour.  ' });
      const config = loadConfig({ STT_BASE_URL: keyed.baseUrl, STT_API_KEY: 'sk-test', STT_MODEL: 'whisper-large', STT_LANGUAGE: 'fr' }).stt;
      assert.equal(config.engine, 'openai');
      const engine = (await createSttEngine(config)) as SttEngine;
      const pcm = clip(HEAR).pcm;
      assert.equal(await engine.transcribe(pcm, new AbortController().signal), 'Bonjour.');
      const [request] = keyed.transcription.requests;
      assert.deepEqual([request?.body.model, request?.body.language, request?.body.response_format], ['whisper-large', 'fr', 'json']);
      assert.ok(request?.wav?.data.equals(Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength)));

      const unkeyed = (await createSttEngine({ ...config, apiKey: undefined })) as SttEngine;
      await assert.rejects(unkeyed.transcribe(pcm, new AbortController().signal), /HTTP 401/);
    } finally {
      await keyed.close();
    }
  });

  test('openai: aborting a request rejects with the abort reason and closes it', async () => {
    server.transcription.enqueue({ failure: { hang: true } });
    const engine = (await createSttEngine(loadConfig({ STT_BASE_URL: server.baseUrl }).stt)) as SttEngine;
    const controller = new AbortController();
    const pending = engine.transcribe(clip(HEAR).pcm, controller.signal);
    const [request] = await server.transcription.waitForRequests(1);
    const reason = new Error('user stopped');
    controller.abort(reason);
    await assert.rejects(pending, (e) => e === reason);
    assert.equal((await server.transcription.waitForClose(request as RecordedTranscriptionRequest)).aborted, true);
  });

  test('whisper: a missing model file is a clear start-up error naming WHISPER_MODEL_PATH', async () => {
    const missing = join(tmpdir(), 'chorus-no-such-model.bin');
    await assert.rejects(
      createSttEngine(loadConfig({ STT_ENGINE: 'whisper', WHISPER_MODEL_PATH: missing }).stt),
      (e: Error) => e.message.includes(`WHISPER_MODEL_PATH=${missing}`) && /cannot read/.test(e.message),
    );
    await assert.rejects(createSttEngine(loadConfig({ STT_ENGINE: 'whisper' }).stt), /needs WHISPER_MODEL_PATH/);
  });

  test('whisper: a file that is no ggml model, or a broken one, is a clear start-up error, not a crash', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chorus-whisper-'));
    const header = (ftype: number) => Buffer.from(Int32Array.of(0x67676d6c, 51865, 1500, 384, 6, 4, 448, 384, 6, 4, 80, ftype).buffer); // ggml-tiny's
    const cases: Array<[string, Buffer, RegExp]> = [
      ['an HTML error page', Buffer.from('<html>404 Not Found</html><!-- padding to 48 bytes and more -->'), /not a whisper\.cpp ggml model file \(it does not start with the ggml magic\)/],
      ['an empty file', Buffer.alloc(0), /not a whisper\.cpp ggml model file \(it is only 0 bytes long\)/],
      ['a corrupt header (whisper.cpp would abort on it)', header(5), /not a whisper\.cpp ggml model file \(its header has ftype = 5\)/],
    ];
    // A plausible header gets as far as whisper.cpp itself, which is an optional install.
    const whisperName: string = '@fugood/whisper.node';
    const installed = await import(whisperName).then(() => true, () => false);
    const truncated = Buffer.concat([header(1), Buffer.alloc(100_000, 7)]);
    try {
      for (const [what, bytes, expected] of cases) {
        const file = join(dir, 'ggml-tiny.bin');
        await writeFile(file, bytes);
        await assert.rejects(
          createSttEngine(loadConfig({ WHISPER_MODEL_PATH: file }).stt),
          (e: Error) => e.message.startsWith(`WHISPER_MODEL_PATH=${file}: `) && expected.test(e.message),
          what,
        );
      }
      const file = join(dir, 'ggml-tiny.bin');
      await writeFile(file, truncated);
      const expected = installed ? /^WHISPER_MODEL_PATH=.*whisper\.cpp could not load the model/ : /needs the package @fugood\/whisper\.node: install it with `npm install @fugood\/whisper\.node`/;
      await assert.rejects(createSttEngine(loadConfig({ WHISPER_MODEL_PATH: file }).stt), expected, 'a truncated download');
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  test('none: no engine, and the message for start_listening says how to configure one', async () => {
    assert.equal(await createSttEngine(loadConfig({}).stt), undefined);
    for (const variable of ['STT_ENGINE', 'STT_BASE_URL', 'WHISPER_MODEL_PATH', 'user_message']) assert.ok(SPEECH_INPUT_NOT_CONFIGURED.includes(variable), variable);
  });
});

describe('speech input configuration', () => {
  test('defaults', () => {
    const stt = loadConfig({}).stt;
    assert.equal(stt.engine, 'none');
    assert.deepEqual(
      [stt.realtimeIntervalMs, stt.preRollMs, stt.minSpeechMs, stt.endSilenceMs, stt.endSilenceShortMs, stt.endSilenceLongMs, stt.bargeIn, stt.bargeInMinMs, stt.timeoutMs],
      [500, 300, 250, 800, 300, 1200, true, 250, 10_000],
    );
    assert.equal(stt.vadNegThreshold, stt.vadThreshold - 0.15);
    assert.deepEqual(
      [stt.pauseMs, stt.preemptive, stt.falseInterruptTimeoutMs, stt.turnDetectorModel, stt.turnDetectorThreshold],
      [100, true, 1500, undefined, 0.5],
    );
    assert.equal(loadConfig({ PREEMPTIVE_GENERATION: 'off', FALSE_INTERRUPT_TIMEOUT_MS: '0' }).stt.preemptive, false);
  });

  test('the engine follows what is configured when STT_ENGINE is not set', () => {
    assert.equal(loadConfig({ STT_BASE_URL: 'http://127.0.0.1:9000/v1' }).stt.engine, 'openai');
    assert.equal(loadConfig({ WHISPER_MODEL_PATH: '/models/ggml-base.en.bin' }).stt.engine, 'whisper');
    assert.equal(loadConfig({ STT_ENGINE: 'none', STT_BASE_URL: 'http://127.0.0.1:9000/v1' }).stt.engine, 'none');
    assert.equal(loadConfig({ BARGE_IN: 'off' }).stt.bargeIn, false);
  });

  test('inconsistent silences and thresholds are configuration errors naming the variable', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (error) {
        if (error instanceof ConfigError) return error.problems.join('\n');
        throw error;
      }
      return '';
    };
    assert.match(problems({ STT_END_SILENCE_MS_SHORT: '900' }), /STT_END_SILENCE_MS_SHORT=900/);
    assert.match(problems({ STT_END_SILENCE_MS_LONG: '400' }), /STT_END_SILENCE_MS_LONG=400/);
    assert.match(problems({ STT_PAUSE_MS: '300' }), /STT_PAUSE_MS=300: must be below STT_END_SILENCE_MS_SHORT \(300\)/);
    assert.match(problems({ TURN_DETECTOR_THRESHOLD: '1.5' }), /TURN_DETECTOR_THRESHOLD/);
    assert.match(problems({ VAD_THRESHOLD: '0.3', VAD_NEG_THRESHOLD: '0.6' }), /VAD_NEG_THRESHOLD=0.6/);
    assert.match(problems({ STT_ENGINE: 'vosk' }), /STT_ENGINE/);
  });
});
