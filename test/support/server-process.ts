// Runs the real server (src/main.ts) as a child process, for tests that send it signals. It
// listens on a free port (PORT=0); the port is read from its "Chorus is ready" log line.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  wsUrl: string;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
  /** Everything it printed, for failure messages. */
  output(): string;
  /** Kills it if it still runs (for finally blocks). */
  kill(): Promise<void>;
}

const root = fileURLToPath(new URL('../..', import.meta.url));

export async function startServerProcess(env: Record<string, string>, readyTimeoutMs = 60_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: '0', LOG_LEVEL: 'info', WEB_DIR: './no-such-dir', TTS_ENGINE: 'none', STT_ENGINE: 'none', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const port = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready after ${readyTimeoutMs} ms:\n${out}`)), readyTimeoutMs);
    const scan = (chunk: Buffer) => {
      out += chunk.toString();
      for (const line of out.split('\n')) {
        const ready = parseLine(line);
        if (ready?.msg === 'Chorus is ready' && typeof ready.port === 'number') {
          clearTimeout(timer);
          resolve(ready.port);
        }
      }
    };
    child.stdout?.on('data', scan);
    child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before it was ready:\n${out}`));
    });
  });
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await exited;
  };
  try {
    const p = await port;
    return { child, port: p, wsUrl: `ws://127.0.0.1:${p}/ws`, exited, output: () => out, kill };
  } catch (error) {
    await kill();
    throw error;
  }
}

function parseLine(line: string): { msg?: unknown; port?: unknown } | undefined {
  try {
    return JSON.parse(line) as { msg?: unknown; port?: unknown };
  } catch {
    return undefined;
  }
}
