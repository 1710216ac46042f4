// Playout: one per session. It owns the speech side of a connection — the sentence and audio
// queues, the Speech worker, the AudioStreamer, the generation counter — and the record of what
// was played, so the router and the turns never step through those parts by hand:
//
//   const u = playout.open(speaker, turn);   // one Utterance per message
//   u.add(delta) … u.end();                  // text in (sentences are cut and spoken here)
//   const heard = await u.finished;          // when its playback ends, or is cut
//   playout.interrupt();                     // ONE call: stops everything, returns what was heard
//
// `finished` is modelled on LiveKit agents' PlaybackFinishedEvent {playbackPosition,
// interrupted, synchronizedTranscript}: the turn commits a reply from it, so history keeps only
// what the user heard. What was heard: the sentences whose audio the client had played, plus
// the played part of the sentence in progress (cut at a word boundary in proportion to its
// audio). How much was played is estimated from what was sent and when (the streamer's playback
// clock: audio sent less what the client still buffers, at most AUDIO_LEAD_MS when paced) unless
// the client told us (`playback_position`, reportPosition). With speech off (TTS_ENGINE=none) an
// utterance is finished when its text ends and keeps all of it.
//
// Holding and pausing (the output gate in front of the streamer):
// - `playout.hold()` keeps every frame back until the returned release is called: a reply
//   started before the user's turn was confirmed (src/session/preemptive-turn.ts) is made and
//   synthesized, but nothing of its audio leaves until it is.
// - `playout.pause()` / `resume()` stop and restart playback where it stands (a barge-in that may
//   be taken back, src/session/barge-in.ts): the client is told (audio_paused / audio_resumed),
//   no frame leaves meanwhile, and the PlaybackClock that measures what was heard stands still.
//   `interrupt()` ends a pause (silently: what was paused is cut).
//
// For other parts of the session:
// - Auto-mode (who speaks next when nobody is talking): `await playout.idle()` resolves once no
//   utterance is pending or playing, or subscribe with `playout.onIdle(cb)` (returns an unsubscribe).
// - A fixed text (a greeting) is streamed and spoken like a reply: give ConversationTurn a reply
//   whose `source` is `textSource(text)` (src/session/turn.ts), an async iterable of text chunks;
//   or, without a turn, `open()` an utterance and `add()` the text.
import type { Logger } from 'pino';
import { SentenceSplitter } from '../llm/sentences.ts';
import type { ErrorCode } from '../protocol.ts';
import { Narration, type NarrationDefaults, narrationOf, type SpokenPart } from '../speech/narration.ts';
import { Speech, type SpeechDeps } from '../speech/speech.ts';
import { AsyncQueue } from '../util/async-queue.ts';
import { AudioStreamer } from './audio-streamer.ts';
import type { AudioItem, SentenceItem, Speaker } from './items.ts';
import { PlaybackClock } from './playback-clock.ts';
import type { SocketWriter } from './writer.ts';

/** How one message's playback ended (LiveKit's PlaybackFinishedEvent, per message). */
export interface PlaybackFinished {
  message_id: string;
  /** Cut before all of it was heard. */
  interrupted: boolean;
  /** Milliseconds of the message's audio the client played (0 without audio). */
  playbackPosition: number;
  /** The text the user heard: all of it unless interrupted; a prefix of the generated text. */
  synchronizedTranscript: string;
}

export interface PlayoutDeps {
  writer: SocketWriter;
  /** Speech output; absent when TTS_ENGINE=none (text only). */
  tts: (Omit<SpeechDeps, 'sentences' | 'audio' | 'generation' | 'error' | 'logger'> & { audioLeadMs: number }) | undefined;
  error: (code: ErrorCode, message: string) => void;
  logger: Logger;
  /** Told when a message's first audio frame is sent (for metrics). */
  onFirstFrame?: (speaker: Speaker) => void;
  /** NARRATION / NARRATOR_VOICE; absent = speak all (in the speaker's voice). */
  narration?: NarrationDefaults | undefined;
}

