// Who may reach the server (docs/security.md), against the real server over real sockets:
// the Origin check on /ws and on state-changing REST, the Host check against DNS rebinding,
// AUTH_TOKEN (header, ?token= on the upgrade, the login cookie), /healthz staying open, and the
// refusal to listen beyond loopback without a token. Requests go through node:http because
// fetch() may not set Host or Origin.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { ConfigError, loadConfig } from '../src/config.ts';
import type { Database } from '../src/db/client.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { closeTestDatabases, openTestDatabases, resetData } from './support/db.ts';

const TOKEN = 'test-token-0123456789abcdef';
const EVIL = 'http://evil.example';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  json: unknown;
}

/** One HTTP request with exactly these headers (Host and Origin included). */
function call(url: string, opts: { method?: string; headers?: Record<string, string>; body?: unknown } = {}): Promise<Answer> {
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const headers = { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...opts.headers };
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = text;
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON (a page): kept as text
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

type Opened = { ws: WebSocket; first: Promise<{ type: string }> };

/** A WebSocket upgrade: the open socket (and its first message), or the HTTP answer that refused it. */
function upgrade(url: string, headers: Record<string, string> = {}): Promise<Opened | { status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    // Listening before 'open': the greeting can arrive in the same tick.
    const first = new Promise<{ type: string }>((resolveFirst, rejectFirst) => {
      ws.once('message', (data: Buffer) => resolveFirst(JSON.parse(data.toString('utf8')) as { type: string }));
      ws.once('close', () => rejectFirst(new Error('closed before the first message')));
    });
    first.catch(() => undefined);
    ws.once('open', () => resolve({ ws, first }));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') }));
    });
    ws.once('error', (error) => {
      if (!/Unexpected server response/.test(error.message)) reject(error);
    });
  });
}

/** Asserts the upgrade was refused with `status`; closes a socket that opened anyway. */
async function assertRefused(url: string, headers: Record<string, string>, status: number, reason: RegExp): Promise<void> {
  const result = await upgrade(url, headers);
  if ('ws' in result) {
    result.ws.terminate();
    assert.fail(`the upgrade with ${JSON.stringify(headers)} was accepted; expected ${status}`);
  }
  assert.equal(result.status, status);
  assert.match((result.body as { error: string }).error, reason);
}

/** Asserts the upgrade opened a session (the server's `session` greeting). */
async function assertSession(url: string, headers: Record<string, string> = {}): Promise<void> {
  const result = await upgrade(url, headers);
  assert.ok('ws' in result, `the upgrade with ${JSON.stringify(headers)} was refused: ${JSON.stringify(result)}`);
  try {
    assert.equal((await result.first).type, 'session');
  } finally {
    result.ws.terminate();
  }
}

const portOf = (url: string) => new URL(url).port;

let database: Database;

after(closeTestDatabases);

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  database = db.database;
  await resetData(database);
});

