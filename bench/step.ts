// One step of the benchmark: N sessions connect and run turns back to back for a while (every
// few turns one is interrupted), while the bench samples the server's RSS and CPU time and
// scrapes its event-loop delay histogram. The engine server's scripts are wired to the turns
// through the Tracker, which keeps its request records with the turn they belong to.
import { readFileSync } from 'node:fs';
import type { ChatReply, EngineServer, RecordedChatRequest, RecordedSpeechRequest, SpeechReply } from '../test/support/engine-server.ts';
import { speechSampleCount, synthesizeSpeech, tokenize } from '../test/support/engine-server.ts';
import { BenchClient, newTurn, type TurnRecord } from './client.ts';
import { type LlmTiming, planTurn, tagOf } from './replies.ts';
import type { ServerProcess } from './server.ts';
import { bucketQuantile, histogramBuckets, metricValue, prng, quantile, type Sample } from './stats.ts';
import { cpuSecondsOf, type ProcessLoad, rssMbOf, scrapeEach } from './workers.ts';

/** Matches engine requests to turns: chat requests by the tag in the user message, speech requests by their input text. */
export class Tracker {
  private tone: Buffer = Buffer.alloc(0);

  constructor(private readonly tts: { sampleRate: number; msPerChar: number }) {}

  private readonly turns = new Map<number, TurnRecord>();
  private readonly sentences = new Map<string, { turn: TurnRecord; index: number }>();
  /** Speech requests for text no turn expects (e.g. a cancelled message's sentence after its interrupt). */
  readonly strays: RecordedSpeechRequest[] = [];

  register(turn: TurnRecord): void {
    this.turns.set(turn.plan.tag, turn);
    turn.plan.sentences.forEach((text, index) => {
      if (this.sentences.has(text)) throw new Error(`bench: two turns would speak ${JSON.stringify(text)}; speech requests could not be told apart`);
      this.sentences.set(text, { turn, index });
    });
  }

  clear(): void {
    this.turns.clear();
    this.sentences.clear();
    this.strays.length = 0;
  }

  chatReply(request: RecordedChatRequest): ChatReply {
    const tag = tagOf(request.lastUserMessage);
    const turn = tag === undefined ? undefined : this.turns.get(tag);
    if (!turn) return { tokens: tokenize('Hello there, this is a warm-up reply. It has two sentences.') };
    turn.chat = request;
    const { tokens, firstTokenDelayMs, tokenDelayMs } = turn.plan;
    return { tokens, firstTokenDelayMs, tokenDelayMs };
  }

  speechReply(request: RecordedSpeechRequest): SpeechReply {
    const input = request.body.input ?? '';
    const hit = this.sentences.get(input);
    if (hit) hit.turn.speech[hit.index] = request;
    else this.strays.push(request);
    // The engine server would synthesize a tone per request, synchronously; slicing one made
    // in advance keeps that work out of the bench process, whose delays would count as overhead.
    const bytes = speechSampleCount(input, { sampleRate: this.tts.sampleRate, msPerChar: this.tts.msPerChar, speed: request.body.speed ?? 1 }) * 2;
    if (bytes > this.tone.length) this.tone = synthesizeSpeech('x'.repeat(Math.ceil((bytes / 2 / this.tts.sampleRate) * 1000 / this.tts.msPerChar) * 2), 'bench', this.tts);
    return { pcm: this.tone.subarray(0, bytes) };
  }
}

export interface StepOptions {
  server: ServerProcess;
  engines: EngineServer;
  tracker: Tracker;
  sessions: number;
  durationS: number;
  seed: number;
  llm: LlmTiming;
  interruptEvery: number;
  firstTag: number;
  /** --workers: the worker pids, measured each on its own (bench/workers.ts). */
  workers?: readonly number[];
  /** Print progress lines. */
  log: (line: string) => void;
}

