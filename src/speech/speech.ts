// Speech: the long-lived speech worker of one connection. It takes sentences from the sentence
// queue in order and synthesizes each in its character's voice, up to `lookahead` sentences
// ahead of the one being spoken (so the next sentence's audio is ready when the current one
// ends: no gap for the engine's first byte); their PCM chunks go on the audio queue strictly in
// sentence order, end-of-message markers in their place. Items of an older generation (before an
// interrupt) are dropped, and interrupt() aborts every synthesis in flight, ahead ones included.
// It also bounds what waits for a slow client: past MAX_QUEUED_AUDIO_BYTES unsent (half of it for
// sentences ahead), it stops reading from the engines until the audio streamer catches up. A
// failing engine costs a turn little: a failed sentence is skipped, the client is told once per
// turn (tts_error), and after MAX_CONSECUTIVE_FAILURES in a row the rest of the turn is text only.
import type { Logger } from 'pino';
import { metrics } from '../metrics.ts';
import type { ErrorCode } from '../protocol.ts';
import type { AudioItem, SentenceItem } from '../session/items.ts';
import { AsyncQueue } from '../util/async-queue.ts';
import type { TtsEngine } from './engine.ts';
import { Synthesis } from './synthesis.ts';
import { mergeStyles } from './voice-style.ts';
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
  /** Sentences synthesized ahead of the one being spoken (TTS_LOOKAHEAD); default 0. */
  lookahead?: number | undefined;
}

type Sentence = Extract<SentenceItem, { kind: 'sentence' }>;
/** What the output side takes in order: a sentence with its synthesis (already running), an end, or the last. */
type Step = { kind: 'sentence'; item: Sentence; synthesis: Synthesis } | { kind: 'end'; item: Extract<SentenceItem, { kind: 'end' }> } | { kind: 'done' };

/** Higgs v3's inline tags (`<|emotion:…|>` and the like): kept as they are for the engines that read them. */
const INLINE_TAG = /(<\|[a-z_]+(?::[^|>]*)?\|>)/i;