describe('Origin: pages of other origins are refused', () => {
  let chorus: ChorusUnderTest;
  let characterId: string;
  before(async () => {
    chorus = await startChorus({ database, env: { ALLOWED_ORIGINS: 'http://trusted.example:5173', ALLOWED_HOSTS: 'chat.example' } });
    characterId = (await chorus.repo.createCharacter({ name: 'Keeper', system_prompt: 'You keep things.' })).id;
  });
  after(() => chorus.close());

  test('the reported attack: a foreign page opening /ws to read and delete data gets 403 before the upgrade', async () => {
    await assertRefused(chorus.wsUrl, { origin: EVIL }, 403, /evil\.example.*ALLOWED_ORIGINS/);
    await assertRefused(chorus.wsUrl, { origin: 'null' }, 403, /ALLOWED_ORIGINS/); // sandboxed frames, file:// pages
    assert.equal(chorus.sessions.size, 0);
  });

  test('the own origin, an ALLOWED_ORIGINS origin and clients without Origin get a session', async () => {
    await assertSession(chorus.wsUrl, { origin: chorus.httpUrl });
    await assertSession(chorus.wsUrl, { origin: 'http://trusted.example:5173' });
    await assertSession(chorus.wsUrl);
  });

  test('state-changing REST from a foreign origin gets 403 and changes nothing; reads are not state-changing', async () => {
    const url = `${chorus.httpUrl}/api/characters/${characterId}`;
    for (const method of ['DELETE', 'PATCH', 'PUT']) {
      const answer = await call(url, { method, headers: { origin: EVIL }, body: method === 'DELETE' ? undefined : { name: 'Pwned' } });
      assert.equal(answer.status, 403, method);
      assert.match((answer.json as { error: string }).error, /ALLOWED_ORIGINS/);
    }
    const post = await call(`${chorus.httpUrl}/api/characters`, { method: 'POST', headers: { origin: EVIL }, body: { name: 'Intruder', system_prompt: 'x' } });
    assert.equal(post.status, 403);
    assert.equal((await chorus.repo.getCharacter(characterId)).name, 'Keeper');
    assert.equal((await chorus.repo.listCharacters()).length, 1);
    // A foreign page cannot read a GET's answer without CORS, which Chorus never grants.
    const read = await call(url, { headers: { origin: EVIL } });
    assert.equal(read.status, 200);
    assert.equal(read.headers['access-control-allow-origin'], undefined);
  });

  test('the own origin may change data', async () => {
    const answer = await call(`${chorus.httpUrl}/api/characters`, { method: 'POST', headers: { origin: chorus.httpUrl }, body: { name: 'Helper', system_prompt: 'x' } });
    assert.equal(answer.status, 201);
  });

  test('behind a TLS proxy the own origin is https on the forwarded Host, as X-Forwarded-Proto says', async () => {
    const url = `${chorus.httpUrl}/api/characters/${(await chorus.repo.createCharacter({ name: 'Proxied', system_prompt: 'x' })).id}`;
    const page = { host: 'chat.example', origin: 'https://chat.example' };
    assert.equal((await call(url, { method: 'DELETE', headers: page })).status, 403, 'an https page is not the origin of a plain-http request');
    assert.equal((await call(url, { method: 'DELETE', headers: { ...page, 'x-forwarded-proto': 'https' } })).status, 200);
    await assertSession(chorus.wsUrl, { ...page, 'x-forwarded-proto': 'https' });
  });
});

describe('Host: DNS rebinding names are refused', () => {
  let chorus: ChorusUnderTest;
  before(async () => {
    chorus = await startChorus({ database, env: { ALLOWED_HOSTS: 'chorus.lan,.home.example' } });
  });
  after(() => chorus.close());

  test('a rebinding name gets 403 on /ws, REST and the page; /healthz stays open', async () => {
    const host = `rebind.evil.example:${portOf(chorus.httpUrl)}`;
    await assertRefused(chorus.wsUrl, { host }, 403, /rebind\.evil\.example.*ALLOWED_HOSTS/);
    await assertRefused(chorus.wsUrl, { host, origin: `http://${host}` }, 403, /ALLOWED_HOSTS/);
    for (const path of ['/api/characters', '/api/conversations', '/']) {
      const answer = await call(`${chorus.httpUrl}${path}`, { headers: { host } });
      assert.equal(answer.status, 403, path);
      assert.match((answer.json as { error: string }).error, /DNS rebinding.*ALLOWED_HOSTS/);
    }
    const remove = await call(`${chorus.httpUrl}/api/conversations/x`, { method: 'DELETE', headers: { host, origin: `http://${host}` } });
    assert.equal(remove.status, 403);
    assert.equal((await call(`${chorus.httpUrl}/healthz`, { headers: { host } })).status, 200);
    assert.equal(chorus.sessions.size, 0);
  });

  test('localhost, addresses, HOST and ALLOWED_HOSTS (with subdomains) are answered', async () => {
    const port = portOf(chorus.httpUrl);
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `192.168.1.20:${port}`, `chorus.lan:${port}`, 'CHORUS.LAN', `home.example:${port}`, `pc.home.example:${port}`]) {
      assert.equal((await call(`${chorus.httpUrl}/api/characters`, { headers: { host } })).status, 200, host);
    }
    await assertSession(chorus.wsUrl, { host: `chorus.lan:${port}`, origin: `http://chorus.lan:${port}` });
    assert.equal((await call(`${chorus.httpUrl}/api/characters`, { headers: { host: 'evilhome.example' } })).status, 403);
  });
});

