// What the benchmark prints and writes: the result document (bench/results/latest.json), the
// targets, the console table, docs/performance.md and the latency chart docs/latency.svg (SVG
// written by hand from the numbers).
import type { ProcessReport } from './workers.ts';
import type { LatencyFigures } from './analyze.ts';
import type { DbFigures } from './db.ts';
import { type EndpointingFigures, endpointingText } from './endpointing.ts';
import type { EspeakFigures, VadFigures } from './engines.ts';
import type { ProfileSummary } from './profile.ts';
import type { StepLoad } from './step.ts';
import type { Summary } from './stats.ts';
import type { VoiceFigures, VoiceRun } from './voice.ts';
import { PROPAGATION_P99_MS, type PropagationFigures, propagationText } from './propagation.ts';

export interface LoadFigures extends Omit<StepLoad, 'rss_before_mb' | 'window_s'> {
  sessions: number;
  turns: number;
  errors: number;
  rss_idle_mb: number;
  rss_per_session_mb: number;
  cpu_seconds_per_turn: number | null;
  window_s: number;
}

export interface StepReport {
  sessions: number;
  duration_s: number;
  turns: number;
  completed: number;
  interrupts: number;
  errors: number;
  /** The first problems seen (errors from the server, socket failures, timeouts, mismatches). */
  problems: string[];
  figures: LatencyFigures;
  profiles: Record<string, Array<{ p: number; value: number }>>;
  /** --workers: the same figures for each server process alone (bench/workers.ts). */
  per_process?: ProcessReport[];
}

export interface Target {
  name: string;
  /** Where the value comes from, e.g. latency.text_overhead_ms.p50 or load[sessions=200].event_loop_delay_ms.p99. */
  figure: string;
  limit: number;
  sessions: number;
  /** The session count the target is specified at. */
  specified_at: number;
  value: number | null;
  pass: boolean;
}

export interface BenchResult {
  schema: 1;
  generated_at: string;
  duration_s: number;
  machine: { cpus: number; cpu_model: string; memory_gb: number; node: string; platform: string };
  config: {
    sessions: number;
    load_sessions: number[];
    duration_s: number;
    seed: number;
    interrupt_every: number;
    llm: { first_token_delay_ms: number; token_delay_ms: [number, number] };
    tts: { first_byte_delay_ms: number; realtime_factor: number; chunk_ms: number; sample_rate: number; ms_per_char: number };
    database: 'pglite' | 'postgres';
    /** Server processes (WORKERS); absent in results from before --workers. */
    workers?: number;
  };
  /** At `config.sessions` concurrent sessions. */
  latency: LatencyFigures & { turns: number; interrupts: number; errors: number };
  speech_input: { end_of_speech_to_final_ms: Summary | null; overhead_ms: Summary | null; note: string | null };
  /** Voice to voice (bench/voice.ts); null when skipped (--voice-utterances 0), absent in results written before it existed. */
  voice?: VoiceFigures | null;
  /** Change committed in one process → pushed to a client of another (bench/propagation.ts); absent in results written before it existed. */
  propagation?: PropagationFigures | null;
  load: LoadFigures[];
  steps: StepReport[];
  engines: {
    espeak: EspeakFigures | null;
    espeak_note: string | null;
    silero_vad: VadFigures | null;
    silero_vad_note: string | null;
    endpointing?: EndpointingFigures | null;
    endpointing_note?: string | null;
  };
  database: { pglite: DbFigures | null; pglite_note: string | null; postgres: DbFigures | null; postgres_note: string | null };
  /** With --profile: where the server's main thread spent its time in each step. */
  profile: Array<ProfileSummary & { sessions: number }> | null;
  targets: Target[];
  pass: boolean;
  notes: string[];
}

// ── targets ──

const LATENCY_AT = 50;
const LOAD_AT = 200;

/** The voice-to-voice goal: p50 ≤ 600 ms for a sentence-ending utterance at real-time pace, and nothing extra sent. */
export function voiceTargets(voice: VoiceFigures | null | undefined): Target[] {
  if (!voice) return [];
  const run = voice.runs.find((r) => r.pacing === 'realtime' && r.kind === 'sentence');
  const value = run?.voice_to_voice_ms.p50 ?? null;
  return [
    { name: 'voice_to_voice_ms p50 ≤ 600 (sentence, real time)', figure: 'voice.runs[realtime,sentence].voice_to_voice_ms.p50', value, limit: 600, sessions: 1, specified_at: 1, pass: value !== null && value <= 600 },
    { name: 'voice turns without problems (nothing extra reaching the client)', figure: 'voice.problems', value: voice.problems.length, limit: 0, sessions: 1, specified_at: 1, pass: voice.problems.length === 0 },
  ];
}

