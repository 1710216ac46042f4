// Every reply can be redone: regenerate (with alternatives), select_alternative, continue,
// edit_message and delete_message over a real WebSocket, with the loopback LLM (text only).
// Each operation is followed by a check of the next LLM request's messages and of what is
// stored, read back after a reconnect through load_conversation.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { Message } from '../src/protocol.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

let llm: EngineServer;
let chorus: ChorusUnderTest;
const clients: TestClient[] = [];

const connect = async () => {
  const c = await TestClient.connect(chorus.wsUrl);
  clients.push(c);
  return c;
};

const conversationOf = (client: TestClient) => {
  const session = client.frames.find((f) => f.type === 'session');
  assert.ok(session?.type === 'session');
  return session.data.conversation_id as string;
};

/** The history part (after the system prompt) of the `n`th LLM request (1-based). */
async function promptOf(n: number) {
  const requests = await llm.chat.waitForRequests(n);
  return requests[n - 1]!.body.messages!.filter((m) => m.role !== 'system').map((m) => ({ role: m.role, content: m.content }));
}

/** Sends a user message, waits for the reply to end; returns the user's and the reply's message ids. */
async function say(client: TestClient, text: string, reply: string) {
  llm.chat.enqueue({ tokens: tokenize(reply) });
  client.send({ type: 'user_message', data: { text } });
  const accepted = await client.next('user_message_accepted');
  const stop = await client.next('text_stream_stop');
  assert.equal(stop.data.text, reply);
  return { user: accepted.data.message_id, reply: stop.data.message_id };
}

/** The stored messages once `ready` holds for them. */
const stored = (conversationId: string, ready: (m: Message[]) => boolean) =>
  eventually(async () => {
    const messages = await chorus.repo.listMessages({ conversation_id: conversationId });
    return ready(messages) ? messages : undefined;
  }, 'the stored messages');

/** Reconnects and loads the conversation: what a client reopening it sees. */
async function reopen(conversationId: string): Promise<Message[]> {
  const client = await connect();
  const reply = await client.request({ type: 'load_conversation', data: { conversation_id: conversationId } });
  assert.equal(reply.type, 'conversation_loaded');
  return reply.type === 'conversation_loaded' ? reply.data.messages : [];
}

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  llm = await startEngineServer();
  chorus = await startChorus({ database: db.database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', USER_NAME: 'Jay' } });
});

beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  llm.reset();
  await resetData((await openTestDatabases())[0]!.database);
  await chorus.repo.createCharacter({ name: 'Ada', system_prompt: 'You are Ada.' });
});

after(async () => {
  for (const c of clients.splice(0)) await c.close();
  await chorus.close();
  await llm.close();
});

