// Integration tests of the core: real WebSocket connections to the real server, with a real
// OpenAI-compatible HTTP server on loopback standing in for the LLM. Text only (TTS off).
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { Character } from '../src/protocol.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { eventually } from './support/eventually.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

let llm: EngineServer;
let chorus: ChorusUnderTest;
let ada: Character;
let bob: Character;
const clients: TestClient[] = [];

const connect = async (url = chorus.wsUrl) => {
  const c = await TestClient.connect(url);
  clients.push(c);
  return c;
};

/** The data of every text event of one message, in order. */
const textEvents = (client: TestClient, messageId: string) =>
  client.frames.filter((f) => f.type.startsWith('text_') && 'data' in f && (f.data as { message_id?: string }).message_id === messageId);

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  llm = await startEngineServer();
  chorus = await startChorus({ database: db.database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'test-key', LLM_MODEL: 'test/model', LLM_TIMEOUT_MS: '1500', USER_NAME: 'Jay' } });
});

beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  llm.reset();
  await resetData((await openTestDatabases())[0]!.database);
  // Talkativeness 0: under the default strategy (natural) only the characters a message names answer.
  ada = await chorus.repo.createCharacter({ name: 'Ada Lovelace', system_prompt: 'You are a mathematician.', talkativeness: 0 });
  bob = await chorus.repo.createCharacter({ name: 'Bob', system_prompt: 'You are a baker.', talkativeness: 0 });
});

after(async () => {
  for (const c of clients.splice(0)) await c.close();
  await chorus.close();
  await llm.close();
});

