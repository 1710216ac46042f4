// Transcribe: the speech input of one connection. Microphone frames (PCM16 LE mono 16 kHz) go
// through the connection's VAD stream; an utterance is recorded with a pre-roll, transcribed
// live while it grows (update / stabilized) and as a whole when it ends (final).
//
// Where an utterance starts and ends is decided in audio time (sample counts), so frame sizes
// and bursty arrival do not move it. Two things are wall-clock by nature: the pace of live
// transcriptions (STT_REALTIME_INTERVAL_MS limits load on the server) and, through them, which
// live transcript the end-of-turn silence is chosen from.
//
// At most one STT request per connection is in flight: a live request waits for the previous
// one and for any final; an utterance's end aborts its live request so the final starts at once.
//
// The moment the VAD hears the user stop (the first window without speech), the utterance so far
// is transcribed at once (the "closing" transcription, ahead of the live interval, superseding a
// live request in flight): that transcript chooses the end silence, and, for a listener of
// `preemptive`, it is announced as the turn's likely text — once the pause has also lasted
// STT_PAUSE_MS — so a reply can start while the end of the turn is still undecided. Each
// announcement is followed by exactly one `final` or `preemptiveCancelled` (the user spoke
// again, or the utterance had no words after all). A user-supplied end-of-turn model
// (TURN_DETECTOR_MODEL), when configured, is asked at the same moment whether the turn is over,
// and its answer chooses the end silence instead.
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { INPUT_SAMPLE_RATE, type SttState } from '../protocol.ts';
import { SpeechDetector } from './detector.ts';
import type { SttEngine } from './engine.ts';
import type { TurnDetector } from './turn-detector.ts';
import { PcmBuffer } from './pcm-buffer.ts';
import type { EndReason, SegmentBounds, SegmentEvent } from './segmenter.ts';
import { commonWordPrefix, endSilenceFor } from './transcript.ts';
import { VAD_WINDOW, type VadModel } from './vad.ts';

/** Largest frame accepted: 1 s of PCM16 mono 16 kHz. */
export const MAX_FRAME_BYTES = 32_000;
/** Audio kept after the last speech window: whisper finishes the last word better with a little silence. */
const TAIL_MS = 200;
/** Frames waiting for the VAD beyond this much audio are dropped (the process is overloaded). */
const MAX_BACKLOG_MS = 10_000;

const samples = (ms: number) => Math.round((ms * INPUT_SAMPLE_RATE) / 1000);
const ms = (n: number) => (n * 1000) / INPUT_SAMPLE_RATE;

/** Where an utterance was, in ms of audio since listening started. */
export interface UtteranceInfo {
  /** The audio sent for its final transcription: pre-roll, speech, a short tail. */
  audioStartMs: number;
  audioEndMs: number;
  /** First and last speech window (end exclusive), as the VAD saw them. */
  speechStartMs: number;
  speechEndMs: number;
  /** Speech windows in it. */
  voicedMs: number;
  /** Where its end was decided: speechEndMs + the trailing silence, unless cut short. */
  endedAtMs: number;
  /** The trailing silence that applied (short, normal or long, by the live transcript). */
  endSilenceMs: number;
  reason: EndReason | 'stopped';
}

export interface TranscribeEvents {
  state(s: SttState): void;
  update(text: string): void;
  stabilized(text: string): void;
  final(text: string): void;
  /** The utterance has held BARGE_IN_MIN_MS of speech: the user is talking (barge-in). Once per utterance. */
  speechStart(): void;
  error(code: 'stt_error' | 'bad_audio', message: string): void;
  /** Optional: each utterance's bounds when it ends, before its final transcription. */
  utterance?(info: UtteranceInfo): void;
  /**
   * Optional: the user paused, and this is the transcript of everything they said in the
   * utterance so far; the end of the turn is not decided yet. Given this handler, Transcribe makes
   * that transcript at every pause (without it, it does not). Followed by `final` or `preemptiveCancelled`.
   */
  preemptive?(text: string): void;
  /** The announced transcript no longer stands: the user spoke again, or the utterance turned out to hold no words. */
  preemptiveCancelled?(): void;
  /** Optional: the turn detector's verdict on a pause (complete: the short end silence applies, else the long one). */
  turnJudged?(complete: boolean, probability: number): void;
}

