// Higgs Audio v2 (bosonai/higgs-audio-v2-generation-3B-base) on boson-ai's vLLM server. Preset
// voices (the server's voice_prompts: en_woman, belinda, …) through POST /v1/audio/speech with
// raw PCM; clone and description voices through a streamed POST /v1/chat/completions with audio
// output, built as boson-ai/higgs-audio's examples build them: the system message "Generate audio
// following instruction." with the scene and the speaker's description between
// <|scene_desc_start|> and <|scene_desc_end|>; for a clone, the clip's transcript as a user turn
// and the clip itself (base64 WAV, encoded once per clip) as the assistant's audio answer before
// the text to speak. The audio arrives as base64 PCM16 in each chunk's `delta.audio.data`.
import type { EngineVoice, TtsEngine } from '../engine.ts';
import { Base64Clips } from './base64-clips.ts';
import { type HttpLimits, jsonHeaders, pcmFrames, postStream, sseData } from './http-audio.ts';

export interface HiggsV2Options extends HttpLimits {
  baseUrl: string;
  apiKey: string | undefined;
  model: string;
  defaultVoice: string;
}

export const HIGGS_V2_SAMPLE_RATE = 24_000;

/** The system message: the instruction, and the scene / speaker description when there is one. */
export function higgsSystemPrompt(voice: EngineVoice): string {
  const scene = voice.description?.scene?.trim();
  const speaker = voice.description?.speaker?.trim();
  const lines = [scene, speaker ? `SPEAKER0: ${speaker}` : undefined].filter((l): l is string => !!l);
  const instruction = 'Generate audio following instruction.';
  return lines.length === 0 ? instruction : `${instruction}\n\n<|scene_desc_start|>\n${lines.join('\n\n')}\n<|scene_desc_end|>`;
}

export function createHiggsV2Engine(opts: HiggsV2Options): TtsEngine {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const headers = jsonHeaders(opts.apiKey);
  const clips = new Base64Clips();

  function chatRequest(text: string, voice: EngineVoice): Record<string, unknown> {
    const messages: unknown[] = [{ role: 'system', content: higgsSystemPrompt(voice) }];
    if (voice.clone) {
      messages.push(
        { role: 'user', content: voice.clone.transcript },
        { role: 'assistant', content: [{ type: 'input_audio', input_audio: { data: clips.of(voice.clone), format: 'wav' } }] },
      );
    }
    messages.push({ role: 'user', content: text });
    return { model: opts.model, messages, modalities: ['text', 'audio'], audio: { format: 'pcm16' }, stream: true };
  }

  async function* chatAudio(text: string, voice: EngineVoice, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    for await (const data of sseData(postStream(`${base}/chat/completions`, chatRequest(text, voice), headers, opts, signal))) {
      const audio = audioDelta(data);
      if (audio) yield Buffer.from(audio, 'base64');
    }
  }

  function synthesize(text: string, voice: EngineVoice, signal: AbortSignal): AsyncIterable<Buffer> {
    if (voice.clone || voice.description) return pcmFrames(chatAudio(text, voice, signal));
    const body = { model: opts.model, input: text, voice: voice.engineVoice, response_format: 'pcm', speed: voice.speed };
    return pcmFrames(postStream(`${base}/audio/speech`, body, headers, opts, signal));
  }

  return {
    name: 'higgs-v2',
    sampleRate: HIGGS_V2_SAMPLE_RATE,
    methods: ['preset', 'clone', 'description'],
    defaultVoice: { engineVoice: opts.defaultVoice, speed: 1, pitch: 1 },
    synthesize,
    listVoices: async () => [opts.defaultVoice],
    close: async () => {},
  };
}

/** The base64 audio of one chat completion chunk, if it carries any. */
function audioDelta(data: string): string | undefined {
  let chunk: unknown;
  try {
    chunk = JSON.parse(data);
  } catch {
    return undefined;
  }
  const choices = (chunk as { choices?: unknown } | null)?.choices;
  const delta = Array.isArray(choices) ? (choices[0] as { delta?: { audio?: { data?: unknown } } } | undefined)?.delta : undefined;
  const audio = delta?.audio?.data;
  return typeof audio === 'string' && audio !== '' ? audio : undefined;
}
