// TTS through any OpenAI-compatible /v1/audio/speech server (Kokoro-FastAPI, speaches, Higgs
// Audio's vLLM server, OpenAI): asks for raw PCM (`response_format: "pcm"`) and forwards the
// response body as it arrives, so the first audio leaves before the sentence is finished.
import type { EngineVoice, TtsEngine } from '../engine.ts';

export interface OpenAiTtsOptions {
  baseUrl: string;
  apiKey: string | undefined;
  model: string;
  sampleRate: number;
  timeoutMs: number;
  /** A request with no audio byte by then fails (TTS_FIRST_BYTE_TIMEOUT_MS); default timeoutMs. */
  firstByteTimeoutMs?: number;
  defaultVoice: string | undefined;
}

/** OpenAI's own voices: offered when the server has no voice list of its own. */
const OPENAI_VOICES = ['alloy', 'ash', 'ballad', 'coral', 'echo', 'fable', 'nova', 'onyx', 'sage', 'shimmer', 'verse'];

export function createOpenAiTtsEngine(opts: OpenAiTtsOptions): TtsEngine {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const headers = {
    'content-type': 'application/json',
    ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}),
  };

  async function* synthesize(text: string, voice: EngineVoice, signal: AbortSignal): AsyncGenerator<Buffer> {
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    // A server that hangs before its first byte costs this long per sentence, not the whole timeout.
    const firstByteMs = opts.firstByteTimeoutMs ?? opts.timeoutMs;
    const firstByte = new AbortController();
    let firstByteTimer: NodeJS.Timeout | undefined = setTimeout(() => firstByte.abort(), firstByteMs);
    const limits: Limits = { signal, timeout, firstByte: firstByte.signal, firstByteMs, base };
    try {
      const response = await fetch(`${base}/audio/speech`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ model: opts.model, input: text, voice: voice.engineVoice, response_format: 'pcm', speed: voice.speed }),
        signal: AbortSignal.any([signal, timeout, firstByte.signal]),
      }).catch((error: unknown) => {
        throw failure(error, limits);
      });
      if (!response.ok || !response.body) {
        const detail = (await response.text().catch(() => '')).slice(0, 300);
        throw new Error(`speech server answered HTTP ${response.status}${detail ? `: ${detail}` : ''}`);
      }
      // PCM16 frames are two bytes: a chunk that ends mid-sample keeps its odd byte for the next.
      let carry: Buffer | undefined;
      try {
        for await (const part of response.body) {
          if (firstByteTimer !== undefined) {
            clearTimeout(firstByteTimer);
            firstByteTimer = undefined;
          }
          let chunk = Buffer.from(part.buffer, part.byteOffset, part.byteLength);
          if (carry) chunk = Buffer.concat([carry, chunk]);
          carry = chunk.length % 2 === 1 ? chunk.subarray(chunk.length - 1) : undefined;
          const whole = carry ? chunk.subarray(0, chunk.length - 1) : chunk;
          if (whole.length > 0) yield whole;
        }
      } catch (error) {
        throw failure(error, limits);
      }
    } finally {
      clearTimeout(firstByteTimer);
    }
  }

  async function listVoices(): Promise<string[]> {
    // Kokoro-FastAPI and speaches list their voices here; OpenAI itself does not.
    try {
      const response = await fetch(`${base}/audio/voices`, { headers, signal: AbortSignal.timeout(3000) });
      if (response.ok) {
        const body: unknown = await response.json();
        const voices = Array.isArray(body) ? body : (body as { voices?: unknown }).voices;
        if (Array.isArray(voices)) return voices.map((v) => (typeof v === 'string' ? v : String((v as { id?: unknown }).id ?? v)));
      }
    } catch {
      // fall through to OpenAI's list
    }
    return OPENAI_VOICES;
  }

  return {
    name: 'openai',
    sampleRate: opts.sampleRate,
    defaultVoice: { engineVoice: opts.defaultVoice ?? 'alloy', speed: 1, pitch: 1 },
    synthesize,
    listVoices,
    close: async () => {},
  };
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
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : error instanceof Error ? error.message : String(error);
  return new Error(`speech server at ${base} failed: ${cause}`);
}
