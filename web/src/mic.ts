// Microphone capture: getUserMedia with echo cancellation, noise suppression and automatic
// gain on (so the characters' voices playing from the speakers are not sent back and the
// user can talk over them), fed through the capture AudioWorklet (mic-worklet.ts), which
// resamples to 16 kHz and hands back PCM16 LE frames of 40 ms. The stream lives until the user
// turns the mic off (or the server says it cannot listen) — not tied to the WebSocket, so a
// reconnect does not kill it.
import { audioContext } from './audio.ts';
import { debug } from './debug.ts';
import type { CaptureFrame, CaptureOptions } from './mic-worklet.ts';
import workletUrl from './mic-worklet.ts?worker&url';
import { INPUT_SAMPLE_RATE } from './types.ts';

/** 40 ms frames: 640 samples, 1280 bytes at 16 kHz. */
export const FRAME_MS = 40;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const loadedContexts = new WeakSet<BaseAudioContext>();

export interface MicEvents {
  frame(pcm: ArrayBuffer): void;
  level(rms: number): void;
  /** The capture ended on its own (device unplugged, permission revoked). */
  ended(reason: string): void;
}

export class Microphone {
  private stream: MediaStream | undefined;
  private source: MediaStreamAudioSourceNode | undefined;
  private node: AudioWorkletNode | undefined;

  constructor(private readonly events: MicEvents) {}

  get capturing(): boolean {
    return this.stream !== undefined;
  }

  /** The device chosen in the listening controls (a MediaDeviceInfo.deviceId); null: the browser's default. */
  deviceId: string | null = null;

  /** Opens the microphone (asks permission the first time). Throws with a readable message. */
  async start(): Promise<void> {
    if (this.stream) return;
    if (!navigator.mediaDevices?.getUserMedia) throw new Error('This browser cannot record audio here (a microphone needs https or localhost).');
    const ctx = audioContext();
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1, ...(this.deviceId ? { deviceId: { exact: this.deviceId } } : {}) },
      });
    } catch (error) {
      throw new Error(micError(error));
    }
    try {
      if (!loadedContexts.has(ctx)) {
        await ctx.audioWorklet.addModule(workletUrl);
        loadedContexts.add(ctx);
      }
      const processorOptions: CaptureOptions = { targetRate: INPUT_SAMPLE_RATE, frameSamples: (INPUT_SAMPLE_RATE * FRAME_MS) / 1000 };
      const node = new AudioWorkletNode(ctx, 'chorus-mic-capture', { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: 'explicit', processorOptions });
      node.port.onmessage = (event: MessageEvent<CaptureFrame>) => {
        const { pcm, level } = event.data;
        if (!LITTLE_ENDIAN) swapBytes(pcm);
        debug.mic.level = level;
        this.events.level(level);
        this.events.frame(pcm);
      };
      const source = ctx.createMediaStreamSource(stream);
      source.connect(node);
      // The worklet writes silence; being connected keeps it in the rendering graph.
      node.connect(ctx.destination);
      const track = stream.getAudioTracks()[0];
      if (track) {
        track.onended = () => {
          this.stop();
          this.events.ended('The microphone stopped (it was unplugged or its permission was withdrawn).');
        };
      }
      this.stream = stream;
      this.source = source;
      this.node = node;
      debug.mic.contextRate = ctx.sampleRate;
      debug.mic.trackId = track?.id ?? '';
    } catch (error) {
      for (const t of stream.getTracks()) t.stop();
      throw new Error(`The microphone could not be started: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Closes the microphone (the browser's recording indicator goes off). */
  stop(): void {
    this.node?.port.postMessage('stop');
    this.node?.disconnect();
    this.source?.disconnect();
    for (const track of this.stream?.getTracks() ?? []) {
      track.onended = null;
      track.stop();
    }
    this.stream = this.source = this.node = undefined;
    this.events.level(0);
  }
}

function micError(error: unknown): string {
  const name = error instanceof DOMException ? error.name : '';
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'Microphone permission was denied. Allow it in the browser to talk.';
  if (name === 'OverconstrainedError') return 'The chosen microphone is not connected: pick another in the listening controls.';
  if (name === 'NotFoundError') return 'No microphone was found.';
  if (name === 'NotReadableError') return 'The microphone is in use by another application.';
  return `The microphone could not be opened: ${error instanceof Error ? error.message : String(error)}`;
}

function swapBytes(buffer: ArrayBuffer): void {
  const bytes = new Uint8Array(buffer);
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const b = bytes[i] as number;
    bytes[i] = bytes[i + 1] as number;
    bytes[i + 1] = b;
  }
}
