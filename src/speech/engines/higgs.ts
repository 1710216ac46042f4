// Higgs Audio v3 (bosonai/higgs-audio-v3-tts-4b) through Boson's speech API, hosted or self-hosted:
// OpenAI's POST /v1/audio/speech with `stream: true` and `response_format: "pcm"` (24 kHz mono
// s16le, forwarded as it arrives), plus Boson's additions. A clone voice is registered once as a
// custom voice (`ref_audio` base64 + `ref_text`; its id is then the request's `voice`) at POST
// /v1/voices, as Boson's API reference names it, or POST /v1/audio/voices, as its OpenAPI copy
// does: the first route the server has is used and remembered. It is re-registered when the
// server answers that it does not know the id, and sent inline (`ref_audio`/`ref_text` in the
// speech request) when the server has neither route. A voice's
// style becomes inline tags (`<|emotion:…|>`, `<|style:…|>`, …) in front of each sentence
// (src/speech/voice-style.ts). Streaming takes no speed.
import type { EngineVoice, ReferenceClip, TtsEngine } from '../engine.ts';
import { withStyleTags } from '../voice-style.ts';
import { Base64Clips } from './base64-clips.ts';
import { type HttpLimits, jsonHeaders, pcmFrames, postJson, postStream, SpeechHttpError } from './http-audio.ts';

export interface HiggsOptions extends HttpLimits {
  baseUrl: string;
  apiKey: string | undefined;
  model: string;
  defaultVoice: string;
  /** Register clone voices as custom voices (else every request carries the clip). */
  customVoices: boolean;
}

export const HIGGS_SAMPLE_RATE = 24_000;

/** Where a custom voice is registered, in the order tried (see the top comment). */
export const VOICE_ROUTES = ['/voices', '/audio/voices'] as const;
/** Answers meaning "no such route": try the next one. */
const NO_ROUTE = new Set([404, 405, 501]);

/** Answers meaning "no such voice": the server forgot a custom voice (or never had it). */
const forgotten = (error: unknown) =>
  error instanceof SpeechHttpError && (error.status === 404 || ((error.status === 400 || error.status === 422) && /voice/i.test(error.detail)));

export function createHiggsEngine(opts: HiggsOptions): TtsEngine {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const headers = jsonHeaders(opts.apiKey);
  const clips = new Base64Clips();
  /** Clip id → custom voice id (a promise: concurrent sentences of one voice register it once). */
  const registered = new Map<string, Promise<string | undefined>>();
  let customVoices = opts.customVoices;
  /** The registration route tried first: the one that worked last. */
  let route = 0;

  /** The custom voice id of a clip, registering it if needed; undefined when the server has none. */
  function customVoice(clip: ReferenceClip, signal: AbortSignal): Promise<string | undefined> {
    let id = registered.get(clip.id);
    if (!id) {
      id = register(clip, signal);
      registered.set(clip.id, id);
      id.catch(() => registered.delete(clip.id)); // a failed registration is tried again next time
    }
    return id;
  }

  async function register(clip: ReferenceClip, signal: AbortSignal): Promise<string | undefined> {
    const body = { ref_audio: clips.of(clip), ref_text: clip.transcript };
    for (let i = route; i < VOICE_ROUTES.length; i++) {
      let answer: unknown;
      try {
        answer = await postJson(`${base}${VOICE_ROUTES[i]}`, body, headers, opts.timeoutMs, signal);
      } catch (error) {
        if (error instanceof SpeechHttpError && NO_ROUTE.has(error.status)) continue;
        throw error;
      }
      route = i;
      const voice = (answer as { voice?: unknown } | null)?.voice;
      if (typeof voice !== 'string' || voice === '') throw new Error('the speech server registered the voice but named no voice id');
      return voice;
    }
    // A server without custom voices: every request carries the clip instead.
    customVoices = false;
    return undefined;
  }

  function request(text: string, voice: EngineVoice, extra: Record<string, unknown>): Record<string, unknown> {
    return { model: opts.model, input: withStyleTags(text, voice.style), response_format: 'pcm', stream: true, ...extra };
  }

  const speak = (body: Record<string, unknown>, signal: AbortSignal) => pcmFrames(postStream(`${base}/audio/speech`, body, headers, opts, signal));

  async function* synthesize(text: string, voice: EngineVoice, signal: AbortSignal): AsyncGenerator<Buffer> {
    const clip = voice.clone;
    if (!clip) {
      yield* speak(request(text, voice, { voice: voice.engineVoice }), signal);
      return;
    }
    const id = customVoices ? await customVoice(clip, signal) : undefined;
    if (id === undefined) {
      yield* speak(request(text, voice, { ref_audio: clips.of(clip), ref_text: clip.transcript }), signal);
      return;
    }
    try {
      yield* speak(request(text, voice, { voice: id }), signal);
    } catch (error) {
      if (!forgotten(error) || signal.aborted) throw error;
      // The server forgot the custom voice (restarted, or the voice was deleted there): register again, once.
      registered.delete(clip.id);
      const again = await customVoice(clip, signal);
      yield* speak(request(text, voice, again === undefined ? { ref_audio: clips.of(clip), ref_text: clip.transcript } : { voice: again }), signal);
    }
  }

  return {
    name: 'higgs',
    sampleRate: HIGGS_SAMPLE_RATE,
    methods: ['preset', 'clone'],
    defaultVoice: { engineVoice: opts.defaultVoice, speed: 1, pitch: 1 },
    synthesize,
    listVoices: async () => [opts.defaultVoice],
    close: async () => {},
  };
}
