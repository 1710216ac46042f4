// No frame can crash or wedge the server: every Object.prototype name as a message type, then a
// seeded fuzz run of hostile frames over one real socket. Afterwards the process (which hosts
// the server) is alive, every request that carried a request_id got a reply carrying it, ping
// answers, and the stored characters, voices and messages are exactly what the successful
// requests made them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Character, ServerMessage, Voice } from '../src/protocol.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { prng } from './support/random.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const FRAMES = 10_000;

let chorus: ChorusUnderTest;

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  await resetData(db.database);
  // No LLM key: a turn ends at once with llm_not_configured (its user message is still stored).
  chorus = await startChorus({
    database: db.database,
    env: { TTS_ENGINE: 'none', LLM_API_KEY: '', MAX_MESSAGE_BYTES: '65536', RATE_LIMIT_TURNS: '100000', RATE_LIMIT_REQUESTS: '100000' },
  });
});

after(async () => {
  await chorus?.close();
});

const prototypeNames = [
  ...new Set([...Object.getOwnPropertyNames(Object.prototype), ...Object.getOwnPropertyNames(Function.prototype), 'prototype', '__proto__']),
];

/** Replies that echo `id`, from the frames received so far. */
const repliesTo = (client: TestClient, id: string) => client.frames.filter((f) => 'request_id' in f && f.request_id === id);

