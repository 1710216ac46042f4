// TurnDetector: an end-of-turn classifier that the user supplies as an ONNX file
// (TURN_DETECTOR_MODEL), run with onnxruntime-node. None ships with Chorus: without one the live
// transcript's ending chooses the end silence (src/transcribe/transcript.ts), and nothing here is
// loaded.
//
// The model's contract (docs/configuration.md): its first input takes float32 audio of shape
// [1, n], the last n ≤ 8 s of the utterance up to the user's pause, 16 kHz mono in −1…1; element 0
// of its first output is the probability that the user has finished their turn. At or above
// TURN_DETECTOR_THRESHOLD the short end silence applies, below it the long one. (An audio
// classifier such as Pipecat's smart-turn, exported with its feature extraction inside the
// graph, fits this contract.)
import * as ort from 'onnxruntime-node';
import { INPUT_SAMPLE_RATE } from '../protocol.ts';

/** The longest stretch of audio the model is given. */
const MAX_SECONDS = 8;
const INT16_SCALE = 1 / 32768;

export class TurnDetector {
  /** Samples of the utterance's end the model is given at most. */
  readonly maxSamples = MAX_SECONDS * INPUT_SAMPLE_RATE;

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly input: string,
    private readonly output: string,
  ) {}

  /** The probability (0…1) that the turn is over, given the utterance's audio up to the pause. */
  async predict(pcm: Int16Array): Promise<number> {
    const audio = new Float32Array(Math.min(pcm.length, this.maxSamples));
    const from = pcm.length - audio.length;
    for (let i = 0; i < audio.length; i++) audio[i] = (pcm[from + i] as number) * INT16_SCALE;
    const out = await this.session.run({ [this.input]: new ort.Tensor('float32', audio, [1, audio.length]) });
    const value = Number(out[this.output]?.data[0]);
    if (!Number.isFinite(value)) throw new Error(`the model's output "${this.output}" holds no number`);
    return Math.min(1, Math.max(0, value));
  }
}

const loaded = new Map<string, Promise<TurnDetector>>();

/** Loads the model at `path` once per process; a load that fails says so naming TURN_DETECTOR_MODEL, and is retried by the next call. */
export function loadTurnDetector(path: string): Promise<TurnDetector> {
  let loading = loaded.get(path);
  if (!loading) {
    loading = create(path).catch((error: unknown) => {
      loaded.delete(path);
      throw new Error(`TURN_DETECTOR_MODEL=${path}: the end-of-turn model could not be loaded (${error instanceof Error ? error.message : String(error)})`);
    });
    loaded.set(path, loading);
  }
  return loading;
}

async function create(path: string): Promise<TurnDetector> {
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });
  const [input] = session.inputNames;
  const [output] = session.outputNames;
  if (input === undefined || output === undefined) throw new Error('it needs an input (the audio) and an output (the probability)');
  return new TurnDetector(session, input, output);
}
