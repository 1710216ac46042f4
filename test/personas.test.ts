// Personas over real HTTP and a real socket: REST and WebSocket CRUD (one default at most, bad
// input refused), one chosen per conversation (update_conversation) or the default, its
// description in the exact prompt (last in the system message) and its name as {{user}}, in the
// stored user messages and the stop sequences; and the old session_settings {user_name}, which
// still works as a persona of that name with no description until a persona is chosen.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { defaultInstruction } from '../src/llm/prompt.ts';
import { type Character, type Message, type Persona, personaSchema } from '../src/protocol.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { eventually } from './support/eventually.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

let llm: EngineServer;
let chorus: ChorusUnderTest;

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  llm = await startEngineServer();
  chorus = await startChorus({ database: db.database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', LLM_MODEL: 'test/model', TTS_ENGINE: 'none', USER_NAME: 'Jay' } });
});
beforeEach(async () => {
  llm.reset();
  await resetData((await openTestDatabases())[0]!.database);
});
after(async () => {
  await chorus?.close();
  await llm?.close();
});

async function rest<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${chorus.httpUrl}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
  return { status: res.status, body: (await res.json()) as T };
}
const createPersona = async (input: Record<string, unknown>) => {
  const res = await rest<Persona>('POST', '/api/personas', input);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return personaSchema.strict().parse(res.body);
};

describe('persona records', () => {
  test('REST CRUD: the default first, one default at most, deleting one unsets it in its conversations', async () => {
    const sam = await createPersona({ name: 'Sam', description: 'A sailor.', is_default: true });
    const ada = await createPersona({ name: 'Ada', description: 'A cartographer.' });
    assert.deepEqual((await rest<Persona[]>('GET', '/api/personas')).body.map((p) => p.name), ['Sam', 'Ada']);
    const moved = await rest<Persona>('PATCH', `/api/personas/${ada.id}`, { is_default: true });
    assert.equal(moved.body.is_default, true);
    assert.deepEqual((await rest<Persona[]>('GET', '/api/personas')).body.map((p) => [p.name, p.is_default]), [['Ada', true], ['Sam', false]], 'the mark moved');
    const conversation = await rest<{ conversation_id: string; persona_id: string | null }>('POST', '/api/conversations', { title: 'Voyage', persona_id: sam.id });
    assert.equal(conversation.body.persona_id, sam.id);
    assert.equal((await rest('DELETE', `/api/personas/${sam.id}`)).status, 200);
    assert.equal((await rest<{ persona_id: string | null }>('GET', `/api/conversations/${conversation.body.conversation_id}`)).body.persona_id, null);
    assert.equal((await rest('GET', `/api/personas/${sam.id}`)).status, 404);
  });

  test('bad input is refused with the field named', async () => {
    const blank = await rest<{ error: string }>('POST', '/api/personas', { name: '  ' });
    assert.equal(blank.status, 400);
    assert.match(blank.body.error, /data\.name: name must not be blank/);
    const unknown = await rest<{ error: string }>('POST', '/api/personas', { name: 'X', age: 3 });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.error, /age/);
    const missing = await rest<{ error: string }>('POST', '/api/conversations', { persona_id: '00000000-0000-4000-8000-000000000000' });
    assert.equal(missing.status, 409);
    assert.match(missing.body.error, /persona "00000000-0000-4000-8000-000000000000" does not exist/);
  });

  test('WebSocket CRUD', async () => {
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      const created = await client.request({ type: 'create_persona', data: { name: 'Kit', description: '{{user}} is small.' } });
      assert.equal(created.type, 'persona_created');
      const id = (created as { data: Persona }).data.id;
      assert.equal((await client.request({ type: 'update_persona', data: { id, name: 'Kit Marlowe' } })).type, 'persona_updated');
      const listed = await client.request({ type: 'get_personas' });
      assert.deepEqual((listed as { data: Persona[] }).data.map((p) => p.name), ['Kit Marlowe']);
      assert.equal((await client.request({ type: 'delete_persona', data: { id } })).type, 'persona_deleted');
      assert.equal((await client.request({ type: 'get_persona', data: { id } })).type, 'db_error');
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
    }
  });
});

