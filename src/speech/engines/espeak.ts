// The default TTS engine: eSpeak-NG (GPL-3.0, compiled to WASM by Echogarden) in a small pool
// of worker threads, since its synthesis is synchronous and would otherwise block the event
// loop. Jobs wait in one FIFO queue for the next free thread; each thread keeps its module warm
// (a sentence takes ~10 ms) and streams ~100 ms PCM chunks back as espeak produces them.
// Aborting drops a queued job, or tells the busy thread (through shared memory) to stop.
import { Worker } from 'node:worker_threads';
import type { EngineVoice, TtsEngine, VoiceLabel } from '../engine.ts';
import type { SynthRequest, VoiceInfo, WorkerInit, WorkerMessage } from './espeak-worker.ts';

const DEFAULT_VOICE = 'en-us+f3';
/** espeak's words per minute: normal, and the range it honours (it clamps to it silently). */
const NORMAL_RATE = 175;
const MIN_RATE = 80;
const MAX_RATE = 450;
const NORMAL_PITCH = 50;
const MAX_PITCH = 99;
/** Variants offered with every English voice by listVoices() (`+f1`…`+f5`, `+m1`…`+m8`). */
const NUMBERED_VARIANT = /^[fm]\d+$/;

export interface EspeakOptions {
  workers: number;
  defaultVoice?: string | undefined;
}

interface ReadyInfo {
  sampleRate: number;
  voices: VoiceInfo[];
  variants: string[];
}

export async function createEspeakEngine(opts: EspeakOptions): Promise<TtsEngine> {
  const defaultVoice: EngineVoice = { engineVoice: opts.defaultVoice ?? DEFAULT_VOICE, speed: 1, pitch: 1 };
  const { pool, info } = await EspeakPool.start(Math.max(1, Math.floor(opts.workers || 2)), defaultVoice.engineVoice);
  try {
    await drain(pool.submit(request('', defaultVoice))); // a bad default voice fails start-up, not every sentence
  } catch (error) {
    await pool.close();
    throw new Error(`espeak default voice: ${message(error)}`);
  }
  const labelled = offeredVoices(info);
  const voiceList = labelled.map((v) => v.voice);
  return {
    name: 'espeak',
    sampleRate: info.sampleRate,
    methods: ['preset'],
    defaultVoice,
    synthesize: (text, voice, signal) => stream(pool, request(text, voice), signal),
    listVoices: async () => [...voiceList],
    describeVoices: async () => labelled.map((v) => ({ ...v })),
    close: () => pool.close(),
  };
}

/**
 * Every voice by the name espeak accepts, then English voices with the numbered variants, then
 * en-us with the named ones; each with its language's name and its variant's, for people.
 */
function offeredVoices(info: ReadyInfo): VoiceLabel[] {
  const base = (v: VoiceInfo): VoiceLabel => ({ voice: v.name, language: v.label, variant: null });
  const withVariant = (v: VoiceInfo, variant: string): VoiceLabel => ({ voice: `${v.name}+${variant}`, language: v.label, variant: variantLabel(variant) });
  const english = info.voices.filter((v) => v.language.startsWith('en'));
  const enUs = info.voices.find((v) => v.name === 'en-us') ?? { name: 'en-us', language: 'en-us', label: 'English (America)' };
  const numbered = info.variants.filter((v) => NUMBERED_VARIANT.test(v));
  const named = info.variants.filter((v) => !NUMBERED_VARIANT.test(v) && !/\s/.test(v));
  return [...info.voices.map(base), ...english.flatMap((b) => numbered.map((v) => withVariant(b, v))), ...named.map((v) => withVariant(enUs, v))];
}

const VARIANT_KINDS = new Map([['f', 'female'], ['m', 'male']]);

