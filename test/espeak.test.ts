// The espeak engine end to end: real WASM synthesis in worker threads. One engine is shared by
// all tests because starting its threads costs about a second.
import { medianPitchHz, rms, samples } from './support/audio.ts';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { performance } from 'node:perf_hooks';
import type { EngineVoice, TtsEngine } from '../src/speech/engine.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';

const SENTENCE = 'The quick brown fox jumps over the lazy dog.'; // 9 words
const WORDS = 9;
/** Synthesizes in seconds on a worker; on the main thread it would block it for as long. */
const paragraph = (sentences: number) => Array.from({ length: sentences }, (_, i) => `Sentence ${i + 1}: ${SENTENCE}`).join(' ');

let engine: TtsEngine;
before(async () => {
  engine = await createEspeakEngine({ workers: 2 });
});
after(() => engine.close());

const voice = (engineVoice: string, speed = 1, pitch = 1): EngineVoice => ({ engineVoice, speed, pitch });
const never = () => new AbortController().signal;

async function synth(text: string, v: EngineVoice, signal = never()): Promise<{ pcm: Buffer; chunks: Buffer[] }> {
  const chunks: Buffer[] = [];
  for await (const chunk of engine.synthesize(text, v, signal)) chunks.push(chunk);
  return { pcm: Buffer.concat(chunks), chunks };
}

const seconds = (pcm: Buffer) => pcm.length / 2 / engine.sampleRate;

function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}

