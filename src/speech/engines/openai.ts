// TTS through any OpenAI-compatible /v1/audio/speech server (Kokoro-FastAPI, speaches, Higgs
// Audio's vLLM server, OpenAI): asks for raw PCM (`response_format: "pcm"`) and forwards the
// response body as it arrives, so the first audio leaves before the sentence is finished. Servers
// that clone from a reference clip in the same request (TTS_REFERENCE_AUDIO=ref_audio: Boson-style
// `ref_audio` base64 + `ref_text`, as vLLM-Omni's and several self-hosted servers take it) get
// clone voices too; the clip's base64 is made once per clip, not per sentence.
import type { EngineVoice, TtsEngine } from '../engine.ts';
import { Base64Clips } from './base64-clips.ts';
import { type HttpLimits, jsonHeaders, pcmFrames, postStream } from './http-audio.ts';

export interface OpenAiTtsOptions extends HttpLimits {
  baseUrl: string;
  apiKey: string | undefined;
  model: string;
  sampleRate: number;
  defaultVoice: string | undefined;
  /** How a clone voice's clip is sent; `none`: the server has no clone voices. */
  referenceAudio?: 'none' | 'ref_audio' | undefined;
}

/** OpenAI's own voices: offered when the server has no voice list of its own. */
const OPENAI_VOICES = ['alloy', 'ash', 'ballad', 'coral', 'echo', 'fable', 'nova', 'onyx', 'sage', 'shimmer', 'verse'];

export function createOpenAiTtsEngine(opts: OpenAiTtsOptions): TtsEngine {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const headers = jsonHeaders(opts.apiKey);
  const clips = new Base64Clips();
  const cloning = opts.referenceAudio === 'ref_audio';

  function body(text: string, voice: EngineVoice): Record<string, unknown> {
    const request: Record<string, unknown> = { model: opts.model, input: text, voice: voice.engineVoice, response_format: 'pcm', speed: voice.speed };
    if (cloning && voice.clone) {
      request.ref_audio = clips.of(voice.clone);
      request.ref_text = voice.clone.transcript;
    }
    return request;
  }

  async function listVoices(): Promise<string[]> {
    // Kokoro-FastAPI and speaches list their voices here; OpenAI itself does not.
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
    methods: cloning ? ['preset', 'clone'] : ['preset'],
    defaultVoice: { engineVoice: opts.defaultVoice ?? 'alloy', speed: 1, pitch: 1 },
    synthesize: (text, voice, signal) => pcmFrames(postStream(`${base}/audio/speech`, body(text, voice), headers, opts, signal)),
    listVoices,
    close: async () => {},
  };
}
