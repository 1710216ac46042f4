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
import { loadTurnDetector } from '../../src/transcribe/turn-detector.ts';
import { loadVad } from '../../src/transcribe/vad.ts';
import { VoiceResolver } from '../../src/speech/voices.ts';
import { eventually } from './eventually.ts';
import type { ClipStore } from '../../src/speech/clip-store.ts';

export interface ChorusUnderTest {
  httpUrl: string;
  wsUrl: string;
  repo: Repo;
  sessions: Set<WebSocketRouter>;
  /**
   * Resolves once every socket opened so far has closed and its session has stored what it will
   * (a reply is stored when its playback ends or is cut, so it can land after the client left):
   * a test that resets the database calls it first, so nothing of the last test arrives after.
   */
  settled(): Promise<void>;
  close(): Promise<void>;
}

export async function startChorus(opts: { database: Database; env?: Record<string, string>; tts?: TtsEngine; stt?: SttEngine; clips?: ClipStore }): Promise<ChorusUnderTest> {
  const config = loadConfig({ PORT: '0', WEB_DIR: './no-such-dir', LOG_LEVEL: 'silent', ...opts.env });
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? config.logLevel });
  const repo = new Repo(opts.database);
  const tts = opts.tts && { engine: opts.tts, voices: new VoiceResolver(repo, opts.tts, logger, opts.clips), audioLeadMs: config.tts.audioLeadMs, lookahead: config.tts.lookahead };
  const turnModel = config.stt.turnDetectorModel;
  const stt = opts.stt && { engine: opts.stt, vad: await loadVad(), config: config.stt, turnDetector: turnModel === undefined ? undefined : await loadTurnDetector(turnModel) };
  const opened: WebSocketRouter[] = [];
  const sessions = new (class extends Set<WebSocketRouter> {
    override add(router: WebSocketRouter): this {
      opened.push(router);
      return super.add(router);
    }
  })();
  const app = await buildApp({ config, database: opts.database, repo, llm: createLlm(config.llm), logger, tts, stt, sessions, clips: opts.clips });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    httpUrl: `http://127.0.0.1:${address.port}`,
    wsUrl: `ws://127.0.0.1:${address.port}/ws`,
    repo,
    sessions,
    settled: async () => {
      await eventually(async () => (sessions.size === 0 ? true : undefined), 'every test socket to close');
      // Each has begun closing (on its socket's close): close() returns that same closing.
      await Promise.all(opened.splice(0).map((router) => router.close()));
    },
    close: async () => {
      await app.close();
    },
  };
}
