// STT through any OpenAI-compatible POST /v1/audio/transcriptions server (speaches /
// faster-whisper-server, whisper.cpp server, vLLM, Groq, OpenAI): the audio goes up as a
// 16 kHz WAV in a multipart form, the text comes back as `{ "text": … }`. Plain fetch and
// FormData, so a request is aborted the moment its signal fires, with no hidden retries.
import { INPUT_SAMPLE_RATE } from '../../protocol.ts';
import type { SttEngine } from '../engine.ts';
import { encodeWav } from '../wav.ts';

export interface OpenAiSttOptions {
  baseUrl: string;
  apiKey: string | undefined;
  model: string;
  language: string | undefined;
  timeoutMs: number;
}

export function createOpenAiSttEngine(opts: OpenAiSttOptions): SttEngine {
  const url = `${opts.baseUrl.replace(/\/+$/, '')}/audio/transcriptions`;
  const headers: Record<string, string> = opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {};

  async function transcribe(pcm: Int16Array | Buffer, signal: AbortSignal): Promise<string> {
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    const form = new FormData();
    form.set('file', new Blob([new Uint8Array(encodeWav(pcm, INPUT_SAMPLE_RATE))], { type: 'audio/wav' }), 'speech.wav');
    form.set('model', opts.model);
    form.set('response_format', 'json');
    if (opts.language) form.set('language', opts.language);
    const guard = <T>(step: Promise<T>): Promise<T> => step.catch((error: unknown) => Promise.reject(failure(error, signal, timeout, url, opts.timeoutMs)));
    const response = await guard(fetch(url, { method: 'POST', headers, body: form, signal: AbortSignal.any([signal, timeout]) }));
    if (!response.ok) {
      const detail = (await guard(response.text())).slice(0, 300);
      throw new Error(`speech-to-text server at ${url} answered HTTP ${response.status}${detail ? `: ${detail}` : ''}`);
    }
    return textOf(await guard(response.json()), url);
  }

  return { name: 'openai', transcribe, close: async () => {} };
}

function textOf(body: unknown, url: string): string {
  const text = (body as { text?: unknown } | null)?.text;
  if (typeof text !== 'string') throw new Error(`speech-to-text server at ${url} answered without a "text" string`);
  return text.trim();
}

function failure(error: unknown, signal: AbortSignal, timeout: AbortSignal, url: string, timeoutMs: number): unknown {
  if (signal.aborted) return signal.reason;
  if (timeout.aborted) return new Error(`speech-to-text server at ${url} did not answer within ${timeoutMs} ms (STT_TIMEOUT_MS)`);
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : error instanceof Error ? error.message : String(error);
  return new Error(`speech-to-text server at ${url} failed: ${cause}`);
}
