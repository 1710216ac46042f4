// Engines whose endpoint can change while the server runs (the connection panel): each is the
// one object sessions, voices and the registry hold, and forwards to the engine built from the
// current settings. A request already under way finishes on the engine it started with; the next
// one uses the new engine, so a change applies to new turns without a restart.
import type { EngineVoice, TtsEngine } from '../speech/engine.ts';
import type { SttEngine } from '../transcribe/engine.ts';

export class SwappableTts implements TtsEngine {
  readonly name = 'openai' as const;

  constructor(private inner: TtsEngine) {}

  get sampleRate(): number {
    return this.inner.sampleRate;
  }
  get methods(): TtsEngine['methods'] {
    return this.inner.methods;
  }
  get defaultVoice(): EngineVoice {
    return this.inner.defaultVoice;
  }

  /** Puts a new engine in place; the old one is closed once its requests are done (it has nothing to close today). */
  swap(next: TtsEngine): void {
    const old = this.inner;
    this.inner = next;
    void old.close();
  }

  synthesize(text: string, voice: EngineVoice, signal: AbortSignal): AsyncIterable<Buffer> {
    return this.inner.synthesize(text, voice, signal);
  }
  listVoices(): Promise<string[]> {
    return this.inner.listVoices();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export class SwappableStt implements SttEngine {
  constructor(private inner: SttEngine) {}

  get name(): SttEngine['name'] {
    return this.inner.name;
  }

  swap(next: SttEngine): void {
    const old = this.inner;
    this.inner = next;
    void old.close();
  }

  transcribe(pcm16k: Int16Array | Buffer, signal: AbortSignal): Promise<string> {
    return this.inner.transcribe(pcm16k, signal);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
