// The small interface every text-to-speech engine implements (espeak in-process, OpenAI-
// compatible servers, Higgs Audio v3 and v2 over HTTP). Engines are process-wide and shared by
// all connections; several are live at once, and each voice names the one that speaks it.
import type { TtsEngineName, VoiceMethod, VoiceStyle } from '../protocol.ts';

/** A voice's reference clip, prepared once: mono PCM16 LE WAV and what is said in it. */
export interface ReferenceClip {
  /** The whole WAV file (engines send it as it is, base64-encoded). */
  wav: Buffer;
  transcript: string;
  /** A stable id of the clip's content (sha256 hex): engines key what they cache on it. */
  id: string;
}

/** How a character sounds to one engine. */
export interface EngineVoice {
  /** The engine's own voice id, e.g. `en-us+f3` (espeak) or `nova` (OpenAI); for a clone, what to fall back on. */
  engineVoice: string;
  /** 1 = normal, 2 = twice as fast. */
  speed: number;
  /** 1 = normal; engines without a pitch control ignore it. */
  pitch: number;
  /** The engine that speaks it (set by the voice resolver; absent: the default engine). */
  engine?: TtsEngine | undefined;
  /** clone: speak like this clip. */
  clone?: ReferenceClip | undefined;
  /** description: a voice described in words (Higgs v2's speaker and scene descriptions). */
  description?: { speaker: string | null; scene: string | null } | undefined;
  /** Delivery style (the character's over its voice's): Higgs v3 puts it before each sentence as inline tags; other engines ignore it. */
  style?: VoiceStyle | undefined;
  /** Set when the stored voice could not be used as it is, and this is its engine's default instead: why. */
  fallback?: string | undefined;
}

/** An engine voice id with its language's name and its variant's (null: the language's own voice). */
export interface VoiceLabel {
  voice: string;
  language: string;
  variant: string | null;
}

export interface TtsEngine {
  readonly name: TtsEngineName;
  /** Sample rate of the PCM that synthesize() yields. */
  readonly sampleRate: number;
  /** The voice methods it can speak (`preset` always). */
  readonly methods?: readonly VoiceMethod[];
  /**
   * PCM16 LE mono chunks for one text, as soon as each exists. Aborting the signal stops
   * synthesis promptly and ends the iteration with an AbortError.
   */
  synthesize(text: string, voice: EngineVoice, signal: AbortSignal): AsyncIterable<Buffer>;
  /** The engine's own voice ids a client can offer. */
  listVoices(): Promise<string[]>;
  /** The same voices named for people (language and variant), when the engine knows them (espeak). */
  describeVoices?(): Promise<VoiceLabel[]>;
  /** The voice used when a character has none. */
  readonly defaultVoice: EngineVoice;
  close(): Promise<void>;
}
