// npm run bench: what the server adds to a voice conversation, in numbers. Starts the real server
// as its own process against the loopback engine server of the tests (running here, in the bench
// process), drives real WebSocket sessions, measures, prints a table, writes
// bench/results/latest.json, docs/performance.md and docs/latency.svg, and exits 1 when a target
// is missed (2 when the run itself failed). See docs/performance.md.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startEngineServer } from '../test/support/engine-server.ts';
import { analyzeStep } from './analyze.ts';
import { BenchClient, newTurn } from './client.ts';
import { benchPglite, benchPostgres } from './db.ts';
import { benchEspeak, benchVad } from './engines.ts';
import {
  type BenchResult,
  checkTargets,
  consoleReport,
  voiceTargets,
  propagationTargets,
  voiceText,
  latencySvg,
  type LoadFigures,
  resultsMarkdown,
  type StepReport,
  updatePerformancePage,
} from './report.ts';
import { newestProfile, summarizeProfile } from './profile.ts';
import { startServer } from './server.ts';
import { benchSpeechInput } from './speech-input.ts';
import { benchEndpointing } from './endpointing.ts';
import { benchVoice, type VoiceFigures } from './voice.ts';
import { benchPropagation, type PropagationFigures, propagationText, skippedPropagation } from './propagation.ts';
import { runStep, Tracker } from './step.ts';
import { planTurn } from './replies.ts';
import { prng } from './stats.ts';
import { perProcess, rssMbOf } from './workers.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const HELP = `npm run bench -- [options]

  --sessions N          concurrent sessions of the latency step (default 50)
  --load-sessions N,..  concurrent sessions of the load step(s), up to 500 (default 200; 0 = none)
  --duration S          seconds of turns per step (default 20)
  --interrupt-every N   every Nth turn of a session is interrupted (default 4; 0 = never)
  --seed N              seed of the scripted conversation (default 1)
  --tts-realtime F      pace of the fake TTS: 1 = real time (default), 0.25 = four times as fast
  --tts-ms-per-char N   audio the fake TTS makes per character of text (default 60, about speaking pace)
  --workers N           run the server with WORKERS=N (default 1) and report each process's figures too
  --quick               fewer engine and database samples (for a smoke test)
  --results FILE        where to write the JSON (default bench/results/latest.json; with --voice-only, bench/results/voice.json)
  --docs DIR            where to write performance.md and latency.svg (default docs)
  --no-docs             do not write docs
  --profile             run the server with --cpu-prof and list its hottest functions
  --db-messages N       messages inserted per database (default 500; 0 skips the database figures)
  --no-engines          skip the espeak / Silero VAD figures and the endpointing analysis
  --voice-utterances N  utterances per kind and pacing of the voice-to-voice figures (default 8; 0 skips them)
  --voice-only          only the voice-to-voice figures: print them and write them (alone) to --results; no docs
  --propagation         only propagation_ms (two server processes on PostgreSQL): print it and write it (alone) to --results; no docs
  --propagation-samples N  changes measured for propagation_ms (default 200; 0 skips it)
  --from FILE           do not run: print the report of a result file and re-render the docs from it
  --help                this text

