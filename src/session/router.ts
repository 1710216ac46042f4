// WebSocketRouter: one per connection. Parses and validates every incoming frame, dispatches
// it through the handler table (or the CRUD table), and runs the connection's turns one at a
// time. Interrupts overtake everything: they are handled the moment they arrive, not queued
// behind other requests (as Pipecat's system frames bypass the data queues).
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { z } from 'zod';
import { crudChanges, isCrudType, type MessageChange, runCrud } from '../db/handlers.ts';
import type { Repo } from '../db/repo.ts';
import { ConflictError, NotFoundError } from '../db/repo.ts';
import { ChatLLM, type Llm } from '../llm/chat.ts';
import { worldOf } from '../llm/lorebook.ts';
import { metrics } from '../metrics.ts';
import * as p from '../protocol.ts';
import type { Character, ErrorCode, ServerMessage } from '../protocol.ts';
import type { SttEngine } from '../transcribe/engine.ts';
import { SPEECH_INPUT_NOT_CONFIGURED } from '../transcribe/stt.ts';
import { Transcribe } from '../transcribe/transcribe.ts';
import type { TurnDetector } from '../transcribe/turn-detector.ts';
import type { VadModel } from '../transcribe/vad.ts';
import { AsyncQueue } from '../util/async-queue.ts';
import { JsonInputError, parseJson } from '../util/json.ts';
import type { Config } from '../config.ts';
import type { TtsEngine } from '../speech/engine.ts';
import type { NarrationDefaults } from '../speech/narration.ts';
import type { VoiceResolver } from '../speech/voices.ts';
import { ConversationLog } from './conversation-log.ts';
import type { MessageSpool } from './message-spool.ts';
import { MessageOps, type PlanReplies } from './message-ops.ts';
import { Playout } from './playout.ts';
import { type Limited, type RateLimits, RequestLimiter } from './rate-limiter.ts';
import { AutoMode } from './auto-mode.ts';
import { BargeIn } from './barge-in.ts';
import { ConversationCast } from './cast.ts';
import { ConversationContext } from './conversation-context.ts';
import { greetingPlans } from './greetings.ts';
import { OutputGate } from './output-gate.ts';
import { Preemption } from './preemptive-turn.ts';
import { ConversationTurn, type TurnLog } from './turn.ts';
import { SocketWriter } from './writer.ts';

