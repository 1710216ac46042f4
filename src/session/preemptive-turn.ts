// Preemption: one per session (PREEMPTIVE_GENERATION). When the user pauses, Transcribe
// announces the transcript of everything they said (`preemptive`); if the session is idle, the
// turn for it starts at once — LLM request, sentence splitting, synthesis — behind an OutputGate
// (src/session/output-gate.ts), while the end of the turn is still being decided. The final
// transcript then settles it:
//
//   the same words (case and punctuation aside)  → confirm: the gate releases what it held, in
//                                                  order, and the turn goes on as any other;
//   other words, none, or the user speaking again → cancel: the gate is discarded (the LLM
//                                                  request closed, nothing sent or stored) and
//                                                  the router runs the final's turn as usual.
//
// So a confirmed reply is out as soon as the turn is, its first audio often ready already, and a
// cancelled one leaves no trace but the wasted request (counted: chorus_preemptive_turns_total).
// Modelled on LiveKit agents' preemptive generation (on by default there too).
import { metrics } from '../metrics.ts';
import { sameWords } from '../transcribe/transcript.ts';
import type { OutputGate } from './output-gate.ts';

export interface PreemptionDeps {
  enabled: boolean;
  /** Nothing is being said, made or queued: a reply may start before its turn is confirmed. */
  idle: () => boolean;
  /** A gate for a turn on `text`. */
  gate: (text: string) => OutputGate;
  /** Runs the turn for the gate's text behind it, now. */
  run: (gate: OutputGate) => void;
  /** The turn was confirmed: it is the session's running turn from now on. */
  committed: () => void;
}

export class Preemption {
  private gate: OutputGate | undefined;

  constructor(private readonly deps: PreemptionDeps) {}

  /** A reply is started and held, waiting for the final transcript. */
  get holding(): boolean {
    return this.gate?.state === 'holding';
  }

  /** The user paused after saying `text`: the reply to it starts now, held back. */
  start(text: string): void {
    this.cancel();
    if (!this.deps.enabled || !this.deps.idle()) return;
    const gate = this.deps.gate(text);
    this.gate = gate;
    metrics.preemptive('started');
    void gate.settled.then(() => gate.state === 'discarded' && metrics.preemptive('cancelled'));
    this.deps.run(gate);
  }

  /**
   * The final transcript: true when it confirms the held reply (released: its turn is under way),
   * false when there was none or it does not stand (discarded): the caller runs the final's turn.
   */
  confirm(final: string): boolean {
    const gate = this.take();
    if (!gate) return false;
    if (!sameWords(gate.text, final) || !gate.release(final)) {
      gate.discard();
      return false;
    }
    metrics.preemptive('committed');
    this.deps.committed();
    return true;
  }

  /** What was said at the pause no longer stands (the user spoke again, or it held no words). */
  cancel(): void {
    this.take()?.discard();
  }

  private take(): OutputGate | undefined {
    const gate = this.gate;
    this.gate = undefined;
    return gate?.state === 'holding' ? gate : undefined;
  }
}