describe('hostile message types', () => {
  test('every Object.prototype name as a type is an unknown type, echoed, and the connection stays usable', async () => {
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      for (const name of prototypeNames) {
        const reply = await client.request({ type: name });
        assert.equal(reply.type, 'error', `type "${name}"`);
        assert.equal(reply.type === 'error' && reply.data.code, 'unknown_type', `type "${name}"`);
        assert.equal(reply.type === 'error' && reply.data.request_type, name);
      }
      assert.equal((await client.request({ type: 'ping' })).type, 'pong');
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
    }
  });

  test('an exception inside a handler becomes an internal error that echoes the request and tells no internals', async () => {
    const client = await TestClient.connect(chorus.wsUrl);
    const original = chorus.repo.listVoices;
    chorus.repo.listVoices = async () => {
      throw new TypeError('secret internals: select * from voices where password = hunter2');
    };
    try {
      // A CRUD failure is a db_error; make the session's own path throw instead: preview_voice reads the voice first.
      const crud = await client.request({ type: 'get_voices' });
      assert.equal(crud.type, 'db_error');
      assert.doesNotMatch(crud.type === 'db_error' ? crud.error : '', /select|hunter2|TypeError/);
      const original2 = chorus.repo.listActiveCharacters;
      chorus.repo.listActiveCharacters = async () => {
        throw new Error('connection to 10.0.0.1 failed: password=hunter2');
      };
      try {
        const reply = await client.request({ type: 'refresh_characters' });
        assert.equal(reply.type, 'error');
        if (reply.type !== 'error') return;
        assert.equal(reply.data.code, 'internal');
        assert.equal(reply.data.request_type, 'refresh_characters');
        assert.match(reply.data.message, /error id [0-9a-f]{8}/);
        assert.doesNotMatch(reply.data.message, /hunter2|10\.0\.0\.1|password/);
      } finally {
        chorus.repo.listActiveCharacters = original2;
      }
      assert.equal((await client.request({ type: 'refresh_characters' })).type, 'active_characters_data');
    } finally {
      chorus.repo.listVoices = original;
      await client.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The fuzz run

type Rng = () => number;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
const int = (r: Rng, n: number) => Math.floor(r() * n);

const hostileStrings = [
  '', ' ', '\u0000', 'a\u0000b', '\ud800', 'x\udc00y', '💥'.repeat(50), "'; drop table characters; --", '<script>alert(1)</script>',
  '__proto__', 'constructor', '${7*7}', '%00', '\\', '"', 'a'.repeat(250), 'Ω≈ç√', '\u202e', '\r\n', 'null',
];
const hostileValues = (r: Rng): unknown =>
  pick(r, [
    () => pick(r, hostileStrings),
    () => -1,
    () => 1e308,
    () => -0,
    () => Number.MAX_SAFE_INTEGER + 2,
    () => null,
    () => true,
    () => [],
    () => ({}),
    () => deep(int(r, 300)),
    () => 'x'.repeat(int(r, 8_000)), // big, yet a whole frame stays under MAX_MESSAGE_BYTES
    () => ({ __proto__: { polluted: true }, constructor: { prototype: { polluted: true } } }),
  ])();
const deep = (n: number): unknown => (n === 0 ? 'bottom' : { d: deep(n - 1) });

/** A safe printable name, so some creates succeed and the state has something to compare. */
const word = (r: Rng) => `${pick(r, ['Ada', 'Bob', 'Cy', 'Dee', 'Eve'])} ${int(r, 1000)}`;

const crudTypes = ['get_characters', 'get_character', 'create_character', 'update_character', 'delete_character', 'search_characters', 'get_voices', 'create_voice', 'update_voice', 'delete_voice', 'get_messages', 'get_conversations', 'get_conversation'];
const sessionTypes = ['ping', 'model_settings', 'session_settings', 'refresh_characters', 'refresh_active_characters', 'preview_voice', 'load_conversation'];

interface Sent {
  frame: string | Buffer;
  binary: boolean;
  /** The request_id the server must echo, when the frame is a parseable request. */
  requestId?: string;
  /** The trimmed text a valid user_message stores. */
  userText?: string;
}

/** One frame of a seeded mix: ill-formed, hostile, valid CRUD, user messages, binary, interrupt bursts. */
function fuzzFrame(r: Rng, i: number, known: { characters: string[]; voices: string[] }): Sent[] {
  const id = `f${i}`;
  const json = (value: unknown, requestId?: string): Sent => ({ frame: JSON.stringify(value), binary: false, ...(requestId ? { requestId } : {}) });
  const kind = int(r, 12);
  switch (kind) {
    case 0: // not JSON, or JSON that is not a message
      return [{ frame: pick(r, ['{', 'NaN', '{"type":', '\u0000', '[]', '1', 'null', '"ping"', '{"type":1}', '{"type":"","request_id":"x'.concat(id, '"}')]), binary: false }];
    case 1: // prototype names and unknown types
      return [json({ type: pick(r, [...prototypeNames, 'get_everything', 'DELETE_CHARACTER', ' ping']), request_id: id }, id)];
    case 2: // binary of odd lengths (microphone audio while not listening)
      return [{ frame: Buffer.alloc(int(r, 9000) | 1, int(r, 256)), binary: true }];
    case 3: // an interrupt burst
      return Array.from({ length: 1 + int(r, 20) }, () => json({ type: 'interrupt' }));
    case 4: { // create a character, sometimes valid
      const valid = r() < 0.5;
      const data = valid ? { name: word(r), system_prompt: 'You are terse.', is_active: r() < 0.5 } : { name: hostileValues(r), system_prompt: hostileValues(r), is_active: hostileValues(r) };
      return [json({ type: 'create_character', data, request_id: id }, id)];
    }
    case 5: { // update or delete a known (or unknown) character
      const target = known.characters.length > 0 && r() < 0.7 ? pick(r, known.characters) : pick(r, hostileStrings);
      if (r() < 0.3) return [json({ type: 'delete_character', data: { id: target }, request_id: id }, id)];
      const data = r() < 0.5 ? { id: target, name: word(r), is_active: r() < 0.5 } : { id: target, [pick(r, ['name', 'voice', 'images', 'system_prompt', 'extra'])]: hostileValues(r) };
      return [json({ type: 'update_character', data, request_id: id }, id)];
    }
    case 6: { // voices
      const target = known.voices.length > 0 && r() < 0.6 ? pick(r, known.voices) : `v${int(r, 50)}`;
      const op = pick(r, ['create_voice', 'update_voice', 'delete_voice']);
      const data = r() < 0.5 ? { voice: target, speed: pick(r, [0.5, 1, 2]), pitch: 1 } : { voice: target, speed: hostileValues(r), method: hostileValues(r) };
      return [json({ type: op, data, request_id: id }, id)];
    }
    case 7: { // a user message: clearly valid, or clearly not
      if (r() < 0.5) {
        const text = `hello ${word(r)}`;
        return [{ ...json({ type: 'user_message', data: { text } }), userText: text }];
      }
      const invalidText = pick(r, [42, null, [], {}, true, '   ', 'a\u0000b', '\ud800', 'x\udc00', 'x'.repeat(20_001), deep(10)]);
      return [json({ type: 'user_message', data: pick(r, [{ text: invalidText }, {}, null, 'text']), request_id: id }, id)];
    }
    case 8: { // any CRUD type with hostile data
      const type = pick(r, crudTypes);
      return [json({ type, data: r() < 0.5 ? hostileValues(r) : { id: hostileValues(r), voice: hostileValues(r), conversation_id: hostileValues(r), query: hostileValues(r), limit: hostileValues(r), offset: hostileValues(r) }, request_id: id }, id)];
    }
    case 9: { // session requests with hostile data
      const type = pick(r, sessionTypes);
      return [json({ type, data: r() < 0.3 ? undefined : { temperature: hostileValues(r), top_k: hostileValues(r), user_name: hostileValues(r), voice: hostileValues(r), conversation_id: hostileValues(r) }, request_id: id }, id)];
    }
    case 10: // envelope fields of the wrong type, and extra fields
      return [json({ type: 'ping', data: hostileValues(r), request_id: id, extra: hostileValues(r) }, id)];
    default: // a frame over MAX_MESSAGE_BYTES (64 KiB here)
      return [{ frame: JSON.stringify({ type: 'ping', pad: 'p'.repeat(70_000) }), binary: false }];
  }
}

/** The stored state the successful replies describe. */
function expectedState(frames: readonly ServerMessage[]) {
  const characters = new Map<string, Character>();
  const voices = new Map<string, Voice>();
  for (const f of frames) {
    if (f.type === 'character_created' || f.type === 'character_updated') characters.set(f.data.id, f.data);
    else if (f.type === 'character_deleted') characters.delete(f.data.id);
    else if (f.type === 'voice_created' || f.type === 'voice_updated') voices.set(f.data.voice, f.data);
    else if (f.type === 'voice_deleted') {
      voices.delete(f.data.voice);
      for (const [key, c] of characters) if (c.voice === f.data.voice) characters.set(key, { ...c, voice: null });
    }
  }
  return { characters, voices };
}

/** A character as it can be compared after the run (the cast's last_message is not part of this test). */
const comparable = (c: Character) => ({ ...c, updated_at: undefined, last_message: undefined });

describe('a seeded fuzz run', () => {
  test(`${FRAMES} hostile frames (seed ${SEED}): the server lives, answers every request and stores exactly what succeeded`, async () => {
    await resetData((await openTestDatabases())[0]!.database); // the comparison below starts from nothing
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      const r = prng(SEED);
      const known = { characters: [] as string[], voices: [] as string[] };
      const requestIds: string[] = [];
      const framesById = new Map<string, string>();
      const userTexts: string[] = [];
      for (let i = 0; i < FRAMES; i++) {
        for (const sent of fuzzFrame(r, i, known)) {
          client.sendRaw(sent.frame, sent.binary);
          if (sent.requestId) {
            requestIds.push(sent.requestId);
            framesById.set(sent.requestId, String(sent.frame).slice(0, 200));
          }
          if (sent.userText) userTexts.push(sent.userText);
        }
        // Learn ids from the replies so far, so later updates and deletes hit real records.
        if (i % 200 === 199) {
          await client.request({ type: 'get_characters' }, 30_000);
          for (const f of client.frames) {
            if (f.type === 'character_created') known.characters.push(f.data.id);
            if (f.type === 'voice_created') known.voices.push(f.data.voice);
          }
        }
      }
      // An ordered request after all the others: when it is answered, every earlier one is too.
      const last = await client.request({ type: 'get_characters' }, 60_000);
      assert.equal(last.type, 'characters_data');
      assert.equal((await client.request({ type: 'ping' })).type, 'pong');

      const missing = requestIds.filter((id) => repliesTo(client, id).length === 0);
      assert.deepEqual(missing.slice(0, 5).map((id) => framesById.get(id)), [], `${missing.length} requests got no reply carrying their request_id`);
      assert.deepEqual(client.errors, [], 'every frame the server sent is in the protocol');
      const codes = new Set(client.ofType('error').map((e) => e.data.code));
      assert.ok(!codes.has('internal'), 'no request failed as an internal error');

      const { characters, voices } = expectedState(client.frames as ServerMessage[]);
      const stored = await chorus.repo.listCharacters();
      assert.deepEqual(
        stored.map(comparable).sort((a, b) => a.id.localeCompare(b.id)),
        [...characters.values()].map(comparable).sort((a, b) => a.id.localeCompare(b.id)),
      );
      const storedVoices = await chorus.repo.listVoices();
      assert.deepEqual(storedVoices.map((v) => ({ ...v, updated_at: undefined })), [...voices.values()].map((v) => ({ ...v, updated_at: undefined })).sort((a, b) => (a.voice < b.voice ? -1 : 1)));

      // The session's own conversation holds exactly the valid user messages, in order.
      const session = client.ofType('session')[0];
      assert.ok(session?.data.conversation_id);
      const loaded = await client.request({ type: 'load_conversation', data: { conversation_id: session.data.conversation_id } }, 60_000);
      assert.equal(loaded.type, 'conversation_loaded');
      if (loaded.type !== 'conversation_loaded') return;
      assert.deepEqual(loaded.data.messages.filter((m) => m.role === 'user').map((m) => m.content), userTexts);
    } finally {
      await client.close();
    }
  });
});
