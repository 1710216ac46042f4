// The server under test, as a user runs it: its own process (`node --import tsx src/main.ts`),
// configured by environment variables, on a free port. Gives its pid (to read RSS and CPU time
// from /proc), scrapes /metrics, and stops it gracefully so a CPU profile gets written.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { WebSocket } from 'ws';
import { parsePrometheus, type Sample } from './stats.ts';
import { cpuSecondsOf, discoverWorkers, rssMbOf } from './workers.ts';

export interface ServerProcess {
  pid: number;
  /** --workers: the worker processes' pids (rssMb and cpuSeconds then add theirs up; the primary serves no one). */
  workerPids: number[];
  httpUrl: string;
  wsUrl: string;
  scrape(): Promise<Sample[]>;
  /** Resident set size from /proc/<pid>/status, MiB. */
  rssMb(): number;
  /** User + system CPU seconds from /proc/<pid>/stat. */
  cpuSeconds(): number;
  /** The last lines the server wrote (for error messages). */
  tail(): string;
  /** A full garbage collection in the server (through its inspector), so an RSS reading holds no garbage. */
  collectGarbage(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

export async function startServer(opts: {
  root: string;
  env: Record<string, string>;
  logFile: string;
  /** Directory for a V8 CPU profile (--cpu-prof), written when the server exits. */
  profileDir?: string;
  /** WORKERS of the server (its env must say the same): their pids are found once it is up. */
  workers?: number;
  startTimeoutMs?: number;
}): Promise<ServerProcess> {
  const port = await freePort();
  // --inspect (loopback, any port) lets the bench ask for a garbage collection before it reads
  // the idle RSS; nothing attaches to it otherwise.
  const args = [
    '--inspect=127.0.0.1:0',
    ...(opts.profileDir ? ['--cpu-prof', '--cpu-prof-dir', opts.profileDir] : []),
    '--import',
    'tsx',
    'src/main.ts',
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, HOST: '127.0.0.1', PORT: String(port) };
  const child: ChildProcess = spawn(process.execPath, args, { cwd: opts.root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(opts.logFile);
  const lines: string[] = [];
  let inspector: string | undefined;
  const keep = (chunk: Buffer) => {
    log.write(chunk);
    const text = chunk.toString('utf8');
    inspector ??= /Debugger listening on (ws:\/\/\S+)/.exec(text)?.[1];
    lines.push(...text.split('\n').filter((l) => l !== '' && !l.startsWith('Debugger listening') && !l.startsWith('For help, see')));
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited: number | null | undefined;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = code ?? (signal ? -1 : null);
      resolve();
    }),
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the server process');
  const httpUrl = `http://127.0.0.1:${port}`;
  const tail = () => lines.join('\n');

  const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
  for (;;) {
    if (exited !== undefined) throw new Error(`the server exited during start-up (code ${exited}):\n${tail()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the server did not answer /healthz within ${opts.startTimeoutMs ?? 60_000} ms:\n${tail()}`);
    }
    try {
      const response = await fetch(`${httpUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  let workerPids: number[] = [];
  try {
    if ((opts.workers ?? 1) > 1) workerPids = await discoverWorkers(httpUrl, opts.workers ?? 1);
  } catch (error) {
    child.kill('SIGTERM'); // no handle is returned, so nothing else would stop it
    await exit;
    throw error;
  }
  const measured = workerPids.length > 0 ? workerPids : [pid];
  return {
    pid,
    workerPids,
    httpUrl,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    async scrape() {
      const response = await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
      if (!response.ok) throw new Error(`GET /metrics answered HTTP ${response.status}`);
      return parsePrometheus(await response.text());
    },
    rssMb() {
      return measured.reduce((sum, p) => sum + rssMbOf(p), 0);
    },
    cpuSeconds() {
      return measured.reduce((sum, p) => sum + cpuSecondsOf(p), 0);
    },
    tail,
    async collectGarbage() {
      if (!inspector) throw new Error('the server printed no inspector address');
      const ws = new WebSocket(inspector);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      try {
        for (let id = 1; id <= 2; id++) {
          const done = new Promise<void>((resolve) => {
            const onMessage = (data: Buffer) => {
              if ((JSON.parse(data.toString('utf8')) as { id?: number }).id === id) {
                ws.off('message', onMessage);
                resolve();
              }
            };
            ws.on('message', onMessage);
          });
          ws.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }));
          await done;
        }
      } finally {
        ws.close();
      }
    },
    async stop() {
      if (exited === undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exit;
        clearTimeout(timer);
      }
      await new Promise((resolve) => log.end(resolve));
    },
  };
}