/** Text as it should be spoken: no *stage directions*, markdown marks or emoji (inline tags kept). */
export function speakable(text: string): string {
  return text
    .replace(/\*[^*]*\*/g, ' ')
    .split(INLINE_TAG)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/[*_#`~>|]+/g, ' ').replace(/\p{Extended_Pictographic}\uFE0F?/gu, ' ')))
    .join('')
    .replace(/\s+/g, ' ')
    .trim();
}

export class Speech {
  /** Syntheses started and not yet spoken to the end (or dropped), oldest first. */
  private readonly running: Synthesis[] = [];
  private readonly steps = new AsyncQueue<Step>();
  private queuedBytes = 0;
  /** Readers and the intake waiting for room (bytes or a lookahead slot); woken on any change. */
  private waiting: Array<() => void> = [];
  /** Speech failures of the latest turn spoken. */
  private failures = { turn: -1, inARow: 0, told: false };
  private readonly lookahead: number;
  private readonly warnedVoices = new Set<string>();

  constructor(private readonly deps: SpeechDeps) {
    this.lookahead = Math.max(0, Math.floor(deps.lookahead ?? 0));
  }

  /** A sentence is being synthesized or spoken. */
  get busy(): boolean {
    return this.running.length > 0;
  }

  /** Synthesized PCM not yet sent to the client (queued, or held by a synthesis ahead). */
  get queuedAudioBytes(): number {
    return this.queuedBytes;
  }

  /** Runs until the sentence queue closes. */
  async run(): Promise<void> {
    const output = this.output();
    try {
      for await (const item of this.deps.sentences) {
        if (item.generation !== this.deps.generation()) continue;
        if (item.kind === 'end') {
          this.steps.push({ kind: 'end', item });
          continue;
        }
        if (speakable(item.text) === '') continue;
        await this.slot(item);
        if (item.generation !== this.deps.generation() || this.failing(item.turn) >= MAX_CONSECUTIVE_FAILURES) continue;
        this.steps.push({ kind: 'sentence', item, synthesis: this.start(item) });
      }
    } finally {
      this.steps.push({ kind: 'done' });
      await output;
    }
  }

  /** Aborts every synthesis in flight (the router has already bumped the generation). */
  interrupt(): void {
    for (const synthesis of this.running) this.queuedBytes -= synthesis.abort();
    this.wakeAll();
  }

  /** The audio streamer has sent (or dropped) `bytes` of queued audio. */
  released(bytes: number): void {
    this.queuedBytes -= bytes;
    if (this.waiting.length > 0) this.wakeAll();
  }

  /** Starts synthesizing a sentence now; its chunks wait in it until output() reaches it. */
  private start(item: Sentence): Synthesis {
    const text = speakable(item.text);
    const { engine } = this.deps;
    const synthesis: Synthesis = new Synthesis(
      async (signal) => {
        const { definition } = item.speaker;
        const voice = await (definition ? this.deps.voices.fromUnsaved(definition) : this.deps.voices.resolve(item.speaker.voice));
        if (voice.fallback !== undefined) this.warnOnce(item.speaker.voice ?? '', voice.fallback);
        // The character's own style, part by part over its voice's (a fallback voice keeps it too).
        const styled = item.speaker.style ? { ...voice, style: mergeStyles(voice.style, item.speaker.style) } : voice;
        return timed(engine.synthesize(text, styled, signal));
      },
      (s) => this.readRoom(s, item.generation),
      (bytes) => (this.queuedBytes += bytes),
    );
    this.running.push(synthesis);
    return synthesis;
  }

  /** Takes the steps in order: each sentence's chunks onto the audio queue, then the next. */
  private async output(): Promise<void> {
    for await (const step of this.steps) {
      if (step.kind === 'done') return;
      if (step.kind === 'end') {
        if (step.item.generation === this.deps.generation()) this.deps.audio.push(step.item);
      } else {
        await this.speak(step.item, step.synthesis);
      }
    }
  }

  private async speak(item: Sentence, synthesis: Synthesis): Promise<void> {
    let chunkIndex = 0;
    try {
      if (item.generation !== this.deps.generation() || this.textOnly(item.turn)) return;
      this.wakeAll(); // it is the head now: it may read up to the full budget
      for await (const pcm of synthesis.take()) {
        if (item.generation !== this.deps.generation()) break;
        if (chunkIndex === 0) this.failures.inARow = 0; // the engine answers again
        this.deps.audio.push({
          kind: 'chunk',
          speaker: item.speaker,
          generation: item.generation,
          sample_rate: this.deps.engine.sampleRate,
          sentence_index: item.sentence_index,
          chunk_index: chunkIndex++,
          pcm,
        });
      }
    } catch (error) {
      if (synthesis.aborted || item.generation !== this.deps.generation()) return;
      this.failed(item, error);
    } finally {
      this.queuedBytes -= synthesis.abort(new Error('spoken')); // no-op once the engine has finished
      this.running.splice(this.running.indexOf(synthesis), 1);
      this.wakeAll();
    }
  }

  /**
   * Waits for a lookahead slot: at most 1 + lookahead sentences synthesizing or being spoken. An
   * engine failing this turn is not asked ahead: one sentence at a time until one succeeds, so a
   * turn that goes text only after MAX_CONSECUTIVE_FAILURES has sent no more than that.
   */
  private async slot(item: Sentence): Promise<void> {
    const ahead = () => (this.failing(item.turn) > 0 ? 0 : this.lookahead);
    while (this.running.length > ahead() && item.generation === this.deps.generation()) await this.changed();
  }

  /** Sentences of `turn` that failed in a row so far (0 for a turn not yet spoken). */
  private failing(turn: number): number {
    return this.failures.turn === turn ? this.failures.inARow : 0;
  }

  /**
   * Waits while too much audio is unsent: the sentence being spoken may fill MAX_QUEUED_AUDIO_BYTES,
   * sentences ahead only half of it, so the head always has room to go on (no deadlock).
   */
  private async readRoom(synthesis: Synthesis, generation: number): Promise<void> {
    for (;;) {
      if (synthesis.aborted || generation !== this.deps.generation()) return;
      const limit = this.running[0] === synthesis ? MAX_QUEUED_AUDIO_BYTES : MAX_QUEUED_AUDIO_BYTES / 2;
      if (this.queuedBytes < limit) return;
      await this.changed();
    }
  }

  private changed(): Promise<void> {
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private wakeAll(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const wake of waiting) wake();
  }

  /** A voice spoken in its engine's default instead: the client is told once per voice. */
  private warnOnce(voice: string, message: string): void {
    if (this.warnedVoices.has(voice)) return;
    this.warnedVoices.add(voice);
    this.deps.error('voice_fallback', message);
  }

  /** After MAX_CONSECUTIVE_FAILURES in a row, a turn's later sentences are not spoken. */
  private textOnly(turn: number): boolean {
    if (this.failures.turn !== turn) this.failures = { turn, inARow: 0, told: false };
    return this.failures.inARow >= MAX_CONSECUTIVE_FAILURES;
  }

  /** A skipped sentence: logged each time, told to the client once per turn. */
  private failed(item: Sentence, error: unknown): void {
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
}

/** The engine's stream, with its time to first byte recorded. */
async function* timed(stream: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const startedAt = metrics.now();
  let first = true;
  for await (const pcm of stream) {
    if (first) metrics.ttsFirstByte(metrics.secondsSince(startedAt));
    first = false;
    yield pcm;
  }
}
