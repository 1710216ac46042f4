// The HTTP side shared by the speech engines that are servers (openai, higgs, higgs-v2): a JSON
// POST whose response body is read as it arrives, bounded by TTS_TIMEOUT_MS and by
// TTS_FIRST_BYTE_TIMEOUT_MS for its first byte, aborted with the caller's signal; and the
// readers of what comes back (raw PCM16, or server-sent events of a chat completion).
import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export interface HttpLimits {
  timeoutMs: number;
  /** A request with no body byte by then fails; default timeoutMs. */
  firstByteTimeoutMs?: number | undefined;
}

/** A server's answer other than 2xx, with its status (engines act on 404s and the like). */
export class SpeechHttpError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`speech server answered HTTP ${status}${detail ? `: ${detail}` : ''}`);
  }
}

export function jsonHeaders(apiKey: string | undefined): Record<string, string> {
  return { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) };
}

/**
 * POSTs `body` and yields the response body's bytes as they arrive. Read through node:http with
 * a keep-alive agent, not `fetch`: a streamed TTS body is some 50 chunks a second per session,
 * and `fetch` hands each one through WHATWG streams and several promise hops (the profile in
 * docs/performance.md, "Flat tails"); a node stream yields Buffers directly.
 */
export async function* postStream(url: string, body: unknown, headers: Record<string, string>, limits: HttpLimits, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  const base = new URL(url).origin;
  const timeout = AbortSignal.timeout(limits.timeoutMs);
  // A server that hangs before its first byte costs this long per sentence, not the whole timeout.
  const firstByteMs = limits.firstByteTimeoutMs ?? limits.timeoutMs;
  const firstByte = new AbortController();
  let firstByteTimer: NodeJS.Timeout | undefined = setTimeout(() => firstByte.abort(), firstByteMs);
  const why = (error: unknown) => failure(error, { signal, timeout, firstByte: firstByte.signal, firstByteMs, base });
  let response: IncomingMessage | undefined;
  try {
    response = await post(url, JSON.stringify(body), headers, AbortSignal.any([signal, timeout, firstByte.signal])).catch((error: unknown) => {
      throw why(error);
    });
    const status = response.statusCode ?? 0;
    if (status < 200 || status > 299) throw new SpeechHttpError(status, (await bodyText(response).catch(() => '')).slice(0, 300));
    try {
      for await (const part of response as AsyncIterable<Buffer>) {
        if (firstByteTimer !== undefined) {
          clearTimeout(firstByteTimer);
          firstByteTimer = undefined;
        }
        // A socket read can be 64 KB; fetch handed out smaller parts, and the audio bounds
        // (MAX_QUEUED_AUDIO_BYTES) are checked between parts: views, not copies.
        for (let at = 0; at < part.length; at += MAX_PART_BYTES) yield part.subarray(at, at + MAX_PART_BYTES);
      }
      // The signal destroys the socket; a body cut short that way ends the loop on some Node versions.
      if (!response.complete) throw new Error('connection closed before the end of the body');
    } catch (error) {
      throw why(error);
    }
  } finally {
    clearTimeout(firstByteTimer);
    // A consumer that stops early (an interrupt) closes the request now, not when the body ends.
    if (response && !response.complete) response.destroy();
  }
}

/** The largest part postStream yields. */
const MAX_PART_BYTES = 16 * 1024;

/** Kept-alive connections to the speech servers, one pool per scheme. */
const agents = new Map<string, HttpAgent>([
  ['http:', new HttpAgent({ keepAlive: true })],
  ['https:', new HttpsAgent({ keepAlive: true })],
]);

/** One POST; resolves with the response (status and headers in, body still to read). */
function post(url: string, payload: string, headers: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> {
  const target = new URL(url);
  const agent = agents.get(target.protocol);
  if (!agent) return Promise.reject(new Error(`unsupported scheme ${target.protocol}`));
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(target, { method: 'POST', agent, signal, headers: { ...headers, 'content-length': String(Buffer.byteLength(payload)) } }, resolve);
    request.on('error', reject);
    request.end(payload);
  });
}

async function bodyText(response: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of response as AsyncIterable<Buffer>) parts.push(part);
  return Buffer.concat(parts).toString('utf8');
}

/** POSTs `body` and returns the JSON answer (small requests: voice registration, lists). */
export async function postJson(url: string, body: unknown, headers: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new SpeechHttpError(response.status, (await response.text().catch(() => '')).slice(0, 300));
  return response.json();
}

/** Whole PCM16 samples: a part that ends mid-sample keeps its odd byte for the next. */
export async function* pcmFrames(parts: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  let carry: Buffer | undefined;
  for await (const part of parts) {
    let chunk = Buffer.from(part.buffer, part.byteOffset, part.byteLength);
    if (carry) chunk = Buffer.concat([carry, chunk]);
    carry = chunk.length % 2 === 1 ? chunk.subarray(chunk.length - 1) : undefined;
    const whole = carry ? chunk.subarray(0, chunk.length - 1) : chunk;
    if (whole.length > 0) yield whole;
  }
}

/** The `data:` payloads of a server-sent event stream, `[DONE]` ending it. */
export async function* sseData(parts: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const part of parts) {
    buffered += decoder.decode(part, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, end).replace(/\r$/, '');
      buffered = buffered.slice(end + 1);
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') return;
      if (data !== '') yield data;
    }
  }
}

interface Limits {
  signal: AbortSignal;
  timeout: AbortSignal;
  firstByte: AbortSignal;
  firstByteMs: number;
  base: string;
}

function failure(error: unknown, { signal, timeout, firstByte, firstByteMs, base }: Limits): unknown {
  if (signal.aborted) return signal.reason;
  if (timeout.aborted) return new Error(`speech server at ${base} did not answer in time (TTS_TIMEOUT_MS)`);
  if (firstByte.aborted) return new Error(`speech server at ${base} sent no audio within ${firstByteMs} ms (TTS_FIRST_BYTE_TIMEOUT_MS)`);
  if (error instanceof SpeechHttpError) return error;
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : error instanceof Error ? error.message : String(error);
  return new Error(`speech server at ${base} failed: ${cause}`);
}
