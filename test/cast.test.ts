// Integration tests of each conversation's cast and rules for who speaks: real WebSocket
// connections to the real server, the loopback OpenAI-compatible LLM, text only (TTS off).
// Randomness is seeded (REPLY_SEED), and most characters have talkativeness 0 so that only the
// named ones answer unless a test says otherwise.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { Character, Conversation, ServerMessageOf } from '../src/protocol.ts';
import { chooseResponders } from '../src/session/reply-strategy.ts';
import { prng } from '../src/util/prng.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, type RecordedChatRequest, startEngineServer, tokenize } from './support/engine-server.ts';
import { eventually } from './support/eventually.ts';

const SEED = 1234;
let llm: EngineServer;
let chorus: ChorusUnderTest;
let ada: Character;
let bob: Character;
let cy: Character;
const clients: TestClient[] = [];

const connect = async () => {
  const c = await TestClient.connect(chorus.wsUrl);
  clients.push(c);
  return c;
};
const conversationOf = (c: TestClient) => c.ofType('session')[0]!.data.conversation_id!;

/** update_conversation of the client's conversation; resolves with the updated record. */
async function update(c: TestClient, fields: Record<string, unknown>, conversationId = conversationOf(c)): Promise<Conversation> {
  const reply = await c.request({ type: 'update_conversation', data: { conversation_id: conversationId, ...fields } });
  assert.equal(reply.type, 'conversation_updated', JSON.stringify(reply));
  return (reply as ServerMessageOf<'conversation_updated'>).data;
}

/** The speakers of the text streams that stopped so far, in order. */
const speakers = (c: TestClient) => c.ofType('text_stream_stop').map((s) => s.data.character_name);
/** The last message of an LLM request: what the character answers. */
const lastMessage = (r: RecordedChatRequest) => {
  const m = r.body.messages!.at(-1)!;
  return typeof m.content === 'string' ? m.content : '';
};
/** The session of the only open connection. */
const onlySession = () => {
  assert.equal(chorus.sessions.size, 1);
  return [...chorus.sessions][0]!;
};

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  llm = await startEngineServer();
  chorus = await startChorus({
    database: db.database,
    env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'test-key', LLM_MODEL: 'test/model', LLM_TIMEOUT_MS: '3000', USER_NAME: 'Jay', REPLY_SEED: String(SEED) },
  });
});

beforeEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await eventually(async () => (chorus.sessions.size === 0 ? true : undefined), 'the earlier sessions to close');
  llm.reset();
  await resetData((await openTestDatabases())[0]!.database);
  ada = await chorus.repo.createCharacter({ name: 'Ada Lovelace', talkativeness: 0 });
  bob = await chorus.repo.createCharacter({ name: 'Bob', talkativeness: 0 });
  cy = await chorus.repo.createCharacter({ name: 'Cy Twombly', talkativeness: 0, is_active: false });
});

after(async () => {
  for (const c of clients.splice(0)) await c.close();
  await chorus.close();
  await llm.close();
});