/** propagation_ms p99 ≤ 100 (issue 13), when it was measured. */
export function propagationTargets(p: PropagationFigures | null | undefined): Target[] {
  if (!p || p.note) return [];
  const value = p.propagation_ms?.p99 ?? null;
  return [{ name: `propagation_ms p99 ≤ ${PROPAGATION_P99_MS} (process A → a client of process B)`, figure: 'propagation.propagation_ms.p99', value, limit: PROPAGATION_P99_MS, sessions: 1, specified_at: 1, pass: value !== null && value <= PROPAGATION_P99_MS }];
}

export function checkTargets(r: Pick<BenchResult, 'latency' | 'load' | 'config' | 'voice' | 'propagation'>): Target[] {
  const targets: Target[] = [...voiceTargets(r.voice), ...propagationTargets(r.propagation)];
  const at = r.config.sessions;
  const add = (name: string, figure: string, value: number | null, limit: number, sessions: number, specifiedAt: number) =>
    targets.push({ name, figure, value, limit, sessions, specified_at: specifiedAt, pass: value !== null && value <= limit });
  const l = r.latency;
  add('text_overhead_ms p50 ≤ 1', 'latency.text_overhead_ms.p50', l.text_overhead_ms.p50, 1, at, LATENCY_AT);
  add('text_overhead_ms p99 ≤ 5', 'latency.text_overhead_ms.p99', l.text_overhead_ms.p99, 5, at, LATENCY_AT);
  add('sentence_overhead_ms p99 ≤ 2', 'latency.sentence_overhead_ms.p99', l.sentence_overhead_ms.p99, 2, at, LATENCY_AT);
  add('audio_overhead_ms p50 ≤ 2', 'latency.audio_overhead_ms.p50', l.audio_overhead_ms.p50, 2, at, LATENCY_AT);
  add('audio_overhead_ms p99 ≤ 10', 'latency.audio_overhead_ms.p99', l.audio_overhead_ms.p99, 10, at, LATENCY_AT);
  add('first_audio_ratio p50 ≤ 1.05', 'latency.first_audio_ratio.p50', l.first_audio_ratio.p50, 1.05, at, LATENCY_AT);
  add('interrupt_ack_ms p99 ≤ 10', 'latency.interrupt_ack_ms.p99', l.interrupt_ack_ms.p99, 10, at, LATENCY_AT);
  add('frames_after_interrupt = 0', 'latency.frames_after_interrupt.total', l.frames_after_interrupt.interrupts > 0 ? l.frames_after_interrupt.total : null, 0, at, LATENCY_AT);
  add('sentence_gap_ms p50 ≤ 10', 'latency.sentence_gap_ms.p50', l.sentence_gap_ms.p50, 10, at, LATENCY_AT);
  add('sentence_gap_ms p99 ≤ 40', 'latency.sentence_gap_ms.p99', l.sentence_gap_ms.p99, 40, at, LATENCY_AT);
  add('upstream_close_ms p99 ≤ 20', 'latency.upstream_close_ms.p99', l.upstream_close_ms.p99, 20, at, LATENCY_AT);
  add(`errors = 0 (${at} sessions)`, 'latency.errors', l.errors, 0, at, LATENCY_AT);
  // The load targets are checked at the load step nearest 200 sessions (the largest one if none is 200).
  const load = r.load.find((x) => x.sessions === LOAD_AT) ?? [...r.load].sort((a, b) => b.sessions - a.sessions)[0];
  if (load) {
    const s = load.sessions;
    add('event_loop_delay_ms p99 ≤ 20', `load[sessions=${s}].event_loop_delay_ms.p99`, load.event_loop_delay_ms.p99, 20, s, LOAD_AT);
    add(`errors = 0 (${s} sessions)`, `load[sessions=${s}].errors`, load.errors, 0, s, LOAD_AT);
    add('rss_per_session_mb ≤ 2', `load[sessions=${s}].rss_per_session_mb`, load.rss_per_session_mb, 2, s, LOAD_AT);
  }
  return targets;
}

// ── console ──

const fmt = (v: number | null | undefined, digits = 2): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));
const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const padL = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

const LATENCY_ROWS: Array<[keyof LatencyFigures, string]> = [
  ['llm_request_ms', '(user_message sent → LLM request received)'],
  ['text_overhead_ms', 'LLM token sent → text_chunk received'],
  ['sentence_overhead_ms', 'first-fragment token sent → TTS request received'],
  ['audio_overhead_ms', 'first PCM byte sent → first audio frame received'],
  ['audio_chunk_overhead_ms', '(every PCM chunk → its frame)'],
  ['first_audio_ms', 'user_message sent → first audio frame'],
  ['ideal_first_audio_ms', 'sum of engine latencies on that path'],
  ['first_audio_ratio', 'first_audio ÷ ideal'],
  ['interrupt_ack_ms', 'interrupt sent → interrupt_ack'],
  ['upstream_close_ms', 'interrupt sent → LLM and TTS requests closed'],
  ['llm_close_ms', '(LLM request closed)'],
  ['speech_close_ms', '(TTS request closed)'],
  ['sentence_gap_ms', '(silence heard between two sentences of a reply)'],
];

