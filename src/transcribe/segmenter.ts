// Turns per-window speech probabilities into utterances. Pure and synchronous: every position
// is a sample index of the stream, so where an utterance starts and ends depends only on the
// audio, never on when it arrived.
//
// A window is speech when its probability reaches `threshold`, or stays above `negThreshold`
// right after speech (hysteresis, as Silero's own get_speech_timestamps). A segment opens at
// the first speech window; it becomes an utterance once it holds `minSpeechSamples` of speech
// (shorter blips are dropped without a word), and closes after `endSilenceSamples` of silence
// following its last speech window, or once it has lasted `maxUtteranceSamples`.

export interface SegmenterOptions {
  threshold: number;
  negThreshold: number;
  minSpeechSamples: number;
  maxUtteranceSamples: number;
}

/** Sample positions of one segment; `speechEnd` is exclusive (the end of its last speech window). */
export interface SegmentBounds {
  speechStart: number;
  speechEnd: number;
  /** Samples of speech windows in it so far. */
  voiced: number;
}

export type EndReason = 'silence' | 'max_length';

export type SegmentEvent =
  | { kind: 'start'; bounds: SegmentBounds }
  | { kind: 'end'; bounds: SegmentBounds; at: number; reason: EndReason }
  /** A segment that ended before it held enough speech to be an utterance. */
  | { kind: 'drop'; bounds: SegmentBounds; at: number };

export class Segmenter {
  private segment: SegmentBounds | undefined;
  private confirmed = false;
  private speaking = false;

  constructor(private readonly opts: SegmenterOptions) {}

  /** The open segment once it is an utterance. */
  get utterance(): Readonly<SegmentBounds> | undefined {
    return this.confirmed ? this.segment : undefined;
  }

  /** Where the open segment's speech starts, confirmed or not. */
  get openStart(): number | undefined {
    return this.segment?.speechStart;
  }

  /** Feeds the probability of the window [end − size, end); returns what it changed, if anything. */
  push(prob: number, end: number, size: number, endSilenceSamples: number): SegmentEvent | undefined {
    this.speaking = prob >= this.opts.threshold || (this.speaking && prob >= this.opts.negThreshold);
    const segment = this.speaking ? this.extend(end, size) : this.segment;
    if (!segment) return undefined;
    if (!this.confirmed && segment.voiced >= this.opts.minSpeechSamples) {
      this.confirmed = true;
      return { kind: 'start', bounds: { ...segment } };
    }
    if (this.confirmed && end - segment.speechStart >= this.opts.maxUtteranceSamples) return this.close(end, 'max_length');
    if (!this.speaking && end - segment.speechEnd >= endSilenceSamples) return this.close(end, 'silence');
    return undefined;
  }

  /** Ends the open segment now (listening stopped): an utterance ends, a blip is dropped. */
  flush(at: number): SegmentEvent | undefined {
    return this.segment ? this.close(at, 'silence') : undefined;
  }

  reset(): void {
    this.segment = undefined;
    this.confirmed = false;
    this.speaking = false;
  }

  private extend(end: number, size: number): SegmentBounds {
    this.segment ??= { speechStart: end - size, speechEnd: end, voiced: 0 };
    this.segment.speechEnd = end;
    this.segment.voiced += size;
    return this.segment;
  }

  private close(at: number, reason: EndReason): SegmentEvent {
    const bounds = this.segment as SegmentBounds;
    const event: SegmentEvent = this.confirmed ? { kind: 'end', bounds, at, reason } : { kind: 'drop', bounds, at };
    this.segment = undefined;
    this.confirmed = false;
    this.speaking = false;
    return event;
  }
}
