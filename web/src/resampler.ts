// A streaming band-limited resampler for microphone capture: any input rate (the
// AudioContext's, usually 48 000 or 44 100 Hz) to the protocol's 16 000 Hz. Each output
// sample is a windowed-sinc interpolation of the input around its exact (fractional) position,
// with the low-pass cut below the *output* Nyquist frequency when downsampling, so nothing
// above 8 kHz folds back into the speech band as aliasing. Pure arithmetic, no DOM: it runs in
// the AudioWorklet and in Node (the tests check it with sine waves).

/** Zero crossings of the sinc on each side of the centre: longer = sharper filter. */
const ZERO_CROSSINGS = 12;
/** Kernel table resolution: entries per input sample (values in between are interpolated). */
const PHASES = 256;
/** Passband edge as a fraction of the Nyquist frequency of the slower side. */
const ROLLOFF = 0.92;

export class Resampler {
  /** Input samples per output sample. */
  readonly step: number;
  /** Half the kernel's width, in input samples. */
  private readonly half: number;
  /** The kernel h(d) for d = i / PHASES, i = 0 … half × PHASES + 1 (it is symmetric). */
  private readonly table: Float32Array;
  /** Pending input; `buf[0]` is absolute input sample `bufStart`. */
  private buf: Float32Array;
  private bufLength = 0;
  private bufStart: number;
  /** Absolute input position of the next output sample. */
  private t = 0;
  private out: Float32Array = new Float32Array(0);
  private readonly passthrough: boolean;

  constructor(
    readonly inRate: number,
    readonly outRate: number,
  ) {
    if (!(inRate > 0 && outRate > 0)) throw new Error(`bad sample rates ${inRate} → ${outRate}`);
    this.passthrough = inRate === outRate;
    this.step = inRate / outRate;
    // Cut-off in cycles per input sample: below both Nyquist frequencies.
    const cutoff = 0.5 * Math.min(1, outRate / inRate) * ROLLOFF;
    this.half = Math.ceil(ZERO_CROSSINGS / (2 * cutoff));
    const n = this.half * PHASES + 2;
    this.table = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const d = i / PHASES;
      const x = 2 * cutoff * d;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      // Blackman window over |d| ≤ half.
      const w = d >= this.half ? 0 : 0.42 + 0.5 * Math.cos((Math.PI * d) / this.half) + 0.08 * Math.cos((2 * Math.PI * d) / this.half);
      this.table[i] = 2 * cutoff * sinc * w;
    }
    // Start with `half` samples of silence before input sample 0.
    this.buf = new Float32Array(Math.max(1024, 4 * this.half));
    this.bufLength = this.half;
    this.bufStart = -this.half;
  }

  /**
   * Feeds input samples; returns the output samples that are now complete (a view that is
   * valid until the next call). Latency: `half` input samples (under 1 ms at 48 kHz).
   */
  push(input: Float32Array): Float32Array {
    if (this.passthrough) return input;
    this.append(input);
    const end = this.bufStart + this.bufLength; // first absolute input index not yet received
    const maxOut = Math.max(0, Math.floor((end - this.half - this.t) / this.step) + 1);
    if (this.out.length < maxOut) this.out = new Float32Array(maxOut * 2);
    let count = 0;
    const { buf, table, half, bufStart } = this;
    while (this.t + half < end) {
      const centre = Math.floor(this.t);
      const frac = this.t - centre;
      let acc = 0;
      let norm = 0;
      // Taps centre-half+1 … centre+half: distance |t - k| < half.
      const first = centre - half + 1;
      const last = centre + half;
      for (let k = first; k <= last; k++) {
        const pos = Math.abs(this.t - k) * PHASES;
        const i = Math.floor(pos);
        const a = table[i] as number;
        const w = a + ((table[i + 1] as number) - a) * (pos - i);
        acc += (buf[k - bufStart] as number) * w;
        norm += w;
      }
      // Dividing by the sum of the taps keeps the DC gain exactly 1 at every phase.
      this.out[count++] = norm !== 0 ? acc / norm : 0;
      this.t += this.step;
    }
    this.discardBefore(Math.floor(this.t) - half);
    return this.out.subarray(0, count);
  }

  private append(input: Float32Array): void {
    if (this.bufLength + input.length > this.buf.length) {
      const bigger = new Float32Array(Math.max(this.buf.length * 2, this.bufLength + input.length));
      bigger.set(this.buf.subarray(0, this.bufLength));
      this.buf = bigger;
    }
    this.buf.set(input, this.bufLength);
    this.bufLength += input.length;
  }

  /** Drops input no future output needs. */
  private discardBefore(absolute: number): void {
    const drop = absolute - this.bufStart;
    if (drop <= 0) return;
    this.buf.copyWithin(0, drop, this.bufLength);
    this.bufLength -= drop;
    this.bufStart += drop;
  }
}

/** Float samples in [-1, 1] → PCM16 (clamped, rounded). */
export function toInt16(sample: number): number {
  const s = sample < -1 ? -1 : sample > 1 ? 1 : sample;
  return Math.round(s < 0 ? s * 0x8000 : s * 0x7fff);
}