export interface StepLoad {
  window_s: number;
  event_loop_delay_ms: { p50: number | null; p99: number | null; max: number | null; samples: number };
  rss_before_mb: number;
  rss_mb: number;
  rss_mean_mb: number;
  cpu_seconds: number;
  cpu_utilization: number;
  bench_loop_delay_ms: { p99: number | null; max: number | null };
  /** CPU time of the bench process (engine server and clients) ÷ wall time. */
  bench_cpu_utilization: number;
  /** Cores busy with other processes (neither the server nor the bench): a busy machine skews every figure. */
  other_cpu_cores: number;
  /** What the server itself recorded in /metrics over the step (src/metrics.ts): its own view, without the network or the bench. */
  server_metrics: ServerView;
}

export interface ServerView {
  /** p50 / p99 in ms, interpolated in the histogram's buckets; null when nothing was recorded. */
  llm_first_token_ms: { p50: number | null; p99: number | null; count: number };
  tts_first_byte_ms: { p50: number | null; p99: number | null; count: number };
  first_audio_ms: { p50: number | null; p99: number | null; count: number };
  interrupt_ms: { p50: number | null; p99: number | null; count: number };
  turns: number;
  /** chorus_errors_total by code. */
  errors: Record<string, number>;
  /** chorus_open_sessions at the end of the measurement window. */
  open_sessions: number | null;
}

export interface StepResult {
  sessions: number;
  durationS: number;
  turns: TurnRecord[];
  problems: string[];
  connectS: number;
  load: StepLoad;
  strays: RecordedSpeechRequest[];
  nextTag: number;
  /** hrtime of the first turn and of the last turn's end. */
  window: [bigint, bigint];
  /** --workers: each worker's sessions and load over the window. */
  processes?: ProcessLoad[];
}

const TURN_TIMEOUT_MS = 60_000;
const ACK_TIMEOUT_MS = 10_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const now = () => process.hrtime.bigint();

/** How late a 10 ms timer fires in the bench process itself (its own load skews what it measures). */
function loopDelaySampler(): { stop(): number[] } {
  const delays: number[] = [];
  let due = now() + 10_000_000n;
  let timer: NodeJS.Timeout;
  const tick = () => {
    const at = now();
    delays.push(Math.max(0, Number(at - due) / 1e6));
    due = at + 10_000_000n;
    timer = setTimeout(tick, 10);
  };
  timer = setTimeout(tick, 10);
  return {
    stop() {
      clearTimeout(timer);
      return delays;
    },
  };
}