describe('a conversation turn', () => {
  test('two characters answer in mention order, with the exact event sequence', async () => {
    llm.chat.enqueue({ tokens: tokenize('Fresh bread, of course.') }, { tokens: tokenize('Numbers, naturally!') });
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Bob, then Ada: what do you love?' } });

    const first = await client.next('text_stream_stop');
    const second = await client.next('text_stream_stop');
    assert.equal(first.data.character_id, bob.id);
    assert.equal(first.data.text, 'Fresh bread, of course.');
    assert.equal(second.data.character_id, ada.id);
    assert.equal(second.data.text, 'Numbers, naturally!');
    assert.equal(first.data.interrupted, undefined);

    const events = textEvents(client, first.data.message_id);
    assert.deepEqual(
      events.map((e) => e.type),
      ['text_stream_start', 'text_chunk', 'text_chunk', 'text_chunk', 'text_chunk', 'text_chunk', 'text_stream_stop'],
    );
    const chunks = client.ofType('text_chunk').filter((c) => c.data.message_id === first.data.message_id);
    assert.deepEqual(chunks.map((c) => c.data.text), ['Fresh', ' bread,', ' of', ' course.', '']);
    assert.deepEqual(chunks.map((c) => c.data.is_final), [false, false, false, false, true]);
    for (const c of chunks) assert.equal(c.data.character_name, 'Bob');
    // Bob's stream is complete before Ada's starts.
    const at = (type: string, messageId: string) =>
      client.frames.findIndex((f) => f.type === type && 'data' in f && (f.data as { message_id?: string }).message_id === messageId);
    assert.ok(at('text_stream_stop', first.data.message_id) < at('text_stream_start', second.data.message_id), client.summary());
    assert.deepEqual(client.errors, []);
  });

  test('the list strategy: every cast member answers, in cast order (the default cast is by name)', async () => {
    const client = await connect();
    const conversationId = client.ofType('session')[0]!.data.conversation_id!;
    await client.request({ type: 'update_conversation', data: { conversation_id: conversationId, reply_strategy: 'list' } });
    client.send({ type: 'user_message', data: { text: 'Hello everyone' } });
    const a = await client.next('text_stream_stop');
    const b = await client.next('text_stream_stop');
    assert.deepEqual([a.data.character_name, b.data.character_name], ['Ada Lovelace', 'Bob']);
  });

  test('each LLM call gets its character prompt, the history, the settings, and valid names', async () => {
    llm.chat.enqueue({ tokens: ['<Bob>', 'Rye', ' is best.', '</Bob>'] }, { tokens: ['Ada: ', 'I agree with Bob.'] });
    const client = await connect();
    client.send({ type: 'model_settings', data: { temperature: 0.3, top_k: 12, min_p: 0.05, repetition_penalty: 1.1 } });
    client.send({ type: 'user_message', data: { text: 'Bob and Ada, which bread?' } });
    const bobStop = await client.next('text_stream_stop');
    const adaStop = await client.next('text_stream_stop');
    assert.equal(bobStop.data.text, 'Rye is best.', 'the <Bob> wrapper is stripped');
    assert.equal(adaStop.data.text, 'I agree with Bob.', 'the "Ada:" label is stripped');

    const [toBob, toAda] = await llm.chat.waitForRequests(2);
    const body = toBob!.body as Record<string, unknown>;
    assert.equal(body.model, 'test/model');
    assert.equal(body.stream, true);
    assert.equal(body.temperature, 0.3);
    assert.equal(body.top_k, 12);
    assert.equal(body.min_p, 0.05);
    assert.equal(body.repetition_penalty, 1.1);
    assert.equal(toBob!.headers.authorization, 'Bearer test-key');

    const bobMessages = toBob!.body.messages!;
    assert.equal(bobMessages[0]!.role, 'system');
    assert.match(String(bobMessages[0]!.content), /You are a baker\./);
    assert.match(String(bobMessages[0]!.content), /Reply only as Bob/);
    assert.deepEqual(bobMessages.slice(1), [{ role: 'user', name: 'Jay', content: 'Bob and Ada, which bread?' }]);

    const adaMessages = toAda!.body.messages!;
    assert.match(String(adaMessages[0]!.content), /You are a mathematician\./);
    assert.deepEqual(adaMessages.slice(1), [
      { role: 'user', name: 'Jay', content: 'Bob and Ada, which bread?' },
      { role: 'user', name: 'Bob', content: 'Bob: Rye is best.' },
    ]);
  });

  test('the user name comes from session_settings', async () => {
    const client = await connect();
    const reply = await client.request({ type: 'session_settings', data: { user_name: 'Zoë Q' } });
    assert.equal(reply.type, 'session_settings_updated');
    client.send({ type: 'user_message', data: { text: 'Hi Bob' } });
    await client.next('text_stream_stop');
    const [request] = await llm.chat.waitForRequests(1);
    assert.deepEqual(request!.body.messages!.at(-1), { role: 'user', name: 'Zoe_Q', content: 'Hi Bob' });
    assert.match(String(request!.body.messages![0]!.content), /Zoë Q/);
  });

  test('messages are stored in order and read back, and the conversation is titled by the first message', async () => {
    llm.chat.enqueue({ tokens: tokenize('Sourdough.') });
    const client = await connect();
    const session = client.frames[0];
    assert.equal(session?.type, 'session');
    const conversationId = session.type === 'session' ? session.data.conversation_id : null;
    client.send({ type: 'user_message', data: { text: 'Bob, what should I bake this weekend for my whole family?' } });
    await client.next('text_stream_stop');

    const reply = await client.request({ type: 'get_messages', data: { conversation_id: conversationId } });
    assert.equal(reply.type, 'messages_data');
    const messages = reply.type === 'messages_data' ? reply.data : [];
    assert.deepEqual(
      messages.map((m) => [m.role, m.name, m.content, m.character_id]),
      [
        ['user', 'Jay', 'Bob, what should I bake this weekend for my whole family?', null],
        ['assistant', 'Bob', 'Sourdough.', bob.id],
      ],
    );
    const conversation = await chorus.repo.getConversation(conversationId!);
    assert.equal(conversation.title, 'Bob, what should I bake this weekend for my whole ...');
  });

  test('load_conversation resumes a stored conversation, history included', async () => {
    const first = await connect();
    first.send({ type: 'user_message', data: { text: 'Bob, remember the word "plum".' } });
    await first.next('text_stream_stop');
    const conversationId = first.ofType('session')[0]!.data.conversation_id!;
    await first.close();

    llm.reset();
    const second = await connect();
    const loaded = await second.request({ type: 'load_conversation', data: { conversation_id: conversationId } });
    assert.equal(loaded.type, 'conversation_loaded');
    if (loaded.type === 'conversation_loaded') {
      assert.equal(loaded.data.conversation.conversation_id, conversationId);
      assert.equal(loaded.data.messages.length, 2);
    }
    second.send({ type: 'user_message', data: { text: 'Bob, which word?' } });
    await second.next('text_stream_stop');
    const [request] = await llm.chat.waitForRequests(1);
    assert.deepEqual(
      request!.body.messages!.slice(1).map((m) => m.content),
      ['Bob, remember the word "plum".', 'Reply to: Bob, remember the word "plum".', 'Bob, which word?'],
    );
    const stored = await chorus.repo.listMessages({ conversation_id: conversationId });
    assert.equal(stored.length, 4, 'the resumed turn is stored in the same conversation');
  });

  test('clear_history starts a new conversation with an empty history', async () => {
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Bob, hi' } });
    await client.next('text_stream_stop');
    const before = client.ofType('session')[0]!.data.conversation_id;
    const cleared = await client.request({ type: 'clear_history' });
    assert.equal(cleared.type, 'history_cleared');
    const after = cleared.type === 'history_cleared' ? cleared.data.conversation_id : before;
    assert.notEqual(after, before);
    llm.reset();
    client.send({ type: 'user_message', data: { text: 'Bob, again' } });
    await client.next('text_stream_stop');
    const [request] = await llm.chat.waitForRequests(1);
    assert.equal(request!.body.messages!.length, 2, 'system prompt and the new message only');
  });

  test('a character created elsewhere joins open sessions before the create is answered', async () => {
    const client = await connect();
    const created = await fetch(`${chorus.httpUrl}/api/characters`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Zed', system_prompt: 'A newcomer.' }),
    });
    assert.equal(created.status, 201);
    client.send({ type: 'user_message', data: { text: 'Zed, welcome!' } });
    const start = await client.next('text_stream_start');
    assert.equal(start.data.character_name, 'Zed');
  });

  test('two connections keep separate histories', async () => {
    const one = await connect();
    const two = await connect();
    one.send({ type: 'user_message', data: { text: 'Bob: one' } });
    two.send({ type: 'user_message', data: { text: 'Bob: two' } });
    await one.next('text_stream_stop');
    await two.next('text_stream_stop');
    llm.reset();
    one.send({ type: 'user_message', data: { text: 'Bob: one again' } });
    await one.next('text_stream_stop');
    const [request] = await llm.chat.waitForRequests(1);
    const contents = request!.body.messages!.map((m) => m.content);
    assert.ok(contents.includes('Bob: one') && !contents.includes('Bob: two'), JSON.stringify(contents));
    assert.equal(two.ofType('text_stream_start').length, 1, 'the second connection saw only its own turn');
  });

  test('a user_message sent during a turn waits for it', async () => {
    llm.chat.enqueue({ tokens: tokenize('one two three four'), tokenDelayMs: 40 });
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Bob, count' } });
    await client.next('text_stream_start');
    client.send({ type: 'user_message', data: { text: 'Bob, again' } });
    const stop1 = await client.next('text_stream_stop');
    const start2 = await client.next('text_stream_start');
    const order = client.frames.map((f) => f.type);
    assert.ok(client.frames.indexOf(stop1 as never) < client.frames.indexOf(start2 as never), order.join());
    assert.equal(stop1.data.text, 'one two three four');
  });
});

