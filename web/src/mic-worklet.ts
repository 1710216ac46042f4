// The microphone capture AudioWorklet (audio rendering thread). Mixes the input to mono,
// resamples it from the AudioContext's rate to 16 kHz with a band-limited resampler, converts
// it to PCM16 little-endian and posts one frame of `frameSamples` samples (40 ms by default)
// at a time to the main thread, which sends each as one binary WebSocket frame. It also
// reports the frame's RMS level for the mic meter. Vite bundles this file (and the resampler)
// on its own; mic.ts loads it with audioWorklet.addModule().
import { Resampler, toInt16 } from './resampler.ts';

// The AudioWorkletGlobalScope is not in TypeScript's DOM library; describe what is used.
interface WorkletScope {
  sampleRate: number;
  AudioWorkletProcessor: new (options?: AudioWorkletNodeOptions) => { readonly port: MessagePort };
  registerProcessor(name: string, processor: new (options: AudioWorkletNodeOptions) => object): void;
}
const scope = globalThis as unknown as WorkletScope;

export interface CaptureOptions {
  targetRate: number;
  frameSamples: number;
}
export interface CaptureFrame {
  pcm: ArrayBuffer;
  level: number;
}

class MicCaptureProcessor extends scope.AudioWorkletProcessor {
  private readonly resampler: Resampler;
  private readonly frameSamples: number;
  private frame: Int16Array;
  private filled = 0;
  private sumSquares = 0;
  private running = true;
  private mono = new Float32Array(128);

  constructor(options: AudioWorkletNodeOptions) {
    super(options);
    const opts = options.processorOptions as CaptureOptions;
    this.resampler = new Resampler(scope.sampleRate, opts.targetRate);
    this.frameSamples = opts.frameSamples;
    this.frame = new Int16Array(this.frameSamples);
    this.port.onmessage = (event: MessageEvent<unknown>) => {
      if (event.data === 'stop') this.running = false;
    };
  }

  process(inputs: Float32Array[][]): boolean {
    const channels = inputs[0];
    if (!this.running) return false;
    if (!channels || channels.length === 0 || !channels[0]) return true; // not connected yet
    const length = channels[0].length;
    if (this.mono.length < length) this.mono = new Float32Array(length);
    const mono = this.mono.subarray(0, length);
    if (channels.length === 1) mono.set(channels[0]);
    else {
      mono.fill(0);
      for (const channel of channels) for (let i = 0; i < length; i++) mono[i] = (mono[i] as number) + (channel[i] as number) / channels.length;
    }
    const out = this.resampler.push(mono);
    for (let i = 0; i < out.length; i++) {
      const s = out[i] as number;
      this.sumSquares += s * s;
      this.frame[this.filled++] = toInt16(s);
      if (this.filled === this.frameSamples) this.flush();
    }
    return true;
  }

  private flush(): void {
    // Int16Array stores in platform order; every platform a browser runs on is little-endian,
    // which is what the protocol wants (mic.ts checks it once on the main thread).
    const message: CaptureFrame = { pcm: this.frame.buffer as ArrayBuffer, level: Math.sqrt(this.sumSquares / this.frameSamples) };
    this.port.postMessage(message, [message.pcm]);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.sumSquares = 0;
  }
}

scope.registerProcessor('chorus-mic-capture', MicCaptureProcessor);
