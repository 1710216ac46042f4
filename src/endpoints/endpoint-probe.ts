// Talks to an endpoint on the connection panel's behalf: is the LLM there (GET /models), which
// models does it offer (the same list), and does a real request work ("Test connection": a
// one-token chat completion, a tiny synthesis, the transcription of a moment of silence). Every
// answer is a sentence for a person; nothing in it quotes the API key.
import OpenAI from 'openai';
import type { Config } from '../config.ts';
import { describeLlmFailure } from '../llm/chat.ts';
import { INPUT_SAMPLE_RATE, type EndpointKind, type EndpointTestResult, type LlmState } from '../protocol.ts';
import { createOpenAiTtsEngine } from '../speech/engines/openai.ts';
import { createOpenAiSttEngine } from '../transcribe/engines/openai.ts';
import type { Endpoint } from './endpoint-settings.ts';

const PROBE_TIMEOUT_MS = 5000;
const TEST_TIMEOUT_MS = 20_000;

const headers = (e: Endpoint): Record<string, string> => (e.apiKey ? { authorization: `Bearer ${e.apiKey}` } : {});
const modelsUrl = (e: Endpoint) => `${e.baseUrl.replace(/\/+$/, '')}/models`;

/** Whether the LLM answers: 404 on /models still means a server is there (not every one lists models). */
export async function probeLlm(e: Endpoint): Promise<LlmState> {
  try {
    const response = await fetch(modelsUrl(e), { headers: headers(e), signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await response.body?.cancel();
    if (response.status === 401 || response.status === 403) return 'rejected';
    return 'ready';
  } catch {
    return 'unreachable';
  }
}

export class ProbeError extends Error {}

/** The model ids the endpoint lists, sorted; ProbeError with a plain reason when it cannot. */
export async function listModels(e: Endpoint): Promise<string[]> {
  let response: Response;
  try {
    response = await fetch(modelsUrl(e), { headers: headers(e), signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
  } catch {
    throw new ProbeError(`Cannot reach ${originOf(e.baseUrl)}.`);
  }
  if (response.status === 401 || response.status === 403) throw new ProbeError(`${originOf(e.baseUrl)} rejected the API key (HTTP ${response.status}).`);
  if (!response.ok) throw new ProbeError(`${originOf(e.baseUrl)} has no model list (HTTP ${response.status}): type the model name.`);
  const body: unknown = await response.json().catch(() => undefined);
  const data = body !== null && typeof body === 'object' && Object.hasOwn(body, 'data') ? (body as { data: unknown }).data : body;
  if (!Array.isArray(data)) throw new ProbeError(`${originOf(e.baseUrl)} answered /models with something that is not a model list: type the model name.`);
  const ids = data.map((m: unknown) => (typeof m === 'string' ? m : m !== null && typeof m === 'object' && Object.hasOwn(m, 'id') ? String((m as { id: unknown }).id) : undefined));
  return [...new Set(ids.filter((id): id is string => id !== undefined && id !== ''))].sort();
}

/** "Test connection": one small real request of the endpoint's kind. */
export function testEndpoint(kind: EndpointKind, e: Endpoint, config: Config): Promise<EndpointTestResult> {
  const tests: Record<EndpointKind, () => Promise<EndpointTestResult>> = { llm: () => testLlm(e), tts: () => testTts(e, config.tts), stt: () => testStt(e, config.stt) };
  return tests[kind]().catch((error: unknown) => ({ ok: false, message: withoutKey(error instanceof Error ? error.message : String(error), e.apiKey) }));
}

async function testLlm(e: Endpoint): Promise<EndpointTestResult> {
  const client = new OpenAI({ baseURL: e.baseUrl, apiKey: e.apiKey ?? 'not-needed', maxRetries: 0, timeout: TEST_TIMEOUT_MS });
  try {
    await client.chat.completions.create({ model: e.model, messages: [{ role: 'user', content: 'Say OK.' }], max_tokens: 1, stream: false });
  } catch (error) {
    return { ok: false, message: describeLlmFailure(error, e.baseUrl, e.apiKey).message };
  }
  return { ok: true, message: `Connected: ${e.model} at ${originOf(e.baseUrl)} answered.` };
}

async function testTts(e: Endpoint, t: Config['tts']): Promise<EndpointTestResult> {
  const engine = createOpenAiTtsEngine({ timeoutMs: TEST_TIMEOUT_MS, firstByteTimeoutMs: TEST_TIMEOUT_MS, baseUrl: e.baseUrl, apiKey: e.apiKey, model: e.model, sampleRate: t.sampleRate, defaultVoice: e.voice ?? undefined });
  const stop = new AbortController();
  let bytes = 0;
  try {
    for await (const chunk of engine.synthesize('Hello.', engine.defaultVoice, stop.signal)) {
      bytes += chunk.length;
      break; // the first audio is the answer; the rest is not needed
    }
  } finally {
    stop.abort();
  }
  if (bytes === 0) return { ok: false, message: `${originOf(e.baseUrl)} answered without audio.` };
  return { ok: true, message: `Speech works: ${originOf(e.baseUrl)} sent audio for voice ${engine.defaultVoice.engineVoice}.` };
}

async function testStt(e: Endpoint, s: Config['stt']): Promise<EndpointTestResult> {
  const engine = createOpenAiSttEngine({ baseUrl: e.baseUrl, apiKey: e.apiKey, model: e.model, language: s.language, timeoutMs: TEST_TIMEOUT_MS });
  // A quarter second of silence: the smallest request a transcription server accepts.
  await engine.transcribe(new Int16Array(INPUT_SAMPLE_RATE / 4), AbortSignal.timeout(TEST_TIMEOUT_MS));
  return { ok: true, message: `Speech input works: ${originOf(e.baseUrl)} transcribed a test recording.` };
}

const originOf = (url: string) => {
  try {
    return new URL(url).origin;
  } catch {
    return 'the endpoint';
  }
};

/** Error text can quote the key (or any key-like token): masked. */
export function withoutKey(text: string, apiKey: string | undefined): string {
  const out = apiKey ? text.split(apiKey).join('***') : text;
  return out.replace(/\b(?:sk|pk|rk|key|api|token)[-_][A-Za-z0-9_\-*.]{6,}/gi, '***').slice(0, 400);
}