describe('storage', () => {
  test('a failed write is reported and retried until it lands, without holding up the reply', async () => {
    const { database } = (await openTestDatabases())[0]!;
    // A real database failure that is not the message's fault (SQLSTATE 42P01, retried): the table is
    // away until it is renamed back. A data or constraint error would be permanent (dead-lettered).
    await database.db.execute(sql`alter table messages rename to messages_away`);
    try {
      const client = await connect();
      client.send({ type: 'user_message', data: { text: 'Bob, are you saving this?' } });
      const error = await client.next('error');
      assert.equal(error.data.code, 'storage_error');
      assert.match(error.data.message, /retrying/);
      const stop = await client.next('text_stream_stop');
      assert.equal(stop.data.text, 'Reply to: Bob, are you saving this?', 'the reply streamed while storage failed');
      const conversationId = client.ofType('session')[0]!.data.conversation_id!;
      const held = (await database.db.execute(sql`select count(*)::int as n from messages_away where conversation_id = ${conversationId}`)) as unknown as { rows: unknown[] };
      assert.deepEqual(held.rows, [{ n: 0 }]);
      await database.db.execute(sql`alter table messages_away rename to messages`);
      const stored = await eventually(async () => {
        const messages = await chorus.repo.listMessages({ conversation_id: conversationId });
        return messages.length === 2 ? messages : undefined;
      }, 'the retried messages to be stored');
      assert.deepEqual(stored.map((m) => m.content), ['Bob, are you saving this?', 'Reply to: Bob, are you saving this?']);
    } finally {
      await database.db.execute(sql`alter table if exists messages_away rename to messages`);
    }
  });
});