describe('AUTH_TOKEN', () => {
  let chorus: ChorusUnderTest;
  before(async () => {
    chorus = await startChorus({ database, env: { AUTH_TOKEN: TOKEN } });
  });
  after(() => chorus.close());

  test('REST without the token, or with a wrong one, gets 401 that names what to send', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer wrong-token-0123456789' }, { authorization: `Bearer ${TOKEN}x` }, { authorization: `Basic ${TOKEN}` }];
    for (const headers of attempts) {
      for (const path of ['/api/characters', '/api/session', '/metrics', '/api/voices/engines']) {
        const answer = await call(`${chorus.httpUrl}${path}`, { headers });
        assert.equal(answer.status, 401, `${path} ${JSON.stringify(headers)}`);
        assert.equal(answer.headers['www-authenticate'], 'Bearer realm="Chorus"');
        assert.match((answer.json as { error: string }).error, /Authorization: Bearer/);
        assert.doesNotMatch(JSON.stringify(answer), new RegExp(TOKEN));
      }
    }
    const remove = await call(`${chorus.httpUrl}/api/conversations/x`, { method: 'DELETE' });
    assert.equal(remove.status, 401);
    // ?token= is for the upgrade only: on REST it would end up in logs and history.
    assert.equal((await call(`${chorus.httpUrl}/api/characters?token=${TOKEN}`)).status, 401);
  });

  test('REST with Authorization: Bearer <token> works', async () => {
    const answer = await call(`${chorus.httpUrl}/api/characters`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(answer.status, 200);
    assert.ok(Array.isArray(answer.json));
    const session = await call(`${chorus.httpUrl}/api/session`, { headers: { authorization: `bearer ${TOKEN}` } });
    assert.deepEqual([session.status, session.json], [200, { auth_required: true }]);
  });

  test('/ws: missing or wrong token → 401; header or ?token= → session', async () => {
    await assertRefused(chorus.wsUrl, {}, 401, /Authorization: Bearer/);
    await assertRefused(`${chorus.wsUrl}?token=wrong`, {}, 401, /token/);
    await assertRefused(chorus.wsUrl, { authorization: 'Bearer wrong' }, 401, /token/);
    assert.equal(chorus.sessions.size, 0);
    await assertSession(chorus.wsUrl, { authorization: `Bearer ${TOKEN}` });
    await assertSession(`${chorus.wsUrl}?token=${encodeURIComponent(TOKEN)}`);
    const client = await TestClient.connect(`${chorus.wsUrl}?token=${TOKEN}`); // the test client, too
    await client.close();
  });

  test('POST /api/login: a wrong token is 401 without a cookie; the right one sets a cookie that opens REST and /ws', async () => {
    const wrong = await call(`${chorus.httpUrl}/api/login`, { method: 'POST', body: { token: 'nope' } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers['set-cookie'], undefined);
    const bad = await call(`${chorus.httpUrl}/api/login`, { method: 'POST', body: { secret: TOKEN } });
    assert.equal(bad.status, 400);

    const login = await call(`${chorus.httpUrl}/api/login`, { method: 'POST', headers: { origin: chorus.httpUrl }, body: { token: TOKEN } });
    assert.equal(login.status, 200);
    const setCookie = login.headers['set-cookie']?.[0] ?? '';
    assert.match(setCookie, /^chorus_session=[^;]+;/);
    for (const attribute of [/; HttpOnly/i, /; SameSite=Strict/i, /; Path=\//i, /; Max-Age=\d+/i]) assert.match(setCookie, attribute);
    assert.doesNotMatch(setCookie, /; Secure/i, 'plain http: a Secure cookie would never be sent back');
    assert.doesNotMatch(setCookie, new RegExp(TOKEN), 'the cookie is not the token itself');
    const cookie = setCookie.split(';')[0] ?? '';

    assert.equal((await call(`${chorus.httpUrl}/api/characters`, { headers: { cookie } })).status, 200);
    await assertSession(chorus.wsUrl, { cookie, origin: chorus.httpUrl });
    const forged = `${cookie.slice(0, -2)}xx`;
    assert.equal((await call(`${chorus.httpUrl}/api/characters`, { headers: { cookie: forged } })).status, 401);
    await assertRefused(chorus.wsUrl, { cookie: `chorus_session=${TOKEN}` }, 401, /token/);
  });

  test('the login cookie is Secure when the request came over https (X-Forwarded-Proto)', async () => {
    const login = await call(`${chorus.httpUrl}/api/login`, { method: 'POST', headers: { 'x-forwarded-proto': 'https' }, body: { token: TOKEN } });
    assert.equal(login.status, 200);
    assert.match(login.headers['set-cookie']?.[0] ?? '', /; Secure/i);
  });

  test('login from a foreign origin is refused (no login CSRF)', async () => {
    const answer = await call(`${chorus.httpUrl}/api/login`, { method: 'POST', headers: { origin: EVIL }, body: { token: TOKEN } });
    assert.equal(answer.status, 403);
    assert.equal(answer.headers['set-cookie'], undefined);
  });

  test('/healthz and the web client page stay open', async () => {
    const health = await call(`${chorus.httpUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((health.json as { status: string }).status, 'ok');
    assert.equal((await call(`${chorus.httpUrl}/`)).status, 200);
  });
});

test('login attempts are limited per client: guessing the token meets 429, and so does the right token then', async () => {
  const guarded = await startChorus({ database, env: { AUTH_TOKEN: TOKEN } });
  try {
    const attempt = (token: string) => call(`${guarded.httpUrl}/api/login`, { method: 'POST', body: { token } });
    for (let i = 0; i < 10; i++) assert.equal((await attempt(`guess-${i}`)).status, 401, `guess ${i}`);
    const limited = await attempt(TOKEN);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['set-cookie'], undefined);
    assert.ok(Number(limited.headers['retry-after']) > 0, 'says when to try again');
    assert.equal((await call(`${guarded.httpUrl}/api/characters`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200, 'other routes are not limited');
  } finally {
    await guarded.close();
  }
});

test('without AUTH_TOKEN (loopback default) REST, /ws and login need nothing', async () => {
  const chorus = await startChorus({ database });
  try {
    assert.equal((await call(`${chorus.httpUrl}/api/characters`)).status, 200);
    assert.deepEqual((await call(`${chorus.httpUrl}/api/session`)).json, { auth_required: false });
    assert.deepEqual((await call(`${chorus.httpUrl}/api/login`, { method: 'POST', body: { token: 'anything' } })).json, { auth_required: false });
    await assertSession(chorus.wsUrl);
  } finally {
    await chorus.close();
  }
});

describe('configuration', () => {
  test('HOST beyond loopback without AUTH_TOKEN is refused with what to set; ALLOW_UNAUTHENTICATED=true or a token allows it', () => {
    for (const HOST of ['0.0.0.0', '::', '192.168.1.20', 'chorus.lan']) {
      assert.throws(
        () => loadConfig({ HOST }),
        (error: unknown) => error instanceof ConfigError && /AUTH_TOKEN/.test(error.message) && /ALLOW_UNAUTHENTICATED=true/.test(error.message),
        HOST,
      );
      assert.equal(loadConfig({ HOST, ALLOW_UNAUTHENTICATED: 'true' }).access.authToken, undefined);
      assert.equal(loadConfig({ HOST, AUTH_TOKEN: TOKEN }).access.authToken, TOKEN);
    }
    for (const HOST of ['127.0.0.1', '127.0.0.2', 'localhost', '::1']) assert.doesNotThrow(() => loadConfig({ HOST }), HOST);
  });

  test('the start path refuses too: npm start with HOST=0.0.0.0 and no token exits with the message', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { PATH: process.env.PATH, HOST: '0.0.0.0', PORT: '0', DATA_DIR: 'memory://', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 45_000, // a server that starts anyway is killed, and the exit code check fails
      killSignal: 'SIGKILL',
    });
    try {
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      assert.equal(code, 1);
      assert.match(stderr, /HOST="0\.0\.0\.0".*set AUTH_TOKEN.*ALLOW_UNAUTHENTICATED=true/s);
    } finally {
      child.kill();
    }
  });

  test('bad values are refused, naming the entry; a bad token is never printed', () => {
    assert.throws(() => loadConfig({ ALLOWED_ORIGINS: 'https://ok.example, chat.example.com' }), /ALLOWED_ORIGINS.*"chat\.example\.com" is not an origin/);
    assert.throws(() => loadConfig({ ALLOWED_ORIGINS: 'https://ok.example/path' }), /is not an origin/);
    assert.throws(() => loadConfig({ ALLOWED_HOSTS: 'chat.example.com:443' }), /ALLOWED_HOSTS.*is not a host name/);
    assert.throws(
      () => loadConfig({ AUTH_TOKEN: 'short-secret' }),
      (error: unknown) => error instanceof ConfigError && /AUTH_TOKEN.*at least 16/.test(error.message) && !error.message.includes('short-secret'),
    );
    const access = loadConfig({ ALLOWED_ORIGINS: 'https://Chat.Example.com:443/, http://localhost:5173', ALLOWED_HOSTS: 'Chat.Example.com' }).access;
    assert.deepEqual(access.allowedOrigins, ['https://chat.example.com', 'http://localhost:5173']);
    assert.deepEqual(access.allowedHosts, ['chat.example.com']);
  });
});