export interface SessionDeps {
  repo: Repo;
  llm: Llm;
  userName: string;
  maxMessageBytes: number;
  /** Speech output; absent when TTS_ENGINE=none (text only). */
  tts: { engine: TtsEngine; voices: VoiceResolver; audioLeadMs: number; lookahead?: number } | undefined;
  /** NARRATION / NARRATOR_VOICE: how replies of characters without their own setting are spoken; absent = all. */
  narration?: NarrationDefaults;
  /** Whether the session's first (new) conversation opens with greetings; `/ws?greetings=off` says no. */
  greetOnStart?: boolean;
  /** Speech input; absent when STT_ENGINE=none. */
  stt: { engine: SttEngine; vad: VadModel; config: Config['stt']; turnDetector?: TurnDetector | undefined } | undefined;
  logger: Logger;
  /** REPLY_SEED: every conversation's PRNG (who speaks up unaddressed) starts from it; absent: random. */
  replySeed?: number | undefined;
  /** Per-connection request limits (RATE_LIMIT_*). */
  rateLimits: RateLimits;
  /** DATA_DIR's dead-letter file for messages the database refuses; absent: the error log only. */
  spool?: MessageSpool | undefined;
  /** What the server can do right now (LLM state, speech input), sent in the `session` greeting. */
  capabilities?: (() => p.Capabilities) | undefined;
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
  // Immediate like interrupt, which it comes just before.
  playback_position: handler(p.playbackPositionSchema, (r, d: { message_id: string; played_ms: number }) => void r.playout.reportPosition(d.message_id, d.played_ms), false),
  regenerate: handler(p.regenerateSchema, (r, d: { message_id?: string }, req) => r.ops.regenerate(d.message_id, req)),
  select_alternative: handler(p.selectAlternativeSchema, (r, d: { message_id: string; index: number }, req) => r.ops.selectAlternative(d.message_id, d.index, req)),
  continue: handler(p.continueSchema, (r, d: { message_id: string }, req) => r.ops.continueMessage(d.message_id, req)),
  edit_message: handler(p.editMessageSchema, (r, d: { message_id: string; content: string }, req) => r.ops.edit(d.message_id, d.content, req)),
  user_message: handler(p.userMessageSchema, (r, d: { text: string }, req) => r.queueTurn(d.text, req)),
  model_settings: handler(p.modelSettingsPatchSchema, (r, d: Partial<p.ModelSettings>, req) => r.updateModelSettings(d, req)),
  session_settings: handler(p.sessionSettingsSchema, (r, d: { user_name: string }, req) => r.updateSessionSettings(d.user_name, req)),
  clear_history: handler(p.emptySchema, (r, _d, req) => r.clearHistory(req)),
  load_conversation: handler(p.loadConversationSchema, (r, d: { conversation_id: string }, req) => r.loadConversation(d.conversation_id, req)),
  refresh_characters: handler(p.emptySchema, (r, _d, req) => r.refreshCast(req)),
  refresh_active_characters: handler(p.emptySchema, (r, _d, req) => r.refreshCast(req)),
  trigger_character: handler(p.triggerCharacterSchema, (r, d: { character_id: string }, req) => r.triggerCharacter(d.character_id, req)),
  preview_voice: handler(p.previewVoiceSchema, (r, d: { voice: string | p.VoiceDefinition; text?: string }, req) => r.previewVoice(d.voice, d.text, req)),
  // Immediate, like the binary audio frames they switch on and off, so frames keep their order relative to them.
  start_listening: handler(p.emptySchema, (r, _d, req) => r.listen(true, req), false),
  stop_listening: handler(p.emptySchema, (r, _d, req) => r.listen(false, req), false),
}));

