// ConversationTurn: one user message (or one message operation: regenerate, continue) → the
// replies of the responding characters, in order. Created and awaited by the router, cancelled
// through its AbortSignal. For each reply it streams the text as text_* events and hands it to
// the playout (which speaks it); the reply is committed — history and store — from what the
// playout says was heard, when its playback ends or is cut, not when its text ends. Later
// characters see earlier replies at once (as generated; cut too if the turn is interrupted).
// The turn is over when its replies' text has streamed; their commits settle later (ctx.settle),
// each in the place in the store it took when its text ended.
import { randomUUID } from 'node:crypto';
import type { ChatLLM, HistoryEntry } from '../llm/chat.ts';
import { LlmError } from '../llm/chat.ts';
import { respondingCharacters } from '../llm/mentions.ts';
import type { Character, ErrorCode, MessageStatus, ServerMessage } from '../protocol.ts';
import { cleanText } from '../protocol.ts';
import type { ConversationLog, PendingMessage } from './conversation-log.ts';
import type { Speaker } from './items.ts';
import type { Playout, Utterance } from './playout.ts';

/** Where a turn's messages are stored: the session's log, or a gate holding them (src/session/output-gate.ts). */
export type TurnLog = Pick<ConversationLog, 'append' | 'reserve'>;

export interface TurnContext {
  chat: ChatLLM;
  log: TurnLog;
  /** The active characters when the turn began. */
  cast: readonly Character[];
  playout: Playout;
  send: (message: ServerMessage) => void;
  error: (code: ErrorCode, message: string) => void;
  /** This turn's number in the session (speech failures are counted per turn). */
  turn: number;
  signal: AbortSignal;
  /** Takes a reply's commit, which settles when its playback has ended or been cut (interrupts and close wait for it). */
  settle: (commit: Promise<void>) => void;
  /** Who answers the user message, given the history ending with it; default: who it mentions, else everyone. */
  responders?: (history: readonly HistoryEntry[]) => readonly Character[];
}

/** Where a reply's text comes from: the LLM by default, or any async iterable of text chunks (a greeting). */
export type ReplySource = (signal: AbortSignal) => AsyncIterable<string>;

/** One reply a turn streams. */
export interface ReplyPlan {
  character: Character;
  /** The stored message it is: a new id, or the id of the message regenerated or continued. */
  messageId: string;
  source?: ReplySource;
  /** Regenerate: the message's versions so far (the new text is added to them), and which was shown. */
  alternatives?: string[];
  previousIndex?: number;
  /**
   * Regenerate of a reply that ended an earlier turn: its place in the history (the prompt is the
   * history before it, and it goes back there). Absent: the reply comes at the end.
   */
  at?: number;
  /** Versions that follow the streamed one (a greeting's alternate greetings); it stays the chosen one. */
  alternativesAfter?: string[];
  /** Continue: the message's history entry; the reply is appended to its text. */
  extends?: HistoryEntry;
}

/** A fixed text as a reply source, in word-sized chunks (as an LLM would stream it). */
export function textSource(text: string): ReplySource {
  return async function* (signal: AbortSignal) {
    for (const chunk of text.match(/\s*\S+\s*/g) ?? []) {
      if (signal.aborted) throw signal.reason;
      yield chunk;
    }
  };
}

/** How text_stream_stop says the way a message ended (a complete one says nothing). */
const STOP_FLAGS: Record<MessageStatus, { interrupted?: true; failed?: true }> = {
  complete: {},
  interrupted: { interrupted: true },
  failed: { failed: true },
};

/** The separator a continuation needs after `before` so words do not run together. */
const joiner = (before: string, after: string) => (before === '' || /\s$/.test(before) || /^\s/.test(after) ? '' : ' ');

export class ConversationTurn {
  /** Replies commit one after another, in the order they were streamed. */
  private committed: Promise<void> = Promise.resolve();

  /**
   * @param text the user's message, or undefined for a turn without one (regenerate, continue)
   * @param plans the replies to stream; default: one per responding character
   */
  constructor(
    readonly text: string | undefined,
    private readonly ctx: TurnContext,
    private readonly plans?: readonly ReplyPlan[],
  ) {}

