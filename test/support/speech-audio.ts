// Real speech for speech-input tests: the project's own espeak engine speaks a sentence
// (22 050 Hz), a windowed-sinc resampler brings it to the wire's 16 kHz, and tracks are built
// from speech, silence and noise with the true speech boundaries known, measured from the
// samples themselves (10 ms frames above a small energy threshold).
import type { TtsEngine } from '../../src/speech/engine.ts';
import { createEspeakEngine } from '../../src/speech/engines/espeak.ts';

export const RATE = 16_000;
export const msToSamples = (ms: number): number => Math.round((ms * RATE) / 1000);
export const samplesToMs = (n: number): number => (n * 1000) / RATE;

/** Speech above this 10 ms RMS (−46 dBFS) counts as speech for the truth. */
const TRUTH_RMS = 0.005 * 32768;
const TRUTH_FRAME = msToSamples(10);

/**
 * Windowed-sinc resampling of PCM16: each output sample is the input band-limited below the
 * lower Nyquist frequency (5 % margin) and read at its fractional position; Blackman window,
 * 32 taps either side. Plenty for test audio; exact at integer positions of equal rates.
 */
export function resample(input: Int16Array, fromRate: number, toRate: number): Int16Array {
  if (fromRate === toRate) return input.slice();
  const ratio = fromRate / toRate;
  const cutoff = Math.min(1, toRate / fromRate) * 0.95; // of the input's Nyquist
  const half = 32;
  const out = new Int16Array(Math.floor(input.length / ratio));
  for (let n = 0; n < out.length; n++) {
    const t = n * ratio;
    const center = Math.floor(t);
    let acc = 0;
    for (let k = center - half + 1; k <= center + half; k++) {
      if (k < 0 || k >= input.length) continue;
      const x = t - k;
      const w = 0.42 + 0.5 * Math.cos((Math.PI * x) / half) + 0.08 * Math.cos((2 * Math.PI * x) / half);
      acc += (input[k] as number) * cutoff * sinc(cutoff * x) * w;
    }
    out[n] = Math.max(-32768, Math.min(32767, Math.round(acc)));
  }
  return out;
}

const sinc = (x: number) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));

/** First and last sample (end exclusive) of the 10 ms frames louder than the truth threshold. */
export function speechBounds(pcm: Int16Array): { start: number; end: number } | undefined {
  let start = -1;
  let end = -1;
  for (let from = 0; from < pcm.length; from += TRUTH_FRAME) {
    const to = Math.min(pcm.length, from + TRUTH_FRAME);
    let sum = 0;
    for (let i = from; i < to; i++) sum += (pcm[i] as number) ** 2;
    if (Math.sqrt(sum / (to - from)) < TRUTH_RMS) continue;
    if (start < 0) start = from;
    end = to;
  }
  return start < 0 ? undefined : { start, end };
}

/** A clip of 16 kHz speech, trimmed to its true bounds (so silence padding is exactly known). */
export interface SpeechClip {
  text: string;
  pcm: Int16Array;
}

/** One espeak engine for a test file: start it in `before`, close it in `after`. */
export class Speaker {
  private readonly cache = new Map<string, SpeechClip>();

  private constructor(private readonly engine: TtsEngine) {}

  static async start(): Promise<Speaker> {
    return new Speaker(await createEspeakEngine({ workers: 1 }));
  }

  /** The sentence spoken by espeak's default voice at 16 kHz, trimmed to the speech itself. */
  async say(text: string): Promise<SpeechClip> {
    const cached = this.cache.get(text);
    if (cached) return cached;
    const chunks: Buffer[] = [];
    for await (const chunk of this.engine.synthesize(text, this.engine.defaultVoice, new AbortController().signal)) chunks.push(chunk);
    const raw = Buffer.concat(chunks);
    const pcm22 = new Int16Array(raw.length >> 1);
    for (let i = 0; i < pcm22.length; i++) pcm22[i] = raw.readInt16LE(i * 2);
    const pcm = resample(pcm22, this.engine.sampleRate, RATE);
    const bounds = speechBounds(pcm);
    if (!bounds) throw new Error(`espeak produced no audible speech for ${JSON.stringify(text)}`);
    const clip = { text, pcm: pcm.slice(bounds.start, bounds.end) };
    this.cache.set(text, clip);
    return clip;
  }

