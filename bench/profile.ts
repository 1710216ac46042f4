// Reads the V8 CPU profile the server writes with --cpu-prof and says where its time went during
// the bench's measurement windows: the hottest functions by self time, the same time charged to
// the server's own code that caused it (the deepest src/ frame of each sample's stack), and the
// long tasks — runs of busy samples that block the event loop — with what they were doing.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface HotFunction {
  function: string;
  location: string;
  self_ms: number;
  /** Share of the main thread's busy (non-idle) time in the windows. */
  self_pct: number;
}

export interface ProfileSummary {
  file: string;
  /** Busy (non-idle) main-thread time inside the windows. */
  busy_ms: number;
  /** By self time. */
  functions: HotFunction[];
  /** Each sample charged to the deepest frame of the server's own code (src/) on its stack, or to the package / runtime part it ran in. */
  by_source: HotFunction[];
  /**
   * Runs of busy samples with no idle sample between them, of at least LONG_TASK_MS: one long task,
   * or back-to-back tasks of a loop with no time to spare. Either way the event loop answers
   * nothing else meanwhile. How many, and what the longest ones spent most time in.
   */
  long_tasks: { min_ms: number; count: number; total_ms: number; longest: Array<{ ms: number; in: string }> };
}

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

const LONG_TASK_MS = 20;
/** Any idle sample ends a busy run: the loop was free then. */
const MERGE_GAP_US = 0;

/** The newest main-thread profile in `dir` (CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; tsx's loader hooks run in thread 1). */
export function newestProfile(dir: string): string | undefined {
  const files = readdirSync(dir)
    .filter((f) => /\.0\.\d+\.cpuprofile$/.test(f))
    .sort();
  const file = files[files.length - 1];
  return file ? join(dir, file) : undefined;
}

export function summarizeProfile(
  file: string,
  root: string,
  /** Only samples inside these hrtime windows (the profile's µs clock is CLOCK_MONOTONIC, like hrtime). */
  windows: Array<[bigint, bigint]> = [],
  top = 20,
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const rel = (url: string) => url.replace(`file://${root}/`, '');
  const label = (n: CpuProfileNode) => {
    const { functionName, url, lineNumber } = n.callFrame;
    return { name: functionName || '(anonymous)', location: url ? `${rel(url)}${lineNumber > 0 ? `:${lineNumber + 1}` : ''}` : '(native)' };
  };

  // What each stack is charged to: the deepest frame of our own code, else the package or
  // runtime module it is in, else the (native) entry itself.
  const ownerCache = new Map<number, string>();
  const owner = (id: number): string => {
    const cached = ownerCache.get(id);
    if (cached !== undefined) return cached;
    let result: string | undefined;
    let fallback: string | undefined;
    for (let at: number | undefined = id; at !== undefined && result === undefined; at = parent.get(at)) {
      const n = nodes.get(at);
      if (!n) break;
      const url = rel(n.callFrame.url);
      if (url.startsWith('src/')) result = `${n.callFrame.functionName || '(anonymous)'} (${url})`;
      else if (fallback === undefined && url !== '' && !url.startsWith('wasm://')) {
        const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
        fallback = pkg ? `[${pkg}]` : url.startsWith('node:internal/deps/undici') ? '[undici (fetch)]' : url.startsWith('node:') ? `[${url.replace(/^node:(internal\/)?/, '').split('/')[0]}]` : `[${url}]`;
      }
    }
    const own = result ?? fallback ?? label(nodes.get(id) as CpuProfileNode).name;
    ownerCache.set(id, own);
    return own;
  };

  const spans = windows.map(([from, to]) => [Number(from / 1000n), Number(to / 1000n)] as const);
  const inWindow = (us: number) => spans.length === 0 || spans.some(([from, to]) => us >= from && us <= to);
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];

  const selfUs = new Map<number, number>();
  const ownerUs = new Map<string, number>();
  const tasks: Array<{ us: number; owners: Map<string, number> }> = [];
  let run: { start: number; end: number; owners: Map<string, number> } | undefined;
  const closeRun = () => {
    if (run && run.end - run.start >= LONG_TASK_MS * 1000) tasks.push({ us: run.end - run.start, owners: run.owners });
    run = undefined;
  };
  let at = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] as number;
    at += deltas[i] ?? 0;
    if (!inWindow(at)) {
      closeRun();
      continue;
    }
    const us = deltas[i + 1] ?? deltas[i] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + us);
    if (idle.has(id)) {
      if (run && at - run.end > MERGE_GAP_US) closeRun();
      continue;
    }
    const own = owner(id);
    ownerUs.set(own, (ownerUs.get(own) ?? 0) + us);
    if (!run) run = { start: at, end: at + us, owners: new Map() };
    run.end = at + us;
    run.owners.set(own, (run.owners.get(own) ?? 0) + us);
  }
  closeRun();

  let busy = 0;
  for (const [id, us] of selfUs) if (!idle.has(id)) busy += us;
  const pct = (us: number) => Math.round((us / (busy || 1)) * 1000) / 10;
  const byFunction = new Map<string, HotFunction & { us: number }>();
  for (const [id, us] of selfUs) {
    if (idle.has(id)) continue;
    const { name, location } = label(nodes.get(id) as CpuProfileNode);
    const key = `${name} ${location}`;
    const entry = byFunction.get(key) ?? { function: name, location, us: 0, self_ms: 0, self_pct: 0 };
    entry.us += us;
    byFunction.set(key, entry);
  }
  const finish = (list: Array<HotFunction & { us: number }>) =>
    list
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map(({ us, ...f }) => ({ ...f, self_ms: Math.round(us / 1000), self_pct: pct(us) }));
  const bySource = [...ownerUs].map(([key, us]) => {
    const m = /^(.*) \((src\/.*)\)$/.exec(key);
    return { function: m ? (m[1] as string) : key, location: m ? (m[2] as string) : '', us, self_ms: 0, self_pct: 0 };
  });
  const dominant = (owners: Map<string, number>) =>
    [...owners]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 2)
      .map(([k, us]) => `${k} ${Math.round(us / 1000)} ms`)
      .join(', ');
  return {
    file,
    busy_ms: Math.round(busy / 1000),
    functions: finish([...byFunction.values()]),
    by_source: finish(bySource),
    long_tasks: {
      min_ms: LONG_TASK_MS,
      count: tasks.length,
      total_ms: Math.round(tasks.reduce((n, t) => n + t.us, 0) / 1000),
      longest: tasks
        .sort((a, b) => b.us - a.us)
        .slice(0, 10)
        .map((t) => ({ ms: Math.round(t.us / 1000), in: dominant(t.owners) })),
    },
  };
}
