// Chooses the process-wide speech-to-text engine from configuration (STT_ENGINE). Engines are
// shared by all connections; each connection has its own Transcribe in front of the engine.
import type { Config } from '../config.ts';
import type { SttEngine } from './engine.ts';
import { createOpenAiSttEngine } from './engines/openai.ts';
import { createWhisperEngine } from './engines/whisper.ts';

/** The `error` (stt_not_configured) a client gets for start_listening when STT_ENGINE is none. */
export const SPEECH_INPUT_NOT_CONFIGURED =
  'Speech input is not configured on this server. To turn it on, set STT_ENGINE=openai and STT_BASE_URL to an ' +
  'OpenAI-compatible /v1/audio/transcriptions server (speaches, whisper.cpp server, vLLM, Groq, OpenAI with STT_API_KEY), ' +
  'or STT_ENGINE=whisper and WHISPER_MODEL_PATH to a whisper.cpp ggml model file (see docs/engines.md). ' +
  'Until then, send text with user_message.';

/** The engine, or undefined for `none`. A whisper model that is missing or invalid rejects with a message naming WHISPER_MODEL_PATH. */
export async function createSttEngine(config: Config['stt']): Promise<SttEngine | undefined> {
  const engines: Record<Config['stt']['engine'], () => Promise<SttEngine | undefined>> = {
    openai: async () =>
      createOpenAiSttEngine({
        baseUrl: config.baseUrl,
        apiKey: config.apiKey,
        model: config.model,
        language: config.language,
        timeoutMs: config.timeoutMs,
      }),
    whisper: () => {
      if (!config.whisperModelPath) {
        throw new Error('STT_ENGINE=whisper needs WHISPER_MODEL_PATH: the path of a whisper.cpp ggml model file (see docs/engines.md).');
      }
      return createWhisperEngine({ modelPath: config.whisperModelPath, language: config.language, timeoutMs: config.timeoutMs });
    },
    none: async () => undefined,
  };
  return engines[config.engine]();
}
