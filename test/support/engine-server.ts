/**
 * engine-server: a fake OpenAI-compatible engine for tests and the benchmark.
 *
 * A REAL HTTP server on 127.0.0.1 (random port) that speaks the same protocols as the engines
 * Chorus talks to, with scripted answers, controllable timing and failures, and a record of
 * everything it received and when it wrote each piece of its answer. Dependency-free (node:http
 * and Node's built-in fetch classes only), so integration tests and the benchmark can share it.
 *
 *   POST /v1/chat/completions     streamed (SSE, exactly OpenAI's chunk format, then `data: [DONE]`)
 *                                 or non-streamed chat completions. Scripted by `server.chat`.
 *   POST /v1/audio/speech         OpenAI TTS. Streams raw PCM16 LE mono (`audio/pcm`, chunked) — a
 *                                 deterministic tone whose pitch depends on the voice and whose
 *                                 length is proportional to the input — or a WAV when
 *                                 `response_format: "wav"`. Scripted by `server.speech`.
 *   POST /v1/audio/transcriptions multipart/form-data with a WAV `file`; answers `{ "text": … }`
 *                                 (or text / verbose_json). Scripted by `server.transcription`.
 *   GET  /v1/models               one model (`opts.model`, default "test-model").
 *
 * Scripting: each endpoint takes `enqueue(...replies)` (a FIFO consumed first) and
 * `script(fn)` (called per request once the FIFO is empty; `script()` restores the default).
 * A reply can delay, fail with an HTTP status before answering, cut the connection mid-answer
 * (`cutAfterTokens` / `cutAfterBytes`) or hang (`{ hang: true }`: accept and never answer).
 *
 * Recording: `server.<endpoint>.requests` holds one RecordedRequest per request, pushed once its
 * body has been read and parsed (before the reply is chosen). Times are process.hrtime.bigint():
 * `receivedAt` (request head arrived), `sent[].at` (each token / PCM chunk, stamped as written),
 * `closedAt` (the exchange ended: response finished, client went away, or the server cut it).
 * `completed` = the whole response was written; `aborted` = the client closed the connection
 * before that. When the client goes away, timers are cleared and nothing more is sent.
 * `waitForRequests(n)` / `waitForClose(req)` resolve on events and reject with a clear message
 * after their timeout (default 2000 ms) or when the server closes.
 *
 * `close()` destroys every open socket (hanging requests included), so no test process hangs.
 * `requireApiKey` makes every route answer 401 unless `Authorization: Bearer <key>` matches.
 *
 * Run on its own (e.g. for a benchmark in another process):
 *   node --import tsx test/support/engine-server.ts '{"speech":{"realtimeFactor":1}}'
 * prints one JSON line `{"baseUrl":"http://127.0.0.1:PORT/v1"}` and serves until SIGINT/SIGTERM.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pathToFileURL } from 'node:url';

// ───────────────────────────── public types ─────────────────────────────

type Awaitable<T> = T | Promise<T>;

/** Answer with this HTTP status (after the reply's first delay) instead of the normal answer. */
export interface HttpFailure {
  status: number;
  /** Raw body; sent as application/json when it parses as JSON. Default: an OpenAI-style error. */
  body?: string;
  headers?: Record<string, string>;
}
/** Accept the request and never answer (until the client or `close()` ends the connection). */
export interface HangFailure {
  hang: true;
}

export interface ChatReply {
  tokens: string[];
  /** Delay before the first token (headers of a streamed reply are sent at once). Default: opts.chat. */
  firstTokenDelayMs?: number;
  /** Delay before each later token. Default: opts.chat. */
  tokenDelayMs?: number;
  /** `cutAfterTokens`: write that many tokens, then destroy the socket (no finish chunk, no [DONE]). */
  failure?: HttpFailure | { cutAfterTokens: number } | HangFailure;
}

export interface SpeechReply {
  /** Delay after the response head before the first audio byte. Default: opts.speech. */
  firstByteDelayMs?: number;
  /** `cutAfterBytes`: write that many bytes of the body, then destroy the socket. */
  failure?: HttpFailure | { cutAfterBytes: number } | HangFailure;
  /** Send these bytes instead of the synthesized tone. */
  pcm?: Buffer;
  /** Per-reply overrides of opts.speech. */
  chunkMs?: number;
  realtimeFactor?: number;
}