/**
 * Where a spoken part of a sentence (or a stretch not spoken: narration in dialogue_only, code,
 * URLs; it has no audio) sits in its message's text, and how much audio it has. Records tile the
 * spoken text in order, so what was heard maps back to a prefix of the text.
 */
interface SentenceRecord {
  start: number;
  end: number;
  audioMs: number;
  /** All its audio is made (or none will be: skipped, unspeakable). */
  done: boolean;
}

/** What an utterance needs of its playout. */
interface UtteranceOwner {
  readonly voiced: boolean;
  readonly narration: NarrationDefaults;
  readonly clock: PlaybackClock;
  queue(item: SentenceItem): void;
  finished(utterance: Utterance): void;
}

/** The end offset in `text` of the played part of [start, end): the last word boundary at or before `fraction` of it. */
export function wordCut(text: string, start: number, end: number, fraction: number): number {
  if (fraction >= 1) return end;
  if (fraction <= 0) return start;
  const sentence = text.slice(start, end);
  const reach = Math.floor(sentence.length * fraction);
  // A boundary is the whitespace before the first unplayed word.
  for (let i = reach; i > 0; i--) if (/\s/.test(sentence[i] ?? '')) return start + i;
  return start;
}

/** One message's text, its sentences in the speech queue, and the record of its playback. */
export class Utterance {
  readonly finished: Promise<PlaybackFinished>;
  private text = '';
  private readonly splitter = new SentenceSplitter();
  /** What of each sentence is spoken, and by whom: quotes and *actions* may span sentences. */
  private readonly narration: Narration;
  /** The speakers of the parts: the character, and its narrator voice. */
  private readonly voices: Record<SpokenPart['voice'], Speaker>;
  private readonly sentences: SentenceRecord[] = [];
  private cursor = 0;
  /** Frames sent: when the client plays each, for how long (playback clock ms). */
  private readonly plays: Array<{ at: number; ms: number }> = [];
  private clientPlayedMs: number | undefined;
  private ended = false;
  private result: PlaybackFinished | undefined;
  private resolve!: (result: PlaybackFinished) => void;
  private cancelTimer: (() => void) | undefined;

  constructor(
    readonly speaker: Speaker,
    readonly turn: number,
    readonly generation: number,
    private readonly owner: UtteranceOwner,
  ) {
    this.finished = new Promise((resolve) => (this.resolve = resolve));
    const settings = narrationOf(speaker.narration, owner.narration);
    this.narration = new Narration(speaker.narration ? settings.mode : 'all'); // a preview speaks all
    const { definition: _characterVoiceOnly, style: _characterStyleOnly, ...narrator } = speaker;
    this.voices = { character: speaker, narrator: { ...narrator, voice: settings.narratorVoice } };
  }

  /** The text generated so far. */
  get reply(): string {
    return this.text;
  }

  get done(): boolean {
    return this.result !== undefined;
  }

  /** More text of the message: complete sentences go to speech at once. */
  add(delta: string): void {
    if (this.result || this.ended) return;
    this.text += delta;
    for (const sentence of this.splitter.push(delta)) this.speak(sentence);
  }

  /** The text is complete: the rest goes to speech, and the message finishes when its audio has played. */
  end(): void {
    if (this.result || this.ended) return;
    for (const sentence of this.splitter.flush()) this.speak(sentence);
    this.ended = true;
    if (!this.owner.voiced) this.finish(false);
    else this.owner.queue({ kind: 'end', speaker: this.speaker, generation: this.generation });
  }

  /** Cuts the message now (idempotent): what was heard so far. */
  interrupt(now = this.owner.clock.now()): PlaybackFinished {
    return this.result ?? this.finish(true, now);
  }

  // -- the record, fed by the playout's parts ------------------------------------------------

  /** The client says how much of this message it played. */
  reportPlayed(ms: number): void {
    this.clientPlayedMs = ms;
  }

