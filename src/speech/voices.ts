// Resolves a character's stored voice (a voices-table key) to what the TTS engine needs, with
// a cache shared by all sessions and cleared whenever voices or characters change. A character
// with no voice, a missing voice, or a voice made for another engine speaks in the engine's
// default voice, with a warning in the log, rather than falling silent.
import type { Logger } from 'pino';
import { crudChanges } from '../db/handlers.ts';
import type { Repo } from '../db/repo.ts';
import { NotFoundError } from '../db/repo.ts';
import type { EngineVoice, TtsEngine } from './engine.ts';

export class VoiceResolver {
  private readonly cache = new Map<string, Promise<EngineVoice>>();

  constructor(
    private readonly repo: Repo,
    private readonly engine: TtsEngine,
    private readonly logger: Logger,
  ) {
    crudChanges.on('characters', () => this.cache.clear());
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

  private async lookUp(key: string): Promise<EngineVoice> {
    try {
      const row = await this.repo.getVoice(key);
      if (row.engine !== null && row.engine !== this.engine.name) {
        return this.fallback(key, `it is a voice of the ${row.engine} engine, not ${this.engine.name}`);
      }
      if (!row.engine_voice) return this.fallback(key, 'it names no engine voice');
      return { engineVoice: row.engine_voice, speed: row.speed, pitch: row.pitch };
    } catch (error) {
      if (error instanceof NotFoundError) return this.fallback(key, 'it does not exist');
      this.cache.delete(key); // a database hiccup is not remembered
      throw error;
    }
  }

  private fallback(key: string, why: string): EngineVoice {
    this.logger.warn({ voice: key, default: this.engine.defaultVoice.engineVoice }, `voice "${key}" cannot be used (${why}); using the default voice`);
    return this.engine.defaultVoice;
  }
}
