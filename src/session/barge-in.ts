// BargeIn: one per session. What the user's voice over a speaking character does (BARGE_IN),
// with interruptions that can be taken back (FALSE_INTERRUPT_TIMEOUT_MS):
//
//   the user speaks over the reply   → it pauses at once (Playout.pause: the client is told
//                                      audio_paused and stops playing; the server holds what it
//                                      has not sent; the turn's text goes on being made);
//   words arrive (a final transcript) → the interrupt completes as any interrupt (heard-only
//                                      truncation, interrupt_ack), and the words are the next turn;
//   the user stops, and no words come within FALSE_INTERRUPT_TIMEOUT_MS (a cough, a door, "mm")
//                                    → the reply resumes where it stopped (audio_resumed): nothing
//                                      repeated or skipped, history as if nothing had happened.
//
// The timer runs from the end of the user's utterance, not from the pause, so a long sentence is
// never resumed over; speaking again stops it. With FALSE_INTERRUPT_TIMEOUT_MS=0 (or speech
// output off) a barge-in interrupts at once, as an `interrupt` message always does: those are
// never taken back. Modelled on LiveKit agents' false-interruption resume.
import { metrics } from '../metrics.ts';

export interface BargeInDeps {
  /** Playback that can be paused and resumed (the session's Playout). */
  playout: { readonly voiced: boolean; pause(): boolean; resume(): boolean };
  timeoutMs: number;
  /** Cuts everything, as an `interrupt` message does (the router's interrupt); resolves once it is acknowledged. */
  interrupt: () => Promise<void>;
}

export class BargeIn {
  private paused = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: BargeInDeps) {}

  /** A reply is paused by the user's voice, waiting to resume or be cut. */
  get pausing(): boolean {
    return this.paused;
  }

  /** The user has spoken BARGE_IN_MIN_MS over a reply (or its audio still to come). */
  speechStarted(): void {
    this.stopTimer();
    if (this.paused) return; // still paused: they went on talking
    if (this.deps.timeoutMs === 0 || !this.deps.playout.voiced) return void this.deps.interrupt();
    this.paused = this.deps.playout.pause();
    if (this.paused) metrics.bargeIn('paused');
  }

  /** The user's utterance ended: without words by the timeout, the reply resumes. */
  speechEnded(): void {
    if (!this.paused) return;
    this.stopTimer();
    this.timer = setTimeout(() => this.resume(), this.deps.timeoutMs);
  }

  /**
   * A final transcript with words arrived: a paused reply is cut, as the interrupt it was. Returns
   * the interrupt (its words' turn follows it), or undefined when nothing was paused.
   */
  words(): Promise<void> | undefined {
    if (!this.paused) return undefined;
    return this.deps.interrupt(); // which calls cut()
  }

  /** Everything was cut (an interrupt, clear_history, load_conversation, the session closing): nothing is left to resume. */
  cut(): void {
    this.stopTimer();
    if (this.paused) metrics.bargeIn('interrupted');
    this.paused = false;
  }

  private resume(): void {
    this.timer = undefined;
    if (!this.paused) return;
    this.paused = false;
    if (this.deps.playout.resume()) metrics.bargeIn('resumed');
  }

  private stopTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
