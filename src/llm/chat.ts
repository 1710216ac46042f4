// ChatLLM: one per connection. Owns the conversation history the model sees, the connection's
// model settings and user name, builds each character's prompt and streams its reply from any
// OpenAI-compatible chat completions endpoint (OpenRouter, Ollama, vLLM, llama.cpp, LM Studio).
import OpenAI from 'openai';
import type { ChatCompletionCreateParamsStreaming, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { Config } from '../config.ts';
import type { Character, Message, MessageStatus, ModelSettings } from '../protocol.ts';
import { metrics } from '../metrics.ts';
import { worldOf } from './lorebook.ts';
import { buildPrompt, estimateTokens, type Injection } from './prompt.ts';
import { ReplyCleaner } from './reply-cleaner.ts';

export interface HistoryEntry {
  role: 'user' | 'assistant';
  /** The speaker's display name: the user's name or the character's. */
  name: string;
  content: string;
  character_id: string | null;
  /** The stored message's id (message operations find the entry by it). */
  message_id?: string;
  status?: MessageStatus;
  /** Every version of a regenerated reply (swipes); `content` is the one at alternative_index. [] = just content. */
  alternatives?: string[];
  alternative_index?: number;
}

/** A message of the dialogue (what the history keeps), not a system note. */
const isDialogue = (m: Message): m is Message & { role: 'user' | 'assistant' } => m.role !== 'system';

export class LlmError extends Error {
  constructor(
    message: string,
    readonly code: 'llm_error' | 'llm_not_configured' = 'llm_error',
  ) {
    super(message);
    this.name = 'LlmError';
  }
}

/** The process-wide LLM endpoint: one HTTP client (and connection pool) shared by all sessions. */
export interface Llm {
  client: OpenAI | undefined;
  baseUrl: string;
  timeoutMs: number;
  maxTokens: number;
  historyTokenBudget: number;
  defaultModel: string;
}

const DEFAULT_BASE_URL = 'https://openrouter.ai/api/v1';

export function createLlm(config: Config['llm']): Llm {
  // Hosted endpoints need a key; a local server (Ollama, llama.cpp …) usually does not.
  const needsKey = config.baseUrl === DEFAULT_BASE_URL || config.baseUrl.startsWith('https://api.openai.com');
  const client =
    config.apiKey || !needsKey
      ? new OpenAI({ baseURL: config.baseUrl, apiKey: config.apiKey ?? 'not-needed', maxRetries: 0, timeout: config.timeoutMs })
      : undefined;
  return {
    client,
    baseUrl: config.baseUrl,
    timeoutMs: config.timeoutMs,
    maxTokens: config.maxTokens,
    historyTokenBudget: config.historyTokenBudget,
    defaultModel: config.model,
  };
}

export const defaultModelSettings = (model: string): ModelSettings => ({
  model,
  temperature: 0.7,
  top_p: 0.9,
  min_p: 0,
  top_k: 40,
  frequency_penalty: 0,
  presence_penalty: 0,
  repetition_penalty: 1,
});

/** OpenAI's `name` field accepts only ^[a-zA-Z0-9_-]{1,64}$; anything else is left out. */
export function apiName(name: string): string | undefined {
  const cleaned = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^a-zA-Z0-9_-]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 64);
  return cleaned === '' ? undefined : cleaned;
}

/** OpenAI allows at most four stop sequences. */
const MAX_STOPS = 4;

export class ChatLLM {
  history: HistoryEntry[] = [];
  settings: ModelSettings;
  /** The user's persona description (its name is `userName`); '' for none. */
  persona = '';
  /** The conversation's attached lorebooks (character_book-shaped), used with each character's own. */
  lorebooks: readonly unknown[] = [];
  /** Lorebooks by name that cast members link (`extensions.world`), not among the attached ones. */
  worlds: ReadonlyMap<string, unknown> = new Map();
  /** The last reply cut before a word of it was heard: never stored, so a regenerate of it answers anew. */
  lastUnheard: string | undefined;

  constructor(
    private readonly llm: Llm,
    public userName: string,
  ) {
    this.settings = defaultModelSettings(llm.defaultModel);
    this.startModel = llm.defaultModel;
  }

  /** The endpoint's model when this session began: while its settings still name it, the session follows the endpoint's model (the connection panel may change it). */
  private startModel: string;

  /**
   * A copy for a turn not yet confirmed (a preemptive reply): the same endpoint, settings and
   * persona, and a history array of its own, so what the turn adds stays out of this one's until
   * it is confirmed (src/session/output-gate.ts).
   */
  fork(): ChatLLM {
    const copy = new ChatLLM(this.llm, this.userName);
    copy.settings = this.settings;
    copy.startModel = this.startModel;
    copy.persona = this.persona;
    copy.lorebooks = this.lorebooks;
    copy.history = [...this.history];
    return copy;
  }

