// Builds the process-wide speech engines from configuration: espeak always, openai when
// TTS_ENGINE=openai or TTS_BASE_URL is set, higgs when HIGGS_BASE_URL is set, higgs-v2 when
// HIGGS_V2_BASE_URL is set; all live at once in one TtsRegistry whose default is TTS_ENGINE and
// whose audio leaves at OUTPUT_SAMPLE_RATE. Each connection has its own Speech worker in front.
import type { Config } from '../config.ts';
import type { TtsEngine } from './engine.ts';
import { createEspeakEngine } from './engines/espeak.ts';
import { createHiggsV2Engine } from './engines/higgs-v2.ts';
import { createHiggsEngine } from './engines/higgs.ts';
import { createOpenAiTtsEngine } from './engines/openai.ts';
import { TtsRegistry } from './registry.ts';
import { SwappableTts } from '../endpoints/swappable-engines.ts';

export async function createTtsEngine(config: Config['tts']): Promise<TtsRegistry | undefined> {
  if (config.engine === 'none') return undefined;
  const limits = { timeoutMs: config.timeoutMs, firstByteTimeoutMs: config.firstByteTimeoutMs };
  // TTS_DEFAULT_VOICE belongs to the default engine; the others have their own.
  const ownDefault = (name: Config['tts']['engine']) => (config.engine === name ? config.defaultVoice : undefined);
  const engines: TtsEngine[] = [await createEspeakEngine({ workers: config.espeakWorkers, defaultVoice: ownDefault('espeak') })];
  try {
    if (config.openai) {
      // Swappable: the connection panel can point it at another server while sessions run.
      engines.push(new SwappableTts(createOpenAiTtsEngine({ ...limits, baseUrl: config.baseUrl, apiKey: config.apiKey, model: config.model, sampleRate: config.sampleRate, defaultVoice: ownDefault('openai'), referenceAudio: config.referenceAudio })));
    }
    if (config.higgs) engines.push(createHiggsEngine({ ...limits, ...config.higgs, defaultVoice: ownDefault('higgs') ?? config.higgs.defaultVoice }));
    if (config.higgsV2) engines.push(createHiggsV2Engine({ ...limits, ...config.higgsV2, defaultVoice: ownDefault('higgs-v2') ?? config.higgsV2.defaultVoice }));
    const fallback = engines[0] as TtsEngine;
    const defaultEngine = engines.find((e) => e.name === config.engine) ?? fallback;
    return new TtsRegistry(engines, defaultEngine, config.outputSampleRate);
  } catch (error) {
    await Promise.all(engines.map((e) => e.close()));
    throw error;
  }
}
