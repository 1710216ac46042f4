// OutputGate: the output of a turn that started before it was confirmed (a preemptive reply,
// src/session/preemptive-turn.ts), held until release() or dropped by discard(). The turn runs
// as any other (ConversationTurn) with the gate as its output:
//
//   send   every message of the turn (user_message_accepted, text_*, errors …) is kept in order;
//   log    the conversation log's append / reserve (and each reserved message's fill) are kept;
//   chat   a fork of the session's ChatLLM, taken when the turn begins: its LLM requests see
//          the provisional user message, the session's history does not;
//   audio  a hold on the playout: synthesis runs, no frame leaves.
//
// release() replays all of it, in order, into the session (the fork's history becomes the
// session's) and from then on passes everything through; discard() forgets it, closes the turn's
// upstream requests (its AbortSignal) and cuts its audio. Either settles the gate once. A gate
// whose turn is aborted from elsewhere (an interrupt) discards itself: a cut turn is never confirmed.
import type { ChatLLM, HistoryEntry } from '../llm/chat.ts';
import { cleanText, type ServerMessage } from '../protocol.ts';
import type { ConversationLog, PendingMessage } from './conversation-log.ts';
import type { Playout } from './playout.ts';
import type { TurnLog } from './turn.ts';

type Fill = (message: PendingMessage | undefined) => void;

/** A log call of the held turn: replayed on release. A reserved place may be filled while held. */
type LogCall = { kind: 'append'; message: PendingMessage } | { kind: 'reserve'; provisional: PendingMessage; filled?: { message: PendingMessage | undefined }; fill?: Fill };

export interface OutputGateDeps {
  /** The session's ChatLLM (forked when the turn begins, its history adopted on release). */
  chat: ChatLLM;
  log: ConversationLog;
  playout: Playout;
  send: (message: ServerMessage) => void;
}

export type GateState = 'holding' | 'released' | 'discarded';

export class OutputGate {
  private current: GateState = 'holding';
  /** Aborted on discard: the turn's LLM request (and so its synthesis) stops. */
  readonly controller = new AbortController();
  /** Resolves once released or discarded. */
  readonly settled: Promise<void>;
  private settle!: () => void;
  private readonly messages: ServerMessage[] = [];
  private readonly calls: LogCall[] = [];
  /** The turn's ChatLLM while held, and the session's history as it took it: release() needs that unchanged. */
  private fork: { chat: ChatLLM; history: HistoryEntry[]; length: number } | undefined;
  private readonly releaseAudio: () => void;

  /** `text`: the transcript the turn starts on (release() may give the final's wording). */
  constructor(
    public text: string,
    private readonly deps: OutputGateDeps,
  ) {
    this.releaseAudio = deps.playout.hold();
    this.settled = new Promise((resolve) => (this.settle = resolve));
    this.controller.signal.addEventListener('abort', () => this.discard(), { once: true });
  }

  get state(): GateState {
    return this.current;
  }

  get discarded(): boolean {
    return this.current === 'discarded';
  }

  /** The turn begins (its persona and lorebooks prepared): a held one gets a fork of the session's ChatLLM. */
  begin(): void {
    if (this.current !== 'holding' || this.fork) return;
    const history = this.deps.chat.history;
    this.fork = { chat: this.deps.chat.fork(), history, length: history.length };
  }

  /** The ChatLLM the turn uses: its fork once begun while held, else the session's. */
  get chat(): ChatLLM {
    return this.fork?.chat ?? this.deps.chat;
  }

  /** The turn's message sink. */
  readonly send = (message: ServerMessage): void => {
    if (this.current === 'released') this.deps.send(message);
    else if (this.current === 'holding') this.messages.push(message);
  };

  /** The turn's conversation log. */
  readonly log: TurnLog = {
    append: (message) => {
      if (this.current === 'released') this.deps.log.append(message);
      else if (this.current === 'holding') this.calls.push({ kind: 'append', message });
    },
    reserve: (provisional) => {
      if (this.current === 'released') return this.deps.log.reserve(provisional);
      if (this.current === 'discarded') return () => undefined;
      const call: Extract<LogCall, { kind: 'reserve' }> = { kind: 'reserve', provisional };
      this.calls.push(call);
      return (message) => {
        if (call.fill) call.fill(message);
        else call.filled = { message };
      };
    },
  };

  /**
   * The turn is confirmed: what it held goes out, in order, and the rest passes through.
   * `userText` (the final transcript) replaces the provisional wording of its user message. False
   * (and the gate discarded) when the session's history changed meanwhile: the reply answered a
   * conversation that is no longer there.
   */
  release(userText?: string): boolean {
    if (this.current !== 'holding') return false;
    const fork = this.fork;
    if (fork && (this.deps.chat.history !== fork.history || fork.history.length !== fork.length)) {
      this.discard();
      return false;
    }
    if (userText !== undefined) this.retext(cleanText(userText.trim()));
    this.current = 'released';
    if (fork) this.deps.chat.history = fork.chat.history;
    for (const call of this.calls.splice(0)) this.replay(call);
    for (const message of this.messages.splice(0)) this.deps.send(message);
    this.releaseAudio();
    this.settle();
    return true;
  }

  /** The turn is not confirmed: nothing of it is sent or stored, its requests close, its audio is cut. */
  discard(): void {
    if (this.current !== 'holding') return;
    this.current = 'discarded';
    this.messages.length = 0;
    this.calls.length = 0;
    this.controller.abort(new Error('the preemptive reply was cancelled'));
    this.deps.playout.interrupt(); // its synthesis and queued audio go (nothing of it was sent)
    this.releaseAudio();
    this.settle();
  }

  private replay(call: LogCall): void {
    if (call.kind === 'append') return this.deps.log.append(call.message);
    const fill = this.deps.log.reserve(call.provisional);
    if (call.filled) fill(call.filled.message);
    else call.fill = fill;
  }

  /** The user message the turn made (if it has yet) takes the final transcript's wording. */
  private retext(text: string): void {
    this.text = text;
    const entry = this.fork && this.fork.chat.history[this.fork.length];
    if (entry?.role === 'user') entry.content = text;
    const stored = this.calls.find((c): c is Extract<LogCall, { kind: 'append' }> => c.kind === 'append' && c.message.role === 'user');
    if (stored) stored.message.content = text;
    const accepted = this.messages.find((m) => m.type === 'user_message_accepted');
    if (accepted?.type === 'user_message_accepted') accepted.data.text = text;
  }
}
