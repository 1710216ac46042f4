// Greetings over a real socket, with the loopback LLM and the loopback speech server: a new
// conversation (a session's first, clear_history, loading an empty stored one) opens with each
// cast member's first_mes, in cast order, streamed as a normal text stream (what an old client
// already understands), spoken through the reply's audio path, macros replaced, stored as the
// character's first message with its alternate greetings as the alternatives, and seen by the
// next prompt. `/ws?greetings=off` skips the session's first one.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { Character, Message } from '../src/protocol.ts';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import type { TtsEngine } from '../src/speech/engine.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

let engines: EngineServer;
let tts: TtsEngine;
let chorus: ChorusUnderTest;
const clients: TestClient[] = [];

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  engines = await startEngineServer();
  tts = createOpenAiTtsEngine({ baseUrl: engines.baseUrl, apiKey: undefined, model: 'tts-1', sampleRate: 24_000, timeoutMs: 2000, defaultVoice: 'alloy' });
  chorus = await startChorus({ database: db.database, env: { LLM_BASE_URL: engines.baseUrl, LLM_API_KEY: 'k', USER_NAME: 'Jay' }, tts });
});
beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  engines.reset();
  await resetData((await openTestDatabases())[0]!.database);
});
after(async () => {
  for (const c of clients.splice(0)) await c.close();
  await chorus?.close();
  await engines?.close();
});

async function connect(query = ''): Promise<TestClient> {
  const client = await TestClient.connect(`${chorus.wsUrl}${query}`);
  clients.push(client);
  return client;
}
async function importCard(name: string, first_mes: string, alternate_greetings: string[] = [], v3: Record<string, unknown> = {}): Promise<Character> {
  const card = { spec: 'chara_card_v3', spec_version: '3.0', data: { name, first_mes, alternate_greetings, description: '', system_prompt: '', tags: [], extensions: {}, group_only_greetings: [], ...v3 } };
  const res = await fetch(`${chorus.httpUrl}/api/characters/import`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(card) });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as { characters: Character[] }).characters[0]!;
}
const storedMessages = (conversationId: string, n: number) =>
  eventually(async () => {
    const res = await fetch(`${chorus.httpUrl}/api/conversations/${conversationId}/messages`);
    const messages = res.ok ? ((await res.json()) as Message[]) : [];
    return messages.length >= n ? messages : undefined;
  }, `${n} stored message(s)`);

/** The text streams of the frames so far: who, the chunks' text, the stop's text, in order. */
function streams(client: TestClient) {
  return client.ofType('text_stream_start').map(({ data }) => ({
    name: data.character_name,
    message_id: data.message_id,
    chunks: client.ofType('text_chunk').filter((c) => c.data.message_id === data.message_id && !c.data.is_final).map((c) => c.data.text).join(''),
    stop: client.ofType('text_stream_stop').find((s) => s.data.message_id === data.message_id)?.data.text,
  }));
}

