// propagation_ms: how long a change committed through one server process takes to reach a client
// of another, pushed (src/db/change-bus.ts: LISTEN/NOTIFY). Two server processes on a fresh
// database of the PostgreSQL server at BENCH_DATABASE_URL (or TEST_DATABASE_URL); a client of
// process B has a conversation loaded; through process A's REST API the bench alternately edits a
// message of it (→ message_updated on B) and switches a character on or off (→ the cast pushed on
// B, active_characters_data). Each sample runs from the REST request sent (so it includes A's own
// request, commit and NOTIFY: an upper bound of commit → received) to the frame received on B.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { startServer, type ServerProcess } from './server.ts';
import { type Summary, summarize } from './stats.ts';
import { runOnServer } from '../test/support/db.ts';

export interface PropagationFigures {
  /** REST request sent to process A → the pushed frame received by a client of process B, both kinds. */
  propagation_ms: Summary | null;
  /** A message edit → message_updated. */
  message_ms: Summary | null;
  /** A character switched on or off → active_characters_data. */
  cast_ms: Summary | null;
  /** The REST request's own round trip on A (sent → answered, the change committed and NOTIFYed): the part of propagation_ms before the bus. */
  request_ms: Summary | null;
  processes: number;
  note: string | null;
}

/** The target: a change made in one process reaches a session in another within 100 ms (p99). */
export const PROPAGATION_P99_MS = 100;

const WARM_UP = 5;

export const skippedPropagation = (note: string): PropagationFigures => ({ propagation_ms: null, message_ms: null, cast_ms: null, request_ms: null, processes: 2, note });

export async function benchPropagation(o: { root: string; baseUrl: string | undefined; samples: number; logDir: string; log: (line: string) => void }): Promise<PropagationFigures> {
  if (!o.baseUrl) return skippedPropagation('skipped: set BENCH_DATABASE_URL or TEST_DATABASE_URL (PostgreSQL) for the propagation figure');
  const name = `chorus_bench_propagation_${randomUUID().replaceAll('-', '').slice(0, 10)}`;
  const url = new URL(o.baseUrl);
  url.pathname = `/${name}`;
  await runOnServer(o.baseUrl, `create database ${name}`);
  const dataDir = await mkdtemp(join(tmpdir(), 'chorus-bench-propagation-'));
  const servers: ServerProcess[] = [];
  try {
    const env = (i: number) => ({
      DATABASE_URL: url.toString(),
      DATA_DIR: join(dataDir, `p${i}`),
      LLM_BASE_URL: 'http://127.0.0.1:9/v1', // no turn is taken: the LLM is never asked
      LLM_API_KEY: 'bench',
      TTS_ENGINE: 'none',
      STT_ENGINE: 'none',
      SEED_STARTER_CAST: 'false',
      LOG_LEVEL: 'warn',
      WEB_DIR: join(dataDir, 'no-web-client'),
    });
    o.log(`\nPropagation: two server processes on PostgreSQL (database ${name}), ${o.samples} changes …`);
    servers.push(await startServer({ root: o.root, env: env(0), logFile: join(o.logDir, 'server-propagation-a.log') }));
    servers.push(await startServer({ root: o.root, env: env(1), logFile: join(o.logDir, 'server-propagation-b.log') }));
    const [a, b] = servers as [ServerProcess, ServerProcess];
    return await measure(a, b, o.samples);
  } finally {
    for (const s of servers) await s.stop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
    await runOnServer(o.baseUrl, `drop database if exists ${name} with (force)`).catch(() => {});
  }
}