Environment: DATABASE_URL (the server's database instead of a temporary DATA_DIR),
BENCH_DATABASE_URL or TEST_DATABASE_URL (PostgreSQL for the database figures and propagation_ms).`;

export interface BenchOptions {
  sessions: number;
  loadSessions: number[];
  durationS: number;
  interruptEvery: number;
  seed: number;
  results: string;
  docs: string | undefined;
  profile: boolean;
  dbMessages: number;
  engines: boolean;
  ttsRealtime: number;
  ttsMsPerChar: number;
  quick: boolean;
  voiceUtterances: number;
  voiceOnly: boolean;
  propagationOnly: boolean;
  propagationSamples: number;
  /** Server processes (WORKERS); over 1, each one's figures are reported too. */
  workers: number;
  /** Re-render from this result file instead of running. */
  from: string | undefined;
  log: (line: string) => void;
}

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      sessions: { type: 'string', default: '50' },
      'load-sessions': { type: 'string', default: '200' },
      duration: { type: 'string', default: '20' },
      'interrupt-every': { type: 'string', default: '4' },
      seed: { type: 'string', default: '1' },
      'tts-realtime': { type: 'string', default: '1' },
      'tts-ms-per-char': { type: 'string', default: '60' },
      quick: { type: 'boolean', default: false },
      results: { type: 'string' },
      docs: { type: 'string', default: join(ROOT, 'docs') },
      'no-docs': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'db-messages': { type: 'string', default: '500' },
      'no-engines': { type: 'boolean', default: false },
      'voice-utterances': { type: 'string', default: '8' },
      'voice-only': { type: 'boolean', default: false },
      propagation: { type: 'boolean', default: false },
      'propagation-samples': { type: 'string', default: '200' },
      workers: { type: 'string', default: '1' },
      from: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const int = (name: string, raw: string, min: number, max: number) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(raw)}`);
    return n;
  };
  const duration = Number(values.duration);
  if (!(duration > 0 && duration <= 3600)) throw new Error(`--duration must be a number of seconds from 0 to 3600, not ${JSON.stringify(values.duration)}`);
  const realtime = Number(values['tts-realtime']);
  if (!(realtime >= 0 && realtime <= 10)) throw new Error(`--tts-realtime must be a number from 0 to 10, not ${JSON.stringify(values['tts-realtime'])}`);
  return {
    sessions: int('sessions', values.sessions, 1, 500),
    loadSessions: values['load-sessions']
      .split(',')
      .map((s) => int('load-sessions', s.trim(), 0, 500))
      .filter((n) => n > 0),
    durationS: duration,
    interruptEvery: int('interrupt-every', values['interrupt-every'], 0, 1000),
    seed: int('seed', values.seed, 0, 2 ** 31),
    results: resolve(values.results ?? join(ROOT, values['voice-only'] ? 'bench/results/voice.json' : values.propagation ? 'bench/results/propagation.json' : 'bench/results/latest.json')),
    docs: values['no-docs'] ? undefined : resolve(values.docs),
    profile: values.profile,
    dbMessages: int('db-messages', values['db-messages'], 0, 100_000),
    engines: !values['no-engines'],
    ttsRealtime: realtime,
    ttsMsPerChar: int('tts-ms-per-char', values['tts-ms-per-char'], 1, 1000),
    quick: values.quick,
    voiceUtterances: int('voice-utterances', values['voice-utterances'], 0, 100),
    voiceOnly: values['voice-only'],
    propagationOnly: values.propagation,
    propagationSamples: int('propagation-samples', values['propagation-samples'], 0, 100_000),
    workers: int('workers', values.workers, 1, 16),
    from: values.from === undefined ? undefined : resolve(values.from),
    log: (line) => console.log(line),
  };
}

/** The engines' timing in the bench: a realistic hosted LLM and a real-time-paced TTS. */
const LLM = { firstTokenDelayMs: 300, tokenDelayMs: [20, 30] as [number, number] };
const TTS = { firstByteDelayMs: 150, chunkMs: 20, sampleRate: 24_000 };

/** The loopback engine server every part of the bench talks to. */
const startEngines = (o: Pick<BenchOptions, 'ttsMsPerChar' | 'ttsRealtime'>) =>
  startEngineServer({
    model: 'bench-model',
    chat: { firstTokenDelayMs: LLM.firstTokenDelayMs, tokenDelayMs: LLM.tokenDelayMs[0] },
    speech: { ...TTS, msPerChar: o.ttsMsPerChar, realtimeFactor: o.ttsRealtime },
    transcription: { text: 'Mira, what do you see out there?', delayMs: 100 },
  });

/** The server's environment: the loopback engines for LLM, TTS and STT, speech input at its defaults. */
function serverEnv(engineUrl: string, dataDir: string, databaseUrl: string | undefined): Record<string, string> {
  return {
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : { DATA_DIR: dataDir }),
    LLM_BASE_URL: engineUrl,
    LLM_API_KEY: 'bench',
    LLM_MODEL: 'bench-model',
    TTS_ENGINE: 'openai',
    TTS_BASE_URL: engineUrl,
    TTS_SAMPLE_RATE: String(TTS.sampleRate),
    STT_ENGINE: 'openai',
    STT_BASE_URL: engineUrl,
    // Load, not the limits, is what is measured: up to 500 sessions, turns as fast as replies end.
    MAX_SESSIONS: '1000',
    RATE_LIMIT_TURNS: '1000',
    LOG_LEVEL: 'warn',
    SEED_STARTER_CAST: 'true',
    WEB_DIR: join(dataDir, 'no-web-client'),
  };
}

