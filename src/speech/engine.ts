// The small interface every text-to-speech engine implements (espeak in-process, OpenAI-
// compatible servers over HTTP). Engines are process-wide and shared by all connections.

/** How a character sounds to one engine. */
export interface EngineVoice {
  /** The engine's own voice id, e.g. `en-us+f3` (espeak) or `nova` (OpenAI). */
  engineVoice: string;
  /** 1 = normal, 2 = twice as fast. */
  speed: number;
  /** 1 = normal; engines without a pitch control ignore it. */
  pitch: number;
}

export interface TtsEngine {
  readonly name: 'espeak' | 'openai';
  /** Sample rate of the PCM that synthesize() yields. */
  readonly sampleRate: number;
  /**
   * PCM16 LE mono chunks for one text, as soon as each exists. Aborting the signal stops
   * synthesis promptly and ends the iteration with an AbortError.
   */
  synthesize(text: string, voice: EngineVoice, signal: AbortSignal): AsyncIterable<Buffer>;
  /** The engine's own voice ids a client can offer. */
  listVoices(): Promise<string[]>;
  /** The voice used when a character has none. */
  readonly defaultVoice: EngineVoice;
  close(): Promise<void>;
}
