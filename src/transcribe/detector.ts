// Voice activity of one audio stream: cuts arbitrary PCM16 frames into the VAD's 512-sample
// windows (keeping the remainder for the next frame), runs each through the connection's
// VadStream and hands the probability to the Segmenter. Positions count samples since the
// stream started, so frame sizes and arrival times never move an utterance.
import { Segmenter, type SegmentBounds, type SegmentEvent, type SegmenterOptions } from './segmenter.ts';
import { VAD_WINDOW, type VadStream } from './vad.ts';

export interface DetectorOptions extends SegmenterOptions {
  /** Trailing silence (in samples) that ends the current utterance; asked at every silent window. */
  endSilenceSamples: () => number;
  /** Called for each segment event, in stream order. */
  onEvent: (event: SegmentEvent) => void;
  /** Called after every window (e.g. to check how much speech the utterance holds). */
  onWindow?: (utterance: Readonly<SegmentBounds> | undefined) => void;
}

const INT16_SCALE = 1 / 32768;

export class SpeechDetector {
  private readonly segmenter: Segmenter;
  /** Samples already in the stream's window (the rest of it is filled by the next frame). */
  private filled = 0;
  private processed = 0;

  constructor(
    private readonly vad: VadStream,
    private readonly opts: DetectorOptions,
  ) {
    this.segmenter = new Segmenter(opts);
  }

  /** Samples that went through the VAD (a multiple of the window). */
  get position(): number {
    return this.processed;
  }

  get utterance(): Readonly<SegmentBounds> | undefined {
    return this.segmenter.utterance;
  }

  /** Where the open segment (an utterance or a blip not yet long enough to be one) starts. */
  get segmentStart(): number | undefined {
    return this.segmenter.openStart;
  }

  /** Runs the VAD over `pcm`. Calls must not overlap: await each before the next. */
  async push(pcm: Int16Array): Promise<void> {
    const window = this.vad.window;
    for (let i = 0; i < pcm.length; ) {
      const n = Math.min(VAD_WINDOW - this.filled, pcm.length - i);
      for (let j = 0; j < n; j++) window[this.filled + j] = (pcm[i + j] as number) * INT16_SCALE;
      this.filled += n;
      i += n;
      if (this.filled < VAD_WINDOW) return;
      this.filled = 0;
      const prob = await this.vad.process();
      this.processed += VAD_WINDOW;
      const event = this.segmenter.push(prob, this.processed, VAD_WINDOW, this.opts.endSilenceSamples());
      if (event) this.opts.onEvent(event);
      this.opts.onWindow?.(this.segmenter.utterance);
    }
  }

  /** Ends an open segment at the last processed window (listening stopped). */
  flush(): void {
    const event = this.segmenter.flush(this.processed);
    if (event) this.opts.onEvent(event);
  }
}
