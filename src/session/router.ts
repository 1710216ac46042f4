// WebSocketRouter: one per connection. Parses and validates every incoming frame, dispatches
// it through the handler table (or the CRUD table), and runs the connection's turns one at a
// time. Interrupts overtake everything: they are handled the moment they arrive, not queued
// behind other requests (as Pipecat's system frames bypass the data queues).
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { z } from 'zod';
import { crudChanges, isCrudType, runCrud } from '../db/handlers.ts';
import type { Repo } from '../db/repo.ts';
import { NotFoundError } from '../db/repo.ts';
import { ChatLLM, type Llm } from '../llm/chat.ts';
import { metrics } from '../metrics.ts';
import * as p from '../protocol.ts';
import type { Character, ErrorCode, ServerMessage } from '../protocol.ts';
import type { SttEngine } from '../transcribe/engine.ts';
import { SPEECH_INPUT_NOT_CONFIGURED } from '../transcribe/stt.ts';
import { Transcribe } from '../transcribe/transcribe.ts';
import type { VadModel } from '../transcribe/vad.ts';
import { AsyncQueue } from '../util/async-queue.ts';
import { JsonInputError, parseJson } from '../util/json.ts';
import type { Config } from '../config.ts';
import type { TtsEngine } from '../speech/engine.ts';
import { Speech } from '../speech/speech.ts';
import type { VoiceResolver } from '../speech/voices.ts';
import { AudioStreamer } from './audio-streamer.ts';
import { ConversationLog } from './conversation-log.ts';
import type { MessageSpool } from './message-spool.ts';
import type { AudioItem, SentenceItem } from './items.ts';
import { type Limited, type RateLimits, RequestLimiter } from './rate-limiter.ts';
import { ConversationTurn } from './turn.ts';
import { SocketWriter } from './writer.ts';

export interface SessionDeps {
  repo: Repo;
  llm: Llm;
  userName: string;
  maxMessageBytes: number;
  /** Speech output; absent when TTS_ENGINE=none (text only). */
  tts: { engine: TtsEngine; voices: VoiceResolver; audioLeadMs: number } | undefined;
  /** Speech input; absent when STT_ENGINE=none. */
  stt: { engine: SttEngine; vad: VadModel; config: Config['stt'] } | undefined;
  logger: Logger;
  /** Per-connection request limits (RATE_LIMIT_*). */
  rateLimits: RateLimits;
  /** DATA_DIR's dead-letter file for messages the database refuses; absent: the error log only. */
  spool?: MessageSpool | undefined;
}

interface Request {
  type: string;
  request_id?: string;
}

type Handler<S extends z.ZodType> = {
  schema: S;
  /** Ordered handlers run one after another; the rest (interrupt, ping) run the moment they arrive. */
  ordered: boolean;
  run: (router: WebSocketRouter, data: z.infer<S>, request: Request) => void | Promise<void>;
};
const handler = <S extends z.ZodType>(schema: S, run: Handler<S>['run'], ordered = true): Handler<S> => ({ schema, run, ordered });

// A Map, not a plain object: a frame's "type" is looked up by own key only, so names such as
// "constructor" or "__proto__" are unknown types, never Object.prototype members.
const handlers = new Map<string, Handler<z.ZodType>>(Object.entries({
  ping: handler(p.emptySchema, (r, _d, req) => r.send({ type: 'pong', ...echo(req) }), false),
  interrupt: handler(p.emptySchema, (r) => r.interrupt(), false),
  user_message: handler(p.userMessageSchema, (r, d: { text: string }, req) => r.queueTurn(d.text, req)),
  model_settings: handler(p.modelSettingsPatchSchema, (r, d: Partial<p.ModelSettings>, req) => r.updateModelSettings(d, req)),
  session_settings: handler(p.sessionSettingsSchema, (r, d: { user_name: string }, req) => r.updateSessionSettings(d.user_name, req)),
  clear_history: handler(p.emptySchema, (r, _d, req) => r.clearHistory(req)),
  load_conversation: handler(p.loadConversationSchema, (r, d: { conversation_id: string }, req) => r.loadConversation(d.conversation_id, req)),
  refresh_characters: handler(p.emptySchema, (r, _d, req) => r.refreshCast(req)),
  refresh_active_characters: handler(p.emptySchema, (r, _d, req) => r.refreshCast(req)),
  preview_voice: handler(p.previewVoiceSchema, (r, d: { voice: string; text?: string }, req) => r.previewVoice(d.voice, d.text, req)),
  // Immediate, like the binary audio frames they switch on and off, so frames keep their order relative to them.
  start_listening: handler(p.emptySchema, (r, _d, req) => r.listen(true, req), false),
  stop_listening: handler(p.emptySchema, (r, _d, req) => r.listen(false, req), false),
}));