  /** Replaces the history with a stored conversation's messages. */
  loadHistory(messages: readonly Message[]): void {
    this.history = messages.filter(isDialogue).map((m) => this.entryOf(m));
  }

  /**
   * A stored message made or changed elsewhere (another session, REST): its entry is replaced,
   * or a new one appended. Returns false for a message the history does not keep (system).
   */
  takeMessage(message: Message): boolean {
    if (!isDialogue(message)) return false;
    const entry = this.entryOf(message);
    const at = this.history.findIndex((h) => h.message_id === message.message_id);
    if (at >= 0) this.history[at] = entry;
    else this.history.push(entry);
    return true;
  }

  /** A message deleted elsewhere leaves the history. Returns whether it was in it. */
  forgetMessage(messageId: string): boolean {
    const at = this.history.findIndex((h) => h.message_id === messageId);
    if (at >= 0) this.history.splice(at, 1);
    return at >= 0;
  }

  private entryOf(m: Message & { role: 'user' | 'assistant' }): HistoryEntry {
    return {
      role: m.role,
      name: m.name ?? (m.role === 'user' ? this.userName : 'Character'),
      content: m.content,
      character_id: m.character_id,
      message_id: m.message_id,
      status: m.status,
      alternatives: m.alternatives ?? [],
      alternative_index: m.alternative_index ?? 0,
    };
  }

  /**
   * The messages one character's LLM call receives: its prompt (src/llm/prompt.ts), as much
   * recent history as the budget leaves with the prompt's injections at their depths, then its
   * post-history instructions, if any. The budget pays for the whole fixed prompt first.
   */
  buildMessages(character: Character, cast: readonly Character[], upTo = this.history.length): ChatCompletionMessageParam[] {
    const history = this.history.slice(0, upTo);
    const lorebooks = [...this.worldBooks(character), ...this.lorebooks];
    const prompt = buildPrompt({ character, cast, userName: this.userName, persona: this.persona, lorebooks, history: history.map((h) => h.content) });
    const system: ChatCompletionMessageParam = { role: 'system', content: prompt.system };
    const after: ChatCompletionMessageParam[] = prompt.postHistory === '' ? [] : [{ role: 'system', content: prompt.postHistory }];
    const fixed = [system, ...after].map((m) => m.content as string).concat(prompt.injections.map((i) => i.content));
    let budget = fixed.reduce((left, text) => left - estimateTokens(text), this.llm.historyTokenBudget);
    const kept: ChatCompletionMessageParam[] = [];
    for (let i = history.length - 1; i >= 0; i--) {
      const message = this.toApiMessage(history[i] as HistoryEntry, character);
      budget -= estimateTokens(message.content as string);
      if (budget < 0 && kept.length > 0) break; // the newest message is always sent
      kept.push(message);
    }
    return [system, ...withInjections(kept.reverse(), prompt.injections), ...after];
  }

  /**
   * The lorebook the character links by name, unless it is its own book under that name
   * (SillyTavern embeds the linked world as the card's character_book on export).
   */
  private worldBooks(character: Character): unknown[] {
    const name = worldOf(character);
    const book = name === undefined ? undefined : this.worlds.get(name);
    const own = character.character_book;
    if (book === undefined || (own !== null && Object.hasOwn(own, 'name') && own.name === name)) return [];
    return [book];
  }

  /**
   * Streams one character's reply as cleaned text deltas. Throws LlmError on any failure of
   * the endpoint; when `signal` aborts it stops at once (the HTTP request is closed) and throws
   * the signal's reason.
   */
  async *streamReply(character: Character, cast: readonly Character[], signal: AbortSignal, upTo?: number): AsyncGenerator<string> {
    const client = this.llm.client;
    if (!client) {
      throw new LlmError(
        'No LLM is configured: set LLM_API_KEY (or OPENROUTER_API_KEY) for OpenRouter, or LLM_BASE_URL to a local OpenAI-compatible server such as Ollama.',
        'llm_not_configured',
      );
    }
    const idle = new AbortController();
    const timer = setTimeout(() => idle.abort(), this.llm.timeoutMs);
    const both = AbortSignal.any([signal, idle.signal]);
    const cleaner = new ReplyCleaner(nameVariants(character.name));
    const sentAt = metrics.now();
    let first = true;
    try {
      const stream = await client.chat.completions.create(this.requestBody(character, cast, upTo), { signal: both });
      for await (const chunk of stream) {
        timer.refresh(); // the timeout is for silence, not for the reply's length
        const delta = chunk.choices[0]?.delta?.content;
        if (delta) {
          if (first) {
            first = false;
            metrics.llmFirstToken(metrics.secondsSince(sentAt));
          }
          const text = cleaner.push(delta);
          if (text) yield text;
        }
      }
      // The openai stream ends quietly, not with an error, when its request is aborted.
      if (both.aborted) throw both.reason;
      const rest = cleaner.flush();
      if (rest) yield rest;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (idle.signal.aborted) throw new LlmError(`The LLM sent nothing for ${this.llm.timeoutMs} ms (LLM_TIMEOUT_MS); the reply was cut off.`);
      throw describeLlmFailure(error, this.llm.baseUrl, this.llm.client?.apiKey ?? undefined);
    } finally {
      clearTimeout(timer);
    }
  }