describe('interrupt', () => {
  test('cancels the stream: ack, no chunk after it, upstream closed, partial reply stored as interrupted', async () => {
    llm.chat.enqueue({ tokens: tokenize('This reply goes on and on and on and on and on'), tokenDelayMs: 50 });
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Bob, talk' } });
    await client.next('text_chunk');
    await client.next('text_chunk');
    client.send({ type: 'interrupt' });
    await client.next('interrupt_ack');
    const ackAt = client.frames.findIndex((f) => f.type === 'interrupt_ack');
    const stop = client.ofType('text_stream_stop')[0];
    assert.equal(stop?.data.interrupted, true);
    assert.ok(client.frames.findIndex((f) => f.type === 'text_stream_stop') < ackAt, 'stream closed before the ack');

    const [request] = await llm.chat.waitForRequests(1);
    const closed = await llm.waitForClose(request!, 1000);
    assert.equal(closed.completed, false, 'the LLM request was cut, not finished');

    // The pong is sent after anything the session had queued, so a chunk of the cancelled reply
    // would arrive before it.
    const pong = await client.request({ type: 'ping' });
    assert.equal(pong.type, 'pong');
    assert.deepEqual(client.frames.slice(ackAt + 1).map((f) => f.type), ['pong']);

    const partial = stop!.data.text;
    assert.ok(partial.length > 0 && partial.length < 'This reply goes on and on and on and on and on'.length);
    const conversationId = client.ofType('session')[0]!.data.conversation_id!;
    const stored = await chorus.repo.listMessages({ conversation_id: conversationId });
    assert.deepEqual(stored.map((m) => [m.role, m.content, m.interrupted]), [
      ['user', 'Bob, talk', false],
      ['assistant', partial, true],
    ]);
  });

  test('the next message runs at once after an interrupt, and the interrupted reply stays in the history', async () => {
    llm.chat.enqueue({ tokens: tokenize('a b c d e f g h'), tokenDelayMs: 60 });
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Bob, go' } });
    await client.next('text_chunk');
    client.send({ type: 'interrupt' });
    client.send({ type: 'user_message', data: { text: 'Bob, stop' } });
    const stop = await client.next('text_stream_stop');
    assert.equal(stop.data.interrupted, true);
    await client.next('interrupt_ack');
    const next = await client.next('text_stream_stop');
    assert.equal(next.data.text, 'Reply to: Bob, stop');
    const requests = await llm.chat.waitForRequests(2);
    const history = requests[1]!.body.messages!.map((m) => m.content);
    assert.deepEqual(history.slice(1), ['Bob, go', stop.data.text, 'Bob, stop']);
  });

  test('with no turn running, interrupt is acknowledged', async () => {
    const client = await connect();
    client.send({ type: 'interrupt' });
    await client.next('interrupt_ack');
  });
});