export function latencyTable(figures: LatencyFigures, markdown: boolean): string {
  const rows: string[][] = [];
  for (const [key, label] of LATENCY_ROWS) {
    const f = figures[key] as Summary;
    const digits = key === 'first_audio_ratio' ? 3 : key.includes('first_audio') || key === 'sentence_gap_ms' ? 1 : 2;
    rows.push([key, fmt(f.p50, digits), fmt(f.p99, digits), fmt(f.max, digits), String(f.n), label]);
  }
  const fa = figures.frames_after_interrupt;
  rows.push(['frames_after_interrupt', String(fa.total), '', String(fa.max), String(fa.interrupts), 'frames of a cancelled message after interrupt_ack (total, max per interrupt)']);
  rows.push(['late_upstream_requests', String(figures.late_upstream_requests), '', '', String(fa.interrupts), '(engine requests of a cancelled message reaching the engines after the ack)']);
  return table(['figure', 'p50', 'p99', 'max', 'n', 'what'], rows, markdown, [false, true, true, true, true, false]);
}

export function loadTable(load: LoadFigures[], markdown: boolean): string {
  const rows = load.map((l) => [
    String(l.sessions),
    String(l.turns),
    String(l.errors),
    fmt(l.event_loop_delay_ms.p50),
    fmt(l.event_loop_delay_ms.p99),
    fmt(l.event_loop_delay_ms.max),
    fmt(l.rss_idle_mb, 0),
    fmt(l.rss_mb, 0),
    fmt(l.rss_per_session_mb, 2),
    fmt(l.cpu_seconds_per_turn, 4),
    `${fmt(l.cpu_utilization * 100, 0)} %`,
    fmt(l.bench_loop_delay_ms.p99),
    `${fmt(l.bench_cpu_utilization * 100, 0)} %`,
    fmt(l.other_cpu_cores, 2),
  ]);
  return table(
    ['sessions', 'turns', 'errors', 'loop delay p50 ms', 'p99 ms', 'max ms', 'RSS idle MB', 'RSS MB', 'MB / session', 'CPU s / turn', 'CPU', 'bench loop p99 ms', 'bench CPU', 'other cores'],
    rows,
    markdown,
    rows[0]?.map(() => true) ?? [],
  );
}

/** What the server recorded itself (/metrics), next to what the clients saw. */
export function serverViewTable(load: LoadFigures[], markdown: boolean): string {
  const pq = (h: { p50: number | null; p99: number | null; count: number }) => `${fmt(h.p50, 1)} / ${fmt(h.p99, 1)} (${h.count})`;
  // (a result written before this table existed has no server_metrics)
  const rows = load.filter((l) => (l.server_metrics as LoadFigures['server_metrics'] | undefined) !== undefined).map((l) => {
    const v = l.server_metrics;
    const errors = Object.entries(v.errors).map(([code, n]) => `${code} ${n}`).join(', ') || '0';
    return [String(l.sessions), String(v.open_sessions ?? '–'), String(v.turns), pq(v.llm_first_token_ms), pq(v.tts_first_byte_ms), pq(v.first_audio_ms), pq(v.interrupt_ms), errors];
  });
  return table(
    ['sessions', 'open (gauge)', 'turns (counter)', 'LLM first token p50 / p99 ms (n)', 'TTS first byte', 'first audio', 'interrupt', 'errors by code'],
    rows,
    markdown,
    [true, true, true, true, true, true, true, false],
  );
}

export function targetTable(targets: Target[], markdown: boolean): string {
  const rows = targets.map((t) => [
    t.pass ? 'pass' : 'FAIL',
    t.name,
    fmt(t.value, 3),
    String(t.sessions) + (t.sessions !== t.specified_at ? ` (target at ${t.specified_at})` : ''),
  ]);
  return table(['', 'target', 'measured', 'sessions'], rows, markdown, [false, false, true, false]);
}

