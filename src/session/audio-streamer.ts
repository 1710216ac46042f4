// AudioStreamer: the long-lived task that drains a connection's audio queue to the client.
// Before a message's first frame it sends audio_stream_start (with the engine's sample rate),
// then each audio_chunk header with its binary frame right behind it, and audio_stream_stop
// after the last — only for a stream it started. It waits for a slow client before each frame,
// and drops every item of an older generation, so after an interrupt no frame of a cancelled
// message can leave, however late it arrives. Audio is paced to playback: a frame leaves when
// the client has less than `leadMs` of audio left to play, so neither the socket nor the client
// holds more than that, and a fast engine's output reaches the client as a steady stream
// rather than a burst (what is not yet sent waits in the audio queue, where Speech bounds it).
// Times are on the session's PlaybackClock, which stands still while playback is paused; and
// while the playout holds its output (`gate`: a reply not yet confirmed, or paused playback), no
// frame leaves: what is not sent stays in the queue, in order.
import type { ServerMessage } from '../protocol.ts';
import type { AsyncQueue } from '../util/async-queue.ts';
import type { AudioItem, Speaker } from './items.ts';
import { PlaybackClock } from './playback-clock.ts';
import type { SocketWriter } from './writer.ts';

export interface AudioStreamerDeps {
  audio: AsyncQueue<AudioItem>;
  writer: SocketWriter;
  generation: () => number;
  /** Told how many queued PCM bytes have left the queue (sent or dropped). */
  released: (bytes: number) => void;
  /** Told when a message's first frame is sent (for metrics). */
  onFirstFrame?: (speaker: Speaker) => void;
  /** Audio sent ahead of the client's playback; 0 = no pacing. */
  leadMs: number;
  /** Told of each frame sent: when the client should start playing it and for how long (ms, performance.now clock). */
  onSent?: (item: Extract<AudioItem, { kind: 'chunk' }>, playsAt: number, durationMs: number) => void;
  /** Told when a message's audio is all sent (or it had none), with when the client will have played it. */
  onEnd?: (speaker: Speaker, playbackEndsAt: number) => void;
  /** Playback time; default: a clock of its own that is never paused. */
  clock?: PlaybackClock;
  /** While audio must not leave (held or paused): what to wait for; undefined when it may go. */
  gate?: () => Promise<void> | undefined;
}

const ids = (s: Speaker) => ({ character_id: s.character_id, character_name: s.character_name, message_id: s.message_id });

export class AudioStreamer {
  private open: Speaker | undefined;
  /** When the client will have played all audio sent so far (ms, playback clock). */
  private playbackEndsAt = 0;
  private wakeInterrupted: (() => void) | undefined;
  private readonly clock: PlaybackClock;

  constructor(private readonly deps: AudioStreamerDeps) {
    this.clock = deps.clock ?? new PlaybackClock();
  }

  /** Runs until the audio queue closes. */
  async run(): Promise<void> {
    for await (const item of this.deps.audio) {
      if (item.kind === 'end') this.end(item);
      else await this.frame(item);
    }
  }

  /** Audio sent is still playing at the client (it plays in real time from the first frame). */
  get playing(): boolean {
    return this.open !== undefined || this.clock.now() < this.playbackEndsAt;
  }

  /** Closes the open stream as interrupted. Called after the generation was bumped, before interrupt_ack. */
  interrupt(): void {
    if (this.open) this.send({ type: 'audio_stream_stop', data: { ...ids(this.open), interrupted: true } });
    this.open = undefined;
    this.playbackEndsAt = 0;
    this.wakeInterrupted?.();
  }

  private async frame(item: Extract<AudioItem, { kind: 'chunk' }>): Promise<void> {
    const { writer, generation } = this.deps;
    try {
      if (item.generation !== generation()) return;
      // No await (and no microtask hop) when nothing holds the frame back; after any wait, all is checked again.
      for (let wait = this.holdBack(); wait; wait = this.holdBack()) {
        await wait;
        if (item.generation !== generation() || !writer.open) return;
      }
      if (this.open?.message_id !== item.speaker.message_id) {
        if (this.open) this.send({ type: 'audio_stream_stop', data: ids(this.open) });
        this.open = item.speaker;
        this.send({ type: 'audio_stream_start', data: { ...ids(item.speaker), sample_rate: item.sample_rate } });
        this.deps.onFirstFrame?.(item.speaker);
      }
      writer.sendAudio(
        { type: 'audio_chunk', data: { ...ids(item.speaker), sentence_index: item.sentence_index, chunk_index: item.chunk_index } },
        item.pcm,
      );
      const playsAt = Math.max(this.playbackEndsAt, this.clock.now());
      const durationMs = (item.pcm.length / 2 / item.sample_rate) * 1000;
      this.playbackEndsAt = playsAt + durationMs;
      this.deps.onSent?.(item, playsAt, durationMs);
    } finally {
      this.deps.released(item.pcm.length);
    }
  }

  private end(item: Extract<AudioItem, { kind: 'end' }>): void {
    if (item.generation !== this.deps.generation()) return;
    this.deps.onEnd?.(item.speaker, Math.max(this.playbackEndsAt, this.clock.now()));
    if (this.open?.message_id !== item.speaker.message_id) return; // no frame was sent: no stream to stop
    this.send({ type: 'audio_stream_stop', data: ids(this.open) });
    this.open = undefined;
  }

  /** What the next frame must wait for first: the gate, the pacing, a slow client; undefined: nothing. */
  private holdBack(): Promise<void> | undefined {
    const gate = this.deps.gate?.();
    if (gate) return Promise.race([gate, new Promise<void>((resolve) => (this.wakeInterrupted = resolve))]);
    return this.paced() ?? (this.deps.writer.congested ? this.clientReady() : undefined);
  }

  /** Waits until the client has less than leadMs of audio left to play (or an interrupt). */
  private paced(): Promise<void> | undefined {
    const { leadMs } = this.deps;
    const wait = this.playbackEndsAt - this.clock.now() - leadMs;
    if (leadMs === 0 || wait <= 0) return undefined;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      this.wakeInterrupted = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Waits for the client to read, or for an interrupt that makes waiting moot. */
  private clientReady(): Promise<void> {
    const ready = this.deps.writer.ready();
    return Promise.race([ready, new Promise<void>((resolve) => (this.wakeInterrupted = resolve))]);
  }

  private send(message: ServerMessage): void {
    this.deps.writer.send(message);
  }
}
