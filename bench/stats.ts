// Small statistics helpers of the benchmark: percentiles of samples, summaries, a seeded PRNG,
// and the Prometheus text-format parsing the bench needs to read the server's /metrics.

/** A distribution as reported: p50, p99 and max of `n` samples, taken at `sessions` concurrent sessions. */
export interface Summary {
  p50: number | null;
  p99: number | null;
  max: number | null;
  n: number;
  sessions: number;
}

/** The q-quantile (0..1) of sorted values, by linear interpolation between closest ranks. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (at - lo);
}

const round = (x: number, digits = 3) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export function summarize(values: readonly number[], sessions: number, digits = 3): Summary {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return { p50: null, p99: null, max: null, n: 0, sessions };
  const sorted = [...finite].sort((a, b) => a - b);
  return {
    p50: round(quantile(sorted, 0.5), digits),
    p99: round(quantile(sorted, 0.99), digits),
    max: round(sorted[sorted.length - 1] as number, digits),
    n: sorted.length,
    sessions,
  };
}

/** Percentiles for the chart: p1 … max. */
export function profile(values: readonly number[]): { p: number; value: number }[] {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return [];
  return [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1].map((p) => ({ p, value: round(quantile(sorted, p), 4) }));
}

/** A seeded PRNG, so a run's replies are reproducible from its seed. */
export { prng } from '../test/support/random.ts';

export const ms = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

// ── Prometheus text format ──

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the samples of a Prometheus text exposition (comments skipped). */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    const raw = m[4] as string;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    samples.push({ name: m[1] as string, labels, value });
  }
  return samples;
}

export function metricValue(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hit = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hit?.value;
}

/** Cumulative bucket counts of a histogram: [upper bound (seconds), count]. */
export function histogramBuckets(samples: readonly Sample[], name: string): Array<[number, number]> {
  return samples
    .filter((s) => s.name === `${name}_bucket` && s.labels.le !== undefined)
    .map((s): [number, number] => [s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value])
    .sort((a, b) => a[0] - b[0]);
}

/**
 * The q-quantile of the observations made between two scrapes of a cumulative histogram,
 * interpolated linearly inside its bucket (as Prometheus' histogram_quantile does).
 */
export function bucketQuantile(before: Array<[number, number]>, after: Array<[number, number]>, q: number): number | null {
  const diff = after.map(([le, count], i) => [le, count - (before[i]?.[1] ?? 0)] as [number, number]);
  const total = diff[diff.length - 1]?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of diff) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return prevLe; // beyond the last finite bucket: its bound is all we know
      const inBucket = count - prevCount;
      return inBucket <= 0 ? le : prevLe + ((le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}