  /** Ends when the text of every reply has streamed; each reply commits later, when its playback ends (ctx.settle). */
  async run(): Promise<void> {
    await this.stream();
  }

  private async stream(): Promise<void> {
    const { chat, log, cast } = this.ctx;
    if (this.text !== undefined) {
      const text = cleanText(this.text.trim()); // a transcript is server-made text: made storable here
      const messageId = randomUUID();
      chat.history.push({ role: 'user', name: chat.userName, content: text, character_id: null, message_id: messageId, status: 'complete' });
      log.append({ message_id: messageId, role: 'user', name: chat.userName, content: text });
      this.ctx.send({ type: 'user_message_accepted', data: { message_id: messageId, text, name: chat.userName } });
    }
    if (cast.length === 0) {
      this.ctx.error('not_found', 'No character is active: create a character or activate one, then send your message again.');
      return;
    }
    const plans = this.plans ?? this.responders().map((character) => ({ character, messageId: randomUUID() }));
    for (const plan of plans) {
      if (this.ctx.signal.aborted) return;
      const stop = await this.runReply(plan);
      if (stop) return;
    }
  }

  private responders(): readonly Character[] {
    const { chat, cast } = this.ctx;
    if (this.ctx.responders) return this.ctx.responders(chat.history);
    return respondingCharacters(this.text ?? '', cast);
  }

  /** Streams one reply. Returns true when the rest of the turn should not run. */
  private async runReply(plan: ReplyPlan): Promise<boolean> {
    const { chat, send, signal, cast, playout } = this.ctx;
    const { character } = plan;
    const speaker: Speaker = {
      character_id: character.id,
      character_name: character.name,
      message_id: plan.messageId,
      voice: character.voice,
      style: character.style,
      narration: { narration: character.narration, narrator_voice: character.narrator_voice },
    };
    const ids = { character_id: speaker.character_id, character_name: speaker.character_name, message_id: speaker.message_id };
    const before = plan.extends?.content ?? '';
    const utterance = playout.open(speaker, this.ctx.turn);
    const source = plan.source ?? ((s: AbortSignal) => chat.streamReply(character, cast, s, plan.at));
    let reply = '';

    send({ type: 'text_stream_start', data: ids });
    try {
      for await (const raw of source(signal)) {
        let delta = cleanText(raw); // LLM output is stored: no NULs, no unpaired surrogates
        if (delta === '' && raw !== '') continue;
        if (reply === '') delta = joiner(before, delta) + delta;
        reply += delta;
        send({ type: 'text_chunk', data: { ...ids, text: delta, is_final: false } });
        utterance.add(delta);
      }
    } catch (error) {
      if (signal.aborted) {
        utterance.interrupt();
        this.close(ids, before + reply, 'interrupted');
        this.commit(plan, utterance, before, 'interrupted');
        return true;
      }
      const llmError = error instanceof LlmError ? error : new LlmError(String(error));
      this.ctx.error(llmError.code, `${character.name} could not reply: ${llmError.message}`);
      utterance.end();
      this.close(ids, before + reply, 'failed');
      this.commit(plan, utterance, before, 'failed');
      return llmError.code === 'llm_not_configured';
    }
    utterance.end();
    this.close(ids, before + reply, 'complete');
    this.commit(plan, utterance, before, 'complete');
    return false;
  }

  /** Closes the message's text stream. */
  private close(ids: { character_id: string; character_name: string; message_id: string }, text: string, status: MessageStatus): void {
    if (status !== 'interrupted') this.ctx.send({ type: 'text_chunk', data: { ...ids, text: '', is_final: true } });
    this.ctx.send({ type: 'text_stream_stop', data: { ...ids, text, ...STOP_FLAGS[status] } });
  }

