// The benchmark (npm run bench) in a tiny configuration: it must run end to end (the real server
// in its own process, the loopback engine server, a few sessions) and write a result document
// with every figure in its place. No timing is asserted: on a shared machine that would be a
// flaky test; the targets are `npm run bench`'s business, not `npm test`'s.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
let dir: string;
let run: { code: number | null; output: string; result: Record<string, unknown> };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chorus-bench-test-'));
  const results = join(dir, 'latest.json');
  const args = ['--import', 'tsx', 'bench/run.ts', '--sessions', '2', '--load-sessions', '3', '--duration', '2', '--tts-realtime', '0.1', '--tts-ms-per-char', '15', '--quick', '--db-messages', '10', '--results', results, '--docs', dir];
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const text = await readFile(results, 'utf8').catch(() => undefined);
  assert.ok(text, `the bench wrote no ${results} (exit code ${code}):\n${output}`);
  run = { code, output, result: JSON.parse(text) as Record<string, unknown> };
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Check = 'number' | 'string' | 'boolean' | 'summary' | 'summary?' | 'number?' | 'string?' | 'object?';

const isSummary = (v: unknown, sessions?: number) => {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  const numOrNull = (x: unknown) => x === null || typeof x === 'number';
  return numOrNull(s.p50) && numOrNull(s.p99) && numOrNull(s.max) && typeof s.n === 'number' && typeof s.sessions === 'number' && (sessions === undefined || s.sessions === sessions);
};

function check(value: unknown, path: string, kind: Check, sessions?: number): void {
  const at = (p: string) => p.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), value);
  const v = at(path);
  const ok = {
    number: typeof v === 'number' && Number.isFinite(v),
    string: typeof v === 'string',
    boolean: typeof v === 'boolean',
    summary: isSummary(v, sessions),
    'summary?': v === null || isSummary(v, sessions),
    'number?': v === null || typeof v === 'number',
    'string?': v === null || typeof v === 'string',
    'object?': v === null || typeof v === 'object',
  }[kind];
  assert.ok(ok, `${path} should be ${kind}${sessions === undefined ? '' : ` at ${sessions} sessions`}, got ${JSON.stringify(v)}`);
}

test('the bench runs end to end: turns and interrupts without errors, no frame after an ack, and its exit code follows its targets', () => {
  assert.ok(run.code === 0 || run.code === 1, `exit code ${run.code}:\n${run.output}`);
  assert.match(run.output, /Targets:/);
  const latency = run.result.latency as { turns: number; interrupts: number; errors: number; frames_after_interrupt: { total: number } };
  assert.ok(latency.turns > 0 && latency.interrupts > 0, `${latency.turns} turns, ${latency.interrupts} interrupts`);
  assert.equal(latency.errors, 0, 'turns without errors');
  assert.equal(latency.frames_after_interrupt.total, 0, 'nothing of a cancelled message after interrupt_ack');
  // A target passes exactly when its figure is within its limit, and the exit code says whether all did.
  const targets = run.result.targets as Array<{ name: string; value: number | null; limit: number; pass: boolean }>;
  for (const t of targets) assert.equal(t.pass, t.value !== null && t.value <= t.limit, t.name);
  assert.equal(run.code, targets.every((t) => t.pass) ? 0 : 1);
});

test('every latency figure is a summary taken at the latency step’s session count', () => {
  const r = run.result;
  for (const key of [
    'text_overhead_ms',
    'sentence_overhead_ms',
    'audio_overhead_ms',
    'first_audio_ms',
    'ideal_first_audio_ms',
    'first_audio_ratio',
    'interrupt_ack_ms',
    'upstream_close_ms',
    'llm_request_ms',
    'audio_chunk_overhead_ms',
    'llm_close_ms',
    'speech_close_ms',
    'sentence_gap_ms',
  ]) {
    check(r, `latency.${key}`, 'summary', 2);
  }
  // Turns ran, with text and audio: the figures on every turn's path have samples.
  for (const key of ['text_overhead_ms', 'sentence_overhead_ms', 'audio_overhead_ms', 'first_audio_ms', 'first_audio_ratio']) {
    const s = (r.latency as Record<string, { n: number }>)[key];
    assert.ok((s?.n ?? 0) > 0, `latency.${key} has no samples`);
  }
  for (const key of ['total', 'max', 'interrupts', 'sessions']) check(r, `latency.frames_after_interrupt.${key}`, 'number');
  for (const key of ['turns', 'interrupts', 'errors', 'late_upstream_requests']) check(r, `latency.${key}`, 'number');
});

