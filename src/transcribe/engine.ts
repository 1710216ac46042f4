// The small interface every speech-to-text engine implements (an OpenAI-compatible server over
// HTTP, or whisper.cpp in-process). Engines are process-wide and shared by all connections;
// each connection's Transcribe keeps at most one request of its own in flight.

export interface SttEngine {
  readonly name: 'openai' | 'whisper';
  /**
   * The text of 16 kHz PCM16 mono audio (an Int16Array of samples, or their LE bytes).
   * Rejects on failure or timeout with an Error that says which; aborting `signal` rejects
   * promptly with the signal's reason and stops the work.
   */
  transcribe(pcm16k: Int16Array | Buffer, signal: AbortSignal): Promise<string>;
  close(): Promise<void>;
}
