// Chooses the process-wide TTS engine from configuration (TTS_ENGINE). Engines are shared by
// all connections; each connection has its own Speech worker in front of it.
import type { Config } from '../config.ts';
import type { TtsEngine } from './engine.ts';
import { createEspeakEngine } from './engines/espeak.ts';
import { createOpenAiTtsEngine } from './engines/openai.ts';

export async function createTtsEngine(config: Config['tts']): Promise<TtsEngine | undefined> {
  const engines: Record<Config['tts']['engine'], () => Promise<TtsEngine | undefined>> = {
    espeak: () => createEspeakEngine({ workers: config.espeakWorkers, defaultVoice: config.defaultVoice }),
    openai: async () =>
      createOpenAiTtsEngine({
        baseUrl: config.baseUrl,
        apiKey: config.apiKey,
        model: config.model,
        sampleRate: config.sampleRate,
        timeoutMs: config.timeoutMs,
        firstByteTimeoutMs: config.firstByteTimeoutMs,
        defaultVoice: config.defaultVoice,
      }),
    none: async () => undefined,
  };
  return engines[config.engine]();
}