const echo = (req: Request) => (req.request_id === undefined ? {} : { request_id: req.request_id });

/** JSON.parse that returns undefined for text that is not JSON. */
function parseUnchecked(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** What can be echoed of a frame whose envelope is invalid: its type and request_id, when they are strings. */
function requestOf(json: unknown): Request | undefined {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const type = Object.hasOwn(json, 'type') ? (json as { type: unknown }).type : undefined;
  const id = Object.hasOwn(json, 'request_id') ? (json as { request_id: unknown }).request_id : undefined;
  if (typeof id !== 'string' || id.length > 200) return undefined;
  return { type: typeof type === 'string' ? type.slice(0, 100) : 'unknown', request_id: id };
}

export class WebSocketRouter {
  readonly writer: SocketWriter;
  readonly sentences = new AsyncQueue<SentenceItem>();
  private readonly audio = new AsyncQueue<AudioItem>();
  private readonly speech: Speech | undefined;
  private readonly streamer: AudioStreamer | undefined;
  private readonly transcribe: Transcribe | undefined;
  private readonly chat: ChatLLM;
  private readonly conversation: ConversationLog;
  private readonly turns = new AsyncQueue<{ text: string; receivedAt: bigint }>();
  /** When the user message of the running turn arrived, until its first audio frame is sent. */
  private firstAudioFrom: bigint | undefined;
  /** When the last utterance ended, until its final transcript. */
  private utteranceEndedAt: bigint | undefined;
  private readonly logger: Logger;
  private cast: Character[] = [];
  private generation = 0;
  /** Turns (and voice previews) started so far: each has its own count of speech failures. */
  private turnCount = 0;
  private current: { controller: AbortController; done: Promise<void> } | undefined;
  private ordered: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;
  private readonly limiter: RequestLimiter;
  private readonly takeCast = (active: Character[]) => {
    this.cast = active;
  };

  constructor(
    ws: WebSocket,
    private readonly deps: SessionDeps,
    tcp?: Socket,
  ) {
    this.writer = new SocketWriter(ws, tcp);
    this.limiter = new RequestLimiter(deps.rateLimits);
    metrics.sessionOpened(); // paired with close(), which runs whenever the socket closes
    this.logger = deps.logger.child({ conn: randomUUID().slice(0, 8) });
    this.chat = new ChatLLM(deps.llm, deps.userName);
    this.conversation = new ConversationLog({
      repo: deps.repo,
      conversationId: randomUUID(),
      activeCharacters: () => this.cast.map((c) => c.id),
      report: (message) => this.error('storage_error', message),
      spool: deps.spool,
      logger: this.logger,
    });
    if (deps.tts) {
      const generation = () => this.generation;
      const error = (code: ErrorCode, message: string) => this.error(code, message);
      const speech = new Speech({ ...deps.tts, sentences: this.sentences, audio: this.audio, generation, error, logger: this.logger });
      this.speech = speech;
      this.streamer = new AudioStreamer({
        audio: this.audio,
        writer: this.writer,
        generation,
        released: (n) => speech.released(n),
        onFirstFrame: () => this.firstAudioSent(),
        leadMs: deps.tts.audioLeadMs,
      });
    }
    if (deps.stt) this.transcribe = this.createTranscribe(deps.stt);
  }

  /** Speech input events become stt_* messages; a final transcript becomes a turn. */
  private createTranscribe(stt: NonNullable<SessionDeps['stt']>): Transcribe {
    return new Transcribe({
      ...stt,
      logger: this.logger,
      events: {
        state: (state) => this.send({ type: 'stt_state', data: { state } }),
        update: (text) => this.send({ type: 'stt_update', text }),
        stabilized: (text) => this.send({ type: 'stt_stabilized', text }),
        utterance: () => {
          this.utteranceEndedAt = metrics.now();
        },
        final: (text) => {
          if (this.utteranceEndedAt !== undefined) metrics.sttLatency(metrics.secondsSince(this.utteranceEndedAt));
          this.utteranceEndedAt = undefined;
          this.send({ type: 'stt_final', text });
          this.inOrder(() => this.queueTurn(text, { type: 'stt_final' }));
        },
        speechStart: () => {
          if (stt.config.bargeIn && this.speaking()) void this.interrupt();
        },
        error: (code, message) => this.error(code, message),
      },
    });
  }

  /** A character is replying, or its audio is still being made, sent or played. */
  private speaking(): boolean {
    return this.current !== undefined || this.sentences.size > 0 || this.audio.size > 0 || (this.speech?.busy ?? false) || (this.streamer?.playing ?? false);
  }

  /** Sends the session greeting and starts the turn loop. */
  async start(): Promise<void> {
    await this.loadCast();
    crudChanges.on('characters', this.takeCast);
    this.send({
      type: 'session',
      data: {
        conversation_id: this.conversation.id,
        user_name: this.chat.userName,
        input_sample_rate: p.INPUT_SAMPLE_RATE,
        output_sample_rate: this.deps.tts?.engine.sampleRate ?? 0,
        active_characters: this.cast,
        model_settings: this.chat.settings,
      },
    });
    this.logger.info('session started');
    void this.turnLoop();
    void this.speech?.run().catch((e) => this.fail(e));
    void this.streamer?.run().catch((e) => this.fail(e));
  }

  /**
   * Cancels everything in flight and stores what is pending: the running turn's partial reply
   * (marked interrupted), then the user messages of the turns still queued. Idempotent: the
   * shutdown and the socket's close both call it.
   */
  close(reason = 'connection closed'): Promise<void> {
    this.closing ??= this.closeSession(reason);
    return this.closing;
  }

  private async closeSession(reason: string): Promise<void> {
    crudChanges.off('characters', this.takeCast);
    metrics.sessionClosed();
    const queued = this.turns.takeAll();
    this.turns.close();
    this.current?.controller.abort(new Error(reason));
    await this.current?.done;
    for (const turn of queued) this.keepUserMessage(turn.text);
    this.speech?.interrupt();
    this.transcribe?.close();
    this.sentences.close();
    this.audio.close();
    if (!(await this.conversation.close())) this.logger.error('some messages are not stored yet; they are retried while the server runs, then spooled');
    this.logger.info('session closed');
  }

  /** What this connection holds in memory for a slow client. */
  stats(): { unwrittenBytes: number; queuedAudioBytes: number } {
    return { unwrittenBytes: this.writer.unwrittenBytes, queuedAudioBytes: this.speech?.queuedAudioBytes ?? 0 };
  }

  send(message: ServerMessage): void {
    this.writer.send(message);
  }

  error(code: ErrorCode, message: string, req?: Request): void {
    metrics.error(code);
    this.send({ type: 'error', data: { code, message, ...(req ? { request_type: req.type } : {}) }, ...(req ? echo(req) : {}) });
  }

  /** A request over its rate limit: refused with how long to wait; nothing of it runs. */
  private rateLimited({ message, retryAfterMs }: Limited, req: Request): void {
    metrics.error('rate_limited');
    this.send({ type: 'error', data: { code: 'rate_limited', message, request_type: req.type, retry_after_ms: retryAfterMs }, ...echo(req) });
  }

  // -- incoming frames ---------------------------------------------------------------------

  /**
   * The one boundary every incoming frame passes: whatever a frame makes throw, synchronously
   * here or later in its request, becomes an `internal` error for that request and the
   * connection stays usable.
   */
  handleFrame(data: Buffer, isBinary: boolean): void {
    try {
      this.readFrame(data, isBinary);
    } catch (error) {
      this.fail(error);
    }
  }

  private readFrame(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.transcribe?.feed(data); // microphone audio; dropped quietly while not listening
      return;
    }
    if (data.length > this.deps.maxMessageBytes) {
      this.error('message_too_large', `Message of ${data.length} bytes is over the ${this.deps.maxMessageBytes}-byte limit (MAX_MESSAGE_BYTES).`);
      return;
    }
    let json: unknown;
    try {
      json = parseJson(data.toString('utf8'));
    } catch (e) {
      const tooDeep = e instanceof JsonInputError && e.tooDeep;
      // Too deep is valid JSON: it is parsed (without walking it) only to echo the request.
      this.error('bad_json', `Message is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, tooDeep ? requestOf(parseUnchecked(data)) : undefined);
      return;
    }
    const envelope = p.envelopeSchema.safeParse(json);
    if (!envelope.success) {
      this.error('invalid_payload', `Message must be an object with a string "type": ${p.describeZodError(envelope.error, 'message')}`, requestOf(json));
      return;
    }
    this.dispatch(envelope.data);
  }

  private dispatch(envelope: p.Envelope): void {
    const req: Request = { type: envelope.type, ...echo(envelope) };
    const limited = this.limiter.check(envelope.type);
    if (limited) return this.rateLimited(limited, req);
    try {
      this.route(envelope, req);
    } catch (error) {
      this.fail(error, req);
    }
  }

  private route(envelope: p.Envelope, req: Request): void {
    if (isCrudType(envelope.type)) {
      this.inOrder(() => this.crud(envelope.type as Parameters<typeof runCrud>[1], envelope.data, req), req);
      return;
    }
    const h = handlers.get(envelope.type);
    if (!h) {
      this.error('unknown_type', `Unknown message type "${envelope.type}".`, req);
      return;
    }
    const parsed = h.schema.safeParse(envelope.data ?? {});
    if (!parsed.success) {
      this.error('invalid_payload', `Invalid ${envelope.type}: ${p.describeZodError(parsed.error)}`, req);
      return;
    }
    const run = () => h.run(this, parsed.data, req);
    if (h.ordered) this.inOrder(run, req);
    else void Promise.resolve(run()).catch((e) => this.fail(e, req)); // now, not queued; a throw is caught by dispatch
  }

  /** Runs ordered requests one after another, so e.g. a user_message waits for a load_conversation before it. */
  private inOrder(run: () => void | Promise<void>, req?: Request): void {
    this.ordered = this.ordered.then(run).catch((e) => this.fail(e, req));
  }

  /** An unexpected failure: the details go to the log under an error id the client also gets. */
  private fail(error: unknown, req?: Request): void {
    const errorId = randomUUID().slice(0, 8);
    this.logger.error({ err: error, error_id: errorId, request_type: req?.type }, 'request failed');
    this.error('internal', `The request failed on the server (error id ${errorId}).`, req);
  }

  private async crud(type: Parameters<typeof runCrud>[1], data: unknown, req: Request): Promise<void> {
    const result = await runCrud(this.deps.repo, type, data);
    if (result.ok) this.writer.send({ type: result.reply, data: result.data, ...echo(req) } as ServerMessage);
    else {
      if (result.cause !== undefined) this.logger.error({ err: result.cause, error_id: result.errorId, request_type: type }, 'request failed');
      metrics.error('db_error');
      this.send({ type: 'db_error', error: result.error, request_type: type, ...echo(req) });
    }
  }

  // -- handlers ----------------------------------------------------------------------------

  queueTurn(text: string, req: Request): void {
    if (text.trim() === '') {
      this.error('invalid_payload', 'Invalid user_message: data.text must not be blank.', req);
      return;
    }
    if (this.closing) return this.keepUserMessage(text); // no more turns, but what was said is stored
    this.turns.push({ text, receivedAt: metrics.now() });
  }

  /** Stores the user message of a turn that will not run (the connection is closing). */
  private keepUserMessage(text: string): void {
    this.conversation.append({ role: 'user', name: this.chat.userName, content: p.cleanText(text.trim()) });
  }

  /** Cancels the running turn and everything queued for speech, then acknowledges. */
  async interrupt(): Promise<void> {
    const startedAt = metrics.now();
    this.generation++;
    this.firstAudioFrom = undefined;
    this.sentences.clear();
    this.speech?.interrupt(); // synthesis stops while the turn unwinds
    const current = this.current;
    if (current) {
      current.controller.abort(new Error('interrupted'));
      await current.done;
    }
    this.streamer?.interrupt();
    this.send({ type: 'interrupt_ack' });
    metrics.interrupt(metrics.secondsSince(startedAt));
  }

  updateModelSettings(patch: Partial<p.ModelSettings>, req: Request): void {
    this.chat.settings = { ...this.chat.settings, ...patch };
    this.send({ type: 'model_settings_updated', data: this.chat.settings, ...echo(req) });
  }

  updateSessionSettings(userName: string, req: Request): void {
    this.chat.userName = userName;
    this.send({ type: 'session_settings_updated', data: { user_name: userName }, ...echo(req) });
  }

  async clearHistory(req: Request): Promise<void> {
    if (this.current) await this.interrupt();
    this.chat.history = [];
    this.conversation.startNew(randomUUID());
    this.send({ type: 'history_cleared', data: { conversation_id: this.conversation.id }, ...echo(req) });
  }

  async loadConversation(conversationId: string, req: Request): Promise<void> {
    if (this.current) await this.interrupt();
    await this.conversation.flush(); // what this session still writes belongs in what it loads
    try {
      const conversation = await this.deps.repo.getConversation(conversationId);
      const messages = await this.deps.repo.listMessages({ conversation_id: conversationId });
      this.chat.loadHistory(messages);
      this.conversation.resume(conversationId);
      this.send({ type: 'conversation_loaded', data: { conversation, messages }, ...echo(req) });
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      this.error('not_found', error.message, req);
    }
  }

  listen(on: boolean, req: Request): void {
    if (!this.transcribe) {
      if (on) this.error('stt_not_configured', SPEECH_INPUT_NOT_CONFIGURED, req);
      return;
    }
    if (on) this.transcribe.startListening();
    else this.transcribe.stopListening();
  }

  /** Speaks a sample of a stored voice through the same path as a reply. */
  async previewVoice(voice: string, text: string | undefined, req: Request): Promise<void> {
    if (!this.deps.tts) {
      this.error('tts_error', 'Speech output is off (TTS_ENGINE=none): there is nothing to preview with.', req);
      return;
    }
    try {
      await this.deps.repo.getVoice(voice);
    } catch (error) {
      if (error instanceof NotFoundError) return this.error('not_found', error.message, req);
      throw error;
    }
    const speaker = { character_id: '', character_name: voice, message_id: randomUUID(), voice };
    const generation = this.generation;
    const sample = text ?? `Hello! This is the voice called ${voice}.`;
    this.sentences.push({ kind: 'sentence', speaker, generation, turn: ++this.turnCount, sentence_index: 0, text: sample });
    this.sentences.push({ kind: 'end', speaker, generation });
  }

  async refreshCast(req: Request): Promise<void> {
    await this.loadCast();
    this.send({ type: 'active_characters_data', data: this.cast, ...echo(req) });
  }

  // -- turns -------------------------------------------------------------------------------

  private firstAudioSent(): void {
    if (this.firstAudioFrom === undefined) return;
    metrics.firstAudio(metrics.secondsSince(this.firstAudioFrom));
    this.firstAudioFrom = undefined;
  }

  private async loadCast(): Promise<void> {
    this.cast = await this.deps.repo.listActiveCharacters();
  }

  private async turnLoop(): Promise<void> {
    for await (const { text, receivedAt } of this.turns) {
      if (this.closing) {
        this.keepUserMessage(text); // taken off the queue just as the session closed
        continue;
      }
      metrics.turnStarted();
      this.firstAudioFrom = receivedAt;
      const controller = new AbortController();
      const turn = new ConversationTurn(text, {
        chat: this.chat,
        log: this.conversation,
        cast: this.cast,
        sentences: this.sentences,
        send: (m) => this.send(m),
        error: (code, message) => this.error(code, message),
        generation: this.generation,
        turn: ++this.turnCount,
        signal: controller.signal,
      });
      this.logger.info({ chars: text.length }, 'turn started');
      const done = turn.run().catch((e) => this.fail(e));
      this.current = { controller, done };
      await done;
      this.current = undefined;
    }
  }
}