describe('espeak engine', () => {
  test('a sentence is audible 22050 Hz PCM16, streamed in ~100 ms chunks, of a plausible length', async () => {
    assert.equal(engine.sampleRate, 22050);
    const { pcm, chunks } = await synth(SENTENCE, engine.defaultVoice);
    assert.equal(pcm.length % 2, 0);
    assert.ok(rms(samples(pcm)) > 500, `RMS ${rms(samples(pcm)).toFixed(0)} is near silence`);
    const perWord = seconds(pcm) / WORDS;
    assert.ok(perWord > 0.15 && perWord < 0.6, `${perWord.toFixed(3)} s per word at speed 1`);
    assert.ok(chunks.length >= 5, `only ${chunks.length} chunks: not streamed`);
    const longest = Math.max(...chunks.map(seconds));
    assert.ok(longest <= 0.2, `a chunk of ${longest.toFixed(3)} s`);
  });

  test('the default voice is en-us+f3 at normal speed and pitch', () => {
    assert.deepEqual(engine.defaultVoice, voice('en-us+f3'));
  });

  test('two voices sound different: en-us+f3 is pitched well above en-gb-x-rp+m3', async () => {
    const female = medianPitchHz((await synth(SENTENCE, voice('en-us+f3'))).pcm, engine.sampleRate);
    const male = medianPitchHz((await synth(SENTENCE, voice('en-gb-x-rp+m3'))).pcm, engine.sampleRate);
    assert.ok(female > male * 1.3, `f3 ${female.toFixed(0)} Hz vs m3 ${male.toFixed(0)} Hz`);
  });

  test('speed 2 is clearly shorter than speed 1', async () => {
    const normal = seconds((await synth(SENTENCE, voice('en-us', 1))).pcm);
    const fast = seconds((await synth(SENTENCE, voice('en-us', 2))).pcm);
    assert.ok(fast < normal * 0.7, `speed 2: ${fast.toFixed(2)} s, speed 1: ${normal.toFixed(2)} s`);
  });

  test('pitch 1.6 is higher than pitch 0.4', async () => {
    const high = medianPitchHz((await synth(SENTENCE, voice('en-us', 1, 1.6))).pcm, engine.sampleRate);
    const low = medianPitchHz((await synth(SENTENCE, voice('en-us', 1, 0.4))).pcm, engine.sampleRate);
    assert.ok(high > low * 1.15, `pitch 1.6: ${high.toFixed(0)} Hz, pitch 0.4: ${low.toFixed(0)} Hz`);
  });

  test('an unknown voice or variant rejects with a clear message, instead of keeping the previous voice', async () => {
    await assert.rejects(synth('Hello.', voice('xx-yy')), { message: 'espeak: unknown voice "xx-yy"' });
    await assert.rejects(synth('Hello.', voice('en-gb')), { message: 'espeak: unknown voice "en-gb"' });
    await assert.rejects(synth('Hello.', voice('en-us+zz')), { message: 'espeak: unknown voice variant "zz" in "en-us+zz"' });
    assert.ok(rms(samples((await synth('Still here.', voice('en-us'))).pcm)) > 500);
  });

  test('markup in the text is spoken, not obeyed', async () => {
    const plain = seconds((await synth('Hello there.', voice('en-us'))).pcm);
    const tagged = seconds((await synth('Hello <break time="5s"/> there.', voice('en-us'))).pcm);
    assert.ok(tagged < plain + 4, `the SSML break was obeyed: ${tagged.toFixed(2)} s vs ${plain.toFixed(2)} s`);
  });

  test('aborting mid-way ends with AbortError, and the engine still works', async () => {
    const long = paragraph(300); // several seconds of synthesis per job
    const controllers = [new AbortController(), new AbortController()];
    const received = [0, 0];
    const runs = controllers.map(async (c, i) => {
      for await (const chunk of engine.synthesize(long, voice('en-us'), c.signal)) {
        received[i]! += chunk.length;
        if (received[0]! > 0 && received[1]! > 0) controllers.forEach((k) => k.abort());
      }
    });
    const results = await Promise.allSettled(runs);
    for (const r of results) assert.ok(r.status === 'rejected' && isAbortError(r.reason), `not an AbortError: ${JSON.stringify(r)}`);
    for (const bytes of received) assert.ok(bytes > 0 && bytes / 2 / engine.sampleRate < 60, `${bytes} bytes arrived`);

    // How soon the threads stop is a timing figure: the bench's, not a test's.
    const after = await synth(SENTENCE, voice('en-us'));
    assert.ok(rms(samples(after.pcm)) > 500);
  });

  test('a queued job aborted before it starts never runs; an already aborted signal rejects at once', async () => {
    const busy = new AbortController();
    const blockers = [0, 1].map(() => synth(paragraph(100), voice('en-us'), busy.signal));
    const queued = new AbortController();
    let chunks = 0;
    const waiting = (async () => {
      for await (const _ of engine.synthesize(SENTENCE, voice('en-us'), queued.signal)) chunks++;
    })();
    queued.abort();
    await assert.rejects(waiting, (e) => isAbortError(e));
    assert.equal(chunks, 0);
    busy.abort();
    for (const b of await Promise.allSettled(blockers)) assert.ok(b.status === 'rejected' && isAbortError(b.reason));

    const aborted = AbortSignal.abort(new Error('interrupted'));
    await assert.rejects(synth(SENTENCE, voice('en-us'), aborted), (e) => isAbortError(e));
  });

  test('several concurrent jobs all complete, each with its own audio', async () => {
    const texts = Array.from({ length: 6 }, (_, i) => paragraph(i + 1));
    const results = await Promise.all(texts.map((t) => synth(t, voice('en-us'))));
    const durations = results.map((r) => seconds(r.pcm));
    for (let i = 1; i < durations.length; i++) {
      const [shorter, longer] = [durations[i - 1] as number, durations[i] as number];
      assert.ok(longer > shorter + 1, `durations not growing with the text: ${durations.map((d) => d.toFixed(1)).join(', ')}`);
    }
  });

  test('synthesis runs off the main thread: its event loop stays mostly idle while long paragraphs synthesize', async () => {
    // Event-loop utilization counts only this thread's own work, so a busy machine does not move
    // it; synthesis on the main thread would keep it near 1.
    const start = performance.eventLoopUtilization();
    let bytes = 0;
    // ~4 min of audio per paragraph: ~0.5 s of synthesis each.
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        for await (const chunk of engine.synthesize(paragraph(60), voice('en-us'), never())) bytes += chunk.length;
      }),
    );
    const { utilization } = performance.eventLoopUtilization(start);
    assert.ok(bytes / 2 / engine.sampleRate > 600, `only ${bytes} bytes of audio`);
    assert.ok(utilization < 0.5, `the main thread was busy ${(utilization * 100).toFixed(0)}% of the time`);
  });

  test('listVoices offers voice names espeak accepts, with variants', async () => {
    const voices = await engine.listVoices();
    for (const v of ['en-us', 'en-gb-x-rp', 'gmw/en', 'en-us+f3', 'en-gb-x-rp+m3', 'en-us+whisper']) assert.ok(voices.includes(v), `${v} missing`);
    assert.ok(!voices.includes('en-gb'), 'en-gb is not a name espeak accepts');
    assert.equal(new Set(voices).size, voices.length, 'duplicates');
    const bases = voices.filter((v) => !v.includes('+'));
    assert.ok(bases.length >= 100, `only ${bases.length} voices`);
    // Every base name really selects a voice (empty text: just the voice switch).
    const failures = (await Promise.allSettled(bases.map((v) => synth('', voice(v))))).filter((r) => r.status === 'rejected');
    assert.deepEqual(failures, []);
  });
});
