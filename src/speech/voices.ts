// Resolves a character's stored voice (a voices-table key) to what its engine needs, with a
// cache shared by all sessions and cleared whenever voices or characters change. The voice names
// its engine (any configured one; none: the default engine) and its method: a preset names the
// engine's own voice id, a clone brings its reference clip (read once, then kept), a description
// its speaker and scene texts. A voice that cannot be spoken as stored (no voice, a missing one,
// an engine that is not configured, a method its engine cannot do, a missing clip) speaks in its
// engine's default voice, with a warning in the log and `fallback` set for the client's warning.
import type { Logger } from 'pino';
import { crudChanges } from '../db/handlers.ts';
import type { Repo } from '../db/repo.ts';
import { NotFoundError } from '../db/repo.ts';
import type { Voice, VoiceDefinition } from '../protocol.ts';
import type { ClipStore } from './clip-store.ts';
import type { EngineVoice, TtsEngine } from './engine.ts';
import { TtsRegistry } from './registry.ts';
import { mergeStyles } from './voice-style.ts';

export class VoiceResolver {
  private readonly cache = new Map<string, Promise<EngineVoice>>();

  constructor(
    private readonly repo: Repo,
    private readonly engine: TtsEngine,
    private readonly logger: Logger,
    private readonly clips?: ClipStore,
  ) {
    crudChanges.on('characters', () => this.cache.clear()); // voice updates and deletes are character changes too
  }

  resolve(voice: string | null): Promise<EngineVoice> {
    if (voice === null) return Promise.resolve(this.engine.defaultVoice);
    let found = this.cache.get(voice);
    if (!found) {
      found = this.lookUp(voice);
      this.cache.set(voice, found);
    }
    return found;
  }

  /** An unsaved definition (a preview), with the defaults a stored voice gets; never cached. */
  fromUnsaved(definition: VoiceDefinition): Promise<EngineVoice> {
    const { voice, method, audio_path, text_path, speaker_desc, scene_prompt, engine, engine_voice, speed, pitch, style } = definition;
    return this.fromDefinition({
      voice: voice ?? 'unsaved voice',
      method: method ?? 'preset',
      audio_path: audio_path ?? null,
      text_path: text_path ?? null,
      speaker_desc: speaker_desc ?? null,
      scene_prompt: scene_prompt ?? null,
      engine: engine ?? null,
      engine_voice: engine_voice ?? null,
      speed: speed ?? 1,
      pitch: pitch ?? 1,
      style: style ?? null,
    });
  }

  /** A voice definition as it would be spoken (stored or not: previews of unsaved settings). */
  async fromDefinition(row: Pick<Voice, 'voice' | 'method' | 'engine' | 'engine_voice' | 'speed' | 'pitch' | 'audio_path' | 'text_path' | 'speaker_desc' | 'scene_prompt' | 'style'>): Promise<EngineVoice> {
    const engine = this.engineNamed(row.engine);
    if (!engine) return this.fallback(row.voice, this.defaultEngine(), `its engine "${row.engine}" is not configured on this server`);
    const methods = engine.methods ?? ['preset'];
    if (!methods.includes(row.method)) return this.fallback(row.voice, engine, `the ${engine.name} engine cannot speak ${row.method} voices`);
    const base: EngineVoice = { engineVoice: row.engine_voice || engine.defaultVoice.engineVoice, speed: row.speed, pitch: row.pitch, engine, style: mergeStyles(row.style, undefined) };
    if (row.method === 'clone') {
      if (!row.audio_path || !row.text_path || !this.clips) return this.fallback(row.voice, engine, 'it has no reference clip');
      try {
        return { ...base, clone: await this.clips.load(row.audio_path, row.text_path, engine.sampleRate) };
      } catch (error) {
        return this.fallback(row.voice, engine, `its reference clip cannot be read (${error instanceof Error ? error.message : String(error)})`);
      }
    }
    if (row.method === 'description') {
      if (!row.speaker_desc && !row.scene_prompt) return this.fallback(row.voice, engine, 'it describes no speaker or scene');
      return { ...base, description: { speaker: row.speaker_desc, scene: row.scene_prompt } };
    }
    if (!row.engine_voice) return this.fallback(row.voice, engine, 'it names no engine voice');
    return base;
  }

  /** The engine that speaks voices naming none (never the registry itself: it would call itself). */
  private defaultEngine(): TtsEngine {
    return this.engine instanceof TtsRegistry ? (this.engine.get(this.engine.name) as TtsEngine) : this.engine;
  }

  private engineNamed(name: Voice['engine']): TtsEngine | undefined {
    if (name === null) return this.defaultEngine();
    if (this.engine instanceof TtsRegistry) return this.engine.get(name);
    return this.engine.name === name ? this.engine : undefined;
  }

  private async lookUp(key: string): Promise<EngineVoice> {
    try {
      return await this.fromDefinition(await this.repo.getVoice(key));
    } catch (error) {
      if (error instanceof NotFoundError) return this.fallback(key, this.defaultEngine(), 'it does not exist');
      this.cache.delete(key); // a database hiccup is not remembered
      throw error;
    }
  }

  private fallback(key: string, engine: TtsEngine, why: string): EngineVoice {
    this.logger.warn({ voice: key, engine: engine.name, default: engine.defaultVoice.engineVoice }, `voice "${key}" cannot be used (${why}); using the default voice`);
    return { ...engine.defaultVoice, engine, fallback: `The voice "${key}" cannot be used (${why}); the ${engine.name} engine's default voice speaks instead.` };
  }
}
