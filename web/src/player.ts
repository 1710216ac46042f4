// Gapless speech playback. Every PCM16 frame the server sends (each right after its
// `audio_chunk` header) becomes an AudioBuffer at the sample rate its message's
// `audio_stream_start` announced, and is scheduled on the ONE AudioContext clock to start
// exactly where the previous one ends, so consecutive frames and consecutive messages play
// back to back with no gap and no overlap. Messages play first in first out: frames of a
// message that is not yet at the head of the queue wait until every earlier message's stream
// has stopped. All sources play through one GainNode; stopping disconnects it (silence from
// the next render quantum) and stops every scheduled source. Frames of cancelled messages that
// still arrive are discarded, and while a local interrupt awaits its `interrupt_ack`, any
// message that starts is treated as cancelled too.
//
// Pausing (the server's `audio_paused`, when the user speaks over a reply) silences playback at
// once but keeps what was scheduled and not yet heard: each frame's unplayed part (from the exact
// sample where the pause fell) and the frames that arrive meanwhile wait. `audio_resumed` puts
// them back on the clock from there, so nothing is repeated or skipped; an interrupt drops them.
import { audioContext } from './audio.ts';
import { debug, remember } from './debug.ts';

/** Scheduling lead when playback starts from idle: a small jitter buffer. */
const START_LEAD_S = 0.08;

interface StreamInfo {
  message_id: string;
  character_id: string;
  character_name: string;
}

/** A frame (or what was left of it at a pause) on the clock: its audio from `offset` s, from `startAt` (context time). */
interface Scheduled {
  buffer: AudioBuffer;
  offset: number;
  startAt: number;
  /** Its playbackRate: one second of context time plays this many seconds of its audio. */
  rate: number;
}

interface QueuedMessage {
  id: string;
  sampleRate: number;
  /** Frames received while an earlier message still had its stream open, or while paused. */
  waiting: Float32Array[];
  /** What a pause took off the clock, unheard: each frame's rest, in order (played first on resume). */
  held: Array<{ buffer: AudioBuffer; offset: number }>;
  /** The server sent audio_stream_stop: no more frames will come. */
  complete: boolean;
  sources: Map<AudioBufferSourceNode, Scheduled>;
  speaking: boolean;
  startTimer: number | undefined;
  /** Every piece put on the clock since the last pause: [start, duration, rate] in context seconds (for playback_position). */
  scheduled: Array<[number, number, number]>;
  /** Seconds played before the last pause. */
  playedBefore: number;
}

export interface PlayerEvents {
  /** A message's audio became audible (true) or finished / was cut (false). */
  speaking(messageId: string, on: boolean): void;
  /** Whether anything is queued or playing. */
  activity(active: boolean): void;
  /** A message's audio was cut off before it finished. */
  cancelled(messageId: string): void;
}

export class Player {
  /** Open or playing messages, in order; the first is the one whose frames are scheduled as they come. */
  private queue: QueuedMessage[] = [];
  private readonly cancelled = new Set<string>();
  /** The message the next binary frame belongs to (from the last audio_chunk header). */
  private pendingFrameOf: string | undefined;
  /** A local interrupt was sent and its interrupt_ack has not arrived. */
  private awaitingAck = false;
  private output: GainNode | undefined;
  /** Context time at which the next scheduled frame starts. */
  private nextTime = 0;
  private wasActive = false;
  /** audio_paused came, and neither audio_resumed nor an interrupt yet. */
  private paused = false;
  /** Auto-play is off and a reply's audio waits for playHeld() (the listening controls). */
  private holding = false;
  /** The listening controls (web/src/listening.ts): speech on/off, auto-play, volume, mute, speed. */
  private prefs = { speech: true, autoplay: true, volume: 1, muted: false, rate: 1 };

  constructor(private readonly events: PlayerEvents) {}

  get active(): boolean {
    return this.queue.length > 0;
  }

  // -- protocol events ------------------------------------------------------------------------