export async function runStep(o: StepOptions): Promise<StepResult> {
  const problems: string[] = [];
  const problem = (p: string) => {
    problems.push(p);
    if (problems.length <= 5) o.log(`  ! ${p}`);
  };
  const rssBefore = o.server.rssMb();

  // Connect, 25 at a time.
  const connectStart = now();
  const clients: BenchClient[] = [];
  for (let i = 0; i < o.sessions; i += 25) {
    const batch = Array.from({ length: Math.min(25, o.sessions - i) }, (_, j) => BenchClient.connect(o.server.wsUrl, i + j, problem));
    const settled = await Promise.allSettled(batch);
    for (const s of settled) {
      if (s.status === 'fulfilled') clients.push(s.value);
      else problem(`connect: ${s.reason instanceof Error ? s.reason.message : String(s.reason)}`);
    }
  }
  const connectS = Number(now() - connectStart) / 1e9;
  o.log(`  ${clients.length} sessions connected in ${connectS.toFixed(1)} s; running turns for ${o.durationS} s`);

  // Measurement window: from here to the deadline (event-loop delay, RSS); CPU until the last turn ends.
  const workers = o.workers ?? [];
  const beforeEach = workers.length > 0 ? await scrapeEach(o.server.httpUrl, workers) : undefined;
  const workerCpuBefore = new Map(workers.map((pid) => [pid, cpuSecondsOf(pid)]));
  const workerRss = new Map(workers.map((pid) => [pid, [rssMbOf(pid)]]));
  const before = await o.server.scrape();
  const cpuBefore = o.server.cpuSeconds();
  const benchCpuBefore = process.cpuUsage();
  const machineBefore = machineBusySeconds();
  const windowStart = now();
  const deadline = windowStart + BigInt(Math.round(o.durationS * 1e9));
  const rss: number[] = [];
  const rssTimer = setInterval(() => {
    try {
      rss.push(o.server.rssMb());
      for (const pid of workers) workerRss.get(pid)?.push(rssMbOf(pid));
    } catch {
      // the server is gone; the sessions report it
    }
  }, 250);
  const benchLoop = loopDelaySampler();

  let tag = o.firstTag;
  const turns: TurnRecord[] = [];
  const staggerMs = Math.min(3000, o.durationS * 250);

  async function session(client: BenchClient): Promise<void> {
    const random = prng(o.seed * 7919 + client.index);
    await sleep(random() * staggerMs);
    for (let n = 0; now() < deadline && client.open; n++) {
      const plan = planTurn({ tag: tag++, session: client.index, turn: n, names: client.names, random, llm: o.llm, interruptEvery: o.interruptEvery });
      const turn = newTurn(plan);
      o.tracker.register(turn);
      turns.push(turn);
      client.startTurn(turn);
      const fail = (why: string) => {
        turn.failed = why;
        problem(`session ${client.index}, turn ${plan.tag}: ${why}`);
      };
      if (plan.interrupt) {
        const heard = await client.waitFor(() => turn.frames.length > 0 || turn.audioStopAt !== undefined, TURN_TIMEOUT_MS);
        if (!heard) fail('no audio before the interrupt was due');
        else {
          await sleep(plan.interruptAfterMs);
          client.interrupt(turn);
          if (!(await client.waitFor(() => turn.ackAt !== undefined, ACK_TIMEOUT_MS))) fail(`no interrupt_ack within ${ACK_TIMEOUT_MS} ms`);
        }
      } else if (!(await client.waitFor(() => turn.textStopAt !== undefined && turn.audioStopAt !== undefined, TURN_TIMEOUT_MS))) {
        fail(`the turn did not finish within ${TURN_TIMEOUT_MS} ms (text ${turn.textStopAt ? 'done' : 'open'}, ${turn.frames.length} audio frames)`);
      }
      turn.endedAt = now();
      if (turn.failed && !client.open) return;
      await sleep(200 + random() * 600); // the user's pause before the next message
    }
  }

  const running = clients.map((c) => session(c));
  await sleep(Math.max(0, Number(deadline - now()) / 1e6));
  const after = await o.server.scrape();
  const afterEach = workers.length > 0 ? await scrapeEach(o.server.httpUrl, workers) : undefined;
  const windowS = Number(now() - windowStart) / 1e9;
  clearInterval(rssTimer);
  await Promise.all(running);
  const cpuAfter = o.server.cpuSeconds();
  const processes = workers.map(
    (pid): ProcessLoad => ({
      pid,
      sessions: clients.filter((c) => c.pid === pid).map((c) => c.index),
      event_loop_delay_ms: eventLoopDelay(beforeEach?.get(pid) ?? [], afterEach?.get(pid) ?? []),
      rss_mb: round(Math.max(...(workerRss.get(pid) ?? [0])), 1),
      cpu_seconds: round(cpuSecondsOf(pid) - (workerCpuBefore.get(pid) ?? 0), 2),
    }),
  );
  const end = await o.server.scrape();
  const benchCpu = process.cpuUsage(benchCpuBefore);
  const machineBusy = machineBusySeconds() - machineBefore;
  const windowEnd = now();
  const activeS = Number(now() - windowStart) / 1e9;
  const benchDelays = benchLoop.stop().sort((a, b) => a - b);
  o.log(`  ${turns.length} turns; last one ended ${(activeS - windowS).toFixed(1)} s after the deadline`);
  await sleep(500); // a late frame of a cancelled message would arrive now
  await Promise.all(clients.map((c) => c.close()));

  return {
    sessions: o.sessions,
    durationS: o.durationS,
    turns,
    problems,
    connectS,
    load: {
      window_s: round(windowS, 2),
      event_loop_delay_ms: eventLoopDelay(before, after),
      server_metrics: serverView(before, end, after),
      rss_before_mb: round(rssBefore, 1),
      rss_mb: round(Math.max(...rss, rssBefore), 1),
      rss_mean_mb: round(rss.length ? rss.reduce((a, b) => a + b, 0) / rss.length : rssBefore, 1),
      cpu_seconds: round(cpuAfter - cpuBefore, 2),
      cpu_utilization: round((cpuAfter - cpuBefore) / activeS, 3),
      bench_cpu_utilization: round((benchCpu.user + benchCpu.system) / 1e6 / activeS, 3),
      other_cpu_cores: round(Math.max(0, machineBusy - (cpuAfter - cpuBefore) - (benchCpu.user + benchCpu.system) / 1e6) / activeS, 2),
      bench_loop_delay_ms: {
        p99: benchDelays.length ? round(quantile(benchDelays, 0.99), 2) : null,
        max: benchDelays.length ? round(benchDelays[benchDelays.length - 1] as number, 2) : null,
      },
    },
    strays: [...o.tracker.strays],
    nextTag: tag,
    window: [windowStart, windowEnd],
    ...(workers.length > 0 ? { processes } : {}),
  };
}

