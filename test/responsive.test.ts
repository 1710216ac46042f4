// The server stays responsive while espeak speaks long replies for several connections. The
// server runs as its own process (as a user runs it), so its event loop is measured alone, from
// its own /metrics histogram, not mixed with the test's clients and the test runner's hooks.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type ServerProcess, startServer } from '../bench/server.ts';
import { parsePrometheus, type Sample } from '../bench/stats.ts';
import { TestClient } from './support/client.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

let engines: EngineServer;
let server: ServerProcess;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'chorus-responsive-'));
  engines = await startEngineServer();
  server = await startServer({
    root: process.cwd(),
    env: { DATA_DIR: join(dir, 'data'), LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k', TTS_ENGINE: 'espeak', LOG_LEVEL: 'warn', WEB_DIR: join(dir, 'no-web') },
    logFile: join(dir, 'server.log'),
    ...(process.env.PROFILE_DIR ? { profileDir: process.env.PROFILE_DIR } : {}),
  });
});

after(async () => {
  await server?.stop();
  await engines?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Cumulative bucket counts of the server's event-loop delay histogram. */
const buckets = (samples: Sample[]) =>
  new Map(samples.filter((s) => s.name === 'chorus_event_loop_delay_seconds_bucket').map((s) => [s.labels.le ?? '', s.value]));

/** The upper bound (seconds) of the bucket holding the 99th percentile of the samples between two scrapes. */
function p99Between(before: Sample[], after: Sample[]): { p99: number; count: number } {
  const [b, a] = [buckets(before), buckets(after)];
  const bounds = [...a.keys()].sort((x, y) => Number(x === '+Inf' ? Infinity : x) - Number(y === '+Inf' ? Infinity : y));
  const count = (a.get('+Inf') ?? 0) - (b.get('+Inf') ?? 0);
  const bound = bounds.find((le) => (a.get(le) ?? 0) - (b.get(le) ?? 0) >= count * 0.99) ?? '+Inf';
  return { p99: bound === '+Inf' ? Infinity : Number(bound), count };
}

test('the event loop stays responsive while espeak speaks long replies for four connections', async () => {
  // Run-on sentences: each takes espeak tens of milliseconds, which on the event loop would stall it.
  const runOn = 'and then we walked along the river past the old mill and the bakery and the school ';
  const reply = Array.from({ length: 4 }, (_, i) => `Part ${i + 1}: ${runOn.repeat(4).trim()}.`).join(' ');
  engines.chat.script(() => ({ tokens: tokenize(reply), tokenDelayMs: 2 }));
  const clients = await Promise.all([1, 2, 3, 4].map(() => TestClient.connect(server.wsUrl)));
  try {
    const before = await server.scrape();
    for (const c of clients) c.send({ type: 'user_message', data: { text: 'Mira, tell me everything.' } });
    // Audio is paced to playback; by four seconds in, each reply has been synthesized up to the
    // speech worker's bound (about twelve seconds of audio each).
    const seconds = (c: TestClient) => c.frames.reduce((n, f) => n + (f.type === 'binary' ? f.data.length : 0), 0) / 2 / 22_050;
    await Promise.all(clients.map((c) => c.waitFor(() => seconds(c) >= 4, 'four seconds of audio', 30_000)));
    const after = await server.scrape();
    const { p99, count } = p99Between(before, after);
    assert.ok(count > 100, `${count} event-loop samples`);
    assert.ok(p99 <= 0.05, `the server's event-loop delay p99 is in the bucket up to ${p99 * 1000} ms`);
    for (const c of clients) assert.deepEqual(c.ofType('error'), []);
  } finally {
    for (const c of clients) await c.close();
  }
});