  /** Playback went on after the client's report (a pause was taken back): the clock knows better now. */
  forgetReport(): void {
    this.clientPlayedMs = undefined;
  }

  synthesized(sentenceIndex: number, ms: number): void {
    for (let i = 0; i < sentenceIndex; i++) (this.sentences[i] as SentenceRecord).done = true;
    const sentence = this.sentences[sentenceIndex];
    if (sentence) sentence.audioMs += ms;
  }

  allSynthesized(): void {
    for (const sentence of this.sentences) sentence.done = true;
  }

  sent(playsAt: number, ms: number): void {
    this.plays.push({ at: playsAt, ms });
  }

  /** All audio is sent: the message finishes when the client has played it. */
  audioEnded(playbackEndsAt: number): void {
    if (this.result) return;
    this.allSynthesized();
    this.cancelTimer = this.owner.clock.at(playbackEndsAt, () => this.finish(false));
  }

  // ------------------------------------------------------------------------------------------

  /** A sentence: each of its spoken parts is a record and a sentence item of its own, in order. */
  private speak(sentence: string): void {
    const at = this.text.indexOf(sentence, this.cursor);
    const start = at < 0 ? this.cursor : at;
    const end = at < 0 ? this.text.length : at + sentence.length;
    const before = this.text.slice(this.cursor, start);
    this.cursor = end;
    const offset = (i: number) => Math.min(end, start + i);
    let from = start;
    for (const part of this.narration.parts(sentence, before)) {
      this.unspoken(from, offset(part.start));
      from = offset(part.end);
      const index = this.sentences.push({ start: offset(part.start), end: from, audioMs: 0, done: false }) - 1;
      if (this.owner.voiced) {
        this.owner.queue({ kind: 'sentence', speaker: this.voices[part.voice], generation: this.generation, turn: this.turn, sentence_index: index, text: part.text });
      }
    }
    this.unspoken(from, end);
  }

  /** Text not spoken: recorded without audio, so it counts as heard once what follows it is. */
  private unspoken(start: number, end: number): void {
    if (this.text.slice(start, end).trim() !== '') this.sentences.push({ start, end, audioMs: 0, done: false });
  }

  /** Audio of this message played by `now`: the client's word, else the playback clock's. */
  private playedMs(now: number): number {
    const sent = this.plays.reduce((sum, p) => sum + p.ms, 0);
    if (this.clientPlayedMs !== undefined) return Math.min(this.clientPlayedMs, sent);
    return this.plays.reduce((sum, p) => sum + Math.min(p.ms, Math.max(0, now - p.at)), 0);
  }

  /** The offset in the text up to which the user heard it. */
  private heardUpTo(played: number): number {
    let kept = 0;
    let position = 0;
    for (const sentence of this.sentences) {
      if (sentence.done && played >= position + sentence.audioMs) {
        kept = sentence.end;
        position += sentence.audioMs;
        continue;
      }
      if (sentence.audioMs > 0) kept = wordCut(this.text, sentence.start, sentence.end, (played - position) / sentence.audioMs);
      break;
    }
    return kept;
  }

  private finish(interrupted: boolean, now = this.owner.clock.now()): PlaybackFinished {
    this.cancelTimer?.();
    const played = this.plays.length > 0 || this.owner.voiced ? this.playedMs(now) : 0;
    let transcript = this.text;
    let cut = false;
    if (interrupted && this.owner.voiced) {
      const upTo = this.heardUpTo(played);
      // All of it was heard: the text after the last sentence (none, or unspeakable) counts too.
      const all = this.ended && this.sentences.every((s) => s.done) && upTo >= (this.sentences.at(-1)?.end ?? 0);
      cut = !all;
      if (cut) transcript = this.text.slice(0, upTo).trimEnd();
    } else cut = interrupted;
    this.result = { message_id: this.speaker.message_id, interrupted: cut, playbackPosition: Math.round(played), synchronizedTranscript: transcript };
    this.owner.finished(this);
    this.resolve(this.result);
    return this.result;
  }
}

