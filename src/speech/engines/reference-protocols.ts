// How each kind of OpenAI-compatible speech server takes a clone voice's reference clip, as its own
// documentation says (TTS_REFERENCE_AUDIO; docs/engines.md has the sources and what was tested):
//   none        no clone voices: POST /audio/speech with the preset `voice`
//   ref_audio   Boson-style: `ref_audio` (base64 WAV) + `ref_text` in POST /audio/speech
//   vllm-omni   vLLM-Omni (CosyVoice3, Qwen3-TTS Base, Fish Speech, …): `ref_audio` as a
//               `data:audio/wav;base64,…` URL + `ref_text` (+ `task_type: "Base"`), raw PCM streamed
//               with `stream_format: "audio"` (which takes no `speed`)
//   chatterbox  travisvn/chatterbox-tts-api: the clip is put in the server's voice library once
//               (POST /voices, multipart `voice_name` + `voice_file`; checked with GET /voices/{name}
//               first, since an unknown voice name silently speaks its default voice) and named in
//               `voice`; speech from POST /audio/speech/stream, a WAV streamed as it is generated.
// The clip's fields replace `voice` (Boson refuses both at once; vLLM-Omni checks `voice` against
// its presets). Each clip's base64 and each library registration is made once per process.
import type { ReferenceClip } from '../engine.ts';
import { Base64Clips } from './base64-clips.ts';
import { SpeechHttpError } from './http-audio.ts';

export const referenceAudioModes = ['none', 'ref_audio', 'vllm-omni', 'chatterbox'] as const;
export type ReferenceAudioMode = (typeof referenceAudioModes)[number];

export interface ReferenceProtocol {
  /** The speech route below TTS_BASE_URL. */
  route: string;
  /** Fields every speech request carries. */
  extra: Record<string, unknown>;
  /** Whether `speed` is sent. */
  speed: boolean;
  /** The request fields that make a clone voice speak with its clip (instead of `voice`); absent: no clone voices. */
  clone?: (clip: ReferenceClip, signal: AbortSignal) => Promise<Record<string, unknown>>;
}

export interface ProtocolContext {
  base: string;
  authorization: Record<string, string>;
  timeoutMs: number;
}

const speech = { route: '/audio/speech', extra: {}, speed: true };

const PROTOCOLS = new Map<ReferenceAudioMode, (ctx: ProtocolContext) => ReferenceProtocol>([
  ['none', () => speech],
  [
    'ref_audio',
    () => {
      const clips = new Base64Clips();
      return { ...speech, clone: async (clip) => ({ ref_audio: clips.of(clip), ref_text: clip.transcript }) };
    },
  ],
  [
    'vllm-omni',
    () => {
      const clips = new Base64Clips();
      return {
        route: '/audio/speech',
        extra: { stream_format: 'audio' },
        speed: false,
        clone: async (clip) => ({ ref_audio: clips.of(clip, 'data:audio/wav;base64,'), ref_text: clip.transcript, task_type: 'Base' }),
      };
    },
  ],
  [
    'chatterbox',
    (ctx) => {
      const library = new ChatterboxLibrary(ctx);
      return { route: '/audio/speech/stream', extra: {}, speed: false, clone: async (clip, signal) => ({ voice: await library.voiceOf(clip, signal) }) };
    },
  ],
]);

export function referenceProtocol(mode: ReferenceAudioMode, ctx: ProtocolContext): ReferenceProtocol {
  const make = PROTOCOLS.get(mode);
  if (!make) throw new Error(`unknown TTS_REFERENCE_AUDIO mode "${mode}"`);
  return make(ctx);
}

/** Chatterbox TTS API's voice library: each clip uploaded once, under a name made from its content. */
class ChatterboxLibrary {
  private readonly known = new Map<string, Promise<string>>();

  constructor(private readonly ctx: ProtocolContext) {}

  voiceOf(clip: ReferenceClip, signal: AbortSignal): Promise<string> {
    let name = this.known.get(clip.id);
    if (!name) {
      name = this.ensure(clip, signal);
      this.known.set(clip.id, name);
      name.catch(() => this.known.delete(clip.id)); // tried again next time
    }
    return name;
  }

  private async ensure(clip: ReferenceClip, signal: AbortSignal): Promise<string> {
    const name = `chorus-${clip.id.slice(0, 16)}`;
    const bounded = () => AbortSignal.any([signal, AbortSignal.timeout(this.ctx.timeoutMs)]);
    const found = await fetch(`${this.ctx.base}/voices/${name}`, { headers: this.ctx.authorization, signal: bounded() });
    if (found.ok) return name;
    if (found.status !== 404) throw new SpeechHttpError(found.status, (await found.text().catch(() => '')).slice(0, 300));
    const form = new FormData();
    form.set('voice_name', name);
    form.set('voice_file', new Blob([new Uint8Array(clip.wav)], { type: 'audio/wav' }), `${name}.wav`);
    const created = await fetch(`${this.ctx.base}/voices`, { method: 'POST', headers: this.ctx.authorization, body: form, signal: bounded() });
    // 409: registered meanwhile under the same name, i.e. the same clip.
    if (!created.ok && created.status !== 409) throw new SpeechHttpError(created.status, (await created.text().catch(() => '')).slice(0, 300));
    return name;
  }
}