export interface TranscriptionReply {
  /** Default: opts.transcription.text, else `Heard <N> ms of audio.` */
  text?: string;
  /** Delay before answering. Default: opts.transcription.delayMs. */
  delayMs?: number;
  failure?: HttpFailure | HangFailure;
}

export interface SentChunk {
  at: bigint;
  /** Chat: the token (or the whole content of a non-streamed reply); transcription: the text. */
  text?: string;
  /** Speech: the number of body bytes in this chunk. */
  bytes?: number;
}

export type EndpointName = 'chat' | 'speech' | 'transcription';

export interface RecordedRequest<Body> {
  /** 1-based, per endpoint (restarts after reset()). */
  id: number;
  endpoint: EndpointName;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Body;
  /** When the request head arrived. */
  receivedAt: bigint;
  /** The HTTP status answered, once the response head is written. */
  status?: number;
  headersAt?: bigint;
  /** Each token / chunk, stamped when written to the socket. */
  sent: SentChunk[];
  /** The whole response was written. */
  completed: boolean;
  /** When the exchange ended: response finished, the client closed the connection, or the server cut it. */
  closedAt?: bigint;
  /** The client closed the connection before the response was complete (not a scripted cut). */
  aborted: boolean;
  /** An unexpected error inside the fake server while answering. */
  error?: string;
}

export interface ChatMessage {
  role: string;
  content?: string | Array<{ type: string; text?: string }> | null;
  name?: string;
  [key: string]: unknown;
}
export interface ChatRequestBody {
  model?: string;
  messages?: ChatMessage[];
  stream?: boolean;
  [key: string]: unknown;
}
export interface RecordedChatRequest extends RecordedRequest<ChatRequestBody> {
  /** Text of the last `user` message ('' if none). */
  lastUserMessage: string;
}

export interface SpeechRequestBody {
  model?: string;
  input?: string;
  voice?: string;
  response_format?: string;
  speed?: number;
  [key: string]: unknown;
}
export type RecordedSpeechRequest = RecordedRequest<SpeechRequestBody>;

export interface WavInfo {
  /** 1 = PCM integer, 3 = IEEE float, 0xfffe = extensible. */
  audioFormat: number;
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** Bytes of the data chunk actually present. */
  dataBytes: number;
  durationMs: number;
  /** The samples (the data chunk). */
  data: Buffer;
}
export interface ReceivedFile {
  field: string;
  name: string;
  type: string;
  size: number;
  bytes: Buffer;
}
export interface RecordedTranscriptionRequest extends RecordedRequest<Record<string, string>> {
  /** The uploaded file (the first file field). */
  file?: ReceivedFile;
  /** The uploaded file's RIFF header, when it is a valid WAV. */
  wav?: WavInfo;
  /** Why the upload is not a valid WAV. */
  wavError?: string;
}

export interface EngineServerOptions {
  /** Every route answers 401 unless `Authorization: Bearer <requireApiKey>`. */
  requireApiKey?: string;
  /** The model /v1/models lists. Default "test-model". */
  model?: string;
  chat?: { firstTokenDelayMs?: number; tokenDelayMs?: number };
  speech?: {
    /** Default 24000. */
    sampleRate?: number;
    /** Audio per character of input (before `speed`). Default 60. */
    msPerChar?: number;
    /** Audio per written chunk. Default 20. */
    chunkMs?: number;
    /** Pacing: 1 = real time, 0.5 = twice as fast, 0 = as fast as possible (default). */
    realtimeFactor?: number;
    /** Default 0. */
    firstByteDelayMs?: number;
  };
  transcription?: { text?: string; delayMs?: number };
}

export type Script<R, P> = (request: R) => Awaitable<P>;

export interface EngineServer {
  /** e.g. http://127.0.0.1:PORT/v1 */
  readonly baseUrl: string;
  readonly port: number;
  readonly chat: EngineEndpoint<RecordedChatRequest, ChatReply>;
  readonly speech: EngineEndpoint<RecordedSpeechRequest, SpeechReply>;
  readonly transcription: EngineEndpoint<RecordedTranscriptionRequest, TranscriptionReply>;
  /** Resolves when the request's exchange has ended (closedAt set). */
  waitForClose<R extends RecordedRequest<unknown>>(request: R, timeoutMs?: number): Promise<R>;
  /** Clears every endpoint's requests, queue and script. */
  reset(): void;
  /** Stops listening and destroys all open connections. Idempotent. */
  close(): Promise<void>;
}

