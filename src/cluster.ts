// WORKERS > 1: this process is the primary. It serves no one itself; it forks that many server
// processes (node:cluster), which share its port (the primary hands each new connection to one
// of them in turn) and each keep their own sessions. It restarts a worker that dies, after a
// pause that grows while the worker keeps dying young, and on SIGTERM/SIGINT it passes the
// signal on, waits for every worker's own graceful shutdown (src/shutdown.ts), then ends.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';

/** A worker that ran this long before dying is restarted at once, not after a longer pause. */
const HEALTHY_AFTER_MS = 10_000;
const RESTART_DELAYS_MS = [100, 500, 1000, 2000, 5000];

export interface SuperviseOptions {
  count: number;
  /** Variables every worker gets besides the primary's own. */
  env: Record<string, string>;
  logger: Logger;
  /** The workers' SHUTDOWN_TIMEOUT_MS: a worker still running that long after SIGTERM (plus a margin) is killed. */
  shutdownTimeoutMs: number;
  /** After the last worker has ended (closes the embedded database). */
  onStopped?: () => Promise<void>;
}

interface Slot {
  index: number;
  worker: Worker;
  startedAt: number;
  failures: number;
  listening: boolean;
}

/** Resolves once every worker listens (logged as "Chorus is ready"); rejects if one dies before it does. */
export function superviseWorkers(options: SuperviseOptions): Promise<void> {
  const { logger } = options;
  const slots = new Map<number, Slot>();
  let stopping = false;
  let ready = false;

  const fork = (index: number, failures: number): void => {
    // Only the first worker of the first start replays DATA_DIR's spool: once is enough, and twice would store twice.
    const replay = index === 0 && !slots.has(index) ? '1' : '0';
    const worker = cluster.fork({ ...options.env, CHORUS_WORKER_INDEX: String(index), CHORUS_REPLAY_SPOOL: replay });
    slots.set(index, { index, worker, startedAt: Date.now(), failures, listening: false });
  };

  const started = new Promise<void>((resolve, reject) => {
    cluster.on('listening', (worker, address) => {
      const slot = slotOf(slots, worker);
      if (!slot) return;
      slot.listening = true;
      if (ready || ![...slots.values()].every((s) => s.listening)) return;
      ready = true;
      logger.info({ port: address.port, workers: options.count, pids: [...slots.values()].map((s) => s.worker.process.pid) }, 'Chorus is ready');
      resolve();
    });
    cluster.on('exit', (worker, code, signal) => {
      const slot = slotOf(slots, worker);
      if (!slot || stopping) return;
      if (!ready) {
        reject(new Error(`worker ${slot.index} exited (${code ?? signal}) before it was ready`));
        return void stop('a worker failed to start', 1);
      }
      const failures = Date.now() - slot.startedAt > HEALTHY_AFTER_MS ? 0 : slot.failures + 1;
      const delay = RESTART_DELAYS_MS[Math.min(failures, RESTART_DELAYS_MS.length - 1)];
      logger.error({ worker: slot.index, pid: worker.process.pid, code, signal, restart_in_ms: delay }, 'a worker ended; restarting it');
      setTimeout(() => stopping || fork(slot.index, failures), delay);
    });
  });

  const stop = async (why: string, exitCode = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ why, workers: slots.size }, 'shutting down the workers');
    const running = [...slots.values()].map((s) => s.worker).filter((w) => !w.isDead());
    const exited = running.map((w) => new Promise((resolve) => (w.isDead() ? resolve(undefined) : w.once('exit', resolve))));
    for (const worker of running) worker.process.kill('SIGTERM');
    // Each worker keeps within its own SHUTDOWN_TIMEOUT_MS; one that hangs past it is killed.
    const backstop = setTimeout(() => running.forEach((w) => w.isDead() || w.process.kill('SIGKILL')), options.shutdownTimeoutMs + 2000);
    await Promise.all(exited);
    clearTimeout(backstop);
    await options.onStopped?.().catch((error: unknown) => logger.error({ err: error }, 'closing after the workers failed'));
    process.exit(exitCode);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  for (let index = 0; index < options.count; index++) fork(index, 0);
  return started;
}

const slotOf = (slots: Map<number, Slot>, worker: Worker) => [...slots.values()].find((s) => s.worker === worker);
