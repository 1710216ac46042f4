// One eSpeak-NG worker thread: loads the Emscripten module once, keeps it warm, and synthesizes
// one job at a time for the pool in espeak.ts. The module's synthesize() is synchronous (it
// blocks its thread for the whole text), which is why it runs here and never on the event loop.
// Audio leaves as it is produced: espeak hands its callback ~100 ms buffers, each posted at once
// with its ArrayBuffer transferred. The parent cancels a job by writing its id into a shared
// Int32Array, which the callback checks, because this thread cannot read messages mid-job.
import { parentPort, workerData } from 'node:worker_threads';

/** workerData given by the pool. */
export interface WorkerInit {
  /** Int32Array[1]: the id of the job to stop. */
  cancel: SharedArrayBuffer;
  /** Synthesized once at start: the first synthesis is ~10× slower than the rest (JIT, dictionary). */
  warmUpVoice: string;
}

export interface SynthRequest {
  id: number;
  text: string;
  /** Voice name with an optional `+variant`, e.g. `en-us+f3`. */
  voice: string;
  /** Words per minute. */
  rate: number;
  /** 0–99, 50 = the voice's normal pitch. */
  pitch: number;
}

export interface VoiceInfo {
  /** A name set_voice accepts for this voice, e.g. `en-us` or `gmw/en`. */
  name: string;
  /** Its primary language, e.g. `en-gb`. */
  language: string;
  /** Its name for people, e.g. `English (America)`. */
  label: string;
}

export type WorkerMessage =
  | { type: 'ready'; sampleRate: number; voices: VoiceInfo[]; variants: string[] }
  | { type: 'chunk'; id: number; pcm: ArrayBuffer }
  | { type: 'done'; id: number }
  | { type: 'error'; id: number; message: string };

// The part of the Emscripten module this file uses (the package ships no types).
interface EspeakVoiceEntry {
  name: string;
  identifier: string; // data file path, e.g. `gmw/en-GB-x-rp`
  languages: { priority: number; name: string }[];
}
interface EspeakSynth {
  /** 0 when found; otherwise an espeak error code and the previous voice stays. */
  set_voice(name: string): number;
  set_rate(wordsPerMinute: number): void;
  set_pitch(pitch: number): void;
  get_samplerate(): number;
  list_voices(): EspeakVoiceEntry[];
  /** Calls onAudio per buffer; returning true stops synthesis. */
  synthesize(text: string, onAudio: (samples: Int16Array<ArrayBuffer>) => boolean): void;
}
interface EspeakModule {
  eSpeakNGWorker: new () => EspeakSynth;
  FS: { readdir(path: string): string[] };
}
type EspeakFactory = () => Promise<EspeakModule>;

/** Where the module's virtual file system keeps the voice variants (`+f3` → `!v/f3`). */
const VARIANT_DIR = '/usr/share/espeak-ng-data/voices/!v';

async function loadEspeak(): Promise<EspeakSynth & { variants: Set<string> }> {
  // A non-literal specifier because the package has no type declarations; typed just above.
  const specifier: string = '@echogarden/espeak-ng-emscripten';
  const { default: factory } = (await import(specifier)) as { default: EspeakFactory };
  const module = await factory();
  const synth = new module.eSpeakNGWorker();
  const variants = new Set(module.FS.readdir(VARIANT_DIR).filter((n) => !n.startsWith('.')));
  return Object.assign(synth, { variants });
}

/** A name set_voice accepts: the language code when a data file is named after it, else the file path. */
function voiceInfo(entry: EspeakVoiceEntry): VoiceInfo {
  const language = entry.languages[0]?.name ?? entry.identifier;
  const fileName = entry.identifier.slice(entry.identifier.lastIndexOf('/') + 1).toLowerCase();
  return { name: fileName === language ? language : entry.identifier, language, label: entry.name.replaceAll('_', ' ').trim() };
}

/**
 * Espeak reads SSML and `[[phoneme]]` input, so text from a language model is escaped to be
 * spoken as written rather than obeyed (`<break time="9s"/>` would otherwise pause 9 s).
 */
function plainText(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\[\[/g, '[ [');
}

function requirePort(): NonNullable<typeof parentPort> {
  if (!parentPort) throw new Error('espeak-worker.ts must run as a worker thread');
  return parentPort;
}

const port = requirePort();
const init = workerData as WorkerInit;
const cancel = new Int32Array(init.cancel);
const espeak = await loadEspeak();
let currentVoice: string | undefined;

/** Sets the voice, or says why not: set_voice's code for the name, our own check for the variant (espeak ignores unknown ones). */
function selectVoice(voice: string): string | undefined {
  if (voice === currentVoice) return undefined;
  const plus = voice.indexOf('+');
  const variant = plus < 0 ? undefined : voice.slice(plus + 1);
  if (variant !== undefined && !espeak.variants.has(variant)) return `espeak: unknown voice variant "${variant}" in "${voice}"`;
  if (espeak.set_voice(voice) !== 0) return `espeak: unknown voice "${voice}"`;
  currentVoice = voice;
  return undefined;
}

function post(message: WorkerMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

function run(job: SynthRequest): void {
  const problem = selectVoice(job.voice);
  if (problem) return post({ type: 'error', id: job.id, message: problem });
  espeak.set_rate(job.rate);
  espeak.set_pitch(job.pitch);
  espeak.synthesize(plainText(job.text), (samples) => {
    if (Atomics.load(cancel, 0) === job.id) return true;
    if (samples.length > 0) post({ type: 'chunk', id: job.id, pcm: samples.buffer }, [samples.buffer]);
    return false;
  });
  post({ type: 'done', id: job.id });
}

function warmUp(): void {
  if (selectVoice(init.warmUpVoice) === undefined) espeak.synthesize('Warming up the voice.', () => false);
}

warmUp();
port.on('message', run);
post({
  type: 'ready',
  sampleRate: espeak.get_samplerate(),
  voices: espeak.list_voices().map(voiceInfo),
  variants: [...espeak.variants].sort(),
});