describe('regenerate and alternatives', () => {
  test('regenerate streams a new reply under the same id; the old one is an alternative; select_alternative switches', async () => {
    const client = await connect();
    const conversation = conversationOf(client);
    const first = await say(client, 'Ada, hello', 'Alpha reply.');

    llm.chat.enqueue({ tokens: tokenize('Beta reply.') });
    client.send({ type: 'regenerate', data: {} });
    const start = await client.next('text_stream_start');
    assert.equal(start.data.message_id, first.reply, 'the stream carries the regenerated message\'s id');
    const updated = await client.next('message_updated');
    assert.deepEqual(updated.data, { message_id: first.reply, role: 'assistant', content: 'Beta reply.', status: 'complete', alternatives: ['Alpha reply.', 'Beta reply.'], alternative_index: 1 });
    assert.deepEqual(await promptOf(2), [{ role: 'user', content: 'Ada, hello' }], 'the replaced reply is not in the prompt');

    await say(client, 'Ada, again', 'Gamma.');
    assert.deepEqual(await promptOf(3), [
      { role: 'user', content: 'Ada, hello' },
      { role: 'assistant', content: 'Beta reply.' },
      { role: 'user', content: 'Ada, again' },
    ]);

    const selected = await client.request({ type: 'select_alternative', data: { message_id: first.reply, index: 0 } });
    assert.ok(selected.type === 'message_updated');
    assert.equal(selected.data.content, 'Alpha reply.');
    assert.equal(selected.data.alternative_index, 0);
    await say(client, 'Ada, more', 'Delta.');
    assert.deepEqual((await promptOf(4))[1], { role: 'assistant', content: 'Alpha reply.' });

    await stored(conversation, (m) => m.length === 6);
    const messages = await reopen(conversation);
    const regenerated = messages.find((m) => m.message_id === first.reply);
    assert.ok(regenerated);
    assert.equal(regenerated.content, 'Alpha reply.');
    assert.deepEqual(regenerated.alternatives, ['Alpha reply.', 'Beta reply.']);
    assert.equal(regenerated.alternative_index, 0);
    assert.deepEqual(messages.map((m) => m.content), ['Ada, hello', 'Alpha reply.', 'Ada, again', 'Gamma.', 'Ada, more', 'Delta.']);
    assert.deepEqual(client.errors, []);
  });

  test('after load_conversation the reopened state is the session\'s: a regenerate there adds a third version', async () => {
    const client = await connect();
    const conversation = conversationOf(client);
    const first = await say(client, 'Ada, hi', 'One.');
    llm.chat.enqueue({ tokens: tokenize('Two.') });
    client.send({ type: 'regenerate', data: { message_id: first.reply } });
    await client.next('message_updated');
    await stored(conversation, (m) => m.some((x) => x.alternatives.length === 2));

    const other = await connect();
    await other.request({ type: 'load_conversation', data: { conversation_id: conversation } });
    llm.chat.enqueue({ tokens: tokenize('Three.') });
    other.send({ type: 'regenerate', data: { message_id: first.reply } });
    const updated = await other.next('message_updated');
    assert.deepEqual(updated.data.alternatives, ['One.', 'Two.', 'Three.']);
    const messages = await stored(conversation, (m) => m.some((x) => x.alternatives.length === 3));
    assert.equal(messages.length, 2);
    assert.equal(messages[1]!.content, 'Three.');
  });

  test('a failed reply is retried by regenerate without an id: new replies to the last user message', async () => {
    const client = await connect();
    const conversation = conversationOf(client);
    llm.chat.enqueue({ tokens: [], failure: { status: 500 } });
    client.send({ type: 'user_message', data: { text: 'Ada, are you there?' } });
    const failed = await client.next('text_stream_stop');
    assert.equal(failed.data.failed, true);

    llm.chat.enqueue({ tokens: tokenize('Here I am.') });
    client.send({ type: 'regenerate', data: {} });
    const retried = await client.next('text_stream_stop');
    assert.equal(retried.data.text, 'Here I am.');
    assert.deepEqual(await promptOf(2), [{ role: 'user', content: 'Ada, are you there?' }], 'the user message is not repeated');
    const messages = await stored(conversation, (m) => m.length === 2);
    assert.deepEqual(messages.map((m) => [m.role, m.content, m.status]), [['user', 'Ada, are you there?', 'complete'], ['assistant', 'Here I am.', 'complete']]);
  });

  test('the last reply of an earlier turn is regenerated from the history before it, in its place; later messages stay', async () => {
    const client = await connect();
    const conversation = conversationOf(client);
    const first = await say(client, 'Ada, one', 'First.');
    await say(client, 'Ada, two', 'Second.');

    llm.chat.enqueue({ tokens: tokenize('First, again.') });
    client.send({ type: 'regenerate', data: { message_id: first.reply } });
    const start = await client.next('text_stream_start');
    assert.equal(start.data.message_id, first.reply);
    const updated = await client.next('message_updated');
    assert.deepEqual(updated.data.alternatives, ['First.', 'First, again.']);
    assert.deepEqual(await promptOf(3), [{ role: 'user', content: 'Ada, one' }], 'written from the history before it');

    await say(client, 'Ada, three', 'Third.');
    assert.deepEqual(await promptOf(4), [
      { role: 'user', content: 'Ada, one' },
      { role: 'assistant', content: 'First, again.' },
      { role: 'user', content: 'Ada, two' },
      { role: 'assistant', content: 'Second.' },
      { role: 'user', content: 'Ada, three' },
    ]);
    await stored(conversation, (m) => m.length === 6 && m[1]!.alternatives.length === 2);
    const messages = await reopen(conversation);
    assert.deepEqual(messages.map((m) => m.content), ['Ada, one', 'First, again.', 'Ada, two', 'Second.', 'Ada, three', 'Third.']);
  });

  test('a regenerate cut before a word of the new version leaves the version that was shown', async () => {
    const client = await connect();
    const first = await say(client, 'Ada, hi', 'One.');
    llm.chat.enqueue({ tokens: tokenize('Two.') });
    client.send({ type: 'regenerate', data: {} });
    await client.next('message_updated');
    const back = await client.request({ type: 'select_alternative', data: { message_id: first.reply, index: 1 } });
    assert.ok(back.type === 'message_updated' && back.data.content === 'Two.');
    // The third version never says a word: the LLM waits, and the user interrupts.
    llm.chat.enqueue({ tokens: tokenize('Three.'), firstTokenDelayMs: 60_000 });
    client.send({ type: 'regenerate', data: {} });
    await client.next('text_stream_start');
    await llm.chat.waitForRequests(3);
    client.send({ type: 'interrupt' });
    await client.next('interrupt_ack');
    await say(client, 'Ada, again', 'Four.');
    assert.deepEqual((await promptOf(4))[1], { role: 'assistant', content: 'Two.' }, 'the version shown before the cut regenerate');
  });

  test('only the last reply of a turn can be regenerated, and only the last message continued; bad requests are refused with a reason', async () => {
    const client = await connect();
    const first = await say(client, 'Ada, one', 'First.');
    const second = await say(client, 'Ada, two', 'Second.');
    const notLast = await client.request({ type: 'continue', data: { message_id: first.reply } });
    assert.ok(notLast.type === 'error' && notLast.data.code === 'invalid_payload', JSON.stringify(notLast));
    const continueUser = await client.request({ type: 'continue', data: { message_id: second.user } });
    assert.ok(continueUser.type === 'error' && continueUser.data.code === 'invalid_payload');
    const noAlternatives = await client.request({ type: 'select_alternative', data: { message_id: second.reply, index: 1 } });
    assert.ok(noAlternatives.type === 'error' && noAlternatives.data.code === 'invalid_payload');
    const unknown = await client.request({ type: 'edit_message', data: { message_id: '00000000-0000-4000-8000-000000000000', content: 'x' } });
    assert.ok(unknown.type === 'error' && unknown.data.code === 'not_found');
    const badIndex = await client.request({ type: 'select_alternative', data: { message_id: second.reply, index: -1 } });
    assert.ok(badIndex.type === 'error' && badIndex.data.code === 'invalid_payload' && /index/.test(badIndex.data.message));
    const badId = await client.request({ type: 'continue', data: { message_id: 'not-a-uuid' } });
    assert.ok(badId.type === 'error' && badId.data.code === 'invalid_payload');
    assert.equal(llm.chat.requests.length, 2, 'no refused operation reached the LLM');

    // Two characters answer one message: the first's reply is not the last of its turn.
    await chorus.repo.createCharacter({ name: 'Bea', system_prompt: 'You are Bea.' });
    await client.request({ type: 'refresh_active_characters' });
    llm.chat.enqueue({ tokens: tokenize('Ada here.') }, { tokens: tokenize('Bea here.') });
    client.send({ type: 'user_message', data: { text: 'Ada and Bea, roll call' } });
    const ada = await client.next('text_stream_stop');
    await client.next('text_stream_stop');
    const midTurn = await client.request({ type: 'regenerate', data: { message_id: ada.data.message_id } });
    assert.ok(midTurn.type === 'error' && midTurn.data.code === 'invalid_payload' && /last reply of a turn/.test(midTurn.data.message), JSON.stringify(midTurn));
    assert.equal(llm.chat.requests.length, 4);
  });
});

