// Speech: the long-lived speech worker of one connection. It takes sentences from the sentence
// queue in order, synthesizes each in its character's voice, and puts the PCM chunks on the
// audio queue as the engine produces them; end-of-message markers pass straight through.
// Items of an older generation (before an interrupt) are dropped, and interrupt() aborts the
// synthesis in flight. It also bounds what waits for a slow client: past MAX_QUEUED_AUDIO_BYTES
// unsent, it stops synthesizing until the audio streamer catches up. A failing engine costs a
// turn little: a failed sentence is skipped, the client is told once per turn (tts_error), and
// after MAX_CONSECUTIVE_FAILURES in a row the rest of the turn is text only.
import type { Logger } from 'pino';
import { metrics } from '../metrics.ts';
import type { ErrorCode } from '../protocol.ts';
import type { AudioItem, SentenceItem } from '../session/items.ts';
import type { AsyncQueue } from '../util/async-queue.ts';
import type { TtsEngine } from './engine.ts';
import type { VoiceResolver } from './voices.ts';

/** Synthesized audio a connection may hold unsent (≈ 11 s of 24 kHz PCM16). */
export const MAX_QUEUED_AUDIO_BYTES = 512 * 1024;

/** Sentences that fail in a row before the rest of their turn is not sent to the engine. */
export const MAX_CONSECUTIVE_FAILURES = 3;

export interface SpeechDeps {
  engine: TtsEngine;
  voices: VoiceResolver;
  sentences: AsyncQueue<SentenceItem>;
  audio: AsyncQueue<AudioItem>;
  generation: () => number;
  error: (code: ErrorCode, message: string) => void;
  logger: Logger;
}

/** Text as it should be spoken: no *stage directions*, markdown marks or emoji. */
export function speakable(text: string): string {
  return text
    .replace(/\*[^*]*\*/g, ' ')
    .replace(/[*_#`~>|]+/g, ' ')
    .replace(/\p{Extended_Pictographic}\uFE0F?/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

export class Speech {
  private inFlight: AbortController | undefined;
  private queuedBytes = 0;
  private wakeWhenRoom: (() => void) | undefined;
  /** Speech failures of the latest turn spoken. */
  private failures = { turn: -1, inARow: 0, told: false };

  constructor(private readonly deps: SpeechDeps) {}

  /** A sentence is being synthesized. */
  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  /** Synthesized PCM not yet sent to the client. */
  get queuedAudioBytes(): number {
    return this.queuedBytes;
  }

  /** Runs until the sentence queue closes. */
  async run(): Promise<void> {
    for await (const item of this.deps.sentences) {
      if (item.generation !== this.deps.generation()) continue;
      if (item.kind === 'end') this.deps.audio.push(item);
      else await this.speak(item);
    }
  }

  /** Aborts the synthesis in flight (the router has already bumped the generation). */
  interrupt(): void {
    this.inFlight?.abort(new Error('interrupted'));
    this.wakeWhenRoom?.();
  }

  /** The audio streamer has sent (or dropped) `bytes` of queued audio. */
  released(bytes: number): void {
    this.queuedBytes -= bytes;
    if (this.queuedBytes < MAX_QUEUED_AUDIO_BYTES) this.wakeWhenRoom?.();
  }

  private async speak(item: Extract<SentenceItem, { kind: 'sentence' }>): Promise<void> {
    const text = speakable(item.text);
    if (text === '' || this.textOnly(item.turn)) return;
    const controller = new AbortController();
    this.inFlight = controller;
    let chunkIndex = 0;
    try {
      const voice = await this.deps.voices.resolve(item.speaker.voice);
      const { engine } = this.deps;
      const startedAt = metrics.now();
      for await (const pcm of engine.synthesize(text, voice, controller.signal)) {
        if (item.generation !== this.deps.generation()) break;
        if (chunkIndex === 0) {
          metrics.ttsFirstByte(metrics.secondsSince(startedAt));
          this.failures.inARow = 0; // the engine answers again
        }
        this.queuedBytes += pcm.length;
        this.deps.audio.push({
          kind: 'chunk',
          speaker: item.speaker,
          generation: item.generation,
          sample_rate: engine.sampleRate,
          sentence_index: item.sentence_index,
          chunk_index: chunkIndex++,
          pcm,
        });
        await this.room(item.generation);
      }
    } catch (error) {
      if (controller.signal.aborted || item.generation !== this.deps.generation()) return;
      this.failed(item, error);
    } finally {
      if (this.inFlight === controller) this.inFlight = undefined;
    }
  }

  /** After MAX_CONSECUTIVE_FAILURES in a row, a turn's later sentences are not spoken. */
  private textOnly(turn: number): boolean {
    if (this.failures.turn !== turn) this.failures = { turn, inARow: 0, told: false };
    return this.failures.inARow >= MAX_CONSECUTIVE_FAILURES;
  }

  /** A skipped sentence: logged each time, told to the client once per turn. */
  private failed(item: Extract<SentenceItem, { kind: 'sentence' }>, error: unknown): void {
    const failures = this.failures;
    failures.inARow++;
    const textOnly = failures.inARow >= MAX_CONSECUTIVE_FAILURES;
    this.deps.logger.warn({ err: error, in_a_row: failures.inARow, text_only: textOnly }, 'synthesis failed');
    if (failures.told) return;
    failures.told = true;
    const reason = error instanceof Error ? error.message : String(error);
    this.deps.error(
      'tts_error',
      `${item.speaker.character_name}'s sentence could not be spoken (${reason}); it was skipped. ` +
        `Further speech failures of this turn are not reported; after ${MAX_CONSECUTIVE_FAILURES} in a row the rest of the turn is text only.`,
    );
  }

  /** Waits while too much audio is unsent, unless an interrupt makes the wait moot. */
  private async room(generation: number): Promise<void> {
    while (this.queuedBytes >= MAX_QUEUED_AUDIO_BYTES && generation === this.deps.generation()) {
      await new Promise<void>((resolve) => (this.wakeWhenRoom = resolve));
      this.wakeWhenRoom = undefined;
    }
  }
}