export interface TranscribeDeps {
  engine: SttEngine;
  vad: VadModel;
  config: Config['stt'];
  events: TranscribeEvents;
  logger?: Logger;
  /** The end-of-turn model (TURN_DETECTOR_MODEL), if one is configured. */
  turnDetector?: TurnDetector | undefined;
}

/** The utterance being recorded. */
interface Recording {
  audioStart: number;
  /** End of the audio its last live request covered. */
  liveEnd: number;
  /** The latest live transcript. */
  latest: string | undefined;
  stabilized: string;
  bargeSent: boolean;
  /** The user is paused: where their speech ended (sample index); undefined while they speak. */
  pausedAt: number | undefined;
  /** The closing transcription of this pause was started. */
  closingAsked: boolean;
  /** Its transcript, waiting for the pause to last STT_PAUSE_MS before it is announced. */
  heard: string | undefined;
  /** A preemptive transcript was announced and has not been taken back. */
  announced: boolean;
  /** The turn detector's verdict on this pause: the turn is complete. */
  complete: boolean | undefined;
}

/** Why a frame is refused, first match wins. */
const FRAME_CHECKS: Array<[(f: Buffer) => boolean, (f: Buffer) => string]> = [
  [(f) => f.length % 2 !== 0, (f) => `Audio frame of ${f.length} bytes dropped: PCM16 frames have an even number of bytes (expected PCM16 LE mono 16 kHz).`],
  [(f) => f.length > MAX_FRAME_BYTES, (f) => `Audio frame of ${f.length} bytes dropped: frames may hold at most 1 s (${MAX_FRAME_BYTES} bytes of PCM16 LE mono 16 kHz).`],
];

export class Transcribe {
  private current: SttState = 'inactive';
  private listening = false;
  private closed = false;
  /** Bumped by start/stop/close: frames queued and VAD results of an older generation are dropped. */
  private generation = 0;
  private queue: Int16Array[] = [];
  private queuedSamples = 0;
  private draining = false;
  private detector: SpeechDetector;
  private readonly buffer = new PcmBuffer();
  private recording: Recording | undefined;
  /** No utterance's pre-roll reaches back into the audio of the one before. */
  private lastAudioEnd = 0;
  private live: AbortController | undefined;
  /** The live request in flight is the closing transcription of a pause. */
  private liveClosing = false;
  /** Settles once the live request (if any) has, so an aborted one is gone before the final starts. */
  private liveSettled: Promise<void> = Promise.resolve();
  private lastLiveAt = -Infinity;
  private readonly finalRequests = new Set<AbortController>();
  private finals: Promise<void> = Promise.resolve();
  private pendingFinals = 0;
  private readonly cfg: Config['stt'];
  private readonly events: TranscribeEvents;

  constructor(private readonly deps: TranscribeDeps) {
    this.cfg = deps.config;
    this.events = deps.events;
    this.detector = this.newDetector();
  }

  get state(): SttState {
    return this.current;
  }

  startListening(): void {
    if (this.closed || this.listening) return;
    this.listening = true;
    this.generation++;
    this.detector = this.newDetector();
    this.buffer.reset();
    this.lastAudioEnd = 0;
    this.refreshState();
  }

  /** Stops listening; an utterance being recorded ends here and is still transcribed. */
  stopListening(): void {
    if (!this.listening) return;
    this.listening = false;
    this.detector.flush();
    this.generation++;
    this.dropQueue();
    this.refreshState();
  }

  /** One binary WebSocket frame. Dropped quietly unless listening; a malformed one is reported. */
  feed(frame: Buffer): void {
    if (!this.listening) return;
    const problem = FRAME_CHECKS.find(([bad]) => bad(frame));
    if (problem) return this.events.error('bad_audio', problem[1](frame));
    if (frame.length === 0) return;
    if (ms(this.queuedSamples) > MAX_BACKLOG_MS) {
      this.deps.logger?.warn({ queuedMs: ms(this.queuedSamples) }, 'speech input backlog: frame dropped');
      return;
    }
    const pcm = new Int16Array(frame.length >> 1);
    new Uint8Array(pcm.buffer).set(frame); // one copy: the frame may sit at an odd offset of a shared buffer
    this.queue.push(pcm);
    this.queuedSamples += pcm.length;
    void this.drain();
  }