/** The audio queue, with every item Speech makes noted in its utterance's record. */
class RecordedAudioQueue extends AsyncQueue<AudioItem> {
  constructor(private readonly note: (item: AudioItem) => void) {
    super();
  }

  override push(item: AudioItem): void {
    this.note(item);
    super.push(item);
  }
}

export class Playout implements UtteranceOwner {
  private gen = 0;
  private turns = 0;
  private readonly sentences = new AsyncQueue<SentenceItem>();
  private readonly audio: RecordedAudioQueue;
  private readonly speech: Speech | undefined;
  private readonly streamer: AudioStreamer | undefined;
  /** Utterances not finished yet, by message id. */
  private readonly live = new Map<string, Utterance>();
  private readonly idleListeners = new Set<() => void>();
  readonly narration: NarrationDefaults;
  /** The client's playback time: it stands still while playback is paused. */
  readonly clock = new PlaybackClock();
  /** Holds on the output (hold()) not yet released. */
  private holds = 0;
  /** The streamer, waiting for the gate to open (holds released, playback resumed, or an interrupt). */
  private gateWaiters: Array<() => void> = [];
  private readonly writer: SocketWriter;

  constructor(deps: PlayoutDeps) {
    this.writer = deps.writer;
    this.narration = deps.narration ?? { mode: 'all', narratorVoice: null };
    this.audio = new RecordedAudioQueue((item) => this.noteAudio(item));
    if (!deps.tts) return;
    const generation = () => this.gen;
    const speech = new Speech({ ...deps.tts, sentences: this.sentences, audio: this.audio, generation, error: deps.error, logger: deps.logger });
    this.speech = speech;
    this.streamer = new AudioStreamer({
      audio: this.audio,
      writer: deps.writer,
      generation,
      released: (n) => speech.released(n),
      onFirstFrame: deps.onFirstFrame,
      leadMs: deps.tts.audioLeadMs,
      onSent: (item, playsAt, ms) => this.of(item)?.sent(playsAt, ms),
      onEnd: (speaker, endsAt) => this.of({ speaker, generation: this.gen })?.audioEnded(endsAt),
      clock: this.clock,
      gate: () => this.gate(),
    });
  }

  /** Speech output is on. */
  get voiced(): boolean {
    return this.speech !== undefined;
  }

  /** Bumped by every interrupt: items of an older generation are dropped by every stage. */
  get generation(): number {
    return this.gen;
  }

  /** Synthesized PCM not yet sent to the client. */
  get queuedAudioBytes(): number {
    return this.speech?.queuedAudioBytes ?? 0;
  }

  /** A new turn number (speech failures are counted per turn). */
  nextTurn(): number {
    return ++this.turns;
  }

  /** Runs the speech worker and the streamer until close(). */
  run(): Promise<unknown> {
    return Promise.all([this.speech?.run(), this.streamer?.run()]);
  }

  /** Starts a message. */
  open(speaker: Speaker, turn: number): Utterance {
    this.live.get(speaker.message_id)?.interrupt(); // the same message again (regenerate): the old one is over
    const utterance = new Utterance(speaker, turn, this.gen, this);
    this.live.set(speaker.message_id, utterance);
    return utterance;
  }

  /** Speaks a fixed text (a voice preview): not a message, nothing is recorded of it. */
  say(speaker: Speaker, text: string): void {
    const utterance = this.open(speaker, this.nextTurn());
    utterance.add(text);
    utterance.end();
  }

  /** Something is pending, being made, sent or played. */
  speaking(): boolean {
    return this.live.size > 0 || this.sentences.size > 0 || this.audio.size > 0 || (this.speech?.busy ?? false) || (this.streamer?.playing ?? false);
  }

