// The embedded engines on this machine, in-process: espeak-ng's real-time factor and time to
// first audio (through the server's own engine: worker threads), and Silero VAD's cost per
// 32 ms window (through src/transcribe/vad.ts, when it is there).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadConfig } from '../src/config.ts';
import { createEspeakEngine } from '../src/speech/engines/espeak.ts';
import { summarize, type Summary } from './stats.ts';

export interface EspeakFigures {
  sample_rate: number;
  workers: number;
  sentences: number;
  /** Synthesis time ÷ audio duration, per sentence (lower is faster; 0.05 = 20× faster than real time). */
  rtf: Summary;
  /** Request → first PCM chunk, per sentence. */
  first_audio_ms: Summary;
}

export interface VadFigures {
  window_samples: number;
  /** Microseconds per 32 ms window (512 samples at 16 kHz), one stream, windows back to back. */
  us_per_frame: Summary;
}

const SENTENCES = [
  'Hello there.',
  'The chart for sector seven shows a quiet stretch of sky.',
  'Give me ten minutes and a spanner, and I will show you how it works.',
  'Nobody on the lower deck believed it until the lights went green, and then everybody claimed they had known all along.',
  'Case closed.',
  'I once waited three days for a witness who never came, and I would do it again.',
];

export async function benchEspeak(passes: number): Promise<EspeakFigures> {
  const workers = defaultWorkers();
  const engine = await createEspeakEngine({ workers });
  try {
    const voice = engine.defaultVoice;
    const signal = new AbortController().signal;
    const rtf: number[] = [];
    const first: number[] = [];
    for (let pass = 0; pass <= passes; pass++) {
      for (const text of SENTENCES) {
        const start = process.hrtime.bigint();
        let firstAt: bigint | undefined;
        let bytes = 0;
        for await (const chunk of engine.synthesize(text, voice, signal)) {
          firstAt ??= process.hrtime.bigint();
          bytes += chunk.length;
        }
        const end = process.hrtime.bigint();
        if (pass === 0 || firstAt === undefined || bytes === 0) continue; // the first pass warms the workers up
        const audioMs = (bytes / 2 / engine.sampleRate) * 1000;
        rtf.push(Number(end - start) / 1e6 / audioMs);
        first.push(Number(firstAt - start) / 1e6);
      }
    }
    return { sample_rate: engine.sampleRate, workers, sentences: rtf.length, rtf: summarize(rtf, 1, 4), first_audio_ms: summarize(first, 1) };
  } finally {
    await engine.close();
  }
}

/** The server's default ESPEAK_WORKERS on this machine. */
function defaultWorkers(): number {
  try {
    return loadConfig({}).tts.espeakWorkers;
  } catch {
    return 2;
  }
}

// Silero VAD, loaded by path at run time: speech input is built alongside this bench, so its
// module is checked for the expected shape rather than imported statically.
interface VadStreamLike {
  window: Float32Array;
  process(): Promise<number>;
}
interface VadModelLike {
  createStream(): VadStreamLike;
}

const isFunction = (value: unknown): value is (...args: never[]) => unknown => typeof value === 'function';

export async function benchVad(frames: number): Promise<{ figures: VadFigures | null; note: string | null }> {
  const path = fileURLToPath(new URL('../src/transcribe/vad.ts', import.meta.url));
  if (!existsSync(path)) return { figures: null, note: 'src/transcribe/vad.ts does not exist (speech input not built yet)' };
  const mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  const load = mod.loadVad;
  if (!isFunction(load)) return { figures: null, note: 'src/transcribe/vad.ts exports no loadVad()' };
  const model = (await (load as () => Promise<unknown>)()) as Partial<VadModelLike>;
  if (!isFunction(model.createStream)) return { figures: null, note: 'loadVad() returned no createStream()' };
  const stream = model.createStream();
  const windowSamples = stream.window.length;
  // Speech-like input: a voiced tone with a syllable envelope and a little noise.
  const random = (() => {
    let s = 1;
    return () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
  })();
  const us: number[] = [];
  for (let f = 0; f < frames + 20; f++) {
    const w = stream.window;
    for (let i = 0; i < w.length; i++) {
      const t = (f * w.length + i) / 16_000;
      w[i] = 0.3 * Math.sin(2 * Math.PI * 140 * t) * Math.abs(Math.sin(2 * Math.PI * 3 * t)) + 0.01 * random();
    }
    const start = process.hrtime.bigint();
    await stream.process();
    if (f >= 20) us.push(Number(process.hrtime.bigint() - start) / 1e3); // the first windows warm it up
  }
  return { figures: { window_samples: windowSamples, us_per_frame: summarize(us, 1, 1) }, note: null };
}