function table(head: string[], rows: string[][], markdown: boolean, right: boolean[]): string {
  if (markdown) {
    const align = right.map((r) => (r ? '---:' : '---'));
    return [head, align, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (right[i] ? padL(c, widths[i] as number) : pad(c, widths[i] as number))).join('  ');
  return [line(head), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const VOICE_COLUMNS: Array<[keyof VoiceRun, string]> = [
  ['voice_to_voice_ms', 'voice to voice'],
  ['endpointing_ms', 'endpointing'],
  ['stt_ms', 'STT'],
  ['llm_first_token_ms', 'LLM first token'],
  ['first_fragment_ms', 'first fragment'],
  ['tts_first_byte_ms', 'TTS first byte'],
  ['llm_lead_ms', 'LLM lead'],
  ['engine_path_ms', 'engine path'],
  ['server_overhead_ms', 'server overhead'],
];

/** The voice-to-voice table (p50 ms per figure), with the preemptive counts. */
export function voiceText(v: VoiceFigures, markdown: boolean): string {
  if (v.note) return `voice to voice: – (${v.note})`;
  const rows = v.runs.map((run) => [
    run.pacing,
    run.kind,
    String(run.utterances),
    ...VOICE_COLUMNS.map(([key]) => fmt((run[key] as Summary).p50, 1)),
    `${run.preemptive} / ${run.utterances}`,
    fmt(run.wasted_llm_requests_per_utterance, 2),
  ]);
  const head = ['speech', 'utterance', 'n', ...VOICE_COLUMNS.map(([, label]) => `${label} p50`), 'preemptive', 'wasted LLM req. / utt.'];
  const l = v.latencies;
  const lines = [
    `Voice to voice (ms, p50; engines: STT ${l.stt_ms}, LLM first token ${l.llm_first_token_ms} then ${l.llm_token_ms} a token, TTS first byte ${l.tts_first_byte_ms}):`,
    '',
    table(head, rows, markdown, head.map((_, i) => i >= 2)),
  ];
  if (v.preemptive) lines.push('', `Preemptive replies (chorus_preemptive_turns_total over the step): ${v.preemptive.started} started, ${v.preemptive.committed} committed, ${v.preemptive.cancelled} cancelled.`);
  for (const p of v.problems.slice(0, 10)) lines.push(`problem: ${p}`);
  return lines.join('\n');
}

export function consoleReport(r: BenchResult): string {
  const out: string[] = [];
  out.push(`\nLatency added by the server at ${r.config.sessions} concurrent sessions (ms; the engines' own latency excluded):\n`);
  out.push(latencyTable(r.latency, false));
  out.push(`\nLoad (server process):\n`);
  out.push(loadTable(r.load, false));
  out.push(`\nThe server's own view (its /metrics histograms over each step; ms):\n`);
  out.push(serverViewTable(r.load, false));
  out.push('\nEngines and database on this machine:\n');
  out.push(enginesText(r).join('\n'));
  if (r.speech_input.note) out.push(`speech input: ${r.speech_input.note}`);
  if (r.voice) out.push(`\n${voiceText(r.voice, false)}`);
  if (r.propagation) out.push(`\n${propagationText(r.propagation)}`);
  if (r.engines.endpointing) out.push(`\nEndpointing on the bench's turns:\n\n${endpointingText(r.engines.endpointing)}`);
  for (const p of r.profile ?? []) out.push(profileText(p, false));
  out.push('\nTargets:\n');
  out.push(targetTable(r.targets, false));
  if (r.notes.length > 0) out.push(`\nNotes:\n${r.notes.map((n) => `- ${n}`).join('\n')}`);
  out.push(`\n${r.pass ? 'All targets met.' : `${r.targets.filter((t) => !t.pass).length} target(s) missed.`} (${r.duration_s.toFixed(0)} s)\n`);
  return out.join('\n');
}

function profileText(p: ProfileSummary & { sessions: number }, markdown: boolean): string {
  const rows = (list: ProfileSummary['functions'], n: number) => list.slice(0, n).map((f) => [String(f.self_ms), fmt(f.self_pct, 1), markdown ? `\`${f.function}\`` : f.function, f.location]);
  const right = [true, true, false, false];
  const lt = p.long_tasks;
  return [
    '',
    `${markdown ? '' : `\nServer CPU profile at ${p.sessions} sessions: `}main thread busy ${(p.busy_ms / 1000).toFixed(1)} s from the first turn to the last (${p.file.replace(/^.*\/bench\//, 'bench/')}).`,
    '',
    'By self time:',
    '',
    table(['ms', '%', 'function', 'where'], rows(p.functions, 10), markdown, right),
    '',
    'The same time, charged to the server code whose call it was (deepest src/ frame on the stack):',
    '',
    table(['ms', '%', 'charged to', 'where'], rows(p.by_source, 12), markdown, right),
    '',
    `Busy runs (≥ ${lt.min_ms} ms with no idle sample: one long task, or tasks back to back; either way the event loop answers nothing else meanwhile): ${lt.count}, ${lt.total_ms} ms in all. The longest:`,
    '',
    table(['ms', 'spent mostly in'], lt.longest.slice(0, 6).map((t) => [String(t.ms), t.in]), markdown, [true, false]),
  ].join('\n');
}

function enginesText(r: BenchResult): string[] {
  const lines: string[] = [];
  const e = r.engines.espeak;
  if (e) {
    lines.push(
      `espeak-ng (${e.workers} worker threads, ${e.sample_rate} Hz, ${e.sentences} sentences): real-time factor p50 ${fmt(e.rtf.p50, 3)} / p99 ${fmt(e.rtf.p99, 3)}; ` +
        `first audio p50 ${fmt(e.first_audio_ms.p50, 1)} ms / p99 ${fmt(e.first_audio_ms.p99, 1)} ms`,
    );
  } else lines.push(`espeak-ng: – (${r.engines.espeak_note ?? 'not measured'})`);
  const v = r.engines.silero_vad;
  if (v) lines.push(`Silero VAD: ${fmt(v.us_per_frame.p50, 0)} µs p50 / ${fmt(v.us_per_frame.p99, 0)} µs p99 per 32 ms window (${v.us_per_frame.n} windows)`);
  else lines.push(`Silero VAD: – (${r.engines.silero_vad_note ?? 'not measured'})`);
  for (const [name, d, note] of [
    ['PGlite', r.database.pglite, r.database.pglite_note],
    ['PostgreSQL', r.database.postgres, r.database.postgres_note],
  ] as const) {
    if (d) {
      lines.push(
        `${name}: message insert p50 ${fmt(d.insert_ms.p50)} / p99 ${fmt(d.insert_ms.p99)} ms (${d.insert_ms.n}); ` +
          `history load of ${d.messages} messages p50 ${fmt(d.history_load_ms.p50)} / p99 ${fmt(d.history_load_ms.p99)} ms`,
      );
    } else lines.push(`${name}: – (${note ?? 'not measured'})`);
  }
  return lines;
}

// ── docs/performance.md ──

export const RESULTS_START = '<!-- bench:results:start (written by npm run bench; edit outside these markers) -->';
export const RESULTS_END = '<!-- bench:results:end -->';

export function resultsMarkdown(r: BenchResult, svgName: string): string {
  const m = r.machine;
  const c = r.config;
  const lines: string[] = [];
  lines.push(RESULTS_START);
  lines.push('');
  lines.push(
    `Latest run: ${r.generated_at.slice(0, 16).replace('T', ' ')} UTC, ${m.cpus} × ${m.cpu_model}, ${m.memory_gb} GB, Node ${m.node}; ` +
      `${c.sessions} sessions for the latency figures, ${c.load_sessions.join(' and ')} for load, ${c.duration_s} s of turns each, ` +
      `database ${c.database}. ${r.pass ? '**All targets met.**' : `**${r.targets.filter((t) => !t.pass).length} target(s) missed.**`}`,
  );
  lines.push('');
  lines.push(`### Latency the server adds (${c.sessions} concurrent sessions, ms)`);
  lines.push('');
  lines.push(latencyTable(r.latency, true));
  lines.push('');
  lines.push(`${r.latency.turns} turns, ${r.latency.interrupts} of them interrupted, ${r.latency.errors} errors.`);
  for (const step of r.steps.filter((s) => s.sessions !== c.sessions)) {
    lines.push('');
    lines.push(`### The same at ${step.sessions} sessions (ms)`);
    lines.push('');
    lines.push(latencyTable(step.figures, true));
  }
  lines.push('');
  lines.push('### Load (the server process)');
  lines.push('');
  lines.push(loadTable(r.load, true));
  lines.push('');
  lines.push("### The server's own view (`/metrics`, ms: p50 / p99 (count), bucket-interpolated)");
  lines.push('');
  lines.push(serverViewTable(r.load, true));
  lines.push('');
  lines.push('### Engines and database on this machine');
  lines.push('');
  for (const l of enginesText(r)) lines.push(`- ${l}`);
  lines.push(`- Speech input: ${r.speech_input.end_of_speech_to_final_ms ? `end of speech → stt_final p50 ${fmt(r.speech_input.end_of_speech_to_final_ms.p50, 1)} ms, overhead p50 ${fmt(r.speech_input.overhead_ms?.p50, 1)} ms` : `– (${r.speech_input.note ?? 'not measured'})`}`);
  if (r.voice) {
    lines.push('');
    lines.push('### Voice to voice');
    lines.push('');
    lines.push(voiceText(r.voice, true));
  }
  if (r.propagation) {
    lines.push('');
    lines.push('### Propagation between processes');
    lines.push('');
    lines.push('```');
    lines.push(propagationText(r.propagation));
    lines.push('```');
  }
  if (r.engines.endpointing) {
    lines.push('');
    lines.push("### Endpointing on the bench's turns");
    lines.push('');
    lines.push(endpointingText(r.engines.endpointing));
  }
  lines.push('');
  lines.push('### Targets');
  lines.push('');
  lines.push(targetTable(r.targets, true));
  if (r.notes.length > 0) {
    lines.push('');
    for (const n of r.notes) lines.push(`- ${n}`);
  }
  for (const p of r.profile ?? []) {
    lines.push('');
    lines.push(`### Where the server spends its CPU at ${p.sessions} sessions (\`--profile\`)`);
    lines.push(profileText(p, true));
  }
  lines.push('');
  lines.push(`![Latency distributions](${svgName})`);
  lines.push('');
  lines.push(RESULTS_END);
  return lines.join('\n');
}

/** The whole page, used when docs/performance.md does not exist yet (or lost its markers). */
export function performancePage(results: string): string {
  return `# Performance

In a voice conversation every millisecond the server adds sits between the user and the answer.
The engines (LLM, TTS, STT) have latencies of their own that Chorus does not control; what it
controls is everything else, and its ideal is zero. \`npm run bench\` measures that cost on every
run and checks it against targets; this page holds the latest numbers.

## Latest results

${results}

## How to reproduce

\`\`\`sh
npm ci
npm run bench                                   # the default run: 50 sessions, then 200; under 3 minutes on 2 cores
npm run bench -- --sessions 50 --load-sessions 200,500 --duration 30
npm run bench -- --profile                      # also profile the server (V8 --cpu-prof): where its CPU time goes, per step
npm run bench -- --from bench/results/latest.json   # print and re-render the docs from a result, without running
BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench   # PostgreSQL figures (or TEST_DATABASE_URL)
\`\`\`

\`npm run bench -- --help\` lists every option. The run prints the tables, writes
\`bench/results/latest.json\` (every figure, with the session count it was taken at), rewrites
the results part of this page and \`docs/latency.svg\`, and exits non-zero when a target is
missed. It is not part of \`npm test\`; \`test/bench.test.ts\` only runs a tiny configuration of
it and checks the shape of its JSON.

### What the run does

- It starts the real server **as its own process**, the way a user runs it
  (\`node --import tsx src/main.ts\`), on a free port, with a fresh \`DATA_DIR\` (or
  \`DATABASE_URL\` when set), \`TTS_ENGINE=openai\`, \`STT_ENGINE=openai\`, \`LOG_LEVEL=warn\` and
  the starter cast, and points \`LLM_BASE_URL\`, \`TTS_BASE_URL\` and \`STT_BASE_URL\` at the
  loopback engine server of the tests (\`test/support/engine-server.ts\`), which runs inside the
  bench process. The one addition is \`--inspect=127.0.0.1:0\`: through it the bench asks for a
  full garbage collection before it reads the idle RSS (start-up leaves some 400 MB of PGlite's
  load buffers that only the next major GC frees) and before each step. The server's log goes
  to \`bench/results/server.log\`.
- After one warm-up turn, one session measures speech input: it streams espeak speech at
  16 kHz in real time, each utterance followed by silence, and times the last speech sample
  sent → \`stt_final\` (the server's default end silences; the transcription server answers
  after 100 ms). Then voice to voice (\`bench/voice.ts\`), with the engines at its own latencies.
- The LLM answers after 300 ms, then one word every 20–30 ms, 1–3 sentences, some replies
  opening with a short clause the server speaks early. The speech server answers after 150 ms
  and then streams PCM in 20 ms chunks at real-time pace (24 kHz).
- Each simulated user (a plain \`ws\` client) addresses one character of the starter cast by
  name, waits for the reply's text and audio to end, pauses 0.2–0.8 s and goes on; every fourth
  turn is interrupted 0–200 ms after its first audio frame.
- The bench process owns both the engine server and the clients, so "token sent" and "frame
  received" are stamped on one clock (\`process.hrtime.bigint()\`, CLOCK_MONOTONIC). Load
  figures come from the server's \`/metrics\` and from \`/proc/<pid>\`.

## What each figure means

| figure | from → to | ideal |
|---|---|---|
| \`llm_request_ms\` | the client sends \`user_message\` → the LLM server receives the request (the turn's start, the prompt, the HTTP request) | 0 |
| \`text_overhead_ms\` | the LLM server writes a token → the client receives the \`text_chunk\` carrying it (tokens matched to chunks by content, in order) | 0 |
| \`sentence_overhead_ms\` | the LLM server writes the token that completes a reply's first fragment (found by running the server's own splitter over the tokens) → the speech server receives the request for that fragment | 0 |
| \`audio_overhead_ms\` | the speech server writes a reply's first PCM byte → the client receives its first binary frame | 0 |
| \`audio_chunk_overhead_ms\` | the same for every PCM chunk (matched by byte offset) | 0 |
| \`first_audio_ms\` | the client sends \`user_message\` → receives the first audio frame of the reply | \`ideal_first_audio_ms\` |
| \`ideal_first_audio_ms\` | what the engines themselves took on that path, as the engine server stamped it: LLM time to first token + the time from the first token to the one completing the first fragment + TTS time to first byte (scripted 300 ms + n × 20–30 ms + 150 ms) | – |
| \`first_audio_ratio\` | \`first_audio_ms\` ÷ \`ideal_first_audio_ms\`, per turn | 1 |
| \`interrupt_ack_ms\` | the client sends \`interrupt\` → receives \`interrupt_ack\` | 0 |
| \`frames_after_interrupt\` | \`text_chunk\`, \`audio_chunk\` and binary frames of the cancelled message received after \`interrupt_ack\` (must be 0) | 0 |
| \`late_upstream_requests\` | engine requests of a cancelled message that reached the engine server after \`interrupt_ack\`: the server had started them before it handled the interrupt; each must be closed at once (counted in \`upstream_close_ms\`) and never answered | 0 |
| \`upstream_close_ms\` | the client sends \`interrupt\` → both the LLM and the speech server have seen their open requests closed (\`llm_close_ms\`, \`speech_close_ms\` separately) | 0 |
| \`sentence_gap_ms\` | the silence the listener hears between two sentences of a reply that was not interrupted: the client plays frames back to back from their arrival, so it is how long after the previous sentence's audio has played out the next sentence's first frame arrives (0 when it arrived in time). Without synthesis ahead (\`TTS_LOOKAHEAD=0\`) it is about the TTS time to first byte with a real-time-paced TTS; with it, the next sentence is ready before the current one ends | 0 |
| \`event_loop_delay_ms\` | how late a timer due every 10 ms fires inside the server (\`chorus_event_loop_delay_seconds\` of \`/metrics\`, between two scrapes; p50/p99 interpolated in its buckets; max from prom-client's monitor) | 0 |
| \`rss_mb\`, \`rss_per_session_mb\` | the server's peak resident memory during the step (\`/proc/<pid>/status\`), and (peak − idle) ÷ sessions; idle is measured after one warm-up turn and a full GC, with no session open | – |
| \`end_of_speech_to_final_ms\`, speech input overhead | last speech sample sent → \`stt_final\` received; and that less the trailing silence the server waits for (its default for the transcript's ending) and the transcription server's own answer time | 0 (overhead) |
| \`propagation_ms\` | two server processes on PostgreSQL (\`BENCH_DATABASE_URL\`): a REST change sent to process A (a message edit, a character switched on or off) → the pushed \`message_updated\` / \`active_characters_data\` received by a client of process B (\`bench/propagation.ts\`) | – (target p99 ≤ 100) |
| \`voice_to_voice_ms\` and its breakdown | last speech sample sent → first binary frame of the reply received, per kind of utterance and pacing (\`bench/voice.ts\`) | engine path |
| server's own view | the server's \`/metrics\` over each step: \`chorus_llm_first_token_seconds\`, \`chorus_tts_first_byte_seconds\`, \`chorus_first_audio_seconds\` (user message received → first frame sent), \`chorus_interrupt_seconds\`, \`chorus_turns_total\`, \`chorus_errors_total\`, \`chorus_open_sessions\`; quantiles interpolated in the histogram buckets, so coarse | – |
| CPU s / turn, CPU | the server's user + system CPU time over the step ÷ turns, and ÷ wall time | – |
| bench loop p99, bench CPU | the same timer lateness in the bench process, and its CPU use: its own load delays the "received" stamps, so a high value here inflates every overhead above | 0 |
| other cores | CPU cores busy with other processes during the step (from \`/proc/stat\`, interrupts and softirq left out): on a shared machine, anything above 0 skews every figure | 0 |
| espeak real-time factor | synthesis time ÷ audio duration per sentence, in the server's espeak worker pool | – |
| Silero VAD µs / window | one 32 ms window (512 samples at 16 kHz) through the VAD model, in-process | – |
| message insert, history load | \`Repo.createMessage\` (one transaction) and \`Repo.listMessages\` of a whole conversation, on PGlite in a data directory and on PostgreSQL | – |

## Metrics

\`GET /metrics\` serves Prometheus text (prom-client): the default Node.js process metrics
(\`process_cpu_seconds_total\`, \`process_resident_memory_bytes\`, heap, GC,
\`nodejs_eventloop_lag_*\`) and Chorus's own: histograms \`chorus_llm_first_token_seconds\`,
\`chorus_tts_first_byte_seconds\`, \`chorus_stt_latency_seconds\`, \`chorus_first_audio_seconds\`,
\`chorus_interrupt_seconds\`, \`chorus_event_loop_delay_seconds\`; gauge \`chorus_open_sessions\`;
counters \`chorus_turns_total\`, \`chorus_errors_total{code}\`,
\`chorus_preemptive_turns_total{outcome}\` and \`chorus_barge_ins_total{outcome}\`. They are
defined in \`src/metrics.ts\`.
`;
}

/** Replaces the results between the markers of an existing page, or writes the whole page. */
export function updatePerformancePage(existing: string | undefined, results: string): string {
  if (existing) {
    const start = existing.indexOf(RESULTS_START);
    const end = existing.indexOf(RESULTS_END);
    if (start >= 0 && end > start) return existing.slice(0, start) + results + existing.slice(end + RESULTS_END.length);
  }
  return performancePage(results);
}

// ── docs/latency.svg ──

const CHART_ROWS: Array<[string, string]> = [
  ['llm_request_ms', 'message → LLM request'],
  ['text_overhead_ms', 'text overhead'],
  ['sentence_overhead_ms', 'sentence overhead'],
  ['audio_overhead_ms', 'audio overhead'],
  ['interrupt_ack_ms', 'interrupt ack'],
  ['upstream_close_ms', 'upstream close'],
  ['ideal_first_audio_ms', 'ideal first audio'],
  ['first_audio_ms', 'first audio'],
];
const TARGET_LINES: Record<string, number[]> = {
  text_overhead_ms: [1, 5],
  sentence_overhead_ms: [2],
  audio_overhead_ms: [2, 10],
  interrupt_ack_ms: [10],
  upstream_close_ms: [20],
};
const COLORS = ['#2563eb', '#d97706', '#059669', '#7c3aed'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Horizontal percentile bars on a log scale: min–max whisker, p10–p90 bar, p50 dot, p99 tick. */
export function latencySvg(r: BenchResult): string {
  const steps = r.steps;
  const left = 180;
  const right = 30;
  const width = 900;
  const plot = width - left - right;
  const rowH = 16 + steps.length * 14;
  const top = 58;
  const height = top + CHART_ROWS.length * rowH + 48;
  const lo = 0.01;
  const hi = 10_000;
  const x = (v: number) => left + (Math.log10(Math.min(hi, Math.max(lo, v)) / lo) / Math.log10(hi / lo)) * plot;
  const p = (profile: Array<{ p: number; value: number }>, q: number) => profile.find((e) => Math.abs(e.p - q) < 1e-9)?.value;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${left}" y="20" font-size="14" font-weight="600">Latency distributions (ms, log scale): min–max, p10–p90, ● p50, | p99</text>`);
  steps.forEach((s, i) => {
    const lx = left + i * 150;
    out.push(`<rect x="${lx}" y="32" width="12" height="8" fill="${COLORS[i % COLORS.length]}"/><text x="${lx + 18}" y="40">${s.sessions} sessions</text>`);
  });
  out.push(`<line x1="${left + 330}" y1="30" x2="${left + 330}" y2="42" stroke="#dc2626" stroke-dasharray="3,2"/><text x="${left + 336}" y="40">target</text>`);
  // Grid.
  const axisY = top + CHART_ROWS.length * rowH + 6;
  for (let e = -2; e <= 4; e++) {
    const v = 10 ** e;
    const gx = x(v).toFixed(1);
    out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${axisY}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${gx}" y="${axisY + 16}" text-anchor="middle" fill="#374151">${v >= 1 ? v.toLocaleString('en-US') : v}</text>`);
  }
  out.push(`<text x="${left + plot / 2}" y="${axisY + 34}" text-anchor="middle" fill="#374151">milliseconds</text>`);
  CHART_ROWS.forEach(([key, label], row) => {
    const y0 = top + row * rowH;
    out.push(`<text x="${left - 10}" y="${y0 + rowH / 2 + 4}" text-anchor="end">${esc(label)}</text>`);
    for (const limit of TARGET_LINES[key] ?? []) {
      const tx = x(limit).toFixed(1);
      out.push(`<line x1="${tx}" y1="${y0 + 2}" x2="${tx}" y2="${y0 + rowH - 2}" stroke="#dc2626" stroke-dasharray="3,2"/>`);
    }
    steps.forEach((s, i) => {
      const profile = s.profiles[key] ?? [];
      const color = COLORS[i % COLORS.length] as string;
      const cy = y0 + 10 + i * 14;
      const [min, p10, p50, p90, p99, max] = [0, 0.1, 0.5, 0.9, 0.99, 1].map((q) => p(profile, q));
      if (min === undefined || max === undefined || p50 === undefined) {
        out.push(`<text x="${left + 4}" y="${cy + 4}" fill="#9ca3af">no samples</text>`);
        return;
      }
      out.push(`<line x1="${x(min).toFixed(1)}" y1="${cy}" x2="${x(max).toFixed(1)}" y2="${cy}" stroke="${color}" stroke-opacity="0.5"/>`);
      if (p10 !== undefined && p90 !== undefined) {
        out.push(`<rect x="${x(p10).toFixed(1)}" y="${cy - 4}" width="${Math.max(1, x(p90) - x(p10)).toFixed(1)}" height="8" fill="${color}" fill-opacity="0.35" stroke="${color}"/>`);
      }
      out.push(`<circle cx="${x(p50).toFixed(1)}" cy="${cy}" r="3.5" fill="${color}"/>`);
      if (p99 !== undefined) out.push(`<line x1="${x(p99).toFixed(1)}" y1="${cy - 6}" x2="${x(p99).toFixed(1)}" y2="${cy + 6}" stroke="${color}" stroke-width="2"/>`);
      const tip = `${s.sessions} sessions: p50 ${p50} ms, p99 ${p99 ?? '–'} ms, max ${max} ms`;
      out.push(`<title>${esc(tip)}</title>`);
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