  /**
   * Puts the reply in the history now (later characters see it), and commits it once its
   * playback has ended or been cut: the history entry and the store keep what was heard.
   */
  private commit(plan: ReplyPlan, utterance: Utterance, before: string, status: MessageStatus): void {
    const { chat } = this.ctx;
    const entry: HistoryEntry = plan.extends ?? {
      role: 'assistant',
      name: plan.character.name,
      content: '',
      character_id: plan.character.id,
      message_id: plan.messageId,
      alternatives: plan.alternatives ?? [],
      alternative_index: 0,
    };
    entry.content = before + utterance.reply;
    if (!plan.extends && entry.content.trim() !== '') this.place(entry, plan);
    // Its place in the store is taken now, so a message that comes later is stored after it.
    const fill = this.ctx.log.reserve(storedMessage({ ...entry, status, alternatives: [...(plan.alternatives ?? []), entry.content] }));
    const previous = this.committed;
    this.committed = (async () => {
      await previous;
      const heard = await utterance.finished;
      const generated = before + utterance.reply;
      const kept = (before + heard.synchronizedTranscript).trim();
      if (kept !== generated.trim()) this.ctx.send({ type: 'message_truncated', data: { message_id: plan.messageId, text: kept } });
      this.store(entry, kept, heard.interrupted ? 'interrupted' : status, plan, fill);
    })();
    this.ctx.settle(this.committed);
  }

  /** Puts a reply in the history: at the end, or back in its place (regenerate of an earlier turn's reply). */
  private place(entry: HistoryEntry, plan: ReplyPlan): void {
    const { history } = this.ctx.chat;
    if (plan.at === undefined) history.push(entry);
    else history.splice(Math.min(plan.at, history.length), 0, entry);
  }

  private store(entry: HistoryEntry, content: string, status: MessageStatus, plan: ReplyPlan, fill: (message: PendingMessage | undefined) => void): void {
    const { chat } = this.ctx;
    entry.content = content;
    entry.status = status;
    if (plan.alternatives && content === '') {
      // Cut before a word of the new version was heard: the message stays as it was.
      entry.alternatives = plan.alternatives;
      entry.alternative_index = Math.min(plan.previousIndex ?? 0, plan.alternatives.length - 1);
      entry.content = plan.alternatives[entry.alternative_index] ?? '';
      entry.status = 'complete';
    } else if (plan.alternatives || plan.alternativesAfter) {
      entry.alternatives = [...(plan.alternatives ?? []), content, ...(plan.alternativesAfter ?? [])];
      entry.alternative_index = plan.alternatives?.length ?? 0;
    } else if (plan.extends && (entry.alternatives?.length ?? 0) > 0) {
      (entry.alternatives as string[])[entry.alternative_index ?? 0] = content;
    }
    if (content === '' && !plan.extends && !plan.alternatives) {
      // Nothing was said or heard: no message (as before); it leaves the history too.
      const at = chat.history.indexOf(entry);
      if (at >= 0) chat.history.splice(at, 1);
      chat.lastUnheard = entry.message_id;
      fill(undefined);
      return;
    }
    if (!chat.history.includes(entry)) this.place(entry, plan);
    fill(storedMessage(entry));
    if (plan.alternatives || plan.alternativesAfter || plan.extends) this.ctx.send({ type: 'message_updated', data: messageUpdate(entry) });
  }
}

/** A history entry as the log stores it. */
export function storedMessage(entry: HistoryEntry) {
  const status = entry.status ?? 'complete';
  return {
    ...(entry.message_id === undefined ? {} : { message_id: entry.message_id }),
    role: entry.role,
    name: entry.name,
    content: entry.content,
    character_id: entry.character_id,
    interrupted: status === 'interrupted',
    status,
    alternatives: entry.alternatives ?? [],
    alternative_index: entry.alternative_index ?? 0,
  };
}

/** A history entry as message_updated tells it. */
export function messageUpdate(entry: HistoryEntry) {
  return {
    message_id: entry.message_id ?? '',
    role: entry.role,
    content: entry.content,
    status: entry.status ?? 'complete',
    alternatives: entry.alternatives ?? [],
    alternative_index: entry.alternative_index ?? 0,
  } as const;
}