describe('greetings', () => {
  test('a new session opens with the greeting: streamed, spoken, macros replaced, stored with its alternatives', async () => {
    const ione = await importCard('Ione', 'Mind the ropes, {{user}}. I am {{char}}.', ['Fog again, {{user}}.', '  ']);
    const client = await connect();
    const conversationId = (client.frames[0] as { data: { conversation_id: string } }).data.conversation_id;
    const stop = await client.next('text_stream_stop');
    assert.equal(stop.data.text, 'Mind the ropes, Jay. I am Ione.');
    assert.deepEqual(streams(client), [{ name: 'Ione', message_id: stop.data.message_id, chunks: 'Mind the ropes, Jay. I am Ione.', stop: 'Mind the ropes, Jay. I am Ione.' }]);
    const audio = await client.next('audio_stream_stop');
    assert.equal(audio.data.message_id, stop.data.message_id, 'spoken like a reply');
    assert.equal(engines.speech.requests.map((r) => r.body.input).join(' '), 'Mind the ropes, Jay. I am Ione.');
    const updated = await client.next('message_updated');
    assert.deepEqual(updated.data, { message_id: stop.data.message_id, role: 'assistant', content: 'Mind the ropes, Jay. I am Ione.', status: 'complete', alternatives: ['Mind the ropes, Jay. I am Ione.', 'Fog again, Jay.'], alternative_index: 0 });
    const [greeting] = await storedMessages(conversationId, 1);
    assert.deepEqual(
      [greeting!.message_id, greeting!.role, greeting!.character_id, greeting!.name, greeting!.content, greeting!.alternatives, greeting!.alternative_index],
      [stop.data.message_id, 'assistant', ione.id, 'Ione', 'Mind the ropes, Jay. I am Ione.', ['Mind the ropes, Jay. I am Ione.', 'Fog again, Jay.'], 0],
    );
    // An alternate greeting is a swipe away; the next prompt sees the chosen one as the character's own line.
    const swiped = await client.request({ type: 'select_alternative', data: { message_id: stop.data.message_id, index: 1 } });
    assert.equal(swiped.type, 'message_updated');
    assert.equal((swiped as { data: { content: string } }).data.content, 'Fog again, Jay.');
    engines.chat.enqueue({ tokens: tokenize('Aye.') });
    client.send({ type: 'user_message', data: { text: 'Ione, hello.' } });
    const [request] = await engines.chat.waitForRequests(1);
    assert.deepEqual(request!.body.messages?.slice(1), [
      { role: 'assistant', name: 'Ione', content: 'Fog again, Jay.' },
      { role: 'user', name: 'Jay', content: 'Ione, hello.' },
    ]);
    assert.deepEqual(client.errors, []);
  });

  test('every member with a greeting greets once, in cast order; clear_history and an empty stored conversation greet again', async () => {
    const zed = await importCard('Zed', 'Zed here.');
    await importCard('Mute', '');
    const ada = await importCard('Ada', 'Ada, at your service.', ['Ada again.']);
    const client = await connect();
    await eventually(async () => (client.ofType('text_stream_stop').length >= 2 ? true : undefined), 'two greetings');
    assert.deepEqual(streams(client).map((s) => [s.name, s.stop]), [['Ada', 'Ada, at your service.'], ['Zed', 'Zed here.']], 'the new conversation’s cast: by name');

    const cleared = await client.request({ type: 'clear_history' });
    assert.equal(cleared.type, 'history_cleared');
    await eventually(async () => (client.ofType('text_stream_stop').length >= 4 ? true : undefined), 'two more greetings');
    assert.deepEqual(streams(client).slice(2).map((s) => s.name), ['Ada', 'Zed']);

    const created = await fetch(`${chorus.httpUrl}/api/conversations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Reversed', active_characters: [zed.id, ada.id], reply_strategy: 'manual' }) });
    const { conversation_id } = (await created.json()) as { conversation_id: string };
    const loaded = await client.request({ type: 'load_conversation', data: { conversation_id } });
    assert.equal(loaded.type, 'conversation_loaded');
    await eventually(async () => (client.ofType('text_stream_stop').length >= 6 ? true : undefined), 'the loaded conversation’s greetings');
    assert.deepEqual(streams(client).slice(4).map((s) => s.name), ['Zed', 'Ada'], 'in the conversation’s cast order');
    const stored = await storedMessages(conversation_id, 2);
    assert.deepEqual(stored.map((m) => [m.name, m.content]), [['Zed', 'Zed here.'], ['Ada', 'Ada, at your service.']]);

    // A conversation that already has messages does not greet when loaded.
    const before = client.ofType('text_stream_start').length;
    await client.request({ type: 'load_conversation', data: { conversation_id } });
    engines.chat.enqueue({ tokens: tokenize('Yes.') });
    client.send({ type: 'user_message', data: { text: 'Zed?' } });
    await eventually(async () => (client.ofType('text_stream_start').length > before ? true : undefined), 'the reply');
    await eventually(async () => (streams(client).slice(before).every((s) => s.stop !== undefined) ? true : undefined), 'the reply to end');
    assert.deepEqual(streams(client).slice(before).map((s) => [s.name, s.stop]), [['Zed', 'Yes.']], 'only the reply (manual: the one named), no greeting');
    assert.deepEqual(client.errors, []);
  });

  test('group_only_greetings: a member’s greeting alternatives in a conversation of several characters, never in one of its own', async () => {
    const ione = await importCard('Ione', 'Mind the ropes, {{user}}.', ['Fog again.'], { group_only_greetings: ['Welcome, all of you, {{user}} too.', ''] });
    const sable = await importCard('Sable', '', [], { group_only_greetings: ['Sable nods to the group.'] });
    const client = await connect();
    const conversationId = (client.frames[0] as { data: { conversation_id: string } }).data.conversation_id;
    await eventually(async () => (client.ofType('message_updated').length >= 1 && client.ofType('text_stream_stop').length >= 2 ? true : undefined), 'both greetings');
    assert.deepEqual(streams(client).map((s) => [s.name, s.stop]), [['Ione', 'Mind the ropes, Jay.'], ['Sable', 'Sable nods to the group.']], 'one with only group greetings opens with the first');
    const stored = await storedMessages(conversationId, 2);
    assert.deepEqual(stored.map((m) => [m.name, m.alternatives]), [
      ['Ione', ['Mind the ropes, Jay.', 'Fog again.', 'Welcome, all of you, Jay too.']],
      ['Sable', []],
    ]);
    // A conversation of Ione alone: her group greetings are not offered, and Sable (not in it) says nothing.
    const created = await fetch(`${chorus.httpUrl}/api/conversations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Alone', active_characters: [ione.id] }) });
    const alone = ((await created.json()) as { conversation_id: string }).conversation_id;
    await client.request({ type: 'load_conversation', data: { conversation_id: alone } });
    const [greeting] = await storedMessages(alone, 1);
    assert.deepEqual([greeting!.content, greeting!.alternatives], ['Mind the ropes, Jay.', ['Mind the ropes, Jay.', 'Fog again.']]);
    assert.equal(sable.group_only_greetings.length, 1);
    assert.deepEqual(client.errors, []);
  });

  test('{{user}} in a greeting is the default persona’s name, {{char}} the card’s nickname', async () => {
    const persona = await fetch(`${chorus.httpUrl}/api/personas`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Sam', is_default: true }) });
    assert.equal(persona.status, 201);
    await importCard('Navigator Sable', 'Hello {{user}}, I am {{char}}.', [], { nickname: 'Sab' });
    const client = await connect();
    assert.equal((client.frames[0] as { data: { user_name: string } }).data.user_name, 'Sam');
    const stop = await client.next('text_stream_stop');
    assert.equal(stop.data.text, 'Hello Sam, I am Sab.');
    assert.deepEqual(client.errors, []);
  });

  test('/ws?greetings=off: the session’s first conversation opens without one; a cast without greetings says nothing', async () => {
    await importCard('Ione', 'Mind the ropes.');
    const quiet = await connect('?greetings=off');
    engines.chat.enqueue({ tokens: tokenize('Hm.') });
    quiet.send({ type: 'user_message', data: { text: 'Ione?' } });
    await quiet.next('text_stream_stop');
    assert.deepEqual(streams(quiet).map((s) => s.stop), ['Hm.'], 'the reply only');
    await resetData((await openTestDatabases())[0]!.database);
    await chorus.repo.createCharacter({ name: 'Plain' });
    const plain = await connect();
    assert.equal((await plain.request({ type: 'ping' })).type, 'pong');
    assert.equal(plain.ofType('text_stream_start').length, 0);
    assert.deepEqual(plain.ofType('error'), [], 'no "no character" error for a silent opening');
  });
});