describe('continue, edit, delete', () => {
  test('continue appends to the last reply under its id; the whole text is stored and prompted', async () => {
    const client = await connect();
    const conversation = conversationOf(client);
    const first = await say(client, 'Ada, a story', 'It was a dark');

    llm.chat.enqueue({ tokens: ['and', ' stormy', ' night.'] });
    client.send({ type: 'continue', data: { message_id: first.reply } });
    const start = await client.next('text_stream_start');
    assert.equal(start.data.message_id, first.reply);
    const stop = await client.next('text_stream_stop');
    assert.equal(stop.data.text, 'It was a dark and stormy night.');
    const chunks = client.ofType('text_chunk').filter((c) => c.data.message_id === first.reply).slice(-4);
    assert.deepEqual(chunks.map((c) => c.data.text), [' and', ' stormy', ' night.', ''], 'the stream appends (with the space it needs)');
    assert.deepEqual((await promptOf(2)).at(-1), { role: 'assistant', content: 'It was a dark' }, 'the model continues its own reply');
    const updated = await client.next('message_updated');
    assert.equal(updated.data.content, 'It was a dark and stormy night.');

    await say(client, 'Ada, and then?', 'Then dawn.');
    assert.deepEqual((await promptOf(3))[1], { role: 'assistant', content: 'It was a dark and stormy night.' });
    await stored(conversation, (m) => m.length === 4);
    const messages = await reopen(conversation);
    assert.equal(messages.find((m) => m.message_id === first.reply)?.content, 'It was a dark and stormy night.');
  });

  test('edit_message changes a user or a character message in every later prompt and in storage', async () => {
    const client = await connect();
    const conversation = conversationOf(client);
    const first = await say(client, 'Ada, what is 2+2?', 'Five.');
    const editedUser = await client.request({ type: 'edit_message', data: { message_id: first.user, content: 'Ada, what is 2+3?' } });
    assert.ok(editedUser.type === 'message_updated' && editedUser.data.role === 'user' && editedUser.data.content === 'Ada, what is 2+3?');
    const editedReply = await client.request({ type: 'edit_message', data: { message_id: first.reply, content: 'Five, of course.' } });
    assert.ok(editedReply.type === 'message_updated' && editedReply.data.content === 'Five, of course.');

    await say(client, 'Ada, sure?', 'Yes.');
    assert.deepEqual(await promptOf(2), [
      { role: 'user', content: 'Ada, what is 2+3?' },
      { role: 'assistant', content: 'Five, of course.' },
      { role: 'user', content: 'Ada, sure?' },
    ]);
    await stored(conversation, (m) => m.length === 4);
    const messages = await reopen(conversation);
    assert.deepEqual(messages.map((m) => m.content), ['Ada, what is 2+3?', 'Five, of course.', 'Ada, sure?', 'Yes.']);
    assert.equal(messages[0]!.message_id, first.user, 'a user message is stored under the id user_message_accepted gave');
  });

  test('delete_message removes the message from storage and from the live history at once', async () => {
    const client = await connect();
    const conversation = conversationOf(client);
    const first = await say(client, 'Ada, one', 'Wrong answer.');
    const deleted = await client.request({ type: 'delete_message', data: { message_id: first.reply } });
    assert.deepEqual(deleted.type === 'message_deleted' && deleted.data, { message_id: first.reply, conversation_id: conversation });

    await say(client, 'Ada, two', 'Right answer.');
    assert.deepEqual(await promptOf(2), [
      { role: 'user', content: 'Ada, one' },
      { role: 'user', content: 'Ada, two' },
    ]);
    await stored(conversation, (m) => m.length === 3);
    const messages = await reopen(conversation);
    assert.deepEqual(messages.map((m) => m.content), ['Ada, one', 'Ada, two', 'Right answer.']);
    const again = await client.request({ type: 'delete_message', data: { message_id: first.reply } });
    assert.equal(again.type, 'db_error', 'a deleted message is not found');
  });
});

