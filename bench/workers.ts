// --workers N: the server runs N processes on one port (WORKERS=N). The bench finds each
// worker's pid (GET /healthz on fresh connections: the primary hands each to the next worker),
// knows which process took each session (the X-Chorus-Pid header of its upgrade), scrapes each
// worker's own /metrics (the X-Chorus-Pid header of the answer says whose), reads each one's
// RSS and CPU from /proc, and reports the step's figures per process, checked against the
// same targets as a lone server's.
import { get } from 'node:http';
import { readFileSync } from 'node:fs';
import type { TurnRecord } from './client.ts';
import { analyzeStep } from './analyze.ts';
import { checkTargets, type LoadFigures, type Target } from './report.ts';
import { parsePrometheus, type Sample } from './stats.ts';

/** Clock ticks per second of /proc/<pid>/stat times. */
const USER_HZ = 100;

/** One GET on a connection of its own (no keep-alive), so the next may reach another worker. */
function getOnce(url: string): Promise<{ pid: number; status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ pid: Number(res.headers['x-chorus-pid']), status: res.statusCode ?? 0, body }));
    })
      .on('timeout', function (this: { destroy(e: Error): void }) {
        this.destroy(new Error(`GET ${url} timed out`));
      })
      .on('error', reject);
  });
}

/** The pids of `count` workers, from /healthz answers (the later ones may still be starting: up to `timeoutMs`). */
export async function discoverWorkers(httpUrl: string, count: number, timeoutMs = 60_000): Promise<number[]> {
  const pids = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  while (pids.size < count && Date.now() < deadline) {
    const answer = await getOnce(`${httpUrl}/healthz`);
    const pid = (JSON.parse(answer.body) as { pid?: number }).pid;
    if (typeof pid === 'number' && !pids.has(pid)) pids.add(pid);
    else await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (pids.size < count) throw new Error(`found ${pids.size} of ${count} workers behind ${httpUrl}`);
  return [...pids].sort((a, b) => a - b);
}

/** Every worker's /metrics, by pid. */
export async function scrapeEach(httpUrl: string, pids: readonly number[]): Promise<Map<number, Sample[]>> {
  const scraped = new Map<number, Sample[]>();
  for (let i = 0; i < pids.length * 20 && scraped.size < pids.length; i++) {
    const answer = await getOnce(`${httpUrl}/metrics`);
    if (answer.status !== 200) throw new Error(`GET /metrics answered HTTP ${answer.status}`);
    if (pids.includes(answer.pid) && !scraped.has(answer.pid)) scraped.set(answer.pid, parsePrometheus(answer.body));
  }
  if (scraped.size < pids.length) throw new Error(`scraped ${scraped.size} of ${pids.length} workers' /metrics`);
  return scraped;
}

export function rssMbOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? NaN) / 1024;
}

export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

/** What runStep measured of one worker. */
export interface ProcessLoad {
  pid: number;
  /** The bench's session indexes this worker took. */
  sessions: number[];
  event_loop_delay_ms: LoadFigures['event_loop_delay_ms'];
  rss_mb: number;
  cpu_seconds: number;
}

export interface ProcessReport {
  pid: number;
  sessions: number;
  turns: number;
  errors: number;
  figures: ReturnType<typeof analyzeStep>['figures'];
  event_loop_delay_ms: LoadFigures['event_loop_delay_ms'];
  rss_mb: number;
  cpu_seconds: number;
  /** The lone server's targets, checked on this process's figures (the RSS-per-session one from its own idle RSS); those it had nothing to measure for are left out. */
  targets: Target[];
}

/** Splits a step's turns by the process of their session and analyses each share alone. */
export function perProcess(turns: readonly TurnRecord[], processes: readonly ProcessLoad[], idleRssMb: ReadonlyMap<number, number>): ProcessReport[] {
  return processes.map((p) => {
    const mine = turns.filter((t) => p.sessions.includes(t.plan.session));
    const analysis = analyzeStep(mine, p.sessions.length);
    const errors = mine.filter((t) => t.failed !== undefined).length + analysis.problems.length;
    const idle = idleRssMb.get(p.pid) ?? p.rss_mb;
    const load = { sessions: p.sessions.length, errors, event_loop_delay_ms: p.event_loop_delay_ms, rss_per_session_mb: p.sessions.length > 0 ? Math.round(((p.rss_mb - idle) / p.sessions.length) * 1000) / 1000 : 0 } as LoadFigures;
    const latency = { ...analysis.figures, turns: analysis.turns, interrupts: analysis.interrupts, errors };
    // A target with nothing to measure in this process's share (no interrupt fell to it) is left out, not failed.
    const targets = checkTargets({ latency, load: [load], config: { sessions: p.sessions.length } as never, voice: null }).filter((t) => t.value !== null);
    return { pid: p.pid, sessions: p.sessions.length, turns: analysis.turns, errors, figures: analysis.figures, event_loop_delay_ms: p.event_loop_delay_ms, rss_mb: p.rss_mb, cpu_seconds: p.cpu_seconds, targets };
  });
}
