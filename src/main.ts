// Process entry: configuration, database, engines, HTTP server, graceful shutdown.
import dotenv from 'dotenv';
import { pino } from 'pino';
import { buildApp } from './app.ts';
import { ConfigError, loadConfig, redactUrlPassword } from './config.ts';
import { openDatabase } from './db/client.ts';
import { Repo } from './db/repo.ts';
import { createLlm } from './llm/chat.ts';
import { MessageSpool } from './session/message-spool.ts';
import type { WebSocketRouter } from './session/router.ts';
import { shutdown, spoolUnstored } from './shutdown.ts';
import { ClipStore } from './speech/clip-store.ts';
import { createTtsEngine } from './speech/tts.ts';
import { VoiceResolver } from './speech/voices.ts';
import { createSttEngine } from './transcribe/stt.ts';
import { loadTurnDetector } from './transcribe/turn-detector.ts';
import { loadVad } from './transcribe/vad.ts';

async function main(): Promise<void> {
  dotenv.config({ quiet: true });
  const config = loadConfig();
  const logger = pino({ level: config.logLevel, redact: ['*.apiKey', '*.headers.authorization'] });

  const database = await openDatabase(config.databaseUrl ? { databaseUrl: config.databaseUrl } : { dataDir: config.dataDir });
  const repo = new Repo(database);
  if (config.seedStarterCast && (await repo.ensureStarterCast())) logger.info('created the starter cast');
  // What the last run could not store (spooled at its shutdown) is stored before anyone connects.
  const spool = new MessageSpool(config.dataDir);
  const replayed = await spool.replay(repo, logger);
  if (replayed.stored + replayed.deadLettered + replayed.kept > 0) logger.warn(replayed, 'replayed the message spool');

  const llm = createLlm(config.llm);
  if (!llm.client) logger.warn('no LLM API key in the environment: set LLM_API_KEY or OPENROUTER_API_KEY (or LLM_BASE_URL to a local server), unless one is saved from the web client\'s Connection panel');

  const engine = await createTtsEngine(config.tts);
  const clips = new ClipStore(config.dataDir);
  const tts = engine && { engine, voices: new VoiceResolver(repo, engine, logger, clips), audioLeadMs: config.tts.audioLeadMs, lookahead: config.tts.lookahead };
  logger.info({ tts: engine?.name ?? 'none', engines: engine?.list().map((e) => e.name) ?? [], output_sample_rate: engine?.sampleRate }, 'speech output');

  const sttEngine = await createSttEngine(config.stt);
  const turnModel = sttEngine ? config.stt.turnDetectorModel : undefined;
  const stt = sttEngine && { engine: sttEngine, vad: await loadVad(), config: config.stt, turnDetector: turnModel === undefined ? undefined : await loadTurnDetector(turnModel) };
  logger.info({ stt: sttEngine?.name ?? 'none', turn_detector: turnModel ?? 'none' }, 'speech input');

  const sessions = new Set<WebSocketRouter>();
  const app = await buildApp({ config, database, repo, llm, logger, tts, stt, sessions, spool, clips });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  logger.info({ port, database: database.kind, llm: config.llm.baseUrl, model: config.llm.model }, 'Chorus is ready');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    // A backstop: shutdown() keeps within the timeout; should anything hang past it, spool and go.
    setTimeout(() => void spoolUnstored(spool, logger, 0).finally(() => process.exit(1)), config.shutdownTimeoutMs).unref();
    const closeEngines = async () => {
      await engine?.close();
      await sttEngine?.close();
    };
    try {
      await shutdown({ app, sessions, spool, database, closeEngines, logger, timeoutMs: config.shutdownTimeoutMs });
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      await spoolUnstored(spool, logger, 0);
      process.exit(1);
    }
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(error.message);
  else console.error(`Chorus failed to start: ${redactUrlPassword(error instanceof Error ? (error.stack ?? error.message) : String(error))}`);
  process.exit(1);
});