// ───────────────────────────── helpers (exported) ─────────────────────────────

export const DEFAULT_WAIT_MS = 2000;

export const now = (): bigint => process.hrtime.bigint();

/** Milliseconds from `from` to `to` (hrtime bigints). */
export const msBetween = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

/** Splits text into word tokens that keep their leading whitespace: "a b" → ["a", " b"]. */
export function tokenize(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

/** The pitch (Hz) of the tone a voice speaks with: deterministic, and different for different voices. */
export function voiceFrequency(voice: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < voice.length; i++) {
    h ^= voice.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return 160 + (h % 480);
}

/** Samples of speech for `input`: `input.length × msPerChar / speed` ms at `sampleRate`. */
export function speechSampleCount(input: string, o: { sampleRate?: number; msPerChar?: number; speed?: number } = {}): number {
  const sampleRate = o.sampleRate ?? 24_000;
  const msPerChar = o.msPerChar ?? 60;
  const speed = o.speed ?? 1;
  return Math.round((input.length * msPerChar * sampleRate) / 1000 / speed);
}

/** The PCM16 LE mono tone the speech endpoint sends for `input` in `voice`. */
export function synthesizeSpeech(input: string, voice: string, o: { sampleRate?: number; msPerChar?: number; speed?: number } = {}): Buffer {
  const sampleRate = o.sampleRate ?? 24_000;
  const samples = speechSampleCount(input, o);
  const step = (2 * Math.PI * voiceFrequency(voice)) / sampleRate;
  const pcm = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) pcm.writeInt16LE(Math.round(Math.sin(i * step) * 0.3 * 32767), i * 2);
  return pcm;
}

/** A canonical 44-byte-header PCM WAV around `pcm`. */
export function encodeWav(pcm: Buffer, sampleRate: number, channels = 1, bitsPerSample = 16): Buffer {
  const header = Buffer.alloc(44);
  const blockAlign = (channels * bitsPerSample) / 8;
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + pcm.length, 4);
  header.write('WAVE', 8, 'ascii');
  header.write('fmt ', 12, 'ascii');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * blockAlign, 28);
  header.writeUInt16LE(blockAlign, 32);
  header.writeUInt16LE(bitsPerSample, 34);
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([header, pcm]);
}

/** Parses a RIFF/WAVE file's fmt and data chunks. Throws an Error saying what is wrong. */
export function parseWav(file: Buffer): WavInfo {
  if (file.length < 12 || file.toString('ascii', 0, 4) !== 'RIFF' || file.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error(`not a RIFF/WAVE file (${file.length} bytes, starts with ${JSON.stringify(file.toString('latin1', 0, 12))})`);
  }
  let fmt: Omit<WavInfo, 'dataBytes' | 'durationMs' | 'data'> | undefined;
  let offset = 12;
  while (offset + 8 <= file.length) {
    const id = file.toString('ascii', offset, offset + 4);
    const size = file.readUInt32LE(offset + 4);
    const start = offset + 8;
    if (id === 'fmt ') {
      if (size < 16 || start + 16 > file.length) throw new Error(`fmt chunk too short (${size} bytes)`);
      fmt = {
        audioFormat: file.readUInt16LE(start),
        channels: file.readUInt16LE(start + 2),
        sampleRate: file.readUInt32LE(start + 4),
        bitsPerSample: file.readUInt16LE(start + 14),
      };
    } else if (id === 'data') {
      if (!fmt) throw new Error('data chunk before fmt chunk');
      // Streaming writers may leave the size at 0 or 0xffffffff: take what is there.
      const end = size === 0 || start + size > file.length ? file.length : start + size;
      const data = file.subarray(start, end);
      const bytesPerSecond = (fmt.sampleRate * fmt.channels * fmt.bitsPerSample) / 8;
      if (!(bytesPerSecond > 0)) throw new Error(`bad fmt: ${JSON.stringify(fmt)}`);
      return { ...fmt, dataBytes: data.length, durationMs: (data.length / bytesPerSecond) * 1000, data };
    }
    offset = start + size + (size % 2);
  }
  throw new Error(fmt ? 'no data chunk' : 'no fmt chunk');
}

// ───────────────────────────── events and waiting ─────────────────────────────

class Hub {
  readonly events = new EventEmitter();
  #closed = false;
  readonly #failers = new Set<(reason: string) => void>();