describe('a cast per conversation', () => {
  test('a new conversation starts with the default cast (is_active) and the default rules', async () => {
    const client = await connect();
    const session = client.ofType('session')[0]!.data;
    assert.deepEqual(session.active_characters.map((c) => c.id), [ada.id, bob.id]);
    const { active_characters, reply_strategy, allow_self_responses, muted, auto_mode, auto_mode_delay_ms } = session.cast_settings;
    assert.deepEqual({ active_characters, reply_strategy, allow_self_responses, muted, auto_mode, auto_mode_delay_ms }, {
      active_characters: [ada.id, bob.id],
      reply_strategy: 'natural',
      allow_self_responses: false,
      muted: [],
      auto_mode: false,
      auto_mode_delay_ms: 5000,
    });
  });

  test('the cast and rules set before the first message are stored with it and restored by load_conversation', async () => {
    const one = await connect();
    const updated = await update(one, { active_characters: [bob.id, cy.id], reply_strategy: 'list', allow_self_responses: true, muted: [cy.id], auto_mode_delay_ms: 1500 });
    assert.deepEqual(updated.active_characters, [bob.id, cy.id]);
    assert.equal(updated.reply_strategy, 'list');
    const pushed = await one.next('active_characters_data');
    assert.deepEqual(pushed.data.map((c) => c.name), ['Bob', 'Cy Twombly'], 'the new cast is pushed');
    one.send({ type: 'user_message', data: { text: 'Hello there' } });
    await one.next('text_stream_stop');
    const conversationId = conversationOf(one);
    const stored = await eventually(async () => {
      const messages = await chorus.repo.listMessages({ conversation_id: conversationId });
      return messages.length === 2 ? messages : undefined;
    }, 'the turn to be stored');
    assert.deepEqual(speakers(one), ['Bob'], 'list: the whole cast but the muted Cy');
    assert.equal(stored[1]!.name, 'Bob');
    const record = await chorus.repo.getConversation(conversationId);
    assert.equal(record.title, 'Hello there', 'the first message still titles it');
    assert.deepEqual(
      { cast: record.active_characters, strategy: record.reply_strategy, self: record.allow_self_responses, muted: record.muted, delay: record.auto_mode_delay_ms },
      { cast: [bob.id, cy.id], strategy: 'list', self: true, muted: [cy.id], delay: 1500 },
    );

    const two = await connect();
    const loaded = await two.request({ type: 'load_conversation', data: { conversation_id: conversationId } });
    assert.equal(loaded.type, 'conversation_loaded');
    const { conversation } = (loaded as ServerMessageOf<'conversation_loaded'>).data;
    assert.deepEqual([conversation.active_characters, conversation.reply_strategy, conversation.muted], [[bob.id, cy.id], 'list', [cy.id]]);
    const cast = await two.next('active_characters_data');
    assert.deepEqual(cast.data.map((c) => c.name), ['Bob', 'Cy Twombly']);
    two.send({ type: 'user_message', data: { text: 'Ada, are you here?' } });
    await two.next('text_stream_stop');
    assert.deepEqual(speakers(two), ['Bob'], 'Ada is not in this cast; list strategy: Bob');
    const notice = await two.waitFor((f) => f.type === 'not_in_cast', 'the notice') as ServerMessageOf<'not_in_cast'>;
    assert.deepEqual(notice.data, { names: ['Ada Lovelace'], character_ids: [ada.id] });
  });

  test('two conversations keep different casts; an update reaches every session in that conversation only', async () => {
    const one = await connect();
    const two = await connect();
    await update(one, { active_characters: [ada.id] });
    await update(two, { active_characters: [bob.id] });
    one.send({ type: 'user_message', data: { text: 'Ada and Bob?' } });
    two.send({ type: 'user_message', data: { text: 'Ada and Bob?' } });
    await one.next('text_stream_stop');
    await two.next('text_stream_stop');
    assert.deepEqual(speakers(one), ['Ada Lovelace']);
    assert.deepEqual(speakers(two), ['Bob']);
    assert.deepEqual(((await one.waitFor((f) => f.type === 'not_in_cast', 'the notice')) as ServerMessageOf<'not_in_cast'>).data.names, ['Bob']);

    // REST changes conversation one's cast: its session takes it (and says so); two is untouched.
    const patched = await fetch(`${chorus.httpUrl}/api/conversations/${conversationOf(one)}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ active_characters: [ada.id, cy.id], reply_strategy: 'manual' }),
    });
    assert.equal(patched.status, 200);
    const pushed = await one.waitFor((f) => f.type === 'active_characters_data' && (f as ServerMessageOf<'active_characters_data'>).data.length === 2, 'the new cast');
    assert.deepEqual((pushed as ServerMessageOf<'active_characters_data'>).data.map((c) => c.name), ['Ada Lovelace', 'Cy Twombly']);
    const echoed = await one.waitFor((f) => f.type === 'conversation_updated' && !('request_id' in f), 'the update pushed');
    assert.equal((echoed as ServerMessageOf<'conversation_updated'>).data.reply_strategy, 'manual');
    one.send({ type: 'user_message', data: { text: 'Cy, then Ada' } });
    await eventually(async () => (speakers(one).length === 3 ? true : undefined), 'two more replies');
    assert.deepEqual(speakers(one), ['Ada Lovelace', 'Cy Twombly', 'Ada Lovelace']);
    assert.equal(two.ofType('active_characters_data').length, 1, 'only its own update');
  });

  test('is_active is the default for new conversations; the original client\'s refresh adopts it for its own', async () => {
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    await client.next('text_stream_stop');
    const deactivated = await client.request({ type: 'update_character', data: { id: ada.id, is_active: false } });
    assert.equal(deactivated.type, 'character_updated');
    client.send({ type: 'user_message', data: { text: 'Ada, still here?' } });
    await client.next('text_stream_stop');
    assert.deepEqual(speakers(client), ['Ada Lovelace', 'Ada Lovelace'], 'a started conversation keeps its cast');

    const fresh = await connect();
    assert.deepEqual(fresh.ofType('session')[0]!.data.active_characters.map((c) => c.name), ['Bob'], 'a new one starts from is_active');

    // The original client toggles is_active, then asks for the active characters.
    const refreshed = await client.request({ type: 'refresh_active_characters' });
    assert.equal(refreshed.type, 'active_characters_data');
    assert.deepEqual((refreshed as ServerMessageOf<'active_characters_data'>).data.map((c) => c.name), ['Bob']);
    assert.deepEqual((await chorus.repo.getConversation(conversationOf(client))).active_characters, [bob.id], 'stored');
    client.send({ type: 'user_message', data: { text: 'Ada and Bob?' } });
    await eventually(async () => (speakers(client).length === 3 ? true : undefined), 'the reply');
    assert.deepEqual(speakers(client).at(-1), 'Bob');
  });

  test('a new conversation not yet started follows the default cast as it changes', async () => {
    const client = await connect();
    const created = await client.request({ type: 'create_character', data: { name: 'Zed', talkativeness: 0 } });
    assert.equal(created.type, 'character_created');
    const pushed = await client.next('active_characters_data');
    assert.deepEqual(pushed.data.map((c) => c.name), ['Ada Lovelace', 'Bob', 'Zed']);
  });
});

describe('who answers', () => {
  test('natural, seeded: the named first, then the others by talkativeness, exactly as the strategy with the seed', async () => {
    await chorus.repo.updateCharacter({ id: ada.id, talkativeness: 0.5 });
    await chorus.repo.updateCharacter({ id: bob.id, talkativeness: 0.5 });
    const members = (await chorus.repo.listActiveCharacters()).map((c) => ({ ...c, muted: false }));
    const rng = prng(SEED);
    const texts = ['Hello', 'Bob?', 'Anyone there?', 'Hi again'];
    const expected = texts.map((text) =>
      chooseResponders({ text, cast: members, lastSpeaker: undefined, spokeSinceUser: [], strategy: 'natural', allowSelfResponses: false, rng }).map((c) => c.name),
    );
    const client = await connect();
    let count = 0;
    for (const [i, text] of texts.entries()) {
      client.send({ type: 'user_message', data: { text } });
      count += expected[i]!.length;
      await eventually(async () => (speakers(client).length === count ? true : undefined), `the replies to "${text}"`);
    }
    assert.deepEqual(speakers(client), expected.flat());
  });

  test('manual with nobody named: nobody answers and the message is stored', async () => {
    const client = await connect();
    await update(client, { reply_strategy: 'manual' });
    client.send({ type: 'user_message', data: { text: 'Just thinking aloud.' } });
    client.send({ type: 'user_message', data: { text: 'Bob?' } });
    await client.next('text_stream_stop');
    assert.deepEqual(speakers(client), ['Bob'], 'nobody answered the first message');
    const messages = await eventually(async () => {
      const m = await chorus.repo.listMessages({ conversation_id: conversationOf(client) });
      return m.length === 3 ? m : undefined;
    }, 'three stored messages');
    assert.deepEqual(messages.map((m) => m.content), ['Just thinking aloud.', 'Bob?', 'Reply to: Bob?']);
  });

  test('a muted member does not answer when named; trigger_character makes it speak without a user message', async () => {
    const client = await connect();
    await update(client, { muted: [bob.id] });
    client.send({ type: 'user_message', data: { text: 'Bob and Ada?' } });
    await client.next('text_stream_stop');
    assert.deepEqual(speakers(client), ['Ada Lovelace']);
    llm.chat.enqueue({ tokens: tokenize('I was listening all along.') });
    client.send({ type: 'trigger_character', data: { character_id: bob.id } });
    const stop = await client.next('text_stream_stop');
    assert.equal(stop.data.character_name, 'Bob');
    assert.equal(stop.data.text, 'I was listening all along.');
    const [, toBob] = await llm.chat.waitForRequests(2);
    assert.match(lastMessage(toBob!), /Ada Lovelace: Reply to: Bob and Ada\?/, 'Bob answers the conversation as it stands');
    const messages = await eventually(async () => {
      const m = await chorus.repo.listMessages({ conversation_id: conversationOf(client) });
      return m.length === 3 ? m : undefined;
    }, 'three stored messages');
    assert.deepEqual(messages.map((m) => m.role), ['user', 'assistant', 'assistant'], 'no user message for the trigger');
  });

  test('trigger_character of a character not in the cast, or of none, is refused', async () => {
    const client = await connect();
    const outside = await client.request({ type: 'trigger_character', data: { character_id: cy.id } });
    assert.equal(outside.type, 'error');
    assert.match(JSON.stringify(outside), /Cy Twombly is not in this conversation's cast/);
    const none = await client.request({ type: 'trigger_character', data: { character_id: 'nobody-001' } });
    assert.equal((none as ServerMessageOf<'error'>).data.code, 'not_found');
    const invalid = await client.request({ type: 'trigger_character', data: {} });
    assert.equal((invalid as ServerMessageOf<'error'>).data.code, 'invalid_payload');
    const badStrategy = await client.request({ type: 'update_conversation', data: { conversation_id: conversationOf(client), reply_strategy: 'loudest' } });
    assert.equal(badStrategy.type, 'db_error');
    assert.match(JSON.stringify(badStrategy), /reply_strategy/);
  });

  test('naming characters outside the cast: the turn goes by the strategy and the client is told, in order of mention', async () => {
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Cy, Zed and Bob, hello' } });
    const notice = await client.next('not_in_cast');
    assert.deepEqual(notice.data, { names: ['Cy Twombly'], character_ids: [cy.id] });
    await client.next('text_stream_stop');
    assert.deepEqual(speakers(client), ['Bob']);
    const noticeAt = client.frames.findIndex((f) => f.type === 'not_in_cast');
    assert.ok(noticeAt < client.frames.findIndex((f) => f.type === 'text_stream_start'), 'told before the replies');
  });
});

describe('who answers, by strategy, over the socket', () => {
  test('list: every member in cast order, muted ones left out', async () => {
    const client = await connect();
    await update(client, { reply_strategy: 'list' });
    client.send({ type: 'user_message', data: { text: 'Hello, anyone?' } });
    await eventually(async () => (speakers(client).length === 2 ? true : undefined), 'two replies');
    assert.deepEqual(speakers(client), ['Ada Lovelace', 'Bob']);
    await update(client, { muted: [ada.id] });
    client.send({ type: 'user_message', data: { text: 'And now?' } });
    await eventually(async () => (speakers(client).length === 3 ? true : undefined), 'one more reply');
    assert.deepEqual(speakers(client), ['Ada Lovelace', 'Bob', 'Bob']);
  });

  test('natural with talkativeness 1: everyone speaks up unaddressed; with 0 and nobody named, nobody but the fallback', async () => {
    await chorus.repo.updateCharacter({ id: ada.id, talkativeness: 1 });
    await chorus.repo.updateCharacter({ id: bob.id, talkativeness: 1 });
    const client = await connect();
    client.send({ type: 'user_message', data: { text: 'Hello there' } });
    await eventually(async () => (speakers(client).length === 2 ? true : undefined), 'two replies');
    assert.deepEqual([...speakers(client)].sort(), ['Ada Lovelace', 'Bob']);
    await chorus.repo.updateCharacter({ id: ada.id, talkativeness: 0 });
    await client.request({ type: 'refresh_characters' });
    client.send({ type: 'user_message', data: { text: 'Quiet now' } });
    await eventually(async () => (speakers(client).length === 3 ? true : undefined), 'one more reply');
    assert.equal(speakers(client)[2], 'Bob', 'the only member with talkativeness > 0 is the fallback');
  });

  test('allow_self_responses: a lone member in auto-mode answers its own last reply (without it, the auto-mode tests show the last speaker passed over)', async () => {
    const client = await connect();
    await update(client, { active_characters: [ada.id], reply_strategy: 'pooled', allow_self_responses: true });
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    await client.next('text_stream_stop');
    llm.chat.enqueue({ tokens: tokenize('Where was I.') }, { tokens: tokenize('Ah yes.') });
    await update(client, { auto_mode: true, auto_mode_delay_ms: 30 });
    await eventually(async () => (speakers(client).length >= 3 ? true : undefined), 'two replies to herself');
    await update(client, { auto_mode: false });
    assert.deepEqual(speakers(client).slice(0, 3), ['Ada Lovelace', 'Ada Lovelace', 'Ada Lovelace']);
    const requests = await llm.chat.waitForRequests(3);
    assert.deepEqual([requests[1]!.body.messages!.at(-1)!.role, lastMessage(requests[1]!)], ['assistant', 'Reply to: Ada?'], 'she answers her own last reply');
  });
});

describe('auto-mode', () => {
  /** Starts a conversation where Ada (named) has answered the user, then turns auto-mode on (pooled: exact). */
  async function chatter(client: TestClient, replies: Array<{ tokens: string[]; tokenDelayMs?: number }>) {
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    await client.next('text_stream_stop');
    llm.chat.enqueue(...replies);
    await update(client, { reply_strategy: 'pooled', auto_mode: true, auto_mode_delay_ms: 30 });
  }

  test('after the last reply the characters go on among themselves, each answering the last reply', async () => {
    const client = await connect();
    await chatter(client, [{ tokens: tokenize('Bob here.') }, { tokens: tokenize('Ada again.') }]);
    await eventually(async () => (speakers(client).length >= 3 ? true : undefined), 'two auto exchanges');
    // Pooled: Bob has not spoken since the user; then everyone has, and Bob spoke last: Ada.
    assert.deepEqual(speakers(client).slice(0, 3), ['Ada Lovelace', 'Bob', 'Ada Lovelace']);
    const requests = await llm.chat.waitForRequests(3);
    assert.equal(lastMessage(requests[1]!), 'Ada Lovelace: Reply to: Ada?', 'Bob answers Ada, with no user message in between');
    assert.equal(lastMessage(requests[2]!), 'Bob: Bob here.');
    const conversation = await chorus.repo.getConversation(conversationOf(client));
    assert.deepEqual([conversation.auto_mode, conversation.auto_mode_delay_ms], [true, 30], 'stored');
    await update(client, { auto_mode: false });
  });

  test('a user message takes the floor: the next turn answers it', async () => {
    const client = await connect();
    await chatter(client, [{ tokens: tokenize('One, two, three, four, five, six.'), tokenDelayMs: 40 }]);
    await client.waitFor((f) => f.type === 'text_stream_start' && (f as ServerMessageOf<'text_stream_start'>).data.character_name === 'Bob', 'the auto reply');
    client.send({ type: 'user_message', data: { text: 'Wait, both of you' } });
    const [, , toUser] = await llm.chat.waitForRequests(3);
    assert.equal(lastMessage(toUser!), 'Wait, both of you', 'the turn after the running one answers the user');
    await update(client, { auto_mode: false });
  });

  test('an interrupt stops it at once, until the user speaks again', async () => {
    const client = await connect();
    await chatter(client, [{ tokens: tokenize('On and on and on and on and on.'), tokenDelayMs: 40 }]);
    await client.waitFor((f) => f.type === 'text_stream_start' && (f as ServerMessageOf<'text_stream_start'>).data.character_name === 'Bob', 'the auto reply');
    client.send({ type: 'interrupt' });
    await client.next('interrupt_ack');
    assert.equal(onlySession().autoModeState, 'paused');
    client.send({ type: 'user_message', data: { text: 'Ada, your turn' } });
    const [, , toUser] = await llm.chat.waitForRequests(3);
    assert.equal(lastMessage(toUser!), 'Ada, your turn', 'no auto turn in between');
    await eventually(async () => (onlySession().autoModeState !== 'paused' ? true : undefined), 'the chatter to be allowed again');
    await update(client, { auto_mode: false });
  });

  test('turning auto_mode off stops it', async () => {
    const client = await connect();
    await chatter(client, [{ tokens: tokenize('Bob here.') }]);
    await eventually(async () => (speakers(client).length >= 2 ? true : undefined), 'one auto exchange');
    const off = await update(client, { auto_mode: false });
    const requestsAtOff = llm.chat.requests.length;
    assert.equal(off.auto_mode, false);
    assert.equal(onlySession().autoModeState, 'off');
    client.send({ type: 'user_message', data: { text: 'Ada, alone now?' } });
    await eventually(async () => (llm.chat.requests.some((r) => lastMessage(r) === 'Ada, alone now?') ? true : undefined), 'the reply to the user');
    const toUser = llm.chat.requests.findIndex((r) => lastMessage(r) === 'Ada, alone now?');
    // Only an auto turn already under way when auto-mode went off (its request maybe not yet received) comes first.
    assert.ok(toUser <= requestsAtOff + 1, `no new auto turn: ${llm.chat.requests.map(lastMessage).join(' | ')}`);
    await eventually(async () => (speakers(client).length === toUser + 1 ? true : undefined), 'the reply to the user to end');
    assert.equal(llm.chat.requests.length, toUser + 1, 'nothing after it');
  });
});

describe('storage of the cast fields', () => {
  test('created, updated and read back on every test database; the strategy is checked by the database too', async () => {
    const { Repo } = await import('../src/db/repo.ts');
    for (const { name, database } of await openTestDatabases()) {
      const repo = new Repo(database);
      const made = await repo.createConversation({ title: `cast ${name}`, active_characters: ['a-001', 'b-001'], reply_strategy: 'pooled', muted: ['b-001'] });
      assert.deepEqual(
        [made.reply_strategy, made.allow_self_responses, made.muted, made.auto_mode, made.auto_mode_delay_ms],
        ['pooled', false, ['b-001'], false, 5000],
        name,
      );
      await repo.updateConversation({ conversation_id: made.conversation_id, auto_mode: true, auto_mode_delay_ms: 250, allow_self_responses: true });
      const read = await repo.getConversation(made.conversation_id);
      assert.deepEqual([read.active_characters, read.reply_strategy, read.auto_mode, read.auto_mode_delay_ms, read.allow_self_responses], [['a-001', 'b-001'], 'pooled', true, 250, true], name);
      await assert.rejects(repo.updateConversation({ conversation_id: made.conversation_id, reply_strategy: 'loudest' as never }), Error, `${name}: the CHECK constraint`);
      await repo.deleteConversation(made.conversation_id);
    }
  });
});