  /** Stops everything for good: no event is emitted after this. */
  close(): void {
    this.closed = true;
    this.listening = false;
    this.generation++;
    this.dropQueue();
    this.recording = undefined;
    this.live?.abort(new Error('speech input closed'));
    for (const request of this.finalRequests) request.abort(new Error('speech input closed'));
  }

  // -- audio -----------------------------------------------------------------------------

  /** A fresh VAD stream and segmenter: a push of the previous generation may still be running on the old ones. */
  private newDetector(): SpeechDetector {
    const generation = this.generation;
    const mine = () => generation === this.generation && !this.closed;
    return new SpeechDetector(this.deps.vad.createStream(), {
      threshold: this.cfg.vadThreshold,
      negThreshold: this.cfg.vadNegThreshold,
      minSpeechSamples: samples(this.cfg.minSpeechMs),
      maxUtteranceSamples: samples(this.cfg.maxUtteranceMs),
      endSilenceSamples: () => samples(this.endSilenceMs()),
      onEvent: (event) => mine() && this.onSegment(event),
      onWindow: (utterance) => {
        if (!mine()) return;
        this.checkBargeIn(utterance);
        this.checkPause(utterance);
      },
    });
  }

  /** Runs queued frames through the VAD one at a time (each VAD window depends on the last). */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let pcm = this.queue.shift(); pcm; pcm = this.queue.shift()) {
        this.queuedSamples -= pcm.length;
        this.buffer.append(pcm);
        await this.detector.push(pcm).catch((error: unknown) => this.vadFailed(error));
        this.forgetOldAudio();
        this.transcribeLive();
      }
    } finally {
      this.draining = false;
    }
  }

  private vadFailed(error: unknown): void {
    this.deps.logger?.error({ err: error }, 'voice activity detection failed');
    if (!this.closed) this.events.error('stt_error', `Voice activity detection failed: ${message(error)}`);
  }

  private dropQueue(): void {
    this.queue = [];
    this.queuedSamples = 0;
  }

  /** Keeps the utterance being recorded, or the pre-roll in front of where the next one could start. */
  private forgetOldAudio(): void {
    const from = this.recording?.audioStart ?? (this.detector.segmentStart ?? this.detector.position) - samples(this.cfg.preRollMs);
    this.buffer.discardBefore(from);
  }

  private onSegment(event: SegmentEvent): void {
    switch (event.kind) {
      case 'start':
        return this.startUtterance(event.bounds);
      case 'end':
        return this.endUtterance(event.bounds, event.at, event.reason);
      case 'drop':
        return this.deps.logger?.debug({ voicedMs: ms(event.bounds.voiced) }, 'speech blip ignored');
    }
  }

  private startUtterance(bounds: SegmentBounds): void {
    const audioStart = Math.max(bounds.speechStart - samples(this.cfg.preRollMs), this.lastAudioEnd, this.buffer.start);
    this.recording = { audioStart, liveEnd: audioStart, latest: undefined, stabilized: '', bargeSent: false, pausedAt: undefined, closingAsked: false, heard: undefined, announced: false, complete: undefined };
    this.refreshState();
  }

  private checkBargeIn(utterance: Readonly<SegmentBounds> | undefined): void {
    const recording = this.recording;
    if (!recording || !utterance || recording.bargeSent || utterance.voiced < samples(this.cfg.bargeInMinMs)) return;
    recording.bargeSent = true;
    this.events.speechStart();
  }

  /** After each window: has the user stopped (a window without speech), or spoken again since? */
  private checkPause(utterance: Readonly<SegmentBounds> | undefined): void {
    const recording = this.recording;
    if (!recording || !utterance) return;
    if (this.detector.position === utterance.speechEnd) return this.spokeAgain(recording);
    if (recording.pausedAt !== undefined) return this.announce(recording);
    recording.pausedAt = utterance.speechEnd;
    this.judgeTurn(recording);
    if (!this.wantsClosing(recording)) return;
    if (this.live && !this.liveClosing) this.live.abort(new Error('superseded by the closing transcription'));
    this.transcribeLive();
  }

  /** The pause's transcript is announced once it is in and the pause has lasted STT_PAUSE_MS. */
  private announce(recording: Recording): void {
    const { heard, pausedAt } = recording;
    if (heard === undefined || pausedAt === undefined || recording.announced) return;
    if (this.detector.position - pausedAt < samples(this.cfg.pauseMs)) return;
    recording.announced = true;
    this.events.preemptive?.(heard);
  }

  /** Speech after a pause: what was said at the pause no longer stands. */
  private spokeAgain(recording: Recording): void {
    if (recording.pausedAt === undefined) return;
    recording.pausedAt = undefined;
    recording.closingAsked = false;
    recording.heard = undefined;
    recording.complete = undefined;
    if (this.live && this.liveClosing) this.live.abort(new Error('the user spoke again'));
    if (!recording.announced) return;
    recording.announced = false;
    this.events.preemptiveCancelled?.();
  }

  /** Asks the turn detector (if any) whether the turn is over at this pause. */
  private judgeTurn(recording: Recording): void {
    const model = this.deps.turnDetector;
    if (!model) return;
    const pausedAt = recording.pausedAt;
    const end = this.detector.position;
    const audio = this.buffer.slice(Math.max(recording.audioStart, end - model.maxSamples), end);
    model.predict(audio).then(
      (probability) => {
        if (this.recording !== recording || recording.pausedAt !== pausedAt || this.closed) return; // the user spoke again meanwhile
        recording.complete = probability >= this.cfg.turnDetectorThreshold;
        this.events.turnJudged?.(recording.complete, probability);
      },
      (error: unknown) => this.deps.logger?.warn({ err: error }, 'the turn detector failed; the transcript decides'),
    );
  }

  /** The closing transcription is wanted (someone takes preemptive transcripts) and not yet asked for this pause. */
  private wantsClosing(recording: Recording): boolean {
    return this.events.preemptive !== undefined && recording.pausedAt !== undefined && !recording.closingAsked;
  }

  /** The trailing silence that ends the utterance: the turn detector's verdict, else the live transcript's. */
  private endSilenceMs(): number {
    const complete = this.recording?.complete;
    if (complete !== undefined) return complete ? this.cfg.endSilenceShortMs : this.cfg.endSilenceLongMs;
    return endSilenceFor(this.recording?.latest, this.cfg);
  }

  private endUtterance(bounds: SegmentBounds, at: number, reason: EndReason): void {
    const recording = this.recording;
    if (!recording) return;
    const endSilenceMs = this.endSilenceMs();
    this.recording = undefined;
    this.live?.abort(new Error('utterance ended'));
    const audioEnd = Math.min(bounds.speechEnd + samples(TAIL_MS), this.buffer.end);
    const audio = this.buffer.slice(recording.audioStart, audioEnd);
    this.lastAudioEnd = audioEnd;
    const info: UtteranceInfo = {
      audioStartMs: ms(recording.audioStart),
      audioEndMs: ms(audioEnd),
      speechStartMs: ms(bounds.speechStart),
      speechEndMs: ms(bounds.speechEnd),
      voicedMs: ms(bounds.voiced),
      endedAtMs: ms(at),
      endSilenceMs,
      reason: this.listening ? reason : 'stopped',
    };
    this.deps.logger?.debug(info, 'utterance ended');
    this.events.utterance?.(info);
    this.transcribeFinal(audio, recording.announced);
  }

  // -- transcription ---------------------------------------------------------------------

  /** Queues the whole utterance's transcription behind any earlier final. */
  private transcribeFinal(audio: Int16Array, announced: boolean): void {
    this.pendingFinals++;
    this.refreshState();
    this.finals = this.finals.then(() => this.runFinal(audio, announced)).catch(this.handlerFailed);
  }

  /** `announced`: a preemptive transcript of this utterance stands, which this final confirms or takes back. */
  private async runFinal(audio: Int16Array, announced: boolean): Promise<void> {
    await this.liveSettled;
    const request = new AbortController();
    this.finalRequests.add(request);
    const text = await this.deps.engine.transcribe(audio, request.signal).catch((error: unknown) => {
      if (!request.signal.aborted) this.finalFailed(error);
      return '';
    });
    this.finalRequests.delete(request);
    this.pendingFinals--;
    try {
      if (text && !this.closed) this.events.final(text);
      else if (announced && !this.closed) this.events.preemptiveCancelled?.();
    } finally {
      this.refreshState();
      this.transcribeLive();
    }
  }

  /** A throwing event handler must not wedge the chains above: it is logged, and the next utterance goes on. */
  private readonly handlerFailed = (error: unknown): void => {
    this.deps.logger?.error({ err: error }, 'speech input event handler failed');
  };

  private finalFailed(error: unknown): void {
    this.deps.logger?.warn({ err: error }, 'transcription failed');
    if (!this.closed) this.events.error('stt_error', `Speech could not be transcribed: ${message(error)}`);
  }

  /** Starts a live transcription of the utterance so far, if the rules allow one now (a pause's closing one first). */
  private transcribeLive(): void {
    const recording = this.recording;
    if (!recording || this.live || this.pendingFinals > 0 || this.closed) return;
    const closing = this.wantsClosing(recording);
    if (!closing && !this.liveDue(recording)) return;
    const end = this.buffer.end;
    recording.liveEnd = end;
    if (closing) recording.closingAsked = true;
    const pausedAt = closing ? recording.pausedAt : undefined;
    const request = new AbortController();
    this.live = request;
    this.liveClosing = closing;
    const pcm = this.buffer.slice(recording.audioStart, end);
    // Stamped as the request starts, after the copy (which grows with the utterance and can be
    // slowed by a GC pause): the interval is between request starts, as the setting says.
    this.lastLiveAt = performance.now();
    this.liveSettled = this.deps.engine
      .transcribe(pcm, request.signal)
      .then(
        (text) => this.onLive(recording, text, pausedAt),
        (error: unknown) => this.onLiveError(request, error),
      )
      .finally(() => {
        if (this.live === request) this.live = undefined;
        this.transcribeLive();
      })
      .catch(this.handlerFailed);
  }

  /** A periodic live request is due: the interval has passed and there is new audio (none after a pause's closing transcription). */
  private liveDue(recording: Recording): boolean {
    if (this.cfg.realtimeIntervalMs === 0 || recording.closingAsked) return false;
    return performance.now() - this.lastLiveAt >= this.cfg.realtimeIntervalMs && this.buffer.end - recording.liveEnd >= VAD_WINDOW;
  }

  /** `pausedAt`: the pause whose closing transcription this is (announced if the user has not spoken since). */
  private onLive(recording: Recording, text: string, pausedAt: number | undefined): void {
    if (recording !== this.recording || this.closed || !text) return; // late: its utterance has ended
    const previous = recording.latest;
    recording.latest = text;
    if (text !== previous) this.events.update(text);
    const stable = previous === undefined ? '' : commonWordPrefix(previous, text);
    if (stable && stable !== recording.stabilized) {
      recording.stabilized = stable;
      this.events.stabilized(stable);
    }
    if (pausedAt === undefined || recording.pausedAt !== pausedAt) return;
    recording.heard = text;
    this.announce(recording);
  }

  /**
   * Only logged: the final transcription of the same audio reports a server that keeps failing,
   * and a live hiccup the final recovers from is noise to the user.
   */
  private onLiveError(request: AbortController, error: unknown): void {
    if (!request.signal.aborted) this.deps.logger?.warn({ err: error }, 'live transcription failed');
  }


  private refreshState(): void {
    const next: SttState = this.recording ? 'recording' : this.pendingFinals > 0 ? 'transcribing' : this.listening ? 'listening' : 'inactive';
    if (next === this.current || this.closed) return;
    this.current = next;
    this.events.state(next);
  }
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));