  constructor() {
    this.events.setMaxListeners(0);
  }

  changed(): void {
    this.events.emit('change');
  }

  /** Resolves with check()'s first non-undefined value, re-checking on every change. */
  waitUntil<T>(check: () => T | undefined, timeoutMs: number, what: () => string): Promise<T> {
    const hit = check();
    if (hit !== undefined) return Promise.resolve(hit);
    if (this.#closed) return Promise.reject(new Error(`engine-server: closed; cannot wait for ${what()}`));
    return new Promise<T>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.events.off('change', onChange);
        this.#failers.delete(fail);
      };
      const onChange = () => {
        const value = check();
        if (value !== undefined) {
          cleanup();
          resolve(value);
        }
      };
      const fail = (reason: string) => {
        cleanup();
        reject(new Error(`engine-server: ${reason} waiting for ${what()}`));
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      this.events.on('change', onChange);
      this.#failers.add(fail);
    });
  }

  shutdown(): void {
    this.#closed = true;
    const failers = [...this.#failers];
    this.#failers.clear();
    for (const fail of failers) fail('closed while');
  }
}

const describeClose = (r: RecordedRequest<unknown>) =>
  `${r.endpoint} request #${r.id} to close (status ${r.status ?? 'not sent'}, ${r.sent.length} chunk(s) sent, completed: ${r.completed})`;

export class EngineEndpoint<R extends RecordedRequest<unknown>, P> {
  readonly requests: R[] = [];
  #queue: P[] = [];
  #script: Script<R, P>;

  /** @internal */
  constructor(
    readonly name: EndpointName,
    private readonly defaultScript: Script<R, P>,
    private readonly hub: Hub,
  ) {
    this.#script = defaultScript;
  }

  /** Decides each reply once the enqueued ones are used up. `script()` restores the default. */
  script(fn?: Script<R, P>): void {
    this.#script = fn ?? this.defaultScript;
  }

  /** Replies used first, in order, one per request. */
  enqueue(...replies: P[]): void {
    this.#queue.push(...replies);
  }

  /** Enqueued replies not yet used. */
  get queued(): number {
    return this.#queue.length;
  }

  reset(): void {
    this.requests.length = 0;
    this.#queue = [];
    this.#script = this.defaultScript;
    this.hub.changed();
  }

  /** Resolves with the requests once at least `n` have been received (body read). */
  waitForRequests(n: number, timeoutMs = DEFAULT_WAIT_MS): Promise<R[]> {
    return this.hub.waitUntil(
      () => (this.requests.length >= n ? this.requests.slice() : undefined),
      timeoutMs,
      () => `${n} ${this.name} request(s) (received ${this.requests.length})`,
    );
  }

  /** Resolves with the request once its exchange has ended (closedAt set). */
  waitForClose(request: R, timeoutMs = DEFAULT_WAIT_MS): Promise<R> {
    return this.hub.waitUntil(() => (request.closedAt !== undefined ? request : undefined), timeoutMs, () => describeClose(request));
  }

  /** @internal */
  push(request: R): void {
    request.id = this.requests.length + 1;
    this.requests.push(request);
    this.hub.changed();
  }

  /** @internal */
  async nextReply(request: R): Promise<P> {
    const queued = this.#queue.shift();
    return queued !== undefined ? queued : await this.#script(request);
  }
}

// ───────────────────────────── one request/response ─────────────────────────────

class Exchange {
  closed = false;
  #cutByServer = false;
  readonly #timers = new Map<NodeJS.Timeout, (ok: boolean) => void>();
  #lastWrite: Promise<void> = Promise.resolve();
  readonly #closedPromise: Promise<void>;

  constructor(
    readonly res: ServerResponse,
    readonly record: RecordedRequest<unknown>,
    hub: Hub,
  ) {
    let markClosed!: () => void;
    this.#closedPromise = new Promise((resolve) => (markClosed = resolve));
    res.on('error', () => {});
    res.on('finish', () => {
      record.completed = true;
      hub.changed();
    });
    res.on('close', () => {
      this.closed = true;
      record.closedAt = now();
      record.aborted = !record.completed && !this.#cutByServer;
      for (const [timer, done] of this.#timers) {
        clearTimeout(timer);
        done(false);
      }
      this.#timers.clear();
      markClosed();
      hub.changed();
    });
  }

