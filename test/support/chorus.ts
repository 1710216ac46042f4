// Starts the real Chorus HTTP/WebSocket server in this process on a loopback port, on a given
// database and with a given environment, for integration tests.
import { pino } from 'pino';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import type { Database } from '../../src/db/client.ts';
import { Repo } from '../../src/db/repo.ts';
import { createLlm } from '../../src/llm/chat.ts';
import type { TtsEngine } from '../../src/speech/engine.ts';
import type { WebSocketRouter } from '../../src/session/router.ts';
import type { SttEngine } from '../../src/transcribe/engine.ts';
import { loadVad } from '../../src/transcribe/vad.ts';
import { VoiceResolver } from '../../src/speech/voices.ts';
import type { ClipStore } from '../../src/speech/clip-store.ts';

export interface ChorusUnderTest {
  httpUrl: string;
  wsUrl: string;
  repo: Repo;
  sessions: Set<WebSocketRouter>;
  close(): Promise<void>;
}

export async function startChorus(opts: { database: Database; env?: Record<string, string>; tts?: TtsEngine; stt?: SttEngine; clips?: ClipStore }): Promise<ChorusUnderTest> {
  const config = loadConfig({ PORT: '0', WEB_DIR: './no-such-dir', LOG_LEVEL: 'silent', ...opts.env });
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? config.logLevel });
  const repo = new Repo(opts.database);
  const tts = opts.tts && { engine: opts.tts, voices: new VoiceResolver(repo, opts.tts, logger, opts.clips), audioLeadMs: config.tts.audioLeadMs, lookahead: config.tts.lookahead };
  const stt = opts.stt && { engine: opts.stt, vad: await loadVad(), config: config.stt };
  const sessions = new Set<WebSocketRouter>();
  const app = await buildApp({ config, database: opts.database, repo, llm: createLlm(config.llm), logger, tts, stt, sessions, clips: opts.clips });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    httpUrl: `http://127.0.0.1:${address.port}`,
    wsUrl: `ws://127.0.0.1:${address.port}/ws`,
    repo,
    sessions,
    close: async () => {
      await app.close();
    },
  };
}