describe('the persona in a turn', () => {
  const card = (name: string) => ({
    spec: 'chara_card_v2',
    spec_version: '2.0',
    data: { name, description: '{{char}} waits for {{user}}.', system_prompt: '', first_mes: '', alternate_greetings: [], tags: [], extensions: {} },
  });
  async function importCharacter(name: string): Promise<Character> {
    const res = await fetch(`${chorus.httpUrl}/api/characters/import`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(card(name)) });
    assert.equal(res.status, 201, await res.clone().text());
    return ((await res.json()) as { characters: Character[] }).characters[0]!;
  }
  /** Sends a message naming the character and returns the LLM request it caused. */
  async function turn(client: TestClient, text: string) {
    llm.chat.enqueue({ tokens: tokenize('Hm.') });
    const before = llm.chat.requests.length;
    client.send({ type: 'user_message', data: { text } });
    const requests = await llm.chat.waitForRequests(before + 1);
    await client.next('text_stream_stop');
    return requests.at(-1)!.body;
  }
  const systemOf = (body: { messages?: Array<{ content?: unknown }> }) => body.messages?.[0]?.content;

  test('the chosen persona: its description last in the system message, its name as {{user}}, in storage and the stops', async () => {
    const ione = await importCharacter('Ione');
    await createPersona({ name: 'Default Dan', description: 'Dan is the default.', is_default: true });
    const kit = await createPersona({ name: 'Kit', description: '{{user}} is a small courier who owes {{char}} money.' });
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      const session = client.frames[0] as { data: { conversation_id: string; user_name: string } };
      assert.equal(session.data.user_name, 'Default Dan', 'a new conversation speaks as the default persona');
      const first = await turn(client, 'Ione, hello.');
      assert.equal(systemOf(first), [defaultInstruction(ione, [ione], 'Default Dan'), 'Ione waits for Default Dan.', 'Dan is the default.'].join('\n\n'));

      const chosen = await client.request({ type: 'update_conversation', data: { conversation_id: session.data.conversation_id, persona_id: kit.id } });
      assert.equal(chosen.type, 'conversation_updated');
      const second = await turn(client, 'Ione, it is me.');
      assert.equal(systemOf(second), [defaultInstruction(ione, [ione], 'Kit'), 'Ione waits for Kit.', 'Kit is a small courier who owes Ione money.'].join('\n\n'));
      assert.deepEqual(second.stop, ['\nKit:']);
      const messages = await eventually(async () => {
        const stored = (await rest<Message[]>('GET', `/api/conversations/${session.data.conversation_id}/messages`)).body;
        return stored.length === 4 ? stored : undefined;
      }, 'four stored messages');
      assert.deepEqual(messages.filter((m) => m.role === 'user').map((m) => m.name), ['Default Dan', 'Kit']);
      assert.equal((await rest<{ persona_id: string }>('GET', `/api/conversations/${session.data.conversation_id}`)).body.persona_id, kit.id);
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
    }
  });

  test('session_settings {user_name} (old clients): a persona of that name with no description, until one is chosen', async () => {
    const ione = await importCharacter('Ione');
    await createPersona({ name: 'Default Dan', description: 'Dan is the default.', is_default: true });
    const kit = await createPersona({ name: 'Kit', description: 'Kit is a courier.' });
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      const conversationId = (client.frames[0] as { data: { conversation_id: string } }).data.conversation_id;
      const set = await client.request({ type: 'session_settings', data: { user_name: 'Old Tom' } });
      assert.deepEqual((set as { data: unknown }).data, { user_name: 'Old Tom' });
      const named = await turn(client, 'Ione, ahoy.');
      assert.equal(systemOf(named), [defaultInstruction(ione, [ione], 'Old Tom'), 'Ione waits for Old Tom.'].join('\n\n'), 'the name, no description');
      assert.equal(named.messages?.[1]?.name, 'Old_Tom');
      await client.request({ type: 'update_conversation', data: { conversation_id: conversationId, persona_id: kit.id } });
      const chosen = await turn(client, 'Ione, ahoy again.');
      assert.equal(systemOf(chosen), [defaultInstruction(ione, [ione], 'Kit'), 'Ione waits for Kit.', 'Kit is a courier.'].join('\n\n'), 'a chosen persona replaces the name');
    } finally {
      await client.close();
    }
  });

  test('no persona at all: USER_NAME, no description; an edited persona is used at the next turn', async () => {
    const ione = await importCharacter('Ione');
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      assert.equal((client.frames[0] as { data: { user_name: string } }).data.user_name, 'Jay');
      assert.equal(systemOf(await turn(client, 'Ione, hi.')), [defaultInstruction(ione, [ione], 'Jay'), 'Ione waits for Jay.'].join('\n\n'));
      const mine = await createPersona({ name: 'Mo', description: 'Mo is new.', is_default: true });
      assert.equal(systemOf(await turn(client, 'Ione, hi again.')), [defaultInstruction(ione, [ione], 'Mo'), 'Ione waits for Mo.', 'Mo is new.'].join('\n\n'));
      await rest('PATCH', `/api/personas/${mine.id}`, { description: 'Mo has changed.' });
      assert.equal(systemOf(await turn(client, 'Ione, see?')), [defaultInstruction(ione, [ione], 'Mo'), 'Ione waits for Mo.', 'Mo has changed.'].join('\n\n'));
    } finally {
      await client.close();
    }
  });
});