/** CPU seconds all cores have spent running processes since boot (/proc/stat; USER_HZ = 100). */
export function machineBusySeconds(): number {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
    // irq and softirq are left out: loopback networking of the bench's own traffic runs there.
    const [user = 0, nice = 0, system = 0, , , , , steal = 0] = fields;
    return (user + nice + system + steal) / 100;
  } catch {
    return 0;
  }
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

/** The server's own histograms and counters between two scrapes. */
function serverView(before: Sample[], after: Sample[], atDeadline: Sample[]): ServerView {
  const hist = (name: string) => {
    const b = histogramBuckets(before, name);
    const a = histogramBuckets(after, name);
    const q = (x: number) => {
      const v = bucketQuantile(b, a, x);
      return v === null ? null : round(v * 1000, 2);
    };
    return { p50: q(0.5), p99: q(0.99), count: (metricValue(after, `${name}_count`) ?? 0) - (metricValue(before, `${name}_count`) ?? 0) };
  };
  const errors: Record<string, number> = {};
  for (const sample of after) {
    if (sample.name !== 'chorus_errors_total' || sample.labels.code === undefined) continue;
    const delta = sample.value - (metricValue(before, 'chorus_errors_total', { code: sample.labels.code }) ?? 0);
    if (delta > 0) errors[sample.labels.code] = delta;
  }
  return {
    llm_first_token_ms: hist('chorus_llm_first_token_seconds'),
    tts_first_byte_ms: hist('chorus_tts_first_byte_seconds'),
    first_audio_ms: hist('chorus_first_audio_seconds'),
    interrupt_ms: hist('chorus_interrupt_seconds'),
    turns: (metricValue(after, 'chorus_turns_total') ?? 0) - (metricValue(before, 'chorus_turns_total') ?? 0),
    errors,
    open_sessions: metricValue(atDeadline, 'chorus_open_sessions') ?? null,
  };
}

/** Event-loop delay between two scrapes, from chorus_event_loop_delay_seconds (src/metrics.ts). */
function eventLoopDelay(before: Sample[], after: Sample[]): StepLoad['event_loop_delay_ms'] {
  const name = 'chorus_event_loop_delay_seconds';
  const b = histogramBuckets(before, name);
  const a = histogramBuckets(after, name);
  const count = (metricValue(after, `${name}_count`) ?? 0) - (metricValue(before, `${name}_count`) ?? 0);
  if (a.length === 0) return { p50: null, p99: null, max: null, samples: 0 };
  const q = (x: number) => {
    const v = bucketQuantile(b, a, x);
    return v === null ? null : round(v * 1000, 2);
  };
  // prom-client's own gauge holds the max since the previous scrape, of a monitor that counts its
  // 10 ms interval in (src/metrics.ts explains); less that interval it is the max delay.
  const lagMax = metricValue(after, 'nodejs_eventloop_lag_max_seconds');
  return { p50: q(0.5), p99: q(0.99), max: lagMax === undefined ? null : round(Math.max(0, lagMax - 0.01) * 1000, 2), samples: count };
}