/** An update_conversation of this session's conversation that sets its persona. */
const choosesPersona = (data: unknown, conversationId: string) =>
  typeof data === 'object' && data !== null && Object.hasOwn(data, 'persona_id') && (data as { conversation_id?: unknown }).conversation_id === conversationId;

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
  /** The speech side: queues, speech worker, streamer, generation, the record of what was played. */
  readonly playout: Playout;
  readonly ops: MessageOps;
  private readonly transcribe: Transcribe | undefined;
  private readonly chat: ChatLLM;
  private readonly conversation: ConversationLog;
  /** Turns to run: a user message, or the replies of a message operation (regenerate, continue); `gate`: a preemptive one, held until confirmed. */
  private readonly turns = new AsyncQueue<{ text: string | undefined; receivedAt: bigint; plans?: PlanReplies; auto?: true; gate?: OutputGate }>();
  /** When the user message of the running turn arrived, until its first audio frame is sent. */
  private firstAudioFrom: bigint | undefined;
  /** When the last utterance ended, until its final transcript. */
  private utteranceEndedAt: bigint | undefined;
  private readonly logger: Logger;
  /** The conversation's cast and its rules for who speaks (src/session/cast.ts). */
  private readonly castState: ConversationCast;
  private readonly autoMode: AutoMode;
  /** The conversation this session's own update_conversation is changing (no echo of it). */
  private updating: string | undefined;
  private current: { controller: AbortController; done: Promise<void>; gate: OutputGate | undefined } | undefined;
  /** Replies started on the user's paused words, held until the final transcript (src/session/preemptive-turn.ts). */
  private readonly preemption: Preemption;
  /** What the user's voice over a reply does: pause, then resume or interrupt (src/session/barge-in.ts). */
  private readonly bargeIn: BargeIn;
  /** Where a confirmed turn's output goes: the session itself. */
  private readonly direct: { chat: ChatLLM; log: TurnLog; send: (m: ServerMessage) => void };
  /** Replies whose text has streamed, waiting for their playback to end or be cut to commit. */
  private readonly commits = new Set<Promise<void>>();
  private ordered: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;
  private readonly limiter: RequestLimiter;
  /** Who the user speaks as and the attached lorebooks (src/session/conversation-context.ts). */
  private readonly context: ConversationContext;
  private readonly contextChanged = () => this.context.invalidate();
  /** This session's id: the origin of the message changes it makes (it is not told of its own). */
  private readonly sessionId = randomUUID();
  /** Message changes made elsewhere, applied one after another. */
  private remoteChanges: Promise<void> = Promise.resolve();
  private readonly takeMessageChange = (change: MessageChange) => {
    if (change.conversation_id !== this.conversation.id || change.origin === this.sessionId || this.closing) return;
    this.remoteChanges = this.remoteChanges.then(() => this.applyMessageChange(change)).catch((e) => this.fail(e));
  };
  private readonly takeCharacters = (all: Character[]) => this.castChange(() => this.castState.takeCharacters(all));
  private readonly takeConversation = (conversation: p.Conversation) => {
    if (conversation.conversation_id !== this.conversation.id) return;
    this.castChange(() => this.castState.adopt(conversation, { reseed: false }));
    if (this.updating !== conversation.conversation_id) this.send({ type: 'conversation_updated', data: conversation });
  };

  /** The cast members: the characters of this conversation's cast that exist, in cast order. */
  private get cast(): Character[] {
    return this.castState.members;
  }

  constructor(
    ws: WebSocket,
    private readonly deps: SessionDeps,
    tcp?: Socket,
  ) {
    this.writer = new SocketWriter(ws, tcp);
    this.limiter = new RequestLimiter(deps.rateLimits);
    metrics.sessionOpened(); // paired with close(), which runs whenever the socket closes
    this.logger = deps.logger.child({ conn: this.sessionId.slice(0, 8) });
    this.chat = new ChatLLM(deps.llm, deps.userName);
    this.context = new ConversationContext({ repo: deps.repo, chat: this.chat, fallbackName: deps.userName, logger: this.logger });
    this.castState = new ConversationCast(deps.replySeed);
    this.autoMode = new AutoMode({
      settings: () => this.castState.settings,
      idle: () => this.idle(),
      speak: () => this.inOrder(() => this.queueAutoTurn()),
    });
    this.conversation = new ConversationLog({
      repo: deps.repo,
      conversationId: randomUUID(),
      activeCharacters: () => this.castState.settings.active_characters,
      settings: () => this.castState.creation(),
      onStored: () => this.castState.fix(),
      stored: (message, op) => crudChanges.emit('message', { op, conversation_id: message.conversation_id, message_id: message.message_id, origin: this.sessionId }),
      report: (message) => this.error('storage_error', message),
      spool: deps.spool,
      logger: this.logger,
    });
    this.playout = new Playout({
      writer: this.writer,
      tts: deps.tts,
      narration: deps.narration,
      error: (code: ErrorCode, message: string) => this.error(code, message),
      logger: this.logger,
      onFirstFrame: () => this.firstAudioSent(),
    });
    this.direct = { chat: this.chat, log: this.conversation, send: (m) => this.send(m) };
    this.preemption = new Preemption({
      enabled: deps.stt?.config.preemptive ?? false,
      idle: () => this.canPreempt(),
      gate: (text) => new OutputGate(text, { chat: this.chat, log: this.conversation, playout: this.playout, send: (m) => this.send(m) }),
      run: (gate) => this.turns.push({ text: gate.text, receivedAt: metrics.now(), gate }),
      committed: () => this.userTurnConfirmed(),
    });
    this.bargeIn = new BargeIn({
      playout: this.playout,
      timeoutMs: deps.stt?.config.falseInterruptTimeoutMs ?? 0,
      interrupt: () => this.interrupt().catch((e) => this.fail(e)),
    });
    this.ops = new MessageOps({
      chat: this.chat,
      log: this.conversation,
      repo: deps.repo,
      cast: () => this.cast,
      responders: (history) => this.castState.responders(history),
      send: (m) => this.send(m),
      error: (code, message, req) => this.error(code, message, req),
      speaking: () => this.speaking(),
      stopSpeaking: () => this.stopSpeaking(),
      settled: () => this.settled(),
      queueReplies: (plans) => this.queueReplies(plans),
      crud: (type, data, req) => this.crud(type, data, req),
    });
    if (deps.stt) this.transcribe = this.createTranscribe(deps.stt);
  }

  /**
   * Speech input events become stt_* messages; a final transcript becomes a turn (or confirms
   * the one started on the user's paused words); the user's voice over a reply pauses it.
   */
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
          this.bargeIn.speechEnded();
        },
        final: (text) => {
          if (this.utteranceEndedAt !== undefined) metrics.sttLatency(metrics.secondsSince(this.utteranceEndedAt));
          this.utteranceEndedAt = undefined;
          this.send({ type: 'stt_final', text });
          // A paused reply is cut now (the user did say something); its interrupt_ack comes before their turn.
          const cut = this.bargeIn.words();
          if (!cut && this.preemption.confirm(text)) return;
          this.inOrder(async () => {
            await cut;
            this.queueTurn(text, { type: 'stt_final' });
          });
        },
        speechStart: () => {
          this.autoMode.pause(); // the user has the floor: no character starts talking over them
          const held = this.preemption.holding;
          this.preemption.cancel(); // a reply held for their last words would talk over these
          if (!held && stt.config.bargeIn && this.speaking()) this.bargeIn.speechStarted();
        },
        ...(stt.config.preemptive ? { preemptive: (text: string) => this.preemption.start(text), preemptiveCancelled: () => this.preemption.cancel() } : {}),
        turnJudged: (complete, probability) => this.logger.debug({ complete, probability }, 'end of turn judged'),
        error: (code, message) => this.error(code, message),
      },
    });
  }

  /** A reply may start before its turn is confirmed: nothing else is being said, made, queued or paused. */
  private canPreempt(): boolean {
    return !this.closing && !this.current && this.turns.size === 0 && !this.playout.speaking() && !this.bargeIn.pausing && this.cast.length > 0;
  }

  /** The final transcript confirmed the held reply: it counts as the user's turn from now. */
  private userTurnConfirmed(): void {
    this.autoMode.resume();
    metrics.turnStarted();
    this.firstAudioFrom = metrics.now();
  }

  /** Where auto-mode stands (for tests and diagnostics). */
  get autoModeState(): AutoMode['state'] {
    return this.autoMode.state;
  }

  /** A character is replying, or its audio is still being made, sent or played (a reply being discarded is not). */
  private speaking(): boolean {
    return (this.current !== undefined && !this.current.gate?.discarded) || this.playout.speaking();
  }

  /** The capabilities this session was last told (JSON); undefined until its greeting. */
  private toldCapabilities: string | undefined;

  /** The server's capabilities changed: told when they differ from what the session knows (never before its greeting, which carries them). */
  capabilitiesChanged(capabilities: p.Capabilities): void {
    const text = JSON.stringify(capabilities);
    if (this.toldCapabilities === undefined || this.toldCapabilities === text) return;
    this.toldCapabilities = text;
    this.send({ type: 'capabilities', data: capabilities });
  }

  /** Sends the session greeting and starts the turn loop. */
  async start(): Promise<void> {
    await this.loadCast();
    crudChanges.on('characters', this.takeCharacters);
    crudChanges.on('conversation', this.takeConversation);
    crudChanges.on('context', this.contextChanged);
    crudChanges.on('message', this.takeMessageChange);
    await this.prepareContext(); // the session's user_name is the default persona's
    const capabilities = this.deps.capabilities?.();
    this.toldCapabilities = JSON.stringify(capabilities ?? null);
    this.send({
      type: 'session',
      data: {
        conversation_id: this.conversation.id,
        user_name: this.chat.userName,
        input_sample_rate: p.INPUT_SAMPLE_RATE,
        output_sample_rate: this.deps.tts?.engine.sampleRate ?? 0,
        active_characters: this.cast,
        model_settings: this.chat.settings,
        cast_settings: this.castState.settings,
        ...(capabilities ? { capabilities } : {}),
      },
    });
    this.logger.info('session started');
    void this.turnLoop();
    if (this.deps.greetOnStart !== false) this.greet();
    void this.playout.run().catch((e) => this.fail(e));
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
    crudChanges.off('characters', this.takeCharacters);
    crudChanges.off('conversation', this.takeConversation);
    crudChanges.off('context', this.contextChanged);
    crudChanges.off('message', this.takeMessageChange);
    this.autoMode.cancel();
    metrics.sessionClosed();
    const queued = this.turns.takeAll();
    this.turns.close();
    this.preemption.cancel(); // a reply not confirmed was never the user's turn
    this.bargeIn.cut();
    this.playout.interrupt(); // what is playing is cut: the turn stores what was heard
    this.current?.controller.abort(new Error(reason));
    await this.current?.done;
    await this.settled();
    for (const turn of queued) if (turn.text !== undefined && !turn.gate) this.keepUserMessage(turn.text);
    this.transcribe?.close();
    this.playout.close();
    if (!(await this.conversation.close())) this.logger.error('some messages are not stored yet; they are retried while the server runs, then spooled');
    this.logger.info('session closed');
  }

  /** What this connection holds in memory for a slow client. */
  stats(): { unwrittenBytes: number; queuedAudioBytes: number } {
    return { unwrittenBytes: this.writer.unwrittenBytes, queuedAudioBytes: this.playout.queuedAudioBytes };
  }

  send(message: ServerMessage): void {
    this.writer.send(message);
  }

  /** `send`: where it goes (a held turn's errors are held with it). */
  error(code: ErrorCode, message: string, req?: Request, send = (m: ServerMessage) => this.send(m)): void {
    metrics.error(code);
    send({ type: 'error', data: { code, message, ...(req ? { request_type: req.type } : {}) }, ...(req ? echo(req) : {}) });
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
      const type = envelope.type as Parameters<typeof runCrud>[1];
      this.inOrder(async () => void (type === 'delete_message' ? await this.ops.delete(envelope.data, req) : await this.crud(type, envelope.data, req)), req);
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

  /** Runs a CRUD request and answers it; true when it succeeded. */
  async crud(type: Parameters<typeof runCrud>[1], data: unknown, req: Request): Promise<boolean> {
    if (type === 'update_conversation' && !(await this.contextExists(data, req))) return false;
    if (type === 'update_conversation' && choosesPersona(data, this.conversation.id)) this.context.personaChosen();
    if (type === 'update_conversation') await this.storeBeforeUpdate(data);
    this.updating = type === 'update_conversation' ? this.conversation.id : undefined; // its change comes back as its reply
    const result = await runCrud(this.deps.repo, type, data, this.sessionId).finally(() => (this.updating = undefined));
    if (result.ok) {
      this.takeOwnMessage(type, result.data);
      this.writer.send({ type: result.reply, data: result.data, ...echo(req) } as ServerMessage);
    }
    else {
      if (result.cause !== undefined) this.logger.error({ err: result.cause, error_id: result.errorId, request_type: type }, 'request failed');
      metrics.error('db_error');
      this.send({ type: 'db_error', error: result.error, request_type: type, ...echo(req) });
    }
    return result.ok;
  }

  /** A message this session created or changed through CRUD, in its own conversation: the live history has it at once. */
  private takeOwnMessage(type: Parameters<typeof runCrud>[1], data: unknown): void {
    if (type !== 'create_message' && type !== 'update_message') return;
    const message = data as p.Message;
    if (message.conversation_id === this.conversation.id) this.chat.takeMessage(message);
  }

  /**
   * A message of this session's conversation added, changed or deleted by another session (of
   * any process) or over REST: the live history follows (every later prompt sees it) and the
   * client is told. The row is read here; the notice only names it.
   */
  private async applyMessageChange(change: MessageChange): Promise<void> {
    if (change.conversation_id !== this.conversation.id) return; // another conversation was loaded meanwhile
    if (change.op === 'deleted') {
      this.chat.forgetMessage(change.message_id);
      this.send({ type: 'message_deleted', data: { message_id: change.message_id, conversation_id: change.conversation_id } });
      return;
    }
    const message = await this.deps.repo.getMessage(change.message_id).catch((e: unknown) => {
      if (e instanceof NotFoundError) return undefined; // deleted since: its own notice follows
      throw e;
    });
    if (!message || message.conversation_id !== this.conversation.id || !this.chat.takeMessage(message)) return;
    this.send({ type: change.op === 'added' ? 'message_added' : 'message_updated', data: message });
  }

  /** The persona and lorebooks an update of this session's unstored conversation names exist (storage checks the others). */
  private async contextExists(data: unknown, req: Request): Promise<boolean> {
    const parsed = p.conversationUpdateSchema.safeParse(data ?? {});
    if (!parsed.success || parsed.data.conversation_id !== this.conversation.id || this.conversation.isStored) return true; // runCrud answers it
    try {
      await this.deps.repo.checkContext(parsed.data);
      return true;
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
      metrics.error('db_error');
      this.send({ type: 'db_error', error: error.message, request_type: 'update_conversation', ...echo(req) });
      return false;
    }
  }

  /**
   * update_conversation of this session's conversation before its first message: the
   * conversation is stored now (its title still comes from that first message, unless the
   * update gives one), so the update has a record to change and every session sees it.
   */
  private async storeBeforeUpdate(data: unknown): Promise<void> {
    const parsed = p.conversationUpdateSchema.safeParse(data ?? {});
    if (!parsed.success || parsed.data.conversation_id !== this.conversation.id) return;
    if (!this.conversation.isStored) await this.conversation.storeNow();
    if (parsed.data.title !== undefined) this.conversation.titled();
  }

  // -- handlers ----------------------------------------------------------------------------

  queueTurn(text: string, req: Request): void {
    if (text.trim() === '') {
      this.error('invalid_payload', 'Invalid user_message: data.text must not be blank.', req);
      return;
    }
    if (this.closing) return this.keepUserMessage(text); // no more turns, but what was said is stored
    this.autoMode.resume(); // the user has the floor; the chatter may follow their turn
    this.turns.push({ text, receivedAt: metrics.now() });
  }

  /** Force-talk: one cast member speaks now, without a user message, even when muted. */
  triggerCharacter(characterId: string, req: Request): void {
    const character = this.castState.character(characterId);
    if (!character) return this.error('not_found', `There is no character "${characterId}".`, req);
    if (!this.cast.includes(character)) return this.error('not_found', `${character.name} is not in this conversation's cast: add them first.`, req);
    if (this.closing) return;
    this.autoMode.resume();
    this.queueReplies(async () => [{ character, messageId: randomUUID() }]);
  }

  /** Auto-mode's next speaker: a turn without a user message, the strategy answering the last reply. */
  private queueAutoTurn(): void {
    if (this.closing || !this.autoMode.on || this.cast.length === 0 || this.current || this.turns.size > 0) return;
    this.turns.push({ text: undefined, receivedAt: metrics.now(), auto: true });
  }

  /**
   * Resolves once nothing is left to play. Auto-mode is scheduled when a turn ends (after its
   * last reply finished playing), so what can still play then is a voice preview; a turn that
   * starts meanwhile reschedules it when it ends, and queueAutoTurn checks again.
   */
  private idle(): Promise<void> {
    return this.playout.idle();
  }

  /** Runs a change of the cast; tells the client the new cast if its members changed (who, or in what order). */
  private castChange(change: () => void): void {
    const ids = () => this.cast.map((c) => c.id).join('\n');
    const before = ids();
    change();
    if (ids() !== before) this.send({ type: 'active_characters_data', data: this.cast });
    this.autoMode.schedule();
  }

  /** Stores the user message of a turn that will not run (the connection is closing). */
  private keepUserMessage(text: string): void {
    this.conversation.append({ role: 'user', name: this.chat.userName, content: p.cleanText(text.trim()) });
  }

  /** Cancels the running turn and everything queued for speech, then acknowledges. */
  async interrupt(): Promise<void> {
    const startedAt = metrics.now();
    this.autoMode.pause(); // until the user's next message
    await this.stopSpeaking();
    this.send({ type: 'interrupt_ack' });
    metrics.interrupt(metrics.secondsSince(startedAt));
  }

  /**
   * One cut: the playout stops and records what was heard, then the turn unwinds and commits
   * its replies from that record (message_truncated for each cut one).
   */
  private async stopSpeaking(): Promise<void> {
    this.firstAudioFrom = undefined;
    this.preemption.cancel();
    this.bargeIn.cut();
    this.playout.interrupt();
    const current = this.current;
    if (current) {
      current.controller.abort(new Error('interrupted'));
      await current.done;
    }
    await this.settled();
  }

  /** Takes a reply's commit (it settles when the reply's playback has ended or been cut). */
  private settle(commit: Promise<void>): void {
    const tracked = commit.catch((e: unknown) => this.fail(e));
    this.commits.add(tracked);
    void tracked.finally(() => this.commits.delete(tracked));
  }

  /** Every reply cut or played so far is committed (message_truncated sent, history and store updated). */
  private async settled(): Promise<void> {
    await Promise.all([...this.commits]);
  }

  updateModelSettings(patch: Partial<p.ModelSettings>, req: Request): void {
    this.chat.settings = { ...this.chat.settings, ...patch };
    this.send({ type: 'model_settings_updated', data: this.chat.settings, ...echo(req) });
  }

  updateSessionSettings(userName: string, req: Request): void {
    this.context.speakAs(userName);
    this.send({ type: 'session_settings_updated', data: { user_name: userName }, ...echo(req) });
  }

  async clearHistory(req: Request): Promise<void> {
    if (this.speaking()) await this.interrupt();
    this.chat.history = [];
    this.conversation.startNew(randomUUID());
    this.autoMode.cancel();
    this.castChange(() => this.castState.startNew());
    this.send({ type: 'history_cleared', data: { conversation_id: this.conversation.id, cast_settings: this.castState.settings }, ...echo(req) });
    this.greet();
  }

  async loadConversation(conversationId: string, req: Request): Promise<void> {
    if (this.speaking()) await this.interrupt();
    await this.conversation.flush(); // what this session still writes belongs in what it loads
    try {
      const conversation = await this.deps.repo.getConversation(conversationId);
      const messages = await this.deps.repo.listMessages({ conversation_id: conversationId });
      this.chat.loadHistory(messages);
      this.conversation.resume(conversationId);
      this.autoMode.cancel();
      this.send({ type: 'conversation_loaded', data: { conversation, messages }, ...echo(req) });
      this.castChange(() => this.castState.adopt(conversation));
      if (messages.length === 0) this.greet(); // a conversation created empty (create_conversation) opens like a new one
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

  /**
   * Speaks a sample through the same path as a reply: of a stored voice (its key), or of an
   * unsaved definition (the editor's settings before saving), resolved as a stored one would be.
   */
  async previewVoice(voice: string | p.VoiceDefinition, text: string | undefined, req: Request): Promise<void> {
    if (!this.deps.tts) {
      this.error('tts_error', 'Speech output is off (TTS_ENGINE=none): there is nothing to preview with.', req);
      return;
    }
    if (typeof voice !== 'string') {
      const name = voice.voice ?? 'unsaved voice';
      const speaker = { character_id: '', character_name: name, message_id: randomUUID(), voice: voice.voice ?? null, definition: voice };
      return this.playout.say(speaker, text ?? `Hello! This is how the voice ${name} sounds.`);
    }
    try {
      await this.deps.repo.getVoice(voice);
    } catch (error) {
      if (error instanceof NotFoundError) return this.error('not_found', error.message, req);
      throw error;
    }
    const speaker = { character_id: '', character_name: voice, message_id: randomUUID(), voice };
    this.playout.say(speaker, text ?? `Hello! This is the voice called ${voice}.`);
  }

  /**
   * The original client's "the active characters changed" (it toggles is_active, then asks):
   * this conversation's cast becomes the default cast, stored if the conversation is.
   */
  async refreshCast(req: Request): Promise<void> {
    const [all, active] = await Promise.all([this.deps.repo.listCharacters(), this.deps.repo.listActiveCharacters()]);
    this.castState.takeCharacters(all);
    this.castState.resetTo(active.map((c) => c.id));
    if (this.conversation.isStored) await this.storeCast(this.castState.settings.active_characters);
    this.send({ type: 'active_characters_data', data: this.cast, ...echo(req) });
    this.autoMode.schedule();
  }

  private async storeCast(ids: string[]): Promise<void> {
    await this.conversation.flush(); // its first message may still be creating the row
    this.updating = this.conversation.id;
    try {
      const result = await runCrud(this.deps.repo, 'update_conversation', { conversation_id: this.conversation.id, active_characters: ids });
      if (!result.ok) this.send({ type: 'db_error', error: result.error, request_type: 'refresh_active_characters' });
    } finally {
      this.updating = undefined;
    }
  }

  // -- turns -------------------------------------------------------------------------------

  private firstAudioSent(): void {
    if (this.firstAudioFrom === undefined) return;
    metrics.firstAudio(metrics.secondsSince(this.firstAudioFrom));
    this.firstAudioFrom = undefined;
  }

  /** Every character record (the cast refers to them by id). */
  private async loadCast(): Promise<void> {
    this.castState.takeCharacters(await this.deps.repo.listCharacters());
  }

  /** A message operation's replies (regenerate, continue) run as a turn of their own, in turn order. */
  /** The persona, the attached lorebooks and those the cast links by name, read when they changed. */
  private prepareContext(): Promise<void> {
    return this.context.prepare(this.castState.settings, this.cast.flatMap((c) => worldOf(c) ?? []));
  }

  /** A new conversation: the cast members with a greeting greet, in cast order (src/session/greetings.ts). */
  private greet(): void {
    this.queueReplies(async () => greetingPlans(this.cast, this.chat.userName));
  }

  private queueReplies(plans: PlanReplies): void {
    if (this.closing) return;
    this.turns.push({ text: undefined, receivedAt: metrics.now(), plans });
  }

  private async turnLoop(): Promise<void> {
    for await (const { text, receivedAt, plans, auto, gate } of this.turns) {
      if (this.closing) {
        if (text !== undefined && !gate) this.keepUserMessage(text); // taken off the queue just as the session closed
        continue;
      }
      if (gate?.discarded) continue; // cancelled before it began
      await this.prepareContext(); // before planning: a greeting's {{user}} is the persona's name
      const replies = plans ? await plans().catch((e: unknown) => void this.fail(e)) : undefined; // planned when its turn comes: the history is as the earlier turns left it
      if (plans && !replies) continue;
      if (auto && !this.autoMode.on) continue; // turned off (or the user cut in) while it waited
      gate?.begin();
      const out = gate ?? this.direct; // a held turn's output waits behind its gate
      const said = gate?.text ?? text; // (a gate released already carries the final's wording)
      if (said !== undefined) this.tellNotInCast(said, out.send);
      if (!gate) {
        metrics.turnStarted(); // a held turn counts once it is confirmed
        this.firstAudioFrom = receivedAt;
      }
      const controller = gate?.controller ?? new AbortController();
      const restore = gate && this.castState.checkpoint(); // a turn taken back draws nothing
      const turn = new ConversationTurn(
        said,
        {
          chat: out.chat,
          log: out.log,
          cast: this.cast,
          playout: this.playout,
          send: out.send,
          error: (code, message) => this.error(code, message, undefined, out.send),
          turn: this.playout.nextTurn(),
          signal: controller.signal,
          settle: (commit) => this.settle(commit),
          responders: (history) => this.castState.responders(history),
        },
        replies,
      );
      this.logger.info({ chars: said?.length ?? 0, preemptive: gate !== undefined }, 'turn started');
      const before = this.chat.history.length;
      // A held turn stays the running one until it is confirmed or dropped: nothing queued overtakes it.
      const done = (async () => {
        await turn.run().catch((e) => this.fail(e));
        await gate?.settled;
      })();
      this.current = { controller, done, gate };
      await done;
      this.current = undefined;
      if (gate?.discarded) {
        restore?.();
        continue;
      }
      // The chatter goes on after anything said, but not after an auto turn nobody answered.
      if (!auto || this.chat.history.length > before) this.autoMode.schedule();
    }
  }

  /** The user named characters who are not in the cast: they do not answer, and the client is told. */
  private tellNotInCast(text: string, send: (m: ServerMessage) => void): void {
    const outside = this.castState.namedOutside(text);
    if (outside.length > 0) send({ type: 'not_in_cast', data: { names: outside.map((c) => c.name), character_ids: outside.map((c) => c.id) } });
  }
}
