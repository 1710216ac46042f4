// Audio analysis for tests: PCM16 samples, loudness and pitch.
import assert from 'node:assert/strict';

export function samples(pcm: Buffer): Float64Array {
  const out = new Float64Array(pcm.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = pcm.readInt16LE(i * 2);
  return out;
}

export function rms(x: Float64Array, from = 0, to = x.length): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += (x[i] as number) ** 2;
  return Math.sqrt(sum / Math.max(1, to - from));
}

/** Median fundamental frequency of the loud frames, by normalized autocorrelation (60–400 Hz). */
export function medianPitchHz(pcm: Buffer, rate: number): number {
  const x = samples(pcm);
  const frame = Math.round(rate * 0.04);
  const [minLag, maxLag] = [Math.floor(rate / 400), Math.ceil(rate / 60)];
  const loud = rms(x) * 0.5;
  const pitches: number[] = [];
  for (let start = 0; start + frame + maxLag < x.length; start += frame) {
    if (rms(x, start, start + frame) < loud) continue;
    const r = (lag: number) => {
      let [xy, xx, yy] = [0, 0, 0];
      for (let i = start; i < start + frame; i++) {
        const [a, b] = [x[i] as number, x[i + lag] as number];
        xy += a * b;
        xx += a * a;
        yy += b * b;
      }
      return xy / Math.sqrt(xx * yy || 1);
    };
    const scores = Array.from({ length: maxLag - minLag + 1 }, (_, i) => r(minLag + i));
    const best = Math.max(...scores);
    if (best < 0.6) continue; // unvoiced
    const lag = minLag + scores.findIndex((s) => s >= best * 0.9); // shortest strong lag: no octave-down errors
    pitches.push(rate / lag);
  }
  pitches.sort((a, b) => a - b);
  assert.ok(pitches.length >= 5, `too few voiced frames (${pitches.length}) to measure pitch`);
  return pitches[pitches.length >> 1] as number;
}
