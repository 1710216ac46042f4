// Local STT: whisper.cpp in-process through @fugood/whisper.node, with a ggml model file the
// user supplies (WHISPER_MODEL_PATH). Inference runs on libuv's thread pool; whisper.cpp locks
// its context per job anyway, so jobs wait here in one FIFO instead of each parking a pool
// thread on that lock (which would starve file and DNS work). A queued job is dropped when
// aborted; a running one is told to stop.
import { open } from 'node:fs/promises';
import type { SttEngine } from '../engine.ts';

export interface WhisperOptions {
  modelPath: string;
  language: string | undefined;
  timeoutMs: number;
}

/** The parts of @fugood/whisper.node used here (its own typings ship as .ts sources only). */
interface WhisperJob {
  stop: () => Promise<void>;
  promise: Promise<{ result: string; isAborted: boolean }>;
}
interface WhisperContext {
  transcribeData(audio: ArrayBuffer, options: { language: string; temperature: number }): WhisperJob;
  release(): Promise<void>;
}
interface WhisperModule {
  initWhisper(options: { filePath: string; useGpu: boolean }): Promise<WhisperContext>;
}

/**
 * Imported by a non-literal name: the package's typings are its .ts sources, which this
 * project's compiler settings reject, so TypeScript must not follow the import.
 */
const WHISPER_PACKAGE: string = '@fugood/whisper.node';

/** ggml model files start with the magic 0x67676d6c ("ggml") as a little-endian uint32. */
const GGML_MAGIC = 0x67676d6c;
/** The ggml weight types whisper.cpp maps to a tensor type; any other makes it abort the process. */
const FTYPES = new Set([0, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
const positive = (max: number) => (v: number) => v > 0 && v <= max;
/** whisper.cpp's hyper-parameters, the int32s after the magic, each with the values a real model has. */
const HPARAMS: Array<[string, (v: number) => boolean]> = [
  ['n_vocab', positive(1_000_000)],
  ['n_audio_ctx', positive(100_000)],
  ['n_audio_state', positive(16_384)],
  ['n_audio_head', positive(256)],
  ['n_audio_layer', positive(256)],
  ['n_text_ctx', positive(100_000)],
  ['n_text_state', positive(16_384)],
  ['n_text_head', positive(256)],
  ['n_text_layer', positive(256)],
  ['n_mels', (v) => v === 80 || v === 128],
  ['ftype', (v) => v >= 0 && FTYPES.has(v % 1000)], // thousands count the quantization version
];

export async function createWhisperEngine(opts: WhisperOptions): Promise<SttEngine> {
  await checkModelFile(opts.modelPath);
  const whisper = (await import(WHISPER_PACKAGE).catch(() => {
    // Not a dependency: its platform binaries are separate optional packages, most of which the
    // registry Chorus installs from does not carry, which would break `npm ci` everywhere.
    throw new Error(`STT_ENGINE=whisper needs the package ${WHISPER_PACKAGE}: install it with \`npm install ${WHISPER_PACKAGE}\` (prebuilt whisper.cpp).`);
  })) as WhisperModule & { default?: WhisperModule };
  let context: WhisperContext;
  try {
    context = await (whisper.default ?? whisper).initWhisper({ filePath: opts.modelPath, useGpu: false });
  } catch (error) {
    throw new Error(`WHISPER_MODEL_PATH=${opts.modelPath}: whisper.cpp could not load the model (${message(error)})`);
  }
  const queue = new JobQueue();
  const language = opts.language ?? 'auto';

  async function transcribe(pcm: Int16Array | Buffer, signal: AbortSignal): Promise<string> {
    const audio = copyToArrayBuffer(pcm);
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    const stop = AbortSignal.any([signal, timeout]);
    const result = await queue.run(stop, () => context.transcribeData(audio, { language, temperature: 0 })).catch((error: unknown) => {
      if (signal.aborted) throw signal.reason;
      if (timeout.aborted) throw new Error(`whisper.cpp did not finish within ${opts.timeoutMs} ms (STT_TIMEOUT_MS)`);
      throw new Error(`whisper.cpp failed: ${message(error)}`);
    });
    return result.trim();
  }

  return { name: 'whisper', transcribe, close: () => context.release() };
}

/**
 * A missing, unreadable or non-ggml file is a start-up error that names the variable. The
 * header is checked too: whisper.cpp aborts the whole process on some corrupt headers instead
 * of failing the load.
 */
async function checkModelFile(path: string): Promise<void> {
  const head = Buffer.alloc(4 * (1 + HPARAMS.length));
  let read = 0;
  try {
    const file = await open(path, 'r');
    try {
      ({ bytesRead: read } = await file.read(head, 0, head.length, 0));
    } finally {
      await file.close();
    }
  } catch (error) {
    throw new Error(`WHISPER_MODEL_PATH=${path}: cannot read the whisper model file (${message(error)}). Download a ggml model (see docs/engines.md) and point WHISPER_MODEL_PATH at it.`);
  }
  const invalid = (why: string) => new Error(`WHISPER_MODEL_PATH=${path}: not a whisper.cpp ggml model file (${why}). Use a ggml-*.bin model (see docs/engines.md).`);
  if (read < head.length) throw invalid(`it is only ${read} bytes long`);
  if (head.readUInt32LE(0) !== GGML_MAGIC) throw invalid('it does not start with the ggml magic');
  HPARAMS.forEach(([name, sane], i) => {
    const value = head.readInt32LE(4 * (i + 1));
    if (!sane(value)) throw invalid(`its header has ${name} = ${value}`);
  });
}

/** Runs native jobs one at a time, in order; an aborted job leaves the queue or is stopped. */
class JobQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run(signal: AbortSignal, start: () => WhisperJob): Promise<string> {
    const job = this.tail.then(() => this.runOne(signal, start));
    this.tail = job.catch(() => undefined);
    return Promise.race([job, rejectOnAbort(signal)]); // a queued job gives up at once
  }

  private async runOne(signal: AbortSignal, start: () => WhisperJob): Promise<string> {
    signal.throwIfAborted();
    const job = start();
    const stop = () => void job.stop();
    signal.addEventListener('abort', stop, { once: true });
    try {
      const { result, isAborted } = await job.promise;
      if (isAborted) signal.throwIfAborted();
      return result;
    } finally {
      signal.removeEventListener('abort', stop);
    }
  }
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

function copyToArrayBuffer(pcm: Int16Array | Buffer): ArrayBuffer {
  const copy = new Uint8Array(pcm.byteLength);
  copy.set(new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
  return copy.buffer;
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));