  streamStart(info: StreamInfo & { sample_rate: number }): void {
    // Speech off: the reply's audio is dropped as it comes (its text still shows).
    if (this.awaitingAck || this.cancelled.has(info.message_id) || !this.prefs.speech) {
      this.markCancelled(info.message_id);
      return;
    }
    if (this.find(info.message_id)) return;
    if (!(info.sample_rate >= 3000 && info.sample_rate <= 384_000)) {
      this.markCancelled(info.message_id); // no AudioBuffer can hold it; its frames are dropped
      return;
    }
    // Auto-play off: a reply that starts from silence waits for the Play button.
    if (!this.prefs.autoplay && this.queue.length === 0) this.holding = true;
    this.queue.push({ id: info.message_id, sampleRate: info.sample_rate, waiting: [], held: [], complete: false, sources: new Map(), speaking: false, startTimer: undefined, scheduled: [], playedBefore: 0 });
    this.activityChanged();
  }

  chunkHeader(info: StreamInfo): void {
    this.pendingFrameOf = info.message_id;
  }

  /** A binary frame: the PCM of the audio_chunk header just before it. */
  frame(data: ArrayBuffer): void {
    const id = this.pendingFrameOf;
    this.pendingFrameOf = undefined;
    const message = id === undefined ? undefined : this.find(id);
    if (id === undefined || !message || this.cancelled.has(id)) {
      debug.playback.discardedFrames++;
      return;
    }
    const samples = pcm16ToFloat(data);
    if (samples.length === 0) return;
    if (!this.paused && !this.holding && this.ready(message)) this.schedule(message, samples);
    else message.waiting.push(samples);
  }

  streamStop(info: StreamInfo & { interrupted?: boolean | undefined }): void {
    if (info.interrupted) {
      this.cancel(info.message_id);
      return;
    }
    const message = this.find(info.message_id);
    if (!message) return;
    message.complete = true;
    this.pump();
  }

  /** The server confirmed an interrupt (ours, or one it started itself): nothing queued survives. */
  interruptAcknowledged(): void {
    this.awaitingAck = false;
    this.paused = false;
    if (this.queue.length > 0) this.stopAll();
  }

  /** A message streams again (regenerate, continue): its id is no longer a cancelled one. */
  reuse(messageId: string): void {
    this.cancelled.delete(messageId);
  }

  /** How much of each queued message's audio has been played so far, in ms (sent as playback_position on interrupt and pause). */
  positions(): Array<{ message_id: string; played_ms: number }> {
    const now = this.output ? audioContext().currentTime : 0;
    return this.queue
      .filter((m) => m.scheduled.length > 0 || m.playedBefore > 0)
      .map((m) => ({ message_id: m.id, played_ms: Math.round((m.playedBefore + playedSince(m.scheduled, now)) * 1000) }));
  }

  /** The listening controls changed: volume, mute and speed apply at once (speed to what is scheduled next), speech off stops what plays. */
  configure(prefs: { speech: boolean; autoplay: boolean; volume: number; muted: boolean; rate: number }): void {
    const speechTurnedOff = this.prefs.speech && !prefs.speech;
    this.prefs = { ...prefs };
    if (this.output) this.output.gain.value = this.gain();
    if (speechTurnedOff) this.stopAll();
    if (prefs.autoplay && this.holding) this.playHeld();
  }

  /** Whether a reply's audio waits for playHeld() (auto-play off). */
  get waiting(): boolean {
    return this.holding && this.queue.length > 0;
  }

  /** Plays the audio that auto-play off held back. */
  playHeld(): void {
    if (!this.holding) return;
    this.holding = false;
    this.pump();
  }

  /** Mute is a gain of 0 on the one output: nothing reaches the speakers, while the playback clock (and what the server is told was heard) runs on. */
  private gain(): number {
    return this.prefs.muted ? 0 : this.prefs.volume;
  }