  /** Waits `ms`; false when the exchange closed meanwhile (the timer is cleared at once). */
  sleep(ms: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (!(ms > 0)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve(!this.closed);
      }, ms);
      this.#timers.set(timer, resolve);
    });
  }

  /** Waits until the absolute hrtime `at`. */
  sleepUntil(at: bigint): Promise<boolean> {
    return this.sleep(msBetween(now(), at));
  }

  head(status: number, headers: Record<string, string | number>): void {
    this.record.status = status;
    this.record.headersAt = now();
    this.res.writeHead(status, headers);
    this.res.flushHeaders();
  }

  /** Writes one chunk and, given a stamp, records it; waits for drain under backpressure. False once closed. */
  async write(chunk: string | Buffer, stamp?: Omit<SentChunk, 'at'>): Promise<boolean> {
    if (this.closed) return false;
    let flushed!: () => void;
    this.#lastWrite = new Promise((resolve) => (flushed = resolve));
    const ok = this.res.write(chunk, () => flushed());
    if (stamp) this.record.sent.push({ at: now(), ...stamp });
    if (!ok && !this.closed) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.res.off('drain', done);
          this.res.off('close', done);
          resolve();
        };
        this.res.on('drain', done);
        this.res.on('close', done);
      });
    }
    return !this.closed;
  }

  end(chunk?: string | Buffer): void {
    if (this.closed) return;
    if (chunk === undefined) this.res.end();
    else this.res.end(chunk);
  }

  json(status: number, value: unknown, stamp?: Omit<SentChunk, 'at'>): void {
    if (this.closed) return;
    const text = JSON.stringify(value);
    this.record.status = status;
    this.record.headersAt = now();
    this.res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    this.res.end(text);
    if (stamp) this.record.sent.push({ at: now(), ...stamp });
  }

  /** Answers with a scripted HTTP failure. */
  fail(failure: HttpFailure): void {
    if (this.closed) return;
    const body = failure.body ?? JSON.stringify(apiError(`Scripted failure (HTTP ${failure.status})`, failure.status >= 500 ? 'server_error' : 'invalid_request_error'));
    const type = isJson(body) ? 'application/json' : 'text/plain; charset=utf-8';
    this.record.status = failure.status;
    this.record.headersAt = now();
    this.res.writeHead(failure.status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...failure.headers });
    this.res.end(body);
  }

  /** Destroys the connection mid-response, after what was written has reached the socket. */
  async cut(): Promise<void> {
    if (this.closed) return;
    this.#cutByServer = true;
    await Promise.race([this.#lastWrite, this.#closedPromise]);
    this.res.destroy();
  }
}

function apiError(message: string, type = 'invalid_request_error', code: string | null = null, param: string | null = null) {
  return { error: { message, type, param, code } };
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function messageText(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((part) => (typeof part.text === 'string' ? part.text : '')).join('');
  return '';
}

function lastUserMessage(body: ChatRequestBody): string {
  const messages = body.messages ?? [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (message?.role === 'user') return messageText(message.content);
  }
  return '';
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('close', () => reject(new Error('request closed before its body was read')));
  });
}

// ───────────────────────────── the server ─────────────────────────────

