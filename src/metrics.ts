// Prometheus metrics of the server, served at GET /metrics (prom-client text format).
//
// One registry for the process: the default Node.js process metrics (CPU, RSS, heap, GC, file
// descriptors, prom-client's own nodejs_eventloop_lag_* gauges) plus Chorus's own latencies,
// sessions, turns and errors. The recording functions below are what the code calls at the
// moment something happens; each is a constant-time update of a number in memory (no I/O, no
// allocation on the hot path), so calling them per turn, per message or per error costs nothing
// noticeable. Durations are given in seconds (`metrics.secondsSince(start)` turns an hrtime
// stamp taken with `metrics.now()` into seconds).
//
// Event-loop delay is measured here, on import: a timer due every 10 ms records how late it
// fires (how long the loop was busy with something else) into the histogram
// chorus_event_loop_delay_seconds. Unlike prom-client's nodejs_eventloop_lag_p99_seconds (which
// includes the 10 ms sampling interval itself and is reset by every scrape), it is a plain
// cumulative histogram: two scrapes give the distribution between them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

/** Latency buckets (seconds) from 1 ms to 30 s, for engine and end-to-end latencies. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30];
/** Fine buckets (seconds) for what should take a few milliseconds at most. */
const FAST_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1];

const histogram = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, buckets, registers: [registry] });

const llmFirstTokenSeconds = histogram(
  'chorus_llm_first_token_seconds',
  'LLM time to first token: request sent to the first streamed content delta.',
  LATENCY_BUCKETS,
);
const ttsFirstByteSeconds = histogram(
  'chorus_tts_first_byte_seconds',
  'TTS time to first byte: synthesis of a sentence started to its first PCM chunk.',
  LATENCY_BUCKETS,
);
const sttLatencySeconds = histogram(
  'chorus_stt_latency_seconds',
  'STT latency: end of speech (or transcription request sent) to the final transcript.',
  LATENCY_BUCKETS,
);
const firstAudioSeconds = histogram(
  'chorus_first_audio_seconds',
  'User message received to the first audio frame of the reply sent.',
  LATENCY_BUCKETS,
);
const interruptSeconds = histogram(
  'chorus_interrupt_seconds',
  'Interrupt received to interrupt_ack sent (turn aborted, queues dropped, streams closed).',
  FAST_BUCKETS,
);
const eventLoopDelaySeconds = histogram(
  'chorus_event_loop_delay_seconds',
  'How late a timer due every 10 ms fires: the time the event loop was busy with other work.',
  [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5],
);
const openSessions = new Gauge({ name: 'chorus_open_sessions', help: 'Open WebSocket sessions.', registers: [registry] });
const turnsTotal = new Counter({ name: 'chorus_turns_total', help: 'Conversation turns started.', registers: [registry] });
const errorsTotal = new Counter({
  name: 'chorus_errors_total',
  help: 'Errors sent to clients, by code (error codes of the protocol, and db_error for failed CRUD requests).',
  labelNames: ['code'],
  registers: [registry],
});

const preemptiveTurnsTotal = new Counter({
  name: 'chorus_preemptive_turns_total',
  help: 'Replies started on the paused transcript before the end of the turn was decided, by outcome: started; committed (the final transcript confirmed it); cancelled (the user spoke again or said something else: its LLM request was wasted).',
  labelNames: ['outcome'],
  registers: [registry],
});
const bargeInsTotal = new Counter({
  name: 'chorus_barge_ins_total',
  help: 'The user speaking over a reply, by outcome: paused (the reply paused); resumed (no words came in time: a false interruption taken back); interrupted (words came, or an interrupt, while paused).',
  labelNames: ['outcome'],
  registers: [registry],
});

export type PreemptiveOutcome = 'started' | 'committed' | 'cancelled';
export type BargeInOutcome = 'paused' | 'resumed' | 'interrupted';
// Every outcome is a series from the start (at 0), so two scrapes always give a difference.
const series = <T extends string>(counter: Counter, outcomes: readonly T[]) =>
  new Map(
    outcomes.map((o) => {
      counter.inc({ outcome: o }, 0);
      return [o, counter.labels(o)] as const;
    }),
  );
const preemptiveBy = series(preemptiveTurnsTotal, ['started', 'committed', 'cancelled'] as const);
const bargeInBy = series(bargeInsTotal, ['paused', 'resumed', 'interrupted'] as const);

/** Children of the error counter by code, so metrics.error() does no label hashing after the first call. */
const errorsByCode = new Map<string, Counter.Internal>();

// ── event-loop delay sampler ──
const SAMPLE_MS = 10;
let due = 0n;
const sample = () => {
  const at = process.hrtime.bigint();
  const late = Number(at - due) / 1e9;
  eventLoopDelaySeconds.observe(late > 0 ? late : 0);
  due = at + BigInt(SAMPLE_MS * 1e6);
  setTimeout(sample, SAMPLE_MS).unref();
};
due = process.hrtime.bigint() + BigInt(SAMPLE_MS * 1e6);
setTimeout(sample, SAMPLE_MS).unref();

export const metrics = {
  /** An hrtime stamp (nanoseconds, monotonic) to measure a duration from. */
  now: (): bigint => process.hrtime.bigint(),
  /** Seconds since an hrtime stamp taken with now(). */
  secondsSince: (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9,

  /** LLM: request sent → first content delta received. */
  llmFirstToken(seconds: number): void {
    llmFirstTokenSeconds.observe(seconds);
  },
  /** TTS: synthesis of one sentence started → its first PCM chunk. */
  ttsFirstByte(seconds: number): void {
    ttsFirstByteSeconds.observe(seconds);
  },
  /** STT: end of speech → final transcript. */
  sttLatency(seconds: number): void {
    sttLatencySeconds.observe(seconds);
  },
  /** user_message received → first audio frame of its reply sent. */
  firstAudio(seconds: number): void {
    firstAudioSeconds.observe(seconds);
  },
  /** interrupt received → interrupt_ack sent. */
  interrupt(seconds: number): void {
    interruptSeconds.observe(seconds);
  },
  sessionOpened(): void {
    openSessions.inc();
  },
  sessionClosed(): void {
    openSessions.dec();
  },
  turnStarted(): void {
    turnsTotal.inc();
  },
  /** A preemptive reply started, was confirmed, or was cancelled. */
  preemptive(outcome: PreemptiveOutcome): void {
    preemptiveBy.get(outcome)?.inc();
  },
  /** A barge-in paused a reply, which then resumed or was interrupted. */
  bargeIn(outcome: BargeInOutcome): void {
    bargeInBy.get(outcome)?.inc();
  },
  /** An `error` sent to a client (its code), or `db_error` for a failed CRUD request. */
  error(code: string): void {
    let child = errorsByCode.get(code);
    if (!child) {
      child = errorsTotal.labels(code);
      errorsByCode.set(code, child);
    }
    child.inc();
  },
};

/** The Prometheus text exposition of every metric, and its content type. */
export async function renderMetrics(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}
