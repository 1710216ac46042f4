// Turns on one conversation take turns: the lock itself (src/session/turn-lock.ts) in-process and
// across "processes" (two TurnLocks on one PostgreSQL, as two servers would hold them), a wait
// cut short when its session goes; and two sessions of one server process on one conversation,
// the second's reply prompted with the first's (test/scale-out.test.ts does it across processes).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { conversationKey, TurnLocks } from '../src/session/turn-lock.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { closeTestDatabases, openTestDatabases } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const URL_ = process.env.TEST_DATABASE_URL;
const needsPostgres = URL_ ? {} : { skip: 'needs PostgreSQL: set TEST_DATABASE_URL' };

describe('the turn lock', () => {
  test('in-process: the second waits for the first, in order; a waiter that gives up lets the next one through', async () => {
    const locks = new TurnLocks();
    const id = randomUUID();
    const order: string[] = [];
    const first = await locks.acquire(id, new AbortController().signal);
    assert.equal(first.waited, false);
    const quitter = new AbortController();
    const second = locks.acquire(id, quitter.signal);
    const third = locks.acquire(id, new AbortController().signal).then((held) => (order.push('third'), held));
    quitter.abort(new Error('session closed'));
    await assert.rejects(second, /session closed/);
    order.push('first released');
    await first.release();
    const held = await third;
    assert.deepEqual(order, ['first released', 'third']);
    assert.equal(held.waited, true);
    await held.release();
    const other = await locks.acquire(randomUUID(), new AbortController().signal);
    assert.equal(other.waited, false, 'another conversation is not held up');
    await other.release();
  });

  test('across processes: a PostgreSQL advisory lock per conversation, waited for on its own connection and given up by closing it', needsPostgres, async () => {
    const [a, b] = [new TurnLocks(), new TurnLocks()];
    a.useDatabase(URL_!);
    b.useDatabase(URL_!);
    const admin = new pg.Client({ connectionString: URL_ });
    await admin.connect();
    try {
      const id = randomUUID();
      const held = await a.acquire(id, new AbortController().signal);
      assert.equal(held.shared, true);
      const waiting = async () => {
        const { rows } = await admin.query(
          `select count(*)::int as n from pg_locks l join pg_stat_activity s on s.pid = l.pid
            where l.locktype = 'advisory' and not l.granted and l.classid = 7245002 and l.objid = $1::int4::oid`,
          [conversationKey(id)],
        );
        return rows[0].n as number;
      };
      // b gives up while waiting: its blocked pg_advisory_lock ends with its connection.
      const quitter = new AbortController();
      const given = b.acquire(id, quitter.signal);
      await eventually(async () => ((await waiting()) === 1 ? true : undefined), 'b waiting in PostgreSQL');
      quitter.abort(new Error('session closed'));
      await assert.rejects(given, /session closed/);
      await eventually(async () => ((await waiting()) === 0 ? true : undefined), 'the wait gone');

      const order: string[] = [];
      const next = b.acquire(id, new AbortController().signal).then((h) => (order.push('b acquired'), h));
      await eventually(async () => ((await waiting()) === 1 ? true : undefined), 'b waiting again');
      order.push('a released');
      await held.release();
      const bHeld = await next;
      assert.deepEqual(order, ['a released', 'b acquired']);
      assert.equal(bHeld.waited, true);
      await bHeld.release();
    } finally {
      await admin.end();
      await a.close();
      await b.close();
    }
  });
});

describe('two sessions of one process on one conversation', () => {
  let llm: EngineServer;
  let chorus: ChorusUnderTest;
  const clients: TestClient[] = [];

  before(async () => {
    const [db] = await openTestDatabases();
    llm = await startEngineServer();
    chorus = await startChorus({ database: db!.database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', USER_NAME: 'Jay' } });
    await chorus.repo.createCharacter({ name: `Ada ${randomUUID().slice(0, 6)}`, system_prompt: 'You are Ada.' });
  });

  after(async () => {
    for (const c of clients.splice(0)) await c.close();
    await chorus.close();
    await llm.close();
    await closeTestDatabases();
  });

  test('a turn sent while the other session\'s runs waits for it, and its prompt has the other\'s reply', async () => {
    const connect = async () => {
      const c = await TestClient.connect(`${chorus.wsUrl}?greetings=off`);
      clients.push(c);
      return c;
    };
    const a = await connect();
    const session = a.frames.find((f) => f.type === 'session');
    assert.ok(session?.type === 'session');
    const conversation = session.data.conversation_id as string;
    llm.chat.enqueue({ tokens: tokenize('One.') });
    a.send({ type: 'user_message', data: { text: 'one' } });
    await a.next('text_stream_stop');
    await eventually(async () => ((await chorus.repo.listMessages({ conversation_id: conversation })).length === 2 ? true : undefined), 'the first turn stored');
    const b = await connect();
    assert.equal((await b.request({ type: 'load_conversation', data: { conversation_id: conversation } })).type, 'conversation_loaded');

    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    llm.chat.script(async (request) => {
      const last = request.body.messages!.filter((m) => m.role === 'user').at(-1);
      if (last?.content === 'two') await held;
      return { tokens: tokenize(`Re: ${String(last?.content)}`) };
    });
    a.send({ type: 'user_message', data: { text: 'two' } });
    await llm.chat.waitForRequests(2); // a's turn runs, its reply held
    b.send({ type: 'user_message', data: { text: 'three' } });
    // An ordered request after it: once answered, b's user_message has been queued.
    assert.equal((await b.request({ type: 'model_settings', data: {} })).type, 'model_settings_updated');
    release();
    assert.equal((await b.next('text_stream_stop')).data.text, 'Re: three');
    const requests = await llm.chat.waitForRequests(3);
    assert.deepEqual(
      requests[2]!.body.messages!.filter((m) => m.role !== 'system').map((m) => m.content),
      ['one', 'One.', 'two', 'Re: two', 'three'],
      'b prompted after a\'s turn, with it',
    );
    assert.deepEqual([...a.errors, ...b.errors], []);
  });
});