export async function startEngineServer(opts: EngineServerOptions = {}): Promise<EngineServer> {
  const hub = new Hub();
  const model = opts.model ?? 'test-model';
  const speechOpts = {
    sampleRate: opts.speech?.sampleRate ?? 24_000,
    msPerChar: opts.speech?.msPerChar ?? 60,
    chunkMs: opts.speech?.chunkMs ?? 20,
    realtimeFactor: opts.speech?.realtimeFactor ?? 0,
    firstByteDelayMs: opts.speech?.firstByteDelayMs ?? 0,
  };

  const chat = new EngineEndpoint<RecordedChatRequest, ChatReply>(
    'chat',
    (request) => ({ tokens: tokenize(`Reply to: ${request.lastUserMessage}`) }),
    hub,
  );
  const speech = new EngineEndpoint<RecordedSpeechRequest, SpeechReply>('speech', () => ({}), hub);
  const transcription = new EngineEndpoint<RecordedTranscriptionRequest, TranscriptionReply>('transcription', () => ({}), hub);

  let completionCounter = 0;

  // ── chat ──
  async function handleChat(ex: Exchange, base: RecordedRequest<unknown>, raw: Buffer, authorized: boolean): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const body: ChatRequestBody = isObject(parsed) ? (parsed as ChatRequestBody) : {};
    const record: RecordedChatRequest = Object.assign(base, { body, lastUserMessage: lastUserMessage(body) });
    chat.push(record);
    if (!authorized) return unauthorized(ex);
    if (!isObject(parsed)) return ex.json(400, apiError('The request body is not a JSON object.'));
    if (typeof body.model !== 'string' || body.model === '') return ex.json(400, apiError('you must provide a model parameter', undefined, null, 'model'));
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      return ex.json(400, apiError("'messages' must be a non-empty array", undefined, null, 'messages'));
    }

    const reply = await chat.nextReply(record);
    const firstDelay = reply.firstTokenDelayMs ?? opts.chat?.firstTokenDelayMs ?? 0;
    const tokenDelay = reply.tokenDelayMs ?? opts.chat?.tokenDelayMs ?? 0;
    const failure = reply.failure;
    if (failure && 'hang' in failure) return;
    if (failure && 'status' in failure) {
      if (await ex.sleep(firstDelay)) ex.fail(failure);
      return;
    }
    const cutAfter = failure && 'cutAfterTokens' in failure ? failure.cutAfterTokens : Infinity;

    const id = `chatcmpl-${++completionCounter}`;
    const created = Math.floor(Date.now() / 1000);
    const promptChars = (body.messages ?? []).reduce((n, m) => n + messageText(m.content).length, 0);
    const usage = { prompt_tokens: Math.ceil(promptChars / 4), completion_tokens: reply.tokens.length, total_tokens: Math.ceil(promptChars / 4) + reply.tokens.length };
    const responseModel = body.model;

    if (body.stream !== true) {
      const total = firstDelay + tokenDelay * Math.max(0, reply.tokens.length - 1);
      if (!(await ex.sleep(total))) return;
      if (Number.isFinite(cutAfter)) return ex.cut();
      const content = reply.tokens.join('');
      return ex.json(
        200,
        {
          id,
          object: 'chat.completion',
          created,
          model: responseModel,
          choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
          usage,
        },
        { text: content },
      );
    }

    const chunk = (delta: Record<string, unknown>, finishReason: string | null) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: responseModel, system_fingerprint: null, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] })}\n\n`;

    ex.head(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    for (let i = 0; i < reply.tokens.length; i++) {
      if (i >= cutAfter) return ex.cut();
      if (!(await ex.sleep(i === 0 ? firstDelay : tokenDelay))) return;
      const token = reply.tokens[i] ?? '';
      const delta = i === 0 ? { role: 'assistant', content: token } : { content: token };
      if (!(await ex.write(chunk(delta, null), { text: token }))) return;
    }
    if (reply.tokens.length === 0) {
      if (!(await ex.sleep(firstDelay))) return;
      if (!(await ex.write(chunk({ role: 'assistant', content: '' }, null)))) return; // framing, not a token
    }
    if (Number.isFinite(cutAfter)) return ex.cut();
    let tail = chunk({}, 'stop');
    const streamOptions = body.stream_options;
    if (isObject(streamOptions) && streamOptions.include_usage === true) {
      tail += `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: responseModel, system_fingerprint: null, choices: [], usage })}\n\n`;
    }
    ex.end(`${tail}data: [DONE]\n\n`);
  }

  // ── speech ──
  async function handleSpeech(ex: Exchange, base: RecordedRequest<unknown>, raw: Buffer, authorized: boolean): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const body: SpeechRequestBody = isObject(parsed) ? (parsed as SpeechRequestBody) : {};
    const record: RecordedSpeechRequest = Object.assign(base, { body });
    speech.push(record);
    if (!authorized) return unauthorized(ex);
    if (!isObject(parsed)) return ex.json(400, apiError('The request body is not a JSON object.'));
    if (typeof body.model !== 'string' || body.model === '') return ex.json(400, apiError('you must provide a model parameter', undefined, null, 'model'));
    if (typeof body.input !== 'string' || body.input === '') return ex.json(400, apiError("'input' must be a non-empty string", undefined, null, 'input'));
    if (typeof body.voice !== 'string' || body.voice === '') return ex.json(400, apiError("'voice' must be a non-empty string", undefined, null, 'voice'));
    const format = body.response_format ?? 'mp3';
    if (format !== 'pcm' && format !== 'wav') {
      return ex.json(400, apiError(`engine-server only produces response_format "pcm" or "wav", not ${JSON.stringify(format)}`, undefined, null, 'response_format'));
    }
    const speed = body.speed ?? 1;
    if (typeof speed !== 'number' || !(speed >= 0.25 && speed <= 4)) return ex.json(400, apiError("'speed' must be between 0.25 and 4", undefined, null, 'speed'));

    const reply = await speech.nextReply(record);
    const firstDelay = reply.firstByteDelayMs ?? speechOpts.firstByteDelayMs;
    const failure = reply.failure;
    if (failure && 'hang' in failure) return;
    if (failure && 'status' in failure) {
      if (await ex.sleep(firstDelay)) ex.fail(failure);
      return;
    }
    const pcm = reply.pcm ?? synthesizeSpeech(body.input, body.voice, { sampleRate: speechOpts.sampleRate, msPerChar: speechOpts.msPerChar, speed });
    const payload = format === 'wav' ? encodeWav(pcm, speechOpts.sampleRate) : pcm;
    const cutAfter = failure && 'cutAfterBytes' in failure ? Math.max(0, Math.min(failure.cutAfterBytes, payload.length)) : Infinity;
    const chunkMs = reply.chunkMs ?? speechOpts.chunkMs;
    const factor = reply.realtimeFactor ?? speechOpts.realtimeFactor;
    const chunkBytes = Math.max(2, Math.round((speechOpts.sampleRate * chunkMs) / 1000) * 2);
    const bytesPerMs = (speechOpts.sampleRate * 2) / 1000;

    ex.head(200, { 'content-type': format === 'wav' ? 'audio/wav' : 'audio/pcm', 'x-sample-rate': speechOpts.sampleRate });
    if (!(await ex.sleep(firstDelay))) return;
    const start = now();
    const end = Math.min(payload.length, cutAfter);
    for (let offset = 0; offset < end; offset += chunkBytes) {
      // Chunk k is due when the audio before it would have been generated at the pace asked for.
      if (offset > 0 && factor > 0 && !(await ex.sleepUntil(start + BigInt(Math.round((offset / bytesPerMs) * factor * 1e6))))) return;
      const piece = payload.subarray(offset, Math.min(offset + chunkBytes, end));
      if (!(await ex.write(piece, { bytes: piece.length }))) return;
    }
    if (Number.isFinite(cutAfter)) return ex.cut();
    ex.end();
  }

  // ── transcription ──
  async function handleTranscription(ex: Exchange, base: RecordedRequest<unknown>, raw: Buffer, authorized: boolean, headers: IncomingHttpHeaders): Promise<void> {
    const fields: Record<string, string> = {};
    let file: ReceivedFile | undefined;
    let parseError: string | undefined;
    const contentType = headers['content-type'] ?? '';
    if (!contentType.toLowerCase().startsWith('multipart/form-data')) {
      parseError = `expected multipart/form-data, got ${JSON.stringify(contentType)}`;
    } else {
      try {
        const form = await new Request('http://engine-server.invalid/', { method: 'POST', headers: { 'content-type': contentType }, body: new Uint8Array(raw) }).formData();
        for (const [key, value] of form) {
          if (typeof value === 'string') fields[key] = value;
          else if (!file) file = { field: key, name: value.name, type: value.type, size: value.size, bytes: Buffer.from(await value.arrayBuffer()) };
        }
      } catch (error) {
        parseError = `bad multipart body: ${error instanceof Error ? error.message : String(error)}`;
      }
    }
    let wav: WavInfo | undefined;
    let wavError: string | undefined;
    if (file) {
      try {
        wav = parseWav(file.bytes);
      } catch (error) {
        wavError = error instanceof Error ? error.message : String(error);
      }
    }
    const record: RecordedTranscriptionRequest = Object.assign(base, {
      body: fields,
      ...(file ? { file } : {}),
      ...(wav ? { wav } : {}),
      ...(wavError !== undefined ? { wavError } : {}),
    });
    transcription.push(record);
    if (!authorized) return unauthorized(ex);
    if (parseError) return ex.json(400, apiError(parseError));
    if (!file) return ex.json(400, apiError("'file' is a required property", undefined, null, 'file'));
    if (!fields.model) return ex.json(400, apiError("'model' is a required property", undefined, null, 'model'));
    if (!wav) return ex.json(400, apiError(`Invalid file format: ${wavError ?? 'not a WAV'}`, undefined, 'invalid_value', 'file'));
    const format = fields.response_format ?? 'json';
    if (format !== 'json' && format !== 'text' && format !== 'verbose_json') {
      return ex.json(400, apiError(`engine-server supports response_format json, text or verbose_json, not ${JSON.stringify(format)}`, undefined, null, 'response_format'));
    }

    const reply = await transcription.nextReply(record);
    const failure = reply.failure;
    if (failure && 'hang' in failure) return;
    if (!(await ex.sleep(reply.delayMs ?? opts.transcription?.delayMs ?? 0))) return;
    if (failure) return ex.fail(failure);
    const text = reply.text ?? opts.transcription?.text ?? `Heard ${Math.round(wav.durationMs)} ms of audio.`;
    if (format === 'text') {
      ex.record.status = 200;
      ex.record.headersAt = now();
      ex.res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      ex.res.end(text);
      ex.record.sent.push({ at: now(), text });
      return;
    }
    const value =
      format === 'verbose_json'
        ? { task: 'transcribe', language: fields.language ?? 'english', duration: wav.durationMs / 1000, text, segments: [] }
        : { text };
    ex.json(200, value, { text });
  }

  function unauthorized(ex: Exchange): void {
    ex.json(401, apiError('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'));
  }

  const routes: Record<string, EndpointName | 'models'> = {
    'POST /v1/chat/completions': 'chat',
    'POST /v1/audio/speech': 'speech',
    'POST /v1/audio/transcriptions': 'transcription',
    'GET /v1/models': 'models',
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const receivedAt = now();
    req.on('error', () => {});
    const path = new URL(req.url ?? '/', 'http://engine-server.invalid').pathname.replace(/\/+$/, '');
    const method = req.method ?? 'GET';
    const route = routes[`${method} ${path}`];
    const authorized = opts.requireApiKey === undefined || req.headers.authorization === `Bearer ${opts.requireApiKey}`;
    if (route === undefined || route === 'models') {
      res.on('error', () => {});
      req.resume();
      const send = (status: number, value: unknown) => {
        const text = JSON.stringify(value);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      };
      if (route === undefined) return send(404, apiError(`engine-server: no route for ${method} ${path}`, 'invalid_request_error', 'unknown_url'));
      if (!authorized) return send(401, apiError('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'));
      return send(200, { object: 'list', data: [{ id: model, object: 'model', created: 1_700_000_000, owned_by: 'engine-server' }] });
    }

    const base: RecordedRequest<unknown> = {
      id: 0,
      endpoint: route,
      method,
      path,
      headers: req.headers,
      body: undefined,
      receivedAt,
      sent: [],
      completed: false,
      aborted: false,
    };
    const ex = new Exchange(res, base, hub);
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch {
      if (!ex.closed) res.destroy();
      return;
    }
    try {
      if (route === 'chat') await handleChat(ex, base, raw, authorized);
      else if (route === 'speech') await handleSpeech(ex, base, raw, authorized);
      else await handleTranscription(ex, base, raw, authorized, req.headers);
    } catch (error) {
      base.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
      hub.changed();
      if (ex.closed) return;
      if (res.headersSent) res.destroy();
      else ex.json(500, apiError(`engine-server internal error: ${base.error}`, 'server_error'));
    }
  }

  const sockets = new Set<Socket>();
  const httpServer = createServer({ noDelay: true }, (req, res) => void handle(req, res));
  httpServer.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  httpServer.on('clientError', (_error, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(0, '127.0.0.1', () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const port = (httpServer.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    port,
    chat,
    speech,
    transcription,
    waitForClose<R extends RecordedRequest<unknown>>(request: R, timeoutMs = DEFAULT_WAIT_MS): Promise<R> {
      return hub.waitUntil(() => (request.closedAt !== undefined ? request : undefined), timeoutMs, () => describeClose(request));
    },
    reset() {
      chat.reset();
      speech.reset();
      transcription.reset();
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        hub.shutdown();
        httpServer.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

// ───────────────────────────── standalone ─────────────────────────────

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const options = process.argv[2] ? (JSON.parse(process.argv[2]) as EngineServerOptions) : {};
  const server = await startEngineServer(options);
  process.stdout.write(`${JSON.stringify({ baseUrl: server.baseUrl })}\n`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