describe('bad input', () => {
  const expectError = async (client: TestClient, code: string, pattern: RegExp) => {
    const error = await client.next('error');
    assert.equal(error.data.code, code);
    assert.match(error.data.message, pattern);
    return error;
  };

  test('each gets a clear error and the connection stays usable', async () => {
    const client = await connect();
    client.sendRaw('{not json');
    await expectError(client, 'bad_json', /not valid JSON/);
    client.sendRaw('[1,2]');
    await expectError(client, 'invalid_payload', /type/);
    client.send({ type: 'sing_a_song', request_id: 'r1' });
    const unknown = await expectError(client, 'unknown_type', /sing_a_song/);
    assert.equal(unknown.request_id, 'r1');
    client.send({ type: 'user_message', data: { text: 42 }, request_id: 'r2' });
    const invalid = await expectError(client, 'invalid_payload', /data\.text/);
    assert.equal(invalid.request_id, 'r2');
    assert.equal(invalid.data.request_type, 'user_message');
    client.send({ type: 'user_message', data: { text: '   ' } });
    await expectError(client, 'invalid_payload', /blank/);
    client.send({ type: 'model_settings', data: { temperature: 7 } });
    await expectError(client, 'invalid_payload', /data\.temperature/);
    client.send({ type: 'load_conversation', data: { conversation_id: crypto.randomUUID() } });
    await expectError(client, 'not_found', /not found/);
    client.send({ type: 'start_listening', request_id: 'r3' });
    const noStt = await expectError(client, 'stt_not_configured', /STT_ENGINE=openai/);
    assert.equal(noStt.request_id, 'r3');
    client.sendRaw(Buffer.alloc(8192), true); // audio with speech input off: dropped quietly
    client.sendRaw(JSON.stringify({ type: 'user_message', data: { text: 'x'.repeat(3 * 1024 * 1024) } }));
    await expectError(client, 'message_too_large', /limit/);

    const pong = await client.request({ type: 'ping' });
    assert.equal(pong.type, 'pong');
    const settings = await client.request({ type: 'model_settings', data: { top_p: 0.5 } });
    assert.equal(settings.type === 'model_settings_updated' && settings.data.temperature, 0.7, 'the rejected temperature was not applied');
    client.send({ type: 'user_message', data: { text: 'Bob, still there?' } });
    const stop = await client.next('text_stream_stop');
    assert.equal(stop.data.text, 'Reply to: Bob, still there?');
  });

  test('CRUD failures are db_error with the request_id echoed', async () => {
    const client = await connect();
    const missing = await client.request({ type: 'get_character', data: { id: 'nobody-001' } });
    assert.equal(missing.type, 'db_error');
    if (missing.type === 'db_error') {
      assert.match(missing.error, /nobody-001/);
      assert.equal(missing.request_type, 'get_character');
    }
    const invalid = await client.request({ type: 'create_character', data: { name: '' } });
    assert.equal(invalid.type, 'db_error');
    if (invalid.type === 'db_error') assert.match(invalid.error, /data\.name/);
    const created = await client.request({ type: 'create_character', data: { name: 'Cleo', system_prompt: 'A cat.' } });
    assert.equal(created.type, 'character_created');
    if (created.type === 'character_created') assert.equal(created.data.id, 'cleo-001');
  });
});

describe('LLM failures', () => {
  test('HTTP error, cut stream and silence each give llm_error, close the stream, and the turn goes on', async () => {
    llm.chat.enqueue(
      { tokens: [], failure: { status: 500, body: JSON.stringify({ error: { message: 'model exploded' } }) } },
      { tokens: tokenize('Half a sen tence'), failure: { cutAfterTokens: 2 } },
    );
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Hello Ada and Bob' } });
    const adaError = await client.next('error');
    assert.equal(adaError.data.code, 'llm_error');
    assert.match(adaError.data.message, /Ada Lovelace could not reply: .*500/);
    const adaStop = await client.next('text_stream_stop');
    assert.equal(adaStop.data.text, '');
    const bobError = await client.next('error');
    assert.match(bobError.data.message, /Bob could not reply/);
    const bobStop = await client.next('text_stream_stop');
    assert.equal(bobStop.data.text, 'Half a');
    assert.equal(client.ofType('text_chunk').filter((c) => c.data.is_final).length, 2, 'both streams closed with a final chunk');

    llm.chat.enqueue({ tokens: ['Never'], failure: { hang: true } });
    client.send({ type: 'user_message', data: { text: 'Bob?' } });
    const timeout = await client.next('error', 5000);
    assert.match(timeout.data.message, /sent nothing for 1500 ms/);
    await client.next('text_stream_stop');
  });

  test('an unreachable LLM gives llm_error naming the address', async () => {
    const db = (await openTestDatabases())[0]!.database;
    const dead = await startChorus({ database: db, env: { LLM_BASE_URL: 'http://127.0.0.1:9/v1', LLM_API_KEY: 'k' } });
    try {
      const client = await connect(dead.wsUrl);
      client.send({ type: 'user_message', data: { text: 'Bob?' } });
      const error = await client.next('error');
      assert.equal(error.data.code, 'llm_error');
      assert.match(error.data.message, /Cannot reach the LLM at http:\/\/127\.0\.0\.1:9\/v1/);
      await client.close();
    } finally {
      await dead.close();
    }
  });

  test('without an API key for OpenRouter the turn says what to set', async () => {
    const db = (await openTestDatabases())[0]!.database;
    const keyless = await startChorus({ database: db, env: {} });
    try {
      const client = await connect(keyless.wsUrl);
      client.send({ type: 'user_message', data: { text: 'Hi Bob' } });
      const error = await client.next('error');
      assert.equal(error.data.code, 'llm_not_configured');
      assert.match(error.data.message, /LLM_API_KEY/);
      await client.next('text_stream_stop');
      const pong = await client.request({ type: 'ping' });
      assert.equal(pong.type, 'pong');
      assert.equal(client.ofType('text_stream_start').length, 1, 'the turn stops after the first character');
      await client.close();
    } finally {
      await keyless.close();
    }
  });
});