  /** Resolves when no utterance is pending or playing (at once if none is). */
  idle(): Promise<void> {
    if (this.live.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.idleListeners.delete(done);
        resolve();
      };
      this.idleListeners.add(done);
    });
  }

  /** Calls `listener` each time the last pending utterance finishes. Returns the unsubscribe. */
  onIdle(listener: () => void): () => void {
    this.idleListeners.add(listener);
    return () => this.idleListeners.delete(listener);
  }

  /** The client's playback position of a message (playback_position). False if the message is not playing. */
  reportPosition(messageId: string, playedMs: number): boolean {
    const utterance = this.live.get(messageId);
    utterance?.reportPlayed(playedMs);
    return utterance !== undefined;
  }

  /**
   * Stops everything at once and returns what was heard of each message that had not finished.
   * Nothing of an older generation is sent after this returns. A pause ends with it (what was
   * paused is cut: no audio_resumed).
   */
  interrupt(): PlaybackFinished[] {
    const now = this.clock.now();
    const heard = [...this.live.values()].map((u) => u.interrupt(now));
    this.gen++;
    this.sentences.clear();
    this.speech?.interrupt(); // synthesis in flight stops
    this.streamer?.interrupt(); // the open audio stream is closed as interrupted
    this.clock.resume();
    this.openGate();
    return heard;
  }

  /**
   * Keeps every audio frame back (made, not sent) until the returned release is called; the
   * release is idempotent. Text is not the playout's: its holder keeps that back itself.
   */
  hold(): () => void {
    this.holds++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.holds--;
      this.openGate();
    };
  }

  /** Playback is paused (pause() until resume() or interrupt()). */
  get paused(): boolean {
    return this.clock.paused;
  }

  /**
   * Pauses playback where it stands: the client is told (audio_paused) and stops playing, no
   * frame leaves, and the clock that says what was heard stands still. False if already paused.
   */
  pause(): boolean {
    if (!this.clock.pause()) return false;
    this.writer.send({ type: 'audio_paused' });
    return true;
  }

  /** Playback goes on where it stopped (audio_resumed), as if it had not been paused. */
  resume(): boolean {
    if (!this.clock.resume()) return false;
    for (const utterance of this.live.values()) utterance.forgetReport(); // positions reported at the pause are stale now
    this.writer.send({ type: 'audio_resumed' });
    this.openGate();
    return true;
  }

  /** The session is over: everything is cut and the workers end. */
  close(): PlaybackFinished[] {
    const heard = this.interrupt();
    this.sentences.close();
    this.audio.close();
    return heard;
  }

  // -- UtteranceOwner ------------------------------------------------------------------------

  queue(item: SentenceItem): void {
    this.sentences.push(item);
  }

  finished(utterance: Utterance): void {
    if (this.live.get(utterance.speaker.message_id) !== utterance) return;
    this.live.delete(utterance.speaker.message_id);
    if (this.live.size === 0) for (const listener of [...this.idleListeners]) listener();
  }

  // ------------------------------------------------------------------------------------------

  /** What the streamer waits for before a frame: undefined when frames may go. */
  private gate(): Promise<void> | undefined {
    if (this.holds === 0 && !this.clock.paused) return undefined;
    return new Promise((resolve) => this.gateWaiters.push(resolve));
  }

  private openGate(): void {
    if (this.holds > 0 || this.clock.paused) return;
    const waiters = this.gateWaiters;
    this.gateWaiters = [];
    for (const wake of waiters) wake();
  }

  private of(item: { speaker: Speaker; generation: number }): Utterance | undefined {
    const utterance = this.live.get(item.speaker.message_id);
    return utterance?.generation === item.generation ? utterance : undefined;
  }

  private noteAudio(item: AudioItem): void {
    const utterance = this.of(item);
    if (!utterance) return;
    if (item.kind === 'chunk') utterance.synthesized(item.sentence_index, (item.pcm.length / 2 / item.sample_rate) * 1000);
    else utterance.allSynthesized();
  }
}
