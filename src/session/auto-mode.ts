// AutoMode: one per session. With the conversation's auto_mode on, the characters talk among
// themselves: once nothing is being said or played, it waits auto_mode_delay_ms and starts a
// turn without a user message (the reply strategy picks who speaks, answering the last reply).
// The user takes the floor at once: a message or trigger cancels the wait (and the chatter goes
// on after their turn is answered); an interrupt or the user starting to speak pauses it until
// the user's next message. Turning auto_mode off cancels what is pending.
export interface AutoModeDeps {
  /** The conversation's auto_mode and auto_mode_delay_ms, read when needed. */
  settings: () => { auto_mode: boolean; auto_mode_delay_ms: number };
  /** Resolves once no turn is running or queued and nothing is left to play. */
  idle: () => Promise<void>;
  /** Starts a turn without a user message. */
  speak: () => void;
}

export class AutoMode {
  private timer: NodeJS.Timeout | undefined;
  /** Bumped by every cancel: a wait from before it does nothing when it ends. */
  private epoch = 0;
  private paused = false;
  /** A next speaker is scheduled (waiting for idle, then the delay). */
  private pending = false;

  constructor(private readonly deps: AutoModeDeps) {}

  get on(): boolean {
    return this.deps.settings().auto_mode && !this.paused;
  }

  /** waiting: a next speaker is scheduled; paused: the user cut in; off: auto_mode is off; idle: a turn is under way. */
  get state(): 'off' | 'paused' | 'waiting' | 'idle' {
    if (this.pending) return 'waiting';
    if (this.paused) return 'paused';
    return this.deps.settings().auto_mode ? 'idle' : 'off';
  }

  /** Something was said (a turn ended) or the settings changed: the next speaker, in a while. */
  schedule(): void {
    this.cancel();
    if (!this.on) return;
    const epoch = this.epoch;
    this.pending = true;
    void this.deps.idle().then(() => {
      if (epoch !== this.epoch || !this.on) return;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pending = false;
        if (epoch === this.epoch && this.on) this.deps.speak();
      }, this.deps.settings().auto_mode_delay_ms);
    });
  }

  /** Nothing pending any more (the user spoke up, the conversation changed, the session ends). */
  cancel(): void {
    this.epoch++;
    this.pending = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The user cut in (interrupt, barge-in): no chatter until their next message. */
  pause(): void {
    this.paused = true;
    this.cancel();
  }

  /** The user's message (or a trigger) gives the floor back: the chatter may follow it. */
  resume(): void {
    this.paused = false;
    this.cancel();
  }
}