  /** Silences playback now, keeping every unplayed sample (audio_paused). */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    const now = this.output ? audioContext().currentTime : 0;
    for (const message of this.queue) {
      message.playedBefore += playedSince(message.scheduled, now);
      message.scheduled = [];
      const rests = [...message.sources.values()]
        .sort((a, b) => a.startAt - b.startAt)
        .filter((f) => now < f.startAt + (f.buffer.duration - f.offset) / f.rate)
        .map((f) => ({ buffer: f.buffer, offset: f.offset + Math.max(0, now - f.startAt) * f.rate }));
      this.stopSources(message);
      message.held = [...rests, ...message.held];
    }
    this.disconnect();
    debug.playback.pauses++;
  }

  /** Plays on from where pause() stopped (audio_resumed): the kept audio first, then what arrived meanwhile. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    debug.playback.resumes++;
    this.pump();
  }

  // -- control ------------------------------------------------------------------------------

  /**
   * Stops all sound now and cancels every queued message. With `awaitAck`, messages that start
   * before the server's interrupt_ack are cancelled as well (they belong to the interrupted turn).
   */
  stopAll(opts: { awaitAck?: boolean } = {}): void {
    if (opts.awaitAck) this.awaitingAck = true;
    const hadSound = this.queue.length > 0;
    this.paused = false; // what was paused is cut
    this.holding = false;
    for (const message of this.queue.splice(0)) this.silence(message);
    this.disconnect();
    this.pendingFrameOf = undefined;
    if (hadSound) debug.playback.stops++;
    this.activityChanged();
  }

  /** The connection dropped: whatever was in flight will never complete. */
  reset(): void {
    this.awaitingAck = false;
    this.stopAll();
  }

  // -- internals ----------------------------------------------------------------------------

  private cancel(id: string): void {
    this.markCancelled(id);
    const index = this.queue.findIndex((m) => m.id === id);
    if (index < 0) return;
    const [message] = this.queue.splice(index, 1);
    if (message) this.silence(message);
    if (this.queue.length === 0) this.nextTime = 0;
    this.pump();
    this.activityChanged();
  }

  private markCancelled(id: string): void {
    if (this.cancelled.has(id)) return;
    this.cancelled.add(id);
    remember(debug.playback.cancelled, id, 200);
    // Bounded memory on a long session: the oldest ids will never send frames again.
    if (this.cancelled.size > 500) {
      const oldest = this.cancelled.values().next().value;
      if (oldest !== undefined) this.cancelled.delete(oldest);
    }
  }

  private silence(message: QueuedMessage): void {
    this.markCancelled(message.id);
    this.events.cancelled(message.id);
    this.stopSources(message);
    message.waiting = [];
    message.held = [];
  }

  /** Stops every source of the message now (it is silent), and its speaking state with them. */
  private stopSources(message: QueuedMessage): void {
    window.clearTimeout(message.startTimer);
    message.startTimer = undefined;
    for (const source of message.sources.keys()) {
      source.onended = null;
      try {
        source.stop();
      } catch {
        // never started: nothing to stop
      }
      source.disconnect();
      debug.playback.activeSources--;
    }
    message.sources.clear();
    if (message.speaking) {
      message.speaking = false;
      this.events.speaking(message.id, false);
    }
  }

  /**
   * Disconnecting the shared output silences anything still scheduled from the next render
   * quantum on, even a source whose stop() the audio thread has not yet processed.
   */
  private disconnect(): void {
    if (this.output) {
      this.output.disconnect();
      this.output = undefined;
    }
    this.nextTime = 0;
  }

  /** A frame as it arrived: onto the clock. */
  private schedule(message: QueuedMessage, samples: Float32Array): void {
    const buffer = audioContext().createBuffer(1, samples.length, message.sampleRate);
    buffer.copyToChannel(samples as Float32Array<ArrayBuffer>, 0);
    const stats = debug.playback;
    const framesBefore = stats.framesByMessage[message.id] ?? 0;
    if (framesBefore === 0) stats.order.push(message.id);
    stats.framesByMessage[message.id] = framesBefore + 1;
    stats.scheduledFrames++;
    if (!stats.sampleRates.includes(message.sampleRate)) stats.sampleRates.push(message.sampleRate);
    this.play(message, buffer, 0, framesBefore > 0);
  }

  /** Puts `buffer` from `offset` s on the clock, right after what is scheduled. `within`: not the message's first piece. */
  private play(message: QueuedMessage, buffer: AudioBuffer, offset: number, within: boolean): void {
    const ctx = audioContext();
    if (!this.output) {
      this.output = ctx.createGain();
      this.output.gain.value = this.gain();
      this.output.connect(ctx.destination);
    }
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    const rate = this.prefs.rate;
    source.playbackRate.value = rate;
    source.connect(this.output);
    const duration = (buffer.duration - offset) / rate;
    // Back to back on the context clock; after an underrun (or from idle), a small lead.
    const startAt = Math.max(this.nextTime, ctx.currentTime + START_LEAD_S);
    const stats = debug.playback;
    // A gap inside one message means frames arrived slower than real time.
    if (within && this.nextTime > 0 && startAt > this.nextTime + 1e-6) stats.underruns++;
    source.start(startAt, offset);
    this.nextTime = startAt + duration;
    message.scheduled.push([startAt, duration, rate]);
    message.sources.set(source, { buffer, offset, startAt, rate });
    source.onended = () => {
      message.sources.delete(source);
      debug.playback.activeSources--;
      this.pump();
    };

    if (message.startTimer === undefined && !message.speaking) {
      message.startTimer = window.setTimeout(() => {
        if (!this.queue.includes(message)) return;
        message.speaking = true;
        this.events.speaking(message.id, true);
      }, Math.max(0, (startAt - ctx.currentTime) * 1000));
    }

    remember(stats.timeline, [message.id, ctx.currentTime, startAt, startAt + duration], 2000);
    stats.scheduledSeconds += duration;
    stats.activeSources++;
  }

  /** Whether every message before this one has its stream complete, so its frames go on the clock now. */
  private ready(message: QueuedMessage): boolean {
    for (const m of this.queue) {
      if (m === message) return true;
      if (!m.complete) return false;
    }
    return false;
  }

  /**
   * Puts waiting frames on the clock once every earlier message's stream is complete, and lets
   * go of messages that are complete and have finished playing.
   */
  private pump(): void {
    for (const message of this.paused || this.holding ? [] : this.queue) {
      for (const rest of message.held.splice(0)) this.play(message, rest.buffer, rest.offset, true);
      for (const samples of message.waiting.splice(0)) this.schedule(message, samples);
      if (!message.complete) break;
    }
    for (const message of [...this.queue]) {
      if (!message.complete || message.sources.size > 0 || message.waiting.length > 0 || message.held.length > 0) continue;
      this.queue.splice(this.queue.indexOf(message), 1);
      window.clearTimeout(message.startTimer);
      if (message.speaking) {
        message.speaking = false;
        this.events.speaking(message.id, false);
      }
    }
    this.activityChanged();
  }

  private find(id: string): QueuedMessage | undefined {
    return this.queue.find((m) => m.id === id);
  }

  private activityChanged(): void {
    const active = this.active;
    if (active === this.wasActive) return;
    this.wasActive = active;
    this.events.activity(active);
  }
}

/** Seconds of audio played by `now` of pieces on the clock ([start, duration, rate], context seconds). */
function playedSince(scheduled: Array<[number, number, number]>, now: number): number {
  return scheduled.reduce((sum, [start, duration, rate]) => sum + Math.min(duration, Math.max(0, now - start)) * rate, 0);
}

/** PCM16 little-endian → float samples in [-1, 1). An odd trailing byte is ignored. */
export function pcm16ToFloat(data: ArrayBuffer): Float32Array {
  const view = new DataView(data);
  const out = new Float32Array(data.byteLength >> 1);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true) / 0x8000;
  return out;
}