/** --voice-only: the server, the voice-to-voice figures, nothing else. */
export async function runVoiceOnly(o: BenchOptions): Promise<VoiceFigures> {
  const engines = await startEngines(o);
  const dataDir = await mkdtemp(join(tmpdir(), 'chorus-bench-'));
  await mkdir(dirname(o.results), { recursive: true });
  const server = await startServer({ root: ROOT, env: serverEnv(engines.baseUrl, dataDir, process.env.DATABASE_URL), logFile: join(dirname(o.results), 'server.log') });
  try {
    await speakThroughDefaultEngine(server.httpUrl);
    await onlyTheNamedAnswer(server.httpUrl);
    return await benchVoice({ server, engines, utterances: Math.max(1, o.voiceUtterances), log: o.log });
  } finally {
    await server.stop();
    await engines.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export async function runBench(o: BenchOptions): Promise<BenchResult> {
  const started = Date.now();
  const notes: string[] = [];
  const log = (line: string) => o.log(line.startsWith('\n') ? `\n[${elapsed()}] ${line.slice(1)}` : line.startsWith(' ') ? line : `[${elapsed()}] ${line}`);
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s`;
  await mkdir(dirname(o.results), { recursive: true });

  const engines = await startEngines(o);
  const tracker = new Tracker({ sampleRate: TTS.sampleRate, msPerChar: o.ttsMsPerChar });
  const installScripts = () => {
    engines.chat.script((request) => tracker.chatReply(request));
    engines.speech.script((request) => tracker.speechReply(request));
  };
  installScripts();

  const dataDir = await mkdtemp(join(tmpdir(), 'chorus-bench-'));
  const profileDir = o.profile ? join(dirname(o.results), 'profile') : undefined;
  if (profileDir) {
    await rm(profileDir, { recursive: true, force: true });
    await mkdir(profileDir, { recursive: true });
  }
  const databaseUrl = process.env.DATABASE_URL;
  const env = { ...serverEnv(engines.baseUrl, dataDir, databaseUrl), WORKERS: String(o.workers) };
  // A smoke test (--quick) measures the engines and databases while the server starts, to save
  // time; a real run measures them after the server has stopped, on a machine otherwise idle.
  const sideBenches = o.quick ? runSideBenches(o, log) : undefined;
  sideBenches?.catch(() => {});
  log(`Starting the server (node --import tsx src/main.ts) on ${databaseUrl ? 'DATABASE_URL' : `a fresh DATA_DIR (${dataDir})`} …`);
  const server = await startServer({ root: ROOT, env, workers: o.workers, logFile: join(dirname(o.results), 'server.log'), ...(profileDir ? { profileDir } : {}) });
  if (server.workerPids.length > 0) log(`WORKERS=${o.workers}: worker pids ${server.workerPids.join(', ')} (primary ${server.pid})`);

  const steps: StepReport[] = [];
  const windows: Array<[bigint, bigint]> = [];
  const load: LoadFigures[] = [];
  let speechInput: BenchResult['speech_input'] = { end_of_speech_to_final_ms: null, overhead_ms: null, note: 'not measured' };
  let voice: VoiceFigures | null = null;
  let rssIdle = 0;
  const idleRssByPid = new Map<number, number>();
  try {
    // The starter cast's voices name the espeak engine, which is always live beside the bench's
    // TTS: they are moved to the default engine (the bench's real-time-paced TTS) so every
    // sentence goes through the speech server the bench measures.
    await speakThroughDefaultEngine(server.httpUrl);
    await onlyTheNamedAnswer(server.httpUrl);
    // Warm-up: one turn with audio loads whatever the server loads lazily, so the idle RSS is honest.
    const warm = await BenchClient.connect(server.wsUrl, -1, (p) => notes.push(`warm-up: ${p}`));
    const plan = planTurn({ tag: 0, session: -1, turn: 0, names: warm.names, random: prng(o.seed), llm: LLM, interruptEvery: 0 });
    const turn = newTurn(plan);
    tracker.register(turn);
    warm.startTurn(turn);
    if (!(await warm.waitFor(() => turn.audioStopAt !== undefined, 30_000))) throw new Error(`the warm-up turn did not finish:\n${server.tail()}`);
    await warm.close();
    await new Promise((r) => setTimeout(r, 500));
    await server.collectGarbage(); // what start-up left behind (PGlite's load buffers) is not the idle footprint
    await new Promise((r) => setTimeout(r, 500));
    rssIdle = server.rssMb();
    for (const pid of server.workerPids) idleRssByPid.set(pid, rssMbOf(pid));
    log(`Server up (pid ${server.pid}), idle RSS ${rssIdle.toFixed(0)} MB after a warm-up turn.`);

    // Speech input, when the server has it.
    speechInput = await benchSpeechInput({ server, engines, log, quick: o.quick });
    // Voice to voice, with the engines at its own latencies (bench/voice.ts).
    if (o.voiceUtterances > 0) voice = await benchVoice({ server, engines, utterances: o.quick ? 1 : o.voiceUtterances, log });

    let tag = 1000;
    const stepSizes = [o.sessions, ...o.loadSessions.filter((n) => n !== o.sessions)];
    for (const sessions of stepSizes) {
      engines.reset();
      tracker.clear();
      installScripts();
      log(`\nStep: ${sessions} sessions, ${o.durationS} s`);
      await server.collectGarbage();
      const step = await runStep({
        server,
        engines,
        tracker,
        sessions,
        durationS: o.durationS,
        seed: o.seed + sessions,
        llm: LLM,
        interruptEvery: o.interruptEvery,
        firstTag: tag,
        ...(server.workerPids.length > 0 ? { workers: server.workerPids } : {}),
        log,
      });
      tag = step.nextTag + 1000;
      windows.push(step.window);
      const analysis = analyzeStep(step.turns, sessions);
      const strays = step.strays.map((r) => `a speech request no turn expects: ${JSON.stringify(r.body.input).slice(0, 80)}`);
      const problems = [...step.problems, ...analysis.problems, ...strays];
      steps.push({
        sessions,
        duration_s: o.durationS,
        turns: analysis.turns,
        completed: analysis.completed,
        interrupts: analysis.interrupts,
        errors: problems.length,
        problems: problems.slice(0, 20),
        figures: analysis.figures,
        profiles: analysis.profiles,
        ...(step.processes ? { per_process: perProcess(step.turns, step.processes, idleRssByPid) } : {}),
      });
      for (const p of steps.at(-1)?.per_process ?? []) {
        const missed = p.targets.filter((t) => !t.pass).map((t) => t.name);
        log(
          `  pid ${p.pid}: ${p.sessions} sessions, ${p.turns} turns, text ${p.figures.text_overhead_ms.p50} / ${p.figures.text_overhead_ms.p99} ms, ` +
            `audio ${p.figures.audio_overhead_ms.p50} / ${p.figures.audio_overhead_ms.p99} ms, interrupt_ack p99 ${p.figures.interrupt_ack_ms.p99} ms, ` +
            `loop p99 ${p.event_loop_delay_ms.p99} ms, RSS ${p.rss_mb} MB, ${p.errors} errors; targets missed: ${missed.length ? missed.join('; ') : 'none'}`,
        );
      }
      const l = step.load;
      load.push({
        sessions,
        turns: analysis.turns,
        errors: problems.length,
        window_s: l.window_s,
        event_loop_delay_ms: l.event_loop_delay_ms,
        rss_idle_mb: Math.round(rssIdle * 10) / 10,
        rss_mb: l.rss_mb,
        rss_mean_mb: l.rss_mean_mb,
        rss_per_session_mb: Math.round(((l.rss_mb - rssIdle) / sessions) * 1000) / 1000,
        cpu_seconds: l.cpu_seconds,
        cpu_seconds_per_turn: analysis.turns > 0 ? Math.round((l.cpu_seconds / analysis.turns) * 10000) / 10000 : null,
        cpu_utilization: l.cpu_utilization,
        bench_loop_delay_ms: l.bench_loop_delay_ms,
        bench_cpu_utilization: l.bench_cpu_utilization,
        other_cpu_cores: l.other_cpu_cores,
        server_metrics: l.server_metrics,
      });
      log(
        `  text ${analysis.figures.text_overhead_ms.p50} / ${analysis.figures.text_overhead_ms.p99} ms, audio ${analysis.figures.audio_overhead_ms.p50} / ${analysis.figures.audio_overhead_ms.p99} ms, ` +
          `loop p99 ${l.event_loop_delay_ms.p99} ms, RSS ${l.rss_mb} MB, ${problems.length} errors`,
      );
    }
  } finally {
    await server.stop();
    await engines.close();
    await rm(dataDir, { recursive: true, force: true });
  }

  const profileFile = profileDir ? newestProfile(profileDir) : undefined;
  const profile = profileFile ? steps.map((step, i) => ({ sessions: step.sessions, ...summarizeProfile(profileFile, ROOT, windows.slice(i, i + 1)) })) : null;
  if (profileDir && !profile) notes.push('--profile: the server wrote no CPU profile');

  const { engines: enginesResult, database } = await (sideBenches ?? runSideBenches(o, log));
  const propagation = await runPropagation(o, log);
  // The endpointing analysis (espeak and the VAD, in this process) once the server has stopped, even with --quick.
  if (o.engines) {
    log('Endpointing: the bench\'s turns through the VAD …');
    try {
      enginesResult.endpointing = await benchEndpointing();
      enginesResult.endpointing_note = null;
    } catch (error) {
      enginesResult.endpointing_note = `failed: ${message(error)}`;
    }
  }

  const latencyStep = steps[0];
  if (!latencyStep) throw new Error('no step ran');
  const result: BenchResult = {
    schema: 1,
    generated_at: new Date().toISOString(),
    duration_s: Math.round((Date.now() - started) / 100) / 10,
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model.trim() ?? 'unknown',
      memory_gb: Math.round(totalmem() / 2 ** 30),
      node: process.versions.node,
      platform: `${process.platform} ${process.arch}`,
    },
    config: {
      sessions: o.sessions,
      load_sessions: o.loadSessions,
      duration_s: o.durationS,
      seed: o.seed,
      interrupt_every: o.interruptEvery,
      llm: { first_token_delay_ms: LLM.firstTokenDelayMs, token_delay_ms: LLM.tokenDelayMs },
      tts: { first_byte_delay_ms: TTS.firstByteDelayMs, realtime_factor: o.ttsRealtime, chunk_ms: TTS.chunkMs, sample_rate: TTS.sampleRate, ms_per_char: o.ttsMsPerChar },
      database: databaseUrl ? 'postgres' : 'pglite',
      workers: o.workers,
    },
    latency: { ...latencyStep.figures, turns: latencyStep.turns, interrupts: latencyStep.interrupts, errors: latencyStep.errors },
    speech_input: speechInput,
    voice,
    load,
    steps,
    engines: enginesResult,
    database,
    propagation,
    profile,
    targets: [],
    pass: false,
    notes,
  };
  result.targets = checkTargets(result);
  result.pass = result.targets.every((t) => t.pass);
  for (const step of steps) for (const p of step.problems.slice(0, 5)) notes.push(`${step.sessions} sessions: ${p}`);
  return result;
}


/** espeak, Silero VAD and the databases, in this process. */
async function runSideBenches(o: BenchOptions, log: (line: string) => void): Promise<Pick<BenchResult, 'engines' | 'database'>> {
  const enginesResult: BenchResult['engines'] = {
    espeak: null,
    espeak_note: 'skipped (--no-engines)',
    silero_vad: null,
    silero_vad_note: 'skipped (--no-engines)',
    endpointing: null,
    endpointing_note: 'skipped (--no-engines)',
  };
  if (o.engines) {
    log('\nEngines: espeak-ng, Silero VAD …');
    try {
      enginesResult.espeak = await benchEspeak(o.quick ? 1 : 3);
      enginesResult.espeak_note = null;
    } catch (error) {
      enginesResult.espeak_note = `failed: ${message(error)}`;
    }
    try {
      const vad = await benchVad(o.quick ? 100 : 1000);
      enginesResult.silero_vad = vad.figures;
      enginesResult.silero_vad_note = vad.note;
    } catch (error) {
      enginesResult.silero_vad_note = `failed: ${message(error)}`;
    }

  }
  const database: BenchResult['database'] = { pglite: null, pglite_note: 'skipped (--db-messages 0)', postgres: null, postgres_note: 'skipped (--db-messages 0)' };
  if (o.dbMessages > 0) {
    log('Database: PGlite, PostgreSQL …');
    const loads = o.quick ? 5 : 50;
    try {
      database.pglite = await benchPglite(o.dbMessages, loads);
      database.pglite_note = null;
    } catch (error) {
      database.pglite_note = `failed: ${message(error)}`;
    }
    const pgUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
    if (!pgUrl) database.postgres_note = 'skipped: set BENCH_DATABASE_URL or TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)';
    else {
      try {
        database.postgres = await benchPostgres(pgUrl, o.dbMessages, loads);
        database.postgres_note = null;
      } catch (error) {
        database.postgres_note = `skipped: PostgreSQL at ${redact(pgUrl)} is not usable: ${message(error)}`;
      }
    }
  }

  return { engines: enginesResult, database };
}

/** propagation_ms, on its own two server processes (the bench's server has stopped by then). */
async function runPropagation(o: BenchOptions, log: (line: string) => void): Promise<PropagationFigures> {
  if (o.propagationSamples === 0) return skippedPropagation('skipped (--propagation-samples 0)');
  try {
    return await benchPropagation({ root: ROOT, baseUrl: process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL, samples: o.quick ? Math.min(20, o.propagationSamples) : o.propagationSamples, logDir: dirname(o.results), log });
  } catch (error) {
    return skippedPropagation(`failed: ${message(error)}`);
  }
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));
const redact = (url: string) => url.replace(/\/\/[^@/]*@/, '//…@');

export async function writeOutputs(result: BenchResult, o: Pick<BenchOptions, 'results' | 'docs'>): Promise<void> {
  await mkdir(dirname(o.results), { recursive: true });
  await writeFile(o.results, `${JSON.stringify(result, null, 2)}\n`);
  if (o.docs) {
    await mkdir(o.docs, { recursive: true });
    const page = join(o.docs, 'performance.md');
    const existing = await readFile(page, 'utf8').catch(() => undefined);
    await writeFile(page, updatePerformancePage(existing, resultsMarkdown(result, 'latency.svg')));
    await writeFile(join(o.docs, 'latency.svg'), latencySvg(result));
  }
}

async function main(): Promise<number> {
  let options: BenchOptions | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`${message(error)}\n\n${HELP}`);
    return 2;
  }
  if (options === 'help') {
    console.log(HELP);
    return 0;
  }
  if (options.propagationOnly) {
    await mkdir(dirname(options.results), { recursive: true });
    const propagation = await runPropagation(options, options.log);
    await writeFile(options.results, `${JSON.stringify({ generated_at: new Date().toISOString(), propagation }, null, 2)}\n`);
    console.log(`\n${propagationText(propagation)}\nWrote ${options.results}.`);
    return propagationTargets(propagation).every((t) => t.pass) ? 0 : 1;
  }
  if (options.voiceOnly) {
    const voice = await runVoiceOnly(options);
    await writeFile(options.results, `${JSON.stringify({ generated_at: new Date().toISOString(), voice }, null, 2)}\n`);
    console.log(`\n${voiceText(voice, false)}\nWrote ${options.results}.`);
    return voiceTargets(voice).every((t) => t.pass) ? 0 : 1;
  }
  const result = options.from ? (JSON.parse(await readFile(options.from, 'utf8')) as BenchResult) : await runBench(options);
  await writeOutputs(result, { ...options, results: options.from ?? options.results });
  console.log(consoleReport(result));
  console.log(`Wrote ${options.results}${options.docs ? `, ${join(options.docs, 'performance.md')} and ${join(options.docs, 'latency.svg')}` : ''}.`);
  return result.pass ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error('The benchmark failed:', error);
      process.exit(2);
    },
  );
}

/** Every stored voice speaks through the server's default engine (TTS_ENGINE). */
/**
 * The scripted conversation names the character each message is for; under the default `natural`
 * strategy an unnamed character still chimes in with probability `talkativeness`, so the bench
 * sets it to 0: one message, one reply, as every turn's figures assume.
 */
async function onlyTheNamedAnswer(httpUrl: string): Promise<void> {
  const characters = (await (await fetch(`${httpUrl}/api/characters`)).json()) as Array<{ id: string }>;
  for (const { id } of characters) {
    const response = await fetch(`${httpUrl}/api/characters/${encodeURIComponent(id)}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ talkativeness: 0 }),
    });
    if (!response.ok) throw new Error(`bench: could not set the talkativeness of ${id} (HTTP ${response.status})`);
  }
}

async function speakThroughDefaultEngine(httpUrl: string): Promise<void> {
  const voices = (await (await fetch(`${httpUrl}/api/voices`)).json()) as Array<{ voice: string }>;
  for (const { voice } of voices) {
    const response = await fetch(`${httpUrl}/api/voices/${encodeURIComponent(voice)}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ engine: null }),
    });
    if (!response.ok) throw new Error(`bench: could not move the voice ${voice} to the default engine (HTTP ${response.status})`);
  }
}
