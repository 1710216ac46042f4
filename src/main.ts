// Process entry: configuration, database, engines, HTTP server, graceful shutdown. Without
// DATABASE_URL the embedded database runs in a process of its own (src/db/embedded-host.ts),
// reached over its socket like a PostgreSQL server; with WORKERS > 1 this process is the
// primary of that many server processes (src/cluster.ts), each of which runs serve().
import cluster from 'node:cluster';
import dotenv from 'dotenv';
import { type Logger, pino } from 'pino';
import { buildApp } from './app.ts';
import { superviseWorkers } from './cluster.ts';
import { type Config, ConfigError, loadConfig, redactUrlPassword } from './config.ts';
import { ChangeBus } from './db/change-bus.ts';
import { openDatabase } from './db/client.ts';
import { type EmbeddedHost, startEmbeddedHost } from './db/embedded-host.ts';
import { Health } from './http/health.ts';
import { Repo } from './db/repo.ts';
import { createLlm } from './llm/chat.ts';
import { MessageSpool } from './session/message-spool.ts';
import type { WebSocketRouter } from './session/router.ts';
import { turnLocks } from './session/turn-lock.ts';
import { shutdown, spoolUnstored } from './shutdown.ts';
import { ClipStore } from './speech/clip-store.ts';
import { createTtsEngine } from './speech/tts.ts';
import { VoiceResolver } from './speech/voices.ts';
import { createSttEngine } from './transcribe/stt.ts';
import { loadTurnDetector } from './transcribe/turn-detector.ts';
import { loadVad } from './transcribe/vad.ts';

/** The embedded database's socket URL, handed by the primary to its workers (not a setting). */
const EMBEDDED_URL_VARIABLE = 'CHORUS_EMBEDDED_DATABASE_URL';

async function main(): Promise<void> {
  dotenv.config({ quiet: true });
  const config = loadConfig();
  const logger = pino({ level: config.logLevel, redact: ['*.apiKey', '*.headers.authorization'] });

  if (cluster.isWorker) {
    const embeddedUrl = process.env[EMBEDDED_URL_VARIABLE];
    return serve(config, logger, embeddedUrl ? { url: embeddedUrl, embedded: true } : { url: config.databaseUrl ?? '', embedded: false });
  }
  const host = config.databaseUrl ? undefined : await startEmbeddedHost(config.dataDir, logger);
  if (config.workers === 1) return serve(config, logger, host ? { url: host.url, embedded: true, host } : { url: config.databaseUrl ?? '', embedded: false });
  try {
    await superviseWorkers({
      count: config.workers,
      env: host ? { [EMBEDDED_URL_VARIABLE]: host.url } : {},
      logger,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      onStopped: async () => host?.close(),
    });
  } catch (error) {
    await host?.close();
    throw error;
  }
}

interface DatabaseTarget {
  url: string;
  /** The embedded database's process (over its socket), not a PostgreSQL server. */
  embedded: boolean;
  /** Set when this process started that database process, and so closes it last. */
  host?: EmbeddedHost;
}

/** One server process: its database pool, engines, HTTP server and sessions. */
async function serve(config: Config, logger: Logger, target: DatabaseTarget): Promise<void> {
  const database = await openDatabase({ databaseUrl: target.url });
  const repo = new Repo(database);
  // Several processes on one database (a PostgreSQL server, or the embedded database's process
  // under WORKERS): changes reach them all (LISTEN/NOTIFY), and turns on a conversation take
  // turns across them (advisory locks). Both database kinds answer both per connection.
  const bus = new ChangeBus({ databaseUrl: target.url, repo, logger });
  await bus.start();
  turnLocks.useDatabase(target.url);
  if (config.seedStarterCast && (await repo.ensureStarterCast())) logger.info('created the starter cast');
  // What the last run could not store (spooled at its shutdown) is stored before anyone connects
  // (under WORKERS, by the first worker only: replayed twice, it would be stored twice).
  const spool = new MessageSpool(config.dataDir);
  const replayed = process.env.CHORUS_REPLAY_SPOOL === '0' ? { stored: 0, deadLettered: 0, kept: 0 } : await spool.replay(repo, logger);
  if (replayed.stored + replayed.deadLettered + replayed.kept > 0) logger.warn(replayed, 'replayed the message spool');

  const llm = createLlm(config.llm);
  if (!llm.client) logger.warn('no LLM API key in the environment: set LLM_API_KEY or OPENROUTER_API_KEY (or LLM_BASE_URL to a local server), unless one is saved from the web client\'s Connection panel');

  const engine = await createTtsEngine(config.tts);
  // Under WORKERS the processes share DATA_DIR/voices: a clip another one just saved is spared for 10 minutes.
  const clips = new ClipStore(config.dataDir, cluster.isWorker ? 600_000 : 0);
  const tts = engine && { engine, voices: new VoiceResolver(repo, engine, logger, clips), audioLeadMs: config.tts.audioLeadMs, lookahead: config.tts.lookahead };
  logger.info({ tts: engine?.name ?? 'none', engines: engine?.list().map((e) => e.name) ?? [], output_sample_rate: engine?.sampleRate }, 'speech output');

  const sttEngine = await createSttEngine(config.stt);
  const turnModel = sttEngine ? config.stt.turnDetectorModel : undefined;
  const stt = sttEngine && { engine: sttEngine, vad: await loadVad(), config: config.stt, turnDetector: turnModel === undefined ? undefined : await loadTurnDetector(turnModel) };
  logger.info({ stt: sttEngine?.name ?? 'none', turn_detector: turnModel ?? 'none' }, 'speech input');

  const sessions = new Set<WebSocketRouter>();
  const health = new Health({ database, databaseKind: target.embedded ? 'embedded' : 'postgres', llm, tts, stt, sessionCount: () => sessions.size });
  const app = await buildApp({ config, database, repo, llm, logger, tts, stt, sessions, spool, clips, health });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const databaseKind = target.embedded ? 'embedded' : 'postgres';
  // Under WORKERS the primary says "Chorus is ready" once every worker listens.
  const ready = cluster.isWorker ? 'worker is ready' : 'Chorus is ready';
  logger.info({ port, worker: Number(process.env.CHORUS_WORKER_INDEX ?? 0), database: databaseKind, llm: config.llm.baseUrl, model: config.llm.model }, ready);

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
      await bus.close(); // after the sessions: their last changes are announced
      await turnLocks.close();
    };
    try {
      await shutdown({ app, sessions, spool, database, closeEngines, logger, timeoutMs: config.shutdownTimeoutMs, health, drainTimeoutMs: config.drainTimeoutMs });
      await target.host?.close();
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
