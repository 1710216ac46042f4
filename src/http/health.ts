// What /healthz answers: whether this process should be sent users. 200 while it serves; 503
// as soon as it drains (SIGTERM: a load balancer stops routing to it at once) or when its
// database does not answer `select 1` within DB_CHECK_TIMEOUT_MS. The engines are reported as
// configured, not probed: a probe would cost a paid call or a synthesis every few seconds, and
// an engine failing a turn is already answered to that session and counted in /metrics.
// The body names no URL, key or data: /healthz is open to anyone who can reach the port.
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import type { Llm } from '../llm/chat.ts';
import type { SessionDeps } from '../session/router.ts';
import { TtsRegistry } from '../speech/registry.ts';

const DB_CHECK_TIMEOUT_MS = 1000;

export interface HealthDeps {
  database: Database;
  /** `embedded` when the database is the embedded process reached over its socket. */
  databaseKind?: 'embedded' | 'postgres' | 'pglite';
  llm: Llm;
  tts: SessionDeps['tts'];
  stt: SessionDeps['stt'];
  /** The open sessions of this process. */
  sessionCount: () => number;
}

export interface HealthReport {
  status: 'ok' | 'draining' | 'database_unavailable';
  pid: number;
  /** This process's index under WORKERS (0 when it serves alone). */
  worker: number;
  sessions: number;
  database: { kind: string; ok: boolean; latency_ms: number; error?: 'timeout' | 'unreachable' };
  engines: {
    llm: { configured: boolean; model: string };
    tts: { configured: boolean; default: string | null; engines: string[] };
    stt: { configured: boolean; engine: string | null };
  };
}

export class Health {
  private drainingSince: number | undefined;
  /** One check at a time: probes that arrive meanwhile share it. */
  private check: Promise<HealthReport['database']> | undefined;
  /** The `select 1` in flight, which may outlive the check that started it. */
  private query: Promise<'ok' | 'unreachable'> | undefined;

  constructor(
    private readonly deps: HealthDeps,
    private readonly worker = Number(process.env.CHORUS_WORKER_INDEX ?? 0),
  ) {}

  /** From now on /healthz answers 503 `draining` (and /ws refuses new sessions). */
  startDraining(): void {
    this.drainingSince ??= Date.now();
  }

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }

  async report(): Promise<{ httpStatus: 200 | 503; body: HealthReport }> {
    const database = await (this.check ??= this.checkDatabase().finally(() => (this.check = undefined)));
    const status = this.draining ? 'draining' : database.ok ? 'ok' : 'database_unavailable';
    const { llm, tts, stt } = this.deps;
    const body: HealthReport = {
      status,
      pid: process.pid,
      worker: this.worker,
      sessions: this.deps.sessionCount(),
      database,
      engines: {
        llm: { configured: llm.client !== undefined, model: llm.defaultModel },
        tts: { configured: tts !== undefined, default: tts?.engine.name ?? null, engines: engineNames(tts) },
        stt: { configured: stt !== undefined, engine: stt?.engine.name ?? null },
      },
    };
    return { httpStatus: status === 'ok' ? 200 : 503, body };
  }

  private async checkDatabase(): Promise<HealthReport['database']> {
    const kind = this.deps.databaseKind ?? this.deps.database.kind;
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), DB_CHECK_TIMEOUT_MS)));
    // A query that outlived its time is waited for again rather than joined by another: probes of a hung database must not fill the pool.
    const query = (this.query ??= this.deps.database.db
      .execute(sql`select 1`)
      .then(
        () => 'ok' as const,
        () => 'unreachable' as const,
      )
      .finally(() => (this.query = undefined)));
    const outcome = await Promise.race([query, timeout]);
    clearTimeout(timer);
    const latency_ms = Math.round((performance.now() - started) * 10) / 10;
    return outcome === 'ok' ? { kind, ok: true, latency_ms } : { kind, ok: false, latency_ms, error: outcome };
  }
}

/** Every configured engine (a registry), the default first; a lone engine (tests) as it is. */
function engineNames(tts: SessionDeps['tts']): string[] {
  if (!tts) return [];
  return tts.engine instanceof TtsRegistry ? tts.engine.list().map((e) => e.name) : [tts.engine.name];
}