  private requestBody(character: Character, cast: readonly Character[], upTo?: number): ChatCompletionCreateParamsStreaming {
    const s = this.settings;
    const stops = [this.userName, ...cast.filter((c) => c.id !== character.id).map((c) => c.name)]
      .slice(0, MAX_STOPS)
      .map((name) => `\n${name}:`);
    // top_k, min_p and repetition_penalty are not OpenAI parameters; OpenRouter, vLLM,
    // llama.cpp and Ollama's OpenAI endpoint read them from the body as they are.
    const extra = { top_k: s.top_k, min_p: s.min_p, repetition_penalty: s.repetition_penalty };
    return {
      model: s.model === this.startModel ? this.llm.defaultModel : s.model,
      messages: this.buildMessages(character, cast, upTo),
      stream: true,
      temperature: s.temperature,
      top_p: s.top_p,
      frequency_penalty: s.frequency_penalty,
      presence_penalty: s.presence_penalty,
      max_tokens: this.llm.maxTokens,
      stop: stops,
      ...extra,
    };
  }

  /** The character's own lines are its assistant turns; everyone else's are user turns, labelled. */
  private toApiMessage(entry: HistoryEntry, character: Character): ChatCompletionMessageParam {
    const name = apiName(entry.name);
    if (entry.role === 'assistant' && entry.character_id === character.id) {
      return { role: 'assistant', content: entry.content, ...(name ? { name } : {}) };
    }
    const content = entry.role === 'assistant' ? `${entry.name}: ${entry.content}` : entry.content;
    return { role: 'user', content, ...(name ? { name } : {}) };
  }
}

/**
 * The history with each injection `depth` messages from its end (0: after the last; deeper than
 * the history: before the first), as SillyTavern's doChatInject places them.
 */
function withInjections(history: ChatCompletionMessageParam[], injections: readonly Injection[]): ChatCompletionMessageParam[] {
  if (injections.length === 0) return history;
  const at = (depth: number) => Math.max(0, history.length - depth);
  const out: ChatCompletionMessageParam[] = [];
  for (let i = 0; i <= history.length; i++) {
    for (const injection of injections) if (at(injection.depth) === i) out.push({ role: injection.role, content: injection.content });
    const message = history[i];
    if (message) out.push(message);
  }
  return out;
}

/** The full name and its first word, the forms a model uses to label a line. */
const nameVariants = (name: string) => [name, name.split(/\s+/)[0] ?? name];

/** What each HTTP status from the LLM means, for the person reading the error. */
const LLM_STATUS = new Map<number, string>([
  [400, 'refused the request (HTTP 400)'],
  [401, 'rejected the API key (HTTP 401): check LLM_API_KEY'],
  [402, 'wants payment on the account (HTTP 402)'],
  [403, 'refused access (HTTP 403): check LLM_API_KEY and the model'],
  [404, 'does not know the model (HTTP 404): check LLM_MODEL'],
  [408, 'timed out (HTTP 408)'],
  [429, 'is rate-limiting this key (HTTP 429): wait, or use another key'],
]);

/** Provider error text can quote the key ("Incorrect API key provided: sk-…"): key-like tokens are masked. */
const KEY_LIKE = /\b(?:sk|pk|rk|key|api|token)[-_][A-Za-z0-9_\-*.]{6,}/gi;

function providerDetail(error: InstanceType<typeof OpenAI.APIError>, apiKey: string | undefined): string {
  if (error.status === 401 || error.status === 403) return ''; // about the key: say nothing of it
  let text = error.message.replace(/^\d{3}\s*/, '');
  if (apiKey) text = text.split(apiKey).join('***');
  text = text.replace(KEY_LIKE, '***').slice(0, 200);
  return text ? `: ${text}` : '';
}

export function describeLlmFailure(error: unknown, baseUrl: string, apiKey?: string): LlmError {
  if (error instanceof OpenAI.APIConnectionTimeoutError) return new LlmError(`The LLM at ${baseUrl} did not answer in time.`);
  if (error instanceof OpenAI.APIConnectionError) return new LlmError(`Cannot reach the LLM at ${baseUrl}.`);
  if (error instanceof OpenAI.APIError) {
    const status = error.status ?? 0;
    const meaning = LLM_STATUS.get(status) ?? (status >= 500 ? `failed on its side (HTTP ${status})` : status ? `answered HTTP ${status}` : 'sent an error');
    return new LlmError(`The LLM ${meaning}${providerDetail(error, apiKey)}`);
  }
  return new LlmError('The LLM stream broke off.');
}