describe('REST API', () => {
  const api = (path: string, init?: RequestInit) =>
    fetch(`${chorus.httpUrl}${path}`, { ...init, headers: { 'content-type': 'application/json', ...init?.headers } });

  test('characters, voices, conversations and messages share the CRUD operations', async () => {
    const created = await api('/api/characters', { method: 'POST', body: JSON.stringify({ name: 'Dee Dee', system_prompt: 'x' }) });
    assert.equal(created.status, 201);
    const dee = (await created.json()) as Character;
    assert.equal(dee.id, 'dee-dee-001');
    const patched = await api(`/api/characters/${dee.id}`, { method: 'PATCH', body: JSON.stringify({ is_active: false }) });
    assert.equal(((await patched.json()) as Character).is_active, false);
    const search = (await (await api('/api/characters?q=dee')).json()) as Character[];
    assert.deepEqual(search.map((c) => c.id), ['dee-dee-001']);
    const active = (await (await api('/api/characters?active=true')).json()) as Character[];
    assert.deepEqual(active.map((c) => c.name), ['Ada Lovelace', 'Bob']);

    const voice = await api('/api/voices', { method: 'POST', body: JSON.stringify({ voice: 'warm', engine: 'espeak', engine_voice: 'en-us+f3' }) });
    assert.equal(voice.status, 201);
    const conversation = await api('/api/conversations', { method: 'POST', body: JSON.stringify({ title: 'Test' }) });
    const { conversation_id } = (await conversation.json()) as { conversation_id: string };
    const message = await api(`/api/conversations/${conversation_id}/messages`, { method: 'POST', body: JSON.stringify({ role: 'user', content: 'hi' }) });
    assert.equal(message.status, 201);
    const messages = (await (await api(`/api/conversations/${conversation_id}/messages`)).json()) as unknown[];
    assert.equal(messages.length, 1);
    assert.equal((await api(`/api/conversations/${conversation_id}`, { method: 'DELETE' })).status, 200);
    assert.equal((await api(`/api/conversations/${conversation_id}/messages`)).status, 404);
  });

  test('bad bodies and unknown ids are 4xx with a reason', async () => {
    const bad = await api('/api/characters', { method: 'POST', body: JSON.stringify({ name: 42 }) });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /data\.name/);
    const unknown = await api('/api/characters/nobody-001');
    assert.equal(unknown.status, 404);
    assert.match(((await unknown.json()) as { error: string }).error, /nobody-001/);
    const notJson = await api('/api/characters', { method: 'POST', body: '{oops' });
    assert.equal(notJson.status, 400);
    const dup = await api('/api/voices', { method: 'POST', body: JSON.stringify({ voice: 'v1' }) });
    assert.equal(dup.status, 201);
    const again = await api('/api/voices', { method: 'POST', body: JSON.stringify({ voice: 'v1' }) });
    assert.equal(again.status, 409);
    const page = await api('/api/conversations?limit=abc');
    assert.equal(page.status, 400);
  });

  test('/metrics counts turns, errors by code, sessions and LLM latency', async () => {
    const scrape = async () => (await (await fetch(`${chorus.httpUrl}/metrics`)).text());
    const value = (text: string, name: string) => Number(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    const before = await scrape();
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Bob?' } });
    await client.next('text_stream_stop');
    client.send({ type: 'nonsense' });
    await client.next('error');
    const after = await scrape();
    assert.equal(value(after, 'chorus_turns_total') - value(before, 'chorus_turns_total'), 1);
    assert.equal(value(after, 'chorus_llm_first_token_seconds_count') - value(before, 'chorus_llm_first_token_seconds_count'), 1);
    assert.equal(value(after, 'chorus_errors_total{code="unknown_type"}') - value(before, 'chorus_errors_total{code="unknown_type"}'), 1);
    assert.ok(value(after, 'chorus_open_sessions') >= 1);
    assert.match(after, /^process_resident_memory_bytes /m);
    assert.match(after, /^chorus_event_loop_delay_seconds_count /m);
  });

  test('/healthz answers', async () => {
    const health = (await (await fetch(`${chorus.httpUrl}/healthz`)).json()) as { status: string };
    assert.equal(health.status, 'ok');
  });
});