describe('one conversation, several sessions', () => {
  /** A second session with the conversation loaded. */
  async function joined(conversationId: string): Promise<TestClient> {
    const client = await connect();
    const loaded = await client.request({ type: 'load_conversation', data: { conversation_id: conversationId } });
    assert.equal(loaded.type, 'conversation_loaded');
    return client;
  }

  test('messages added, edited and deleted in one session reach the other live, into its history and its next prompt', async () => {
    const a = await connect();
    const conversation = conversationOf(a);
    const first = await say(a, 'Ada, one', 'Uno.');
    await stored(conversation, (m) => m.length === 2);
    const b = await joined(conversation);

    const second = await say(a, 'Ada, two', 'Dos.');
    const addedUser = await b.next('message_added');
    const addedReply = await b.next('message_added');
    assert.deepEqual([addedUser.data.message_id, addedUser.data.content], [second.user, 'Ada, two']);
    assert.deepEqual([addedReply.data.message_id, addedReply.data.role, addedReply.data.content], [second.reply, 'assistant', 'Dos.']);

    const edited = await a.request({ type: 'edit_message', data: { message_id: first.reply, content: 'One, in English.' } });
    assert.equal(edited.type, 'message_updated');
    const pushed = await b.next('message_updated');
    assert.deepEqual([pushed.data.message_id, pushed.data.content], [first.reply, 'One, in English.']);
    assert.equal(a.ofType('message_updated').length, 1, 'the session that edited is not told twice');

    const deleted = await a.request({ type: 'delete_message', data: { message_id: second.reply } });
    assert.equal(deleted.type, 'message_deleted');
    const gone = await b.next('message_deleted');
    assert.deepEqual(gone.data, { message_id: second.reply, conversation_id: conversation });

    await say(b, 'Ada, three', 'Tres.');
    assert.deepEqual(await promptOf(3), [
      { role: 'user', content: 'Ada, one' },
      { role: 'assistant', content: 'One, in English.' },
      { role: 'user', content: 'Ada, two' },
      { role: 'user', content: 'Ada, three' },
    ]);
    const back = await a.next('message_added');
    assert.equal(back.data.content, 'Ada, three', 'and the other way');
    assert.equal((await a.next('message_added')).data.content, 'Tres.');
    assert.equal(a.ofType('message_added').length, 2, 'a session is not told of its own messages');
    assert.deepEqual([...a.errors, ...b.errors], []);
  });

  test('REST edits (PATCH /api/messages/{id}: content or alternative_index) and deletes reach the session and its next prompt', async () => {
    const client = await connect();
    const conversation = conversationOf(client);
    const first = await say(client, 'Ada, hi', 'One.');
    llm.chat.enqueue({ tokens: tokenize('Two.') });
    client.send({ type: 'regenerate', data: {} });
    await client.next('message_updated');
    await stored(conversation, (m) => m.length === 2 && m[1]!.alternatives.length === 2);
    const call = (method: string, id: string, body?: unknown) =>
      fetch(`${chorus.httpUrl}/api/messages/${id}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });

    const swiped = await call('PATCH', first.reply, { alternative_index: 0 });
    assert.equal(swiped.status, 200);
    assert.deepEqual(((await swiped.json()) as Message).content, 'One.');
    assert.equal((await client.next('message_updated')).data.content, 'One.');

    const edited = await call('PATCH', first.user, { content: 'Ada, hello there' });
    assert.equal(edited.status, 200);
    assert.equal((await client.next('message_updated')).data.content, 'Ada, hello there');

    await say(client, 'Ada, next', 'Three.');
    assert.deepEqual(await promptOf(3), [
      { role: 'user', content: 'Ada, hello there' },
      { role: 'assistant', content: 'One.' },
      { role: 'user', content: 'Ada, next' },
    ]);
    assert.equal((await call('DELETE', first.reply)).status, 200);
    assert.equal((await client.next('message_deleted')).data.message_id, first.reply);
    await say(client, 'Ada, last', 'Four.');
    assert.deepEqual((await promptOf(4)).map((m) => m.content), ['Ada, hello there', 'Ada, next', 'Three.', 'Ada, last']);

    for (const [body, reason] of [[{}, /either content or alternative_index/], [{ content: 'x', alternative_index: 0 }, /either content or alternative_index/], [{ alternative_index: 5 }, /alternative_index must be below/]] as const) {
      const refused = await call('PATCH', first.user, body);
      assert.ok(refused.status === 400 || refused.status === 409, `${JSON.stringify(body)}: ${refused.status}`);
      assert.match(((await refused.json()) as { error: string }).error, reason);
    }
    assert.equal((await call('PATCH', '00000000-0000-4000-8000-000000000000', { content: 'x' })).status, 404);
  });
});