async function measure(a: ServerProcess, b: ServerProcess, samples: number): Promise<PropagationFigures> {
  const post = <T>(method: string, path: string, body: unknown) => rest<T>(a.httpUrl, method, path, body);
  await post('POST', '/api/characters', { name: 'Ada', system_prompt: 'You are Ada.' });
  const bea = await post<{ id: string }>('POST', '/api/characters', { name: 'Bea', system_prompt: 'You are Bea.', is_active: false });
  const conversation = await post<{ conversation_id: string }>('POST', '/api/conversations', { title: 'Propagation' });
  const message = await post<{ message_id: string }>('POST', `/api/conversations/${conversation.conversation_id}/messages`, { role: 'user', content: 'v0' });

  // One client of B has the conversation loaded; another is in a new conversation, whose cast
  // follows the characters switched on (a loaded conversation keeps its own cast).
  const { client, session } = await FrameClient.connect(`${b.wsUrl}?greetings=off`);
  const { client: caster, session: casterSession } = await FrameClient.connect(`${b.wsUrl}?greetings=off`);
  try {
    await Promise.all([session, casterSession]);
    const loaded = client.wait((f) => f.type === 'conversation_loaded');
    client.send({ type: 'load_conversation', data: { conversation_id: conversation.conversation_id } });
    await loaded;

    const messageMs: number[] = [];
    const castMs: number[] = [];
    const requestMs: number[] = [];
    const answered = async (request: Promise<unknown>) => {
      const from = performance.now();
      await request;
      return performance.now() - from;
    };
    let active = false;
    for (let i = 1; i <= samples + WARM_UP; i++) {
      const started = performance.now();
      let at: number;
      if (i % 2 === 0) {
        const content = `v${i}`;
        const pushed = client.wait((f) => f.type === 'message_updated' && contentOf(f) === content);
        const took = await answered(post('PATCH', `/api/messages/${message.message_id}`, { content }));
        if (i > WARM_UP) requestMs.push(took);
        at = await pushed;
        if (i > WARM_UP) messageMs.push(at - started);
      } else {
        active = !active;
        const want = active;
        const pushed = caster.wait((f) => f.type === 'active_characters_data' && castHas(f, 'Bea') === want);
        const took = await answered(post('PATCH', `/api/characters/${bea.id}`, { is_active: want }));
        if (i > WARM_UP) requestMs.push(took);
        at = await pushed;
        if (i > WARM_UP) castMs.push(at - started);
      }
    }
    return {
      propagation_ms: summarize([...messageMs, ...castMs], 1, 2),
      message_ms: summarize(messageMs, 1, 2),
      cast_ms: summarize(castMs, 1, 2),
      request_ms: summarize(requestMs, 1, 2),
      processes: 2,
      note: null,
    };
  } finally {
    client.close();
    caster.close();
  }
}

async function rest<T>(base: string, method: string, path: string, body: unknown): Promise<T> {
  const response = await fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered HTTP ${response.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text) as T;
}

/** Frames are read loosely here (the tests validate them against the protocol schemas). */
type Frame = { type: string; data?: unknown };
const contentOf = (f: Frame) => (typeof f.data === 'object' && f.data !== null && Object.hasOwn(f.data, 'content') ? (f.data as { content: unknown }).content : undefined);
const castHas = (f: Frame, name: string) => Array.isArray(f.data) && f.data.some((c: unknown) => typeof c === 'object' && c !== null && (c as { name?: unknown }).name === name);

/** A WebSocket client that stamps each text frame on arrival and resolves waits with that stamp. */
class FrameClient {
  private waiters: Array<{ match: (f: Frame) => boolean; resolve: (at: number) => void }> = [];

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const at = performance.now();
      if (isBinary) return;
      const frame = JSON.parse(data.toString('utf8')) as Frame;
      const waiter = this.waiters.find((w) => w.match(frame));
      if (!waiter) return;
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(at);
    });
  }

  /** `session`: the session message's arrival (waited for from before the socket opens). */
  static async connect(url: string): Promise<{ client: FrameClient; session: Promise<number> }> {
    const ws = new WebSocket(url);
    const client = new FrameClient(ws);
    const session = client.wait((f) => f.type === 'session');
    session.catch(() => {});
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return { client, session };
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  /** Resolves with the arrival time of the next frame matching, from now on; rejects after 10 s. */
  wait(match: (f: Frame) => boolean): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('propagation: a pushed message did not arrive within 10 s')), 10_000);
      this.waiters.push({
        match,
        resolve: (at) => {
          clearTimeout(timer);
          resolve(at);
        },
      });
    });
  }

  close(): void {
    this.ws.close();
  }
}

const fmt = (v: number | null | undefined) => (v === null || v === undefined ? '–' : v.toFixed(1));

/** One line per figure: p50 / p99 / max (n). */
export function propagationText(p: PropagationFigures): string {
  if (p.note) return `propagation_ms: – (${p.note})`;
  const row = (label: string, s: Summary | null | undefined) => `  ${label.padEnd(38)} ${fmt(s?.p50)} / ${fmt(s?.p99)} / ${fmt(s?.max)} ms (n ${s?.n ?? 0})`;
  return [
    `Propagation between ${p.processes} server processes on PostgreSQL (REST request to A sent → pushed frame on B; p50 / p99 / max):`,
    row('propagation_ms (both kinds)', p.propagation_ms),
    row('  message edit → message_updated', p.message_ms),
    row('  character → active_characters_data', p.cast_ms),
    row('of which the REST request on A', p.request_ms),
  ].join('\n');
}
