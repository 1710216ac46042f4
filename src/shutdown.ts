// The graceful shutdown (SIGTERM/SIGINT), all within SHUTDOWN_TIMEOUT_MS: drain (/healthz
// answers 503 at once, no new connection or session is taken, running turns may finish for
// DRAIN_TIMEOUT_MS); close every session (its turn is interrupted, the partial reply stored as
// interrupted, the user messages of its queued turns stored); let every conversation log
// flush; spool what is still unstored to DATA_DIR (replayed at the next start); close the
// sockets with 1001 and a reason; close the HTTP server, the engines and the database.
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { Database } from './db/client.ts';
import type { Health } from './http/health.ts';
import { liveLogs, stopLiveLogs } from './session/conversation-log.ts';
import type { MessageSpool } from './session/message-spool.ts';
import type { WebSocketRouter } from './session/router.ts';

export const SHUTDOWN_CLOSE_CODE = 1001; // "going away"
export const SHUTDOWN_REASON = 'server shutting down';

/** What shutdown needs of the fastify app (with @fastify/websocket). */
interface App {
  server: { close(): unknown };
  websocketServer: { clients: Set<WebSocket> };
  close(): PromiseLike<unknown>;
}

export interface ShutdownDeps {
  app: App;
  sessions: Set<WebSocketRouter>;
  spool: MessageSpool;
  database: Database;
  /** Speech engines and the like, closed after the HTTP server. */
  closeEngines: () => Promise<void>;
  logger: Logger;
  timeoutMs: number;
  /** Told first, so /healthz says `draining` while the rest goes on. */
  health?: Health;
  /** How long running turns may go on before the sessions close (and interrupt them); 0: not at all. */
  drainTimeoutMs?: number;
}

export async function shutdown(deps: ShutdownDeps): Promise<void> {
  const { app, logger } = deps;
  // A tenth is left to main.ts's backstop, which spools and exits should a step overrun.
  const deadline = Date.now() + deps.timeoutMs * 0.9;
  // What is kept back for spooling and closing once the sessions have had their time.
  const reserve = Math.min(2000, deps.timeoutMs / 4);
  const until = (end: number) => Math.max(0, end - Date.now());

  deps.health?.startDraining();
  app.server.close(); // no new connections; fastify's own close later tolerates this
  const within = (what: string, work: PromiseLike<unknown>, ms: number) => bounded(what, work, ms, logger);
  const drainMs = Math.min(deps.drainTimeoutMs ?? 0, until(deadline - reserve) / 2);
  if (drainMs > 0) await within('letting running turns finish', Promise.all([...deps.sessions].map((s) => s.turnFinished())), drainMs);
  await within('closing the sessions', Promise.all([...deps.sessions].map((s) => s.close(SHUTDOWN_REASON))), until(deadline - reserve));
  await within('storing pending messages', Promise.all([...liveLogs].map((log) => log.flush(until(deadline - reserve)))), until(deadline - reserve));
  await spoolUnstored(deps.spool, logger, Math.min(500, until(deadline)));

  for (const client of app.websocketServer.clients) client.close(SHUTDOWN_CLOSE_CODE, SHUTDOWN_REASON);
  await within('closing the HTTP server', app.close(), until(deadline));
  await within('closing the engines', deps.closeEngines(), until(deadline));
  await within('closing the database', deps.database.close(), until(deadline));
}

/** Stops every conversation log and writes what it could not store to the spool. */
export async function spoolUnstored(spool: MessageSpool, logger: Logger, waitMs: number): Promise<void> {
  const unstored = await stopLiveLogs(waitMs);
  if (unstored.length === 0) return;
  try {
    await spool.spool(unstored);
    logger.warn({ messages: unstored.length, file: spool.spoolPath }, 'unstored messages spooled; they are stored at the next start');
  } catch (error) {
    // Nowhere else to keep them: the error log has them.
    logger.error({ err: error, unstored }, 'could not spool unstored messages');
  }
}

/** Waits for `work` at most `ms`: a step that fails or hangs is logged and the shutdown goes on. */
async function bounded(what: string, work: PromiseLike<unknown>, ms: number, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  const done = Promise.resolve(work).then(
    () => 'done' as const,
    (error: unknown) => logger.error({ err: error }, `shutdown: ${what} failed`),
  );
  if ((await Promise.race([done, timeout])) === 'timeout') logger.warn(`shutdown: ${what} took longer than its share of SHUTDOWN_TIMEOUT_MS`);
  clearTimeout(timer);
}
