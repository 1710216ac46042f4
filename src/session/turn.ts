// ConversationTurn: one user message → the replies of every responding character, in order.
// Created and awaited by the router, cancelled through its AbortSignal. For each character it
// streams the LLM reply as text_* events, cuts it into sentences for the speech worker, and
// records the reply in the history and the store. Later characters see earlier replies.
import { randomUUID } from 'node:crypto';
import type { ChatLLM } from '../llm/chat.ts';
import { LlmError } from '../llm/chat.ts';
import { respondingCharacters } from '../llm/mentions.ts';
import { SentenceSplitter } from '../llm/sentences.ts';
import type { Character, ErrorCode, MessageStatus, ServerMessage } from '../protocol.ts';
import { cleanText } from '../protocol.ts';
import type { AsyncQueue } from '../util/async-queue.ts';
import type { ConversationLog } from './conversation-log.ts';
import type { SentenceItem, Speaker } from './items.ts';

export interface TurnContext {
  chat: ChatLLM;
  log: ConversationLog;
  /** The active characters when the turn began. */
  cast: readonly Character[];
  sentences: AsyncQueue<SentenceItem>;
  send: (message: ServerMessage) => void;
  error: (code: ErrorCode, message: string) => void;
  generation: number;
  /** This turn's number in the session (speech failures are counted per turn). */
  turn: number;
  signal: AbortSignal;
}

/** How text_stream_stop says the way a message ended (a complete one says nothing). */
const STOP_FLAGS: Record<MessageStatus, { interrupted?: true; failed?: true }> = {
  complete: {},
  interrupted: { interrupted: true },
  failed: { failed: true },
};

export class ConversationTurn {
  constructor(
    readonly text: string,
    private readonly ctx: TurnContext,
  ) {}

  async run(): Promise<void> {
    const { chat, log, cast } = this.ctx;
    const text = cleanText(this.text.trim()); // a transcript is server-made text: made storable here
    chat.history.push({ role: 'user', name: chat.userName, content: text, character_id: null });
    log.append({ role: 'user', name: chat.userName, content: text });
    if (cast.length === 0) {
      this.ctx.error('not_found', 'No character is active: create a character or activate one, then send your message again.');
      return;
    }
    for (const character of respondingCharacters(text, cast)) {
      if (this.ctx.signal.aborted) return;
      const stop = await this.runCharacter(character);
      if (stop) return;
    }
  }

  /** Streams one character's reply. Returns true when the rest of the turn should not run. */
  private async runCharacter(character: Character): Promise<boolean> {
    const { chat, send, signal, cast } = this.ctx;
    const speaker: Speaker = {
      character_id: character.id,
      character_name: character.name,
      message_id: randomUUID(),
      voice: character.voice,
    };
    const ids = { character_id: speaker.character_id, character_name: speaker.character_name, message_id: speaker.message_id };
    const splitter = new SentenceSplitter();
    let reply = '';
    let sentenceIndex = 0;
    const speak = (sentences: string[]) => {
      for (const sentence of sentences) {
        this.ctx.sentences.push({ kind: 'sentence', speaker, generation: this.ctx.generation, turn: this.ctx.turn, sentence_index: sentenceIndex++, text: sentence });
      }
    };

    send({ type: 'text_stream_start', data: ids });
    try {
      for await (const raw of chat.streamReply(character, cast, signal)) {
        const delta = cleanText(raw); // LLM output is stored: no NULs, no unpaired surrogates
        if (delta === '' && raw !== '') continue;
        reply += delta;
        send({ type: 'text_chunk', data: { ...ids, text: delta, is_final: false } });
        speak(splitter.push(delta));
      }
    } catch (error) {
      if (signal.aborted) {
        this.finish(speaker, reply, 'interrupted');
        return true;
      }
      const llmError = error instanceof LlmError ? error : new LlmError(String(error));
      this.ctx.error(llmError.code, `${character.name} could not reply: ${llmError.message}`);
      speak(splitter.flush());
      this.finish(speaker, reply, 'failed');
      return llmError.code === 'llm_not_configured';
    }
    speak(splitter.flush());
    this.finish(speaker, reply, 'complete');
    return false;
  }

  /** Closes the message's text stream and its sentences, and keeps what was said. */
  private finish(speaker: Speaker, reply: string, status: MessageStatus): void {
    const { chat, log, send } = this.ctx;
    const ids = { character_id: speaker.character_id, character_name: speaker.character_name, message_id: speaker.message_id };
    const interrupted = status === 'interrupted';
    if (!interrupted) {
      send({ type: 'text_chunk', data: { ...ids, text: '', is_final: true } });
      this.ctx.sentences.push({ kind: 'end', speaker, generation: this.ctx.generation });
    }
    send({ type: 'text_stream_stop', data: { ...ids, text: reply, ...STOP_FLAGS[status] } });
    const content = reply.trim();
    if (content === '') return;
    chat.history.push({ role: 'assistant', name: speaker.character_name, content, character_id: speaker.character_id });
    log.append({ role: 'assistant', name: speaker.character_name, content, character_id: speaker.character_id, interrupted, status });
  }
}