/** `f3` → `female 3`, `m1` → `male 1`; a named variant by its name (`klatt` → `Klatt`). */
function variantLabel(variant: string): string {
  const numbered = /^([fm])(\d+)$/.exec(variant);
  if (numbered) return `${VARIANT_KINDS.get(numbered[1]!)} ${numbered[2]}`;
  return variant.charAt(0).toUpperCase() + variant.slice(1).replaceAll('_', ' ');
}

function request(text: string, voice: EngineVoice): Omit<SynthRequest, 'id'> {
  return {
    text,
    voice: voice.engineVoice,
    rate: Math.round(clamp(NORMAL_RATE * finiteOr1(voice.speed), MIN_RATE, MAX_RATE)),
    pitch: Math.round(clamp(NORMAL_PITCH * finiteOr1(voice.pitch), 0, MAX_PITCH)),
  };
}

async function* stream(pool: EspeakPool, req: Omit<SynthRequest, 'id'>, signal: AbortSignal): AsyncGenerator<Buffer> {
  if (signal.aborted) throw abortError(signal);
  const job = pool.submit(req);
  const onAbort = () => pool.cancel(job, abortError(signal));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (let chunk = await job.out.next(); chunk; chunk = await job.out.next()) yield chunk;
  } finally {
    signal.removeEventListener('abort', onAbort);
    pool.cancel(job, new Error('espeak: the consumer stopped reading')); // no-op once finished
  }
}

async function drain(job: Job): Promise<void> {
  while (await job.out.next());
}

function abortError(signal: AbortSignal): Error {
  const error = new Error('espeak: synthesis aborted', { cause: signal.reason });
  error.name = 'AbortError';
  return error;
}

