// Starts and supervises the embedded database's process (src/db/embedded-host-process.ts):
// PGlite in DATA_DIR behind a unix socket in a private (0700) temporary directory, reached by
// every server process with `pg` like any PostgreSQL server. Should the process die, it is
// started again on the same socket after a growing pause, and the pools reconnect by
// themselves; queries fail meanwhile (and /healthz says so).
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { HostMessage, HostRequest } from './embedded-host-process.ts';

const entry = fileURLToPath(new URL('./embedded-host-process.ts', import.meta.url));
/** PostgreSQL's socket naming (`<dir>/.s.PGSQL.<port>`), which pg follows for a directory host. */
const SOCKET_PORT = 5432;
const RESTART_DELAYS_MS = [100, 500, 1000, 2000, 5000];

export interface EmbeddedHost {
  /** postgres:// URL of the socket: pass it as DATABASE_URL to every server process. */
  url: string;
  /** The current process's pid (for tests and logs). */
  pid(): number | undefined;
  /** Stops the database process (it flushes PGlite) and removes the socket directory. */
  close(): Promise<void>;
  /** Kills the database process outright, as a crash would (tests); resolves once it has ended. */
  kill(): Promise<void>;
}

/** `restart: false` (tests): a process that dies stays dead, so what the servers see then can be checked. */
export async function startEmbeddedHost(dataDir: string, logger: Logger, options: { restart?: boolean } = {}): Promise<EmbeddedHost> {
  const socketDir = await mkdtemp(join(tmpdir(), 'chorus-db-'));
  const request: HostRequest = { dataDir, socketPath: join(socketDir, `.s.PGSQL.${SOCKET_PORT}`) };
  let child: ChildProcess | undefined;
  let closing = false;
  let failures = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  const restartAfter = (delay: number | undefined) => (restartTimer = setTimeout(() => void relaunch(), delay ?? 5000));

  const launch = async (): Promise<void> => {
    const started = spawnHost(request);
    child = started.child;
    await started.ready;
    started.child.once('exit', (code, signal) => {
      if (closing || options.restart === false) return;
      const delay = RESTART_DELAYS_MS[Math.min(failures++, RESTART_DELAYS_MS.length - 1)];
      logger.error({ code, signal, restart_in_ms: delay }, 'the embedded database process ended; restarting it');
      restartAfter(delay);
    });
  };
  const relaunch = async () => {
    if (closing) return;
    try {
      await launch();
      logger.info({ pid: child?.pid }, 'the embedded database process is back');
      failures = 0;
    } catch (error) {
      const delay = RESTART_DELAYS_MS[Math.min(failures++, RESTART_DELAYS_MS.length - 1)];
      logger.error({ err: error, restart_in_ms: delay }, 'the embedded database process did not start');
      restartAfter(delay);
    }
  };

  try {
    await launch();
  } catch (error) {
    await rm(socketDir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `postgres://postgres@${encodeURIComponent(socketDir)}:${SOCKET_PORT}/postgres`,
    pid: () => child?.pid,
    close: async () => {
      closing = true;
      clearTimeout(restartTimer);
      await stop(child, 'SIGTERM');
      await rm(socketDir, { recursive: true, force: true });
    },
    kill: () => stop(child, 'SIGKILL'),
  };
}

async function stop(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

/** Forks the process; `ready` settles when it serves or has failed. */
function spawnHost(request: HostRequest): { child: ChildProcess; ready: Promise<void> } {
  // process.execArgv carries tsx's loader, which the .ts entry needs.
  const child = fork(entry, [], { env: { ...process.env, CHORUS_EMBEDDED_HOST: JSON.stringify(request) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = new Promise<void>((resolve, reject) => {
    const onExit = (code: number | null, signal: string | null) => reject(new Error(`the embedded database process exited (${code ?? signal}) before it was ready`));
    child.once('exit', onExit);
    child.on('message', (message: HostMessage) => {
      child.off('exit', onExit);
      if (message.type === 'ready') resolve();
      else reject(new Error(`the embedded database did not open: ${message.error}`));
    });
  });
  return { child, ready };
}