test('load figures, one per step, with event-loop delay, RSS, CPU and errors', () => {
  const load = run.result.load as unknown[];
  assert.ok(Array.isArray(load) && load.length === 2, 'two load entries (2 and 3 sessions)');
  assert.deepEqual(
    load.map((l) => (l as { sessions: number }).sessions),
    [2, 3],
  );
  for (let i = 0; i < load.length; i++) {
    const l = load[i];
    for (const key of ['sessions', 'turns', 'errors', 'window_s', 'rss_idle_mb', 'rss_mb', 'rss_mean_mb', 'rss_per_session_mb', 'cpu_seconds', 'cpu_utilization', 'bench_cpu_utilization', 'other_cpu_cores']) {
      check(l, key, 'number');
    }
    check(l, 'cpu_seconds_per_turn', 'number?');
    for (const key of ['p50', 'p99', 'max']) check(l, `event_loop_delay_ms.${key}`, 'number?');
    check(l, 'event_loop_delay_ms.samples', 'number');
    assert.ok((l as { event_loop_delay_ms: { samples: number } }).event_loop_delay_ms.samples > 0, 'the server’s /metrics event-loop histogram has samples');
    for (const key of ['p99', 'max']) check(l, `bench_loop_delay_ms.${key}`, 'number?');
    // What the server recorded itself: its /metrics histograms and counters over the step.
    for (const h of ['llm_first_token_ms', 'tts_first_byte_ms', 'first_audio_ms', 'interrupt_ms']) {
      check(l, `server_metrics.${h}.p50`, 'number?');
      check(l, `server_metrics.${h}.p99`, 'number?');
      check(l, `server_metrics.${h}.count`, 'number');
    }
    check(l, 'server_metrics.turns', 'number');
    check(l, 'server_metrics.open_sessions', 'number?');
    check(l, 'server_metrics.errors', 'object?');
  }
});

test('steps, engines, database, speech input, targets and machine are all there', () => {
  const r = run.result;
  check(r, 'schema', 'number');
  check(r, 'generated_at', 'string');
  check(r, 'duration_s', 'number');
  for (const key of ['cpus', 'memory_gb']) check(r, `machine.${key}`, 'number');
  for (const key of ['cpu_model', 'node', 'platform']) check(r, `machine.${key}`, 'string');
  for (const key of ['sessions', 'duration_s', 'seed', 'interrupt_every', 'llm.first_token_delay_ms', 'tts.first_byte_delay_ms', 'tts.sample_rate']) check(r, `config.${key}`, 'number');
  const steps = r.steps as Array<Record<string, unknown>>;
  assert.equal(steps.length, 2);
  for (const step of steps) {
    for (const key of ['sessions', 'duration_s', 'turns', 'completed', 'interrupts', 'errors']) check(step, key, 'number');
    assert.ok(Array.isArray(step.problems));
    check(step, 'figures.text_overhead_ms', 'summary', step.sessions as number);
  }

  check(r, 'speech_input.end_of_speech_to_final_ms', 'summary?');
  check(r, 'speech_input.overhead_ms', 'summary?');
  check(r, 'speech_input.note', 'string?');
  const si = r.speech_input as { end_of_speech_to_final_ms: unknown; note: unknown };
  assert.ok(si.end_of_speech_to_final_ms !== null || typeof si.note === 'string', 'speech input: figures, or a note saying why not');

  // Voice to voice: four runs (real time and burst × sentence and trailing), each a summary per figure.
  check(r, 'voice', 'object?');
  const voice = r.voice as { runs: Array<Record<string, unknown>>; problems: unknown[]; note: unknown } | null;
  if (voice && voice.note === null) {
    assert.deepEqual(voice.runs.map((run) => `${run.pacing} ${run.kind}`), ['realtime sentence', 'realtime trailing', 'burst sentence', 'burst trailing']);
    for (const run of voice.runs) {
      for (const key of ['voice_to_voice_ms', 'endpointing_ms', 'stt_ms', 'llm_first_token_ms', 'first_fragment_ms', 'tts_first_byte_ms', 'engine_path_ms', 'server_overhead_ms']) check(run, key, 'summary', 1);
      for (const key of ['utterances', 'preemptive', 'wasted_llm_requests_per_utterance']) check(run, key, 'number');
    }
    assert.ok(Array.isArray(voice.problems));
    assert.ok((r.targets as Array<{ figure: string }>).some((t) => t.figure.startsWith('voice.')), 'the voice-to-voice goal is a target');
  } else check(r, 'voice.note', 'string?');
  // Propagation between two server processes: figures with PostgreSQL (TEST_DATABASE_URL), else a note.
  check(r, 'propagation', 'object?');
  const propagation = r.propagation as { note: unknown } | null;
  if (propagation && propagation.note === null) {
    for (const key of ['propagation_ms', 'message_ms', 'cast_ms', 'request_ms']) check(r, `propagation.${key}`, 'summary', 1);
    assert.ok((r.targets as Array<{ figure: string }>).some((t) => t.figure === 'propagation.propagation_ms.p99'), 'propagation_ms p99 is a target');
  } else check(r, 'propagation.note', 'string');
  check(r, 'engines.endpointing', 'object?');
  const endpointing = (r.engines as { endpointing?: { rows: Array<Record<string, unknown>> } | null }).endpointing;
  if (endpointing) {
    assert.ok(endpointing.rows.length > 0);
    for (const row of endpointing.rows) for (const key of ['silence_ms', 'pauses', 'cut_offs', 'ends', 'too_long']) check(row, key, 'number');
  }

  check(r, 'engines.espeak', 'object?');
  if ((r.engines as { espeak: unknown }).espeak !== null) {
    check(r, 'engines.espeak.rtf', 'summary');
    check(r, 'engines.espeak.first_audio_ms', 'summary');
    check(r, 'engines.espeak.sample_rate', 'number');
  } else check(r, 'engines.espeak_note', 'string');
  check(r, 'engines.silero_vad', 'object?');
  if ((r.engines as { silero_vad: unknown }).silero_vad !== null) check(r, 'engines.silero_vad.us_per_frame', 'summary');
  else check(r, 'engines.silero_vad_note', 'string');

  for (const db of ['pglite', 'postgres']) {
    const figures = (r.database as Record<string, unknown>)[db];
    if (figures === null) check(r, `database.${db}_note`, 'string');
    else {
      check(r, `database.${db}.insert_ms`, 'summary');
      check(r, `database.${db}.history_load_ms`, 'summary');
      check(r, `database.${db}.messages`, 'number');
    }
  }
  check(r, 'database.pglite.insert_ms', 'summary');

  const targets = r.targets as Array<Record<string, unknown>>;
  assert.ok(Array.isArray(targets) && targets.length >= 13, `13 targets or more, got ${targets.length}`);
  for (const t of targets) {
    check(t, 'name', 'string');
    check(t, 'figure', 'string');
    check(t, 'limit', 'number');
    check(t, 'value', 'number?');
    check(t, 'pass', 'boolean');
  }
  check(r, 'pass', 'boolean');
  assert.equal(r.pass, targets.every((t) => t.pass === true));
  assert.equal(run.code, r.pass ? 0 : 1, 'the exit code follows the targets');
  assert.ok(Array.isArray(r.notes));
});