  close(): Promise<void> {
    return this.engine.close();
  }
}

/** Deterministic white noise at `dbfs` RMS (xorshift32, so every run hears the same noise). */
export function whiteNoise(ms: number, dbfs: number, seed = 1): Int16Array {
  const out = new Int16Array(msToSamples(ms));
  const amplitude = 32768 * 10 ** (dbfs / 20) * Math.sqrt(3); // uniform in ±a has RMS a/√3
  let s = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = Math.round((((s >>> 0) / 0x1_0000_0000) * 2 - 1) * amplitude);
  }
  return out;
}

export type TrackPart = SpeechClip | { silenceMs: number } | { noise: Int16Array };

/** A track and where its speech truly is, in ms from the track's first sample. */
export interface Track {
  pcm: Int16Array;
  speech: Array<{ startMs: number; endMs: number; text: string }>;
}

export function track(...parts: TrackPart[]): Track {
  const pieces = parts.map((p) => ('pcm' in p ? p.pcm : 'noise' in p ? p.noise : new Int16Array(msToSamples(p.silenceMs))));
  const pcm = new Int16Array(pieces.reduce((n, p) => n + p.length, 0));
  const speech: Track['speech'] = [];
  let at = 0;
  parts.forEach((part, i) => {
    const piece = pieces[i] as Int16Array;
    pcm.set(piece, at);
    if ('text' in part) speech.push({ startMs: samplesToMs(at), endMs: samplesToMs(at + piece.length), text: part.text });
    at += piece.length;
  });
  return { pcm, speech };
}

/** Cuts PCM into PCM16 LE frames (Buffers, as the WebSocket delivers them) of the sizes `size(i)` gives, in samples. */
export function frames(pcm: Int16Array, size: (index: number) => number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < pcm.length; i++) {
    const n = Math.max(1, Math.min(size(i), pcm.length - at));
    out.push(Buffer.from(pcm.buffer, pcm.byteOffset + at * 2, n * 2));
    at += n;
  }
  return out;
}

/** Frame-size schedules: fixed 20 ms, 256 ms (the original client) and 1 s, and seeded random 20 ms…1 s. */
export const frameSizes = {
  '20 ms': () => msToSamples(20),
  '256 ms': () => 4096,
  '1 s': () => RATE,
  random: (i: number) => msToSamples(20) + ((Math.imul(i + 1, 2654435761) >>> 0) % (RATE - msToSamples(20))),
} satisfies Record<string, (i: number) => number>;

/** The loudest `n` samples of `pcm` (10 ms steps): a syllable, not a breath. */
export function loudest(pcm: Int16Array, n: number): Int16Array {
  let [best, at] = [0, 0];
  for (let i = 0; i + n <= pcm.length; i += msToSamples(10)) {
    let energy = 0;
    for (let j = i; j < i + n; j++) energy += (pcm[j] as number) ** 2;
    if (energy > best) [best, at] = [energy, i];
  }
  return pcm.slice(at, at + n);
}

/**
 * Sends PCM as a microphone does: `frameMs` frames at real-time pace (the pace is the input under
 * test: pauses and the end of a turn are heard as the audio arrives, not as a burst). Resolves
 * after the last frame.
 */
export async function streamRealtime(send: (frame: Buffer) => void, pcm: Int16Array, frameMs = 20): Promise<void> {
  const start = performance.now();
  for (const [i, frame] of frames(pcm, () => msToSamples(frameMs)).entries()) {
    const wait = start + i * frameMs - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    send(frame);
  }
}
