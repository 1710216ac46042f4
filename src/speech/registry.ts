// TtsRegistry: every configured speech engine, live at once, behind the one TtsEngine interface
// the sessions use. A voice names its engine (the voice resolver puts it in EngineVoice.engine);
// a voice naming none speaks through the default engine (TTS_ENGINE). Whatever the engine's own
// rate, audio leaves at OUTPUT_SAMPLE_RATE, and text tags only Higgs v3 reads are stripped for others.
import type { TtsEngineName } from '../protocol.ts';
import type { EngineVoice, TtsEngine } from './engine.ts';
import { resampled } from './resampler.ts';

/** Higgs v3's inline tags (`<|emotion:…|>`, `<|style:…|>`, `<|prosody:…|>`, `<|sfx:…|>`): never spoken by other engines. */
const INLINE_TAG = /<\|[a-z_]+(?::[^|>]*)?\|>/gi;

export function stripInlineTags(text: string): string {
  return text.replace(INLINE_TAG, ' ').replace(/\s+/g, ' ').trim();
}

/** Engines that read inline tags in their input. */
const READS_INLINE_TAGS: ReadonlySet<TtsEngineName> = new Set(['higgs']);

export class TtsRegistry implements TtsEngine {
  readonly name: TtsEngineName;
  readonly sampleRate: number;
  readonly defaultVoice: EngineVoice;
  readonly methods: TtsEngine['methods'];
  private readonly engines = new Map<TtsEngineName, TtsEngine>();

  constructor(
    engines: readonly TtsEngine[],
    private readonly defaultEngine: TtsEngine,
    outputSampleRate: number,
  ) {
    for (const engine of engines) this.engines.set(engine.name, engine);
    this.engines.set(defaultEngine.name, defaultEngine);
    this.name = defaultEngine.name;
    this.sampleRate = outputSampleRate;
    this.defaultVoice = { ...defaultEngine.defaultVoice, engine: defaultEngine };
    this.methods = defaultEngine.methods;
  }

  /** The live engines, the default first. */
  list(): TtsEngine[] {
    return [this.defaultEngine, ...[...this.engines.values()].filter((e) => e !== this.defaultEngine)];
  }

  /** Adds an engine that was not configured at start (the connection panel's TTS endpoint); the default stays. */
  add(engine: TtsEngine): void {
    if (!this.engines.has(engine.name)) this.engines.set(engine.name, engine);
  }

  get(name: TtsEngineName): TtsEngine | undefined {
    return this.engines.get(name);
  }

  synthesize(text: string, voice: EngineVoice, signal: AbortSignal): AsyncIterable<Buffer> {
    const engine = voice.engine && voice.engine !== this ? voice.engine : this.defaultEngine;
    const input = READS_INLINE_TAGS.has(engine.name) ? text : stripInlineTags(text);
    if (input === '') return (async function* () {})();
    return resampled(engine.synthesize(input, voice, signal), engine.sampleRate, this.sampleRate);
  }

  listVoices(): Promise<string[]> {
    return this.defaultEngine.listVoices();
  }

  async close(): Promise<void> {
    await Promise.all([...this.engines.values()].map((e) => e.close()));
  }
}
