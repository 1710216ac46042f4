// TTS through any OpenAI-compatible /v1/audio/speech server (Kokoro-FastAPI, speaches, vLLM-Omni,
// Chatterbox TTS API, OpenAI): asks for raw PCM (`response_format: "pcm"`) and forwards the
// response body as it arrives, so the first audio leaves before the sentence is finished (a
// server that answers WAV anyway has its header read and checked: src/speech/wav-pcm.ts). Servers
// that clone from a reference clip get clone voices the way each documents it, chosen by
// TTS_REFERENCE_AUDIO (src/speech/engines/reference-protocols.ts).
import type { EngineVoice, TtsEngine } from '../engine.ts';
import { pcmOfBody } from '../wav-pcm.ts';
import { type HttpLimits, jsonHeaders, pcmFrames, postStream } from './http-audio.ts';
import { type ReferenceAudioMode, referenceProtocol } from './reference-protocols.ts';

export interface OpenAiTtsOptions extends HttpLimits {
  baseUrl: string;
  apiKey: string | undefined;
  model: string;
  sampleRate: number;
  defaultVoice: string | undefined;
  /** How a clone voice's clip is sent; `none`: the server has no clone voices. */
  referenceAudio?: ReferenceAudioMode | undefined;
}

/** OpenAI's own voices: offered when the server has no voice list of its own. */
const OPENAI_VOICES = ['alloy', 'ash', 'ballad', 'coral', 'echo', 'fable', 'nova', 'onyx', 'sage', 'shimmer', 'verse'];

export function createOpenAiTtsEngine(opts: OpenAiTtsOptions): TtsEngine {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const headers = jsonHeaders(opts.apiKey);
  const authorization: Record<string, string> = opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {};
  const protocol = referenceProtocol(opts.referenceAudio ?? 'none', { base, authorization, timeoutMs: opts.timeoutMs });
  const what = `the speech server at ${new URL(base).origin}`;

  async function body(text: string, voice: EngineVoice, signal: AbortSignal): Promise<Record<string, unknown>> {
    const who = voice.clone && protocol.clone ? await protocol.clone(voice.clone, signal) : { voice: voice.engineVoice };
    return { model: opts.model, input: text, ...who, response_format: 'pcm', ...(protocol.speed ? { speed: voice.speed } : {}), ...protocol.extra };
  }

  async function* synthesize(text: string, voice: EngineVoice, signal: AbortSignal): AsyncGenerator<Buffer> {
    const request = await body(text, voice, signal);
    yield* pcmFrames(pcmOfBody(postStream(`${base}${protocol.route}`, request, headers, opts, signal), opts.sampleRate, what));
  }

  async function listVoices(): Promise<string[]> {
    // Kokoro-FastAPI, speaches and vLLM-Omni list their voices here; OpenAI itself does not.
    try {
      const response = await fetch(`${base}/audio/voices`, { headers, signal: AbortSignal.timeout(3000) });
      if (response.ok) {
        const answer: unknown = await response.json();
        const voices = Array.isArray(answer) ? answer : (answer as { voices?: unknown }).voices;
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
    methods: protocol.clone ? ['preset', 'clone'] : ['preset'],
    defaultVoice: { engineVoice: opts.defaultVoice ?? 'alloy', speed: 1, pitch: 1 },
    synthesize,
    listVoices,
    close: async () => {},
  };
}