const clamp = (x: number, min: number, max: number) => Math.min(max, Math.max(min, x));
const finiteOr1 = (x: number) => (Number.isFinite(x) && x > 0 ? x : 1);
const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The chunks of one job, in order, for one reader; a failure drops what is still unread. */
class PcmStream {
  private chunks: Buffer[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  get settled(): boolean {
    return this.ended || this.failure !== undefined;
  }

  push(chunk: Buffer): void {
    if (this.settled) return;
    this.chunks.push(chunk);
    this.notify();
  }

  end(): void {
    if (this.settled) return;
    this.ended = true;
    this.notify();
  }

  fail(error: Error): void {
    if (this.settled) return;
    this.failure = error;
    this.chunks = [];
    this.notify();
  }

  /** The next chunk, or undefined at the end; rejects once failed. */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      if (this.failure) throw this.failure;
      const chunk = this.chunks.shift();
      if (chunk || this.ended) return chunk;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

interface Job {
  request: SynthRequest;
  out: PcmStream;
}

/** One worker thread and the job it is running. */
class Thread {
  readonly cancel = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  readonly worker: Worker;
  ready = false;
  job: Job | undefined;
  lastError: Error | undefined;

  constructor(warmUpVoice: string) {
    const init: WorkerInit = { cancel: this.cancel.buffer, warmUpVoice };
    this.worker = startWorker(init);
    this.worker.on('error', (error) => (this.lastError = error));
  }
}

/**
 * Run by tsx, this file is .ts and so is the worker, which needs tsx's loader too. On Node 20
 * `execArgv: ['--import', 'tsx']` does not give a worker the loader ("Unknown file extension
 * .ts"), so a tiny bootstrap registers tsx in the worker first. It imports espeak's 840 kB
 * module before that, because through tsx's loader it takes ~1 s instead of ~0.15 s; the worker
 * then gets it from the module cache. Compiled to .js, the worker needs no bootstrap.
 */
function startWorker(workerData: WorkerInit): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./espeak-worker.js', import.meta.url), { workerData });
  const url = (specifier: string) => JSON.stringify(import.meta.resolve(specifier));
  const [espeak, tsx, entry] = [url('@echogarden/espeak-ng-emscripten'), url('tsx/esm/api'), url('./espeak-worker.ts')];
  const bootstrap = `import(${espeak}).then(() => import(${tsx})).then((tsx) => { tsx.register(); return import(${entry}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}

class EspeakPool {
  private readonly queue: Job[] = [];
  private readonly threads = new Set<Thread>();
  private nextId = 0;
  private closed = false;

  private constructor(private readonly warmUpVoice: string) {}

  /** Starts `size` threads and waits until every one has loaded espeak. */
  static async start(size: number, warmUpVoice: string): Promise<{ pool: EspeakPool; info: ReadyInfo }> {
    const pool = new EspeakPool(warmUpVoice);
    try {
      const infos = await Promise.all(Array.from({ length: size }, () => pool.spawn()));
      return { pool, info: infos[0] as ReadyInfo };
    } catch (error) {
      await pool.close();
      throw error;
    }
  }

  submit(req: Omit<SynthRequest, 'id'>): Job {
    const job: Job = { request: { ...req, id: this.newId() }, out: new PcmStream() };
    if (this.closed) job.out.fail(new Error('espeak: the engine is closed'));
    else if (this.threads.size === 0) job.out.fail(new Error('espeak: no worker threads are left'));
    else this.queue.push(job);
    this.dispatch();
    return job;
  }

  /** Ends a job with `reason`: a queued one leaves the queue, a running one is told to stop. */
  cancel(job: Job, reason: Error): void {
    if (job.out.settled) return;
    const queued = this.queue.indexOf(job);
    if (queued >= 0) this.queue.splice(queued, 1);
    for (const thread of this.threads) if (thread.job === job) Atomics.store(thread.cancel, 0, job.request.id);
    job.out.fail(reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.out.fail(new Error('espeak: the engine is closed'));
    const threads = [...this.threads];
    this.threads.clear();
    for (const t of threads) t.job?.out.fail(new Error('espeak: the engine is closed'));
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  /** Ids fit the shared Int32 cancel slot; 0 is never used, so a fresh slot cancels nothing. */
  private newId(): number {
    this.nextId = (this.nextId % 0x7fff_ffff) + 1;
    return this.nextId;
  }

  private spawn(): Promise<ReadyInfo> {
    const thread = new Thread(this.warmUpVoice);
    this.threads.add(thread);
    return new Promise((resolve, reject) => {
      thread.worker.on('message', (msg: WorkerMessage) => {
        if (msg.type !== 'ready') return this.onMessage(thread, msg);
        thread.ready = true;
        resolve(msg);
        this.dispatch();
      });
      thread.worker.on('exit', (code) => {
        const why = thread.lastError?.message ?? `exit code ${code}`;
        if (!thread.ready) reject(new Error(`espeak: a worker thread failed to start (${why})`));
        this.onExit(thread, why);
      });
    });
  }

  private onMessage(thread: Thread, msg: Exclude<WorkerMessage, { type: 'ready' }>): void {
    const job = thread.job;
    if (job?.request.id !== msg.id) return;
    if (msg.type === 'chunk') return job.out.push(Buffer.from(msg.pcm));
    if (msg.type === 'done') job.out.end();
    else job.out.fail(new Error(msg.message));
    thread.job = undefined;
    this.dispatch();
  }

  /** A thread that dies fails its job and is replaced, unless it never started (no respawn loop). */
  private onExit(thread: Thread, why: string): void {
    if (this.closed || !this.threads.delete(thread)) return;
    thread.job?.out.fail(new Error(`espeak: the worker thread crashed (${why})`));
    if (thread.ready) {
      this.spawn().catch(() => undefined); // its own exit handler fails the queue if no thread is left
      return;
    }
    this.failQueueIfNoThreads();
  }

  private failQueueIfNoThreads(): void {
    if (this.threads.size > 0) return;
    for (const job of this.queue.splice(0)) job.out.fail(new Error('espeak: no worker threads are left'));
  }

  private dispatch(): void {
    for (const thread of this.threads) {
      if (!thread.ready || thread.job) continue;
      const job = this.queue.shift();
      if (!job) return;
      thread.job = job;
      thread.worker.postMessage(job.request);
    }
  }
}