test('the docs it writes: performance.md with the table, and an SVG chart', async () => {
  const page = await readFile(join(dir, 'performance.md'), 'utf8');
  assert.match(page, /bench:results:start/);
  assert.match(page, /\| text_overhead_ms \|/);
  const svg = await readFile(join(dir, 'latency.svg'), 'utf8');
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\s*$/);
});

test('src/metrics.ts: the recording functions land in the Prometheus text the server serves at /metrics', async () => {
  const { metrics, renderMetrics } = await import('../src/metrics.ts');
  const value = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const before = (await renderMetrics()).body;
  metrics.llmFirstToken(0.3);
  metrics.ttsFirstByte(0.15);
  metrics.sttLatency(0.2);
  metrics.firstAudio(0.6);
  metrics.interrupt(metrics.secondsSince(metrics.now()));
  metrics.sessionOpened();
  metrics.sessionOpened();
  metrics.sessionClosed();
  metrics.turnStarted();
  metrics.error('llm_error');
  metrics.error('llm_error');
  metrics.error('db_error');
  const { contentType, body } = await renderMetrics();
  assert.match(contentType, /^text\/plain/);
  const delta = (series: string) => value(body, series) - (Number.isNaN(value(before, series)) ? 0 : value(before, series));
  for (const name of ['chorus_llm_first_token_seconds', 'chorus_tts_first_byte_seconds', 'chorus_stt_latency_seconds', 'chorus_first_audio_seconds', 'chorus_interrupt_seconds']) {
    assert.equal(delta(`${name}_count`), 1, name);
  }
  assert.equal(delta('chorus_open_sessions'), 1);
  assert.equal(delta('chorus_turns_total'), 1);
  assert.equal(delta('chorus_errors_total{code="llm_error"}'), 2);
  assert.equal(delta('chorus_errors_total{code="db_error"}'), 1);
  assert.ok(value(body, 'chorus_event_loop_delay_seconds_count') >= 0);
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds']) assert.match(body, new RegExp(`^${name} `, 'm'));
});
