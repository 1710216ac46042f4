// Standalone lorebooks over real HTTP and a real socket: a SillyTavern world-info file and a
// character_book imported with POST /api/lorebooks/import (fields mapped, the rest kept under
// extensions), every broken variant refused with its reason and nothing stored, listed, attached
// to a conversation (update_conversation, before and after its first message), used in a turn
// against the loopback LLM (an entry in the exact prompt only while its key is in scope, with
// the character's own entries), and detached when deleted.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { defaultInstruction } from '../src/llm/prompt.ts';
import { type Character, type Lorebook, lorebookSchema } from '../src/protocol.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
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

const api = (path: string, init: RequestInit = {}) => fetch(`${chorus.httpUrl}${path}`, init);
const json = (method: string, body: unknown): RequestInit => ({ method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const importRaw = (body: string, query = '') => api(`/api/lorebooks/import${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

async function imported(res: Response): Promise<Lorebook[]> {
  const text = await res.text();
  assert.equal(res.status, 201, text);
  const { lorebooks } = JSON.parse(text) as { lorebooks: Lorebook[] };
  for (const l of lorebooks) lorebookSchema.strict().parse(l);
  return lorebooks;
}
const lorebookCount = async () => ((await (await api('/api/lorebooks')).json()) as unknown[]).length;

/** A SillyTavern world-info file, as its editor saves one. */
const worldInfo = {
  entries: {
    '0': {
      uid: 0, key: ['lighthouse', 'beacon'], keysecondary: ['storm'], comment: 'The light', content: 'The lighthouse has been dark since the storm.',
      constant: false, selective: true, order: 10, position: 1, disable: false, excludeRecursion: false, probability: 100, useProbability: true,
      depth: 4, selectiveLogic: 0, group: '', scanDepth: null, caseSensitive: null, matchWholeWords: null, displayIndex: 0, vectorized: false,
    },
    '1': { uid: 1, key: ['harbour'], keysecondary: [], comment: 'Off', content: 'Boats come in at dawn.', constant: false, selective: false, order: 20, position: 0, disable: true },
    '2': { uid: 2, key: [], keysecondary: [], comment: 'Always', content: 'Salt is in the air.', constant: true, selective: false, order: 5, position: 0, disable: false },
  },
};

describe('importing lorebooks', () => {
  test('a world-info file: the fields mapped as SillyTavern exports them, the others kept under extensions', async () => {
    const [book] = await imported(await importRaw(JSON.stringify(worldInfo), '?name=Harbour'));
    assert.equal(book!.name, 'Harbour');
    const entries = book!.book.entries as Array<Record<string, unknown>>;
    assert.deepEqual(entries[0], {
      id: 0, keys: ['lighthouse', 'beacon'], secondary_keys: ['storm'], comment: 'The light', content: 'The lighthouse has been dark since the storm.',
      constant: false, selective: true, insertion_order: 10, enabled: true, position: 'after_char',
      extensions: {
        exclude_recursion: false, probability: 100, useProbability: true, depth: 4, selectiveLogic: 0, group: '', scan_depth: null,
        case_sensitive: null, match_whole_words: null, display_index: 0, vectorized: false, position: 1,
      },
    });
    assert.deepEqual([entries[1]!.enabled, entries[1]!.position, entries[2]!.constant], [false, 'before_char', true]);
    assert.deepEqual(await (await api(`/api/lorebooks/${book!.id}`)).json(), book);
  });

  test('a character_book, named by its own name; a multipart upload of several, named by their files', async () => {
    const characterBook = { name: 'Tides', scan_depth: 2, entries: [{ keys: ['tide'], content: 'The tide is high.', enabled: true, insertion_order: 1, unknown_field: [1] }] };
    const [tides] = await imported(await importRaw(JSON.stringify(characterBook)));
    assert.equal(tides!.name, 'Tides');
    assert.deepEqual(tides!.book, characterBook);
    const form = new FormData();
    form.append('file', new Blob([JSON.stringify(worldInfo)], { type: 'application/json' }), 'harbour-lore.json');
    form.append('file', new Blob([JSON.stringify({ entries: [] })], { type: 'application/json' }), 'empty.json');
    const books = await imported(await api('/api/lorebooks/import', { method: 'POST', body: form }));
    assert.deepEqual(books.map((b) => b.name), ['harbour-lore', 'empty']);
    assert.deepEqual((await (await api('/api/lorebooks')).json() as Lorebook[]).map((b) => b.name), ['empty', 'harbour-lore', 'Tides']);
  });

  test('broken files get a 400 that says what is wrong, and nothing is stored', async () => {
    const entry = worldInfo.entries['0'];
    const cases: Array<[string, string, RegExp]> = [
      ['not JSON', '{"entries": ', /not valid JSON/],
      ['empty', '   ', /empty/],
      ['an array', '[]', /not a JSON object/],
      ['no entries', '{"name": "x"}', /no "entries"/],
      ['entries a string', '{"entries": "lots"}', /"entries" must be an object/],
      ['an entry not an object', '{"entries": {"0": 5}}', /entry "0" is not an object/],
      ['an entry without content', JSON.stringify({ entries: { '7': { ...entry, content: undefined } } }), /entry "7" has no text "content"/],
      ['keys that are not text', JSON.stringify({ entries: { '0': { ...entry, key: [1, 2] } } }), /entry "0": "key" must be a list of text keys/],
      ['an order that is not a number', JSON.stringify({ entries: { '0': { ...entry, order: 'first' } } }), /"order" must be a number/],
      ['a character_book entry without enabled', JSON.stringify({ entries: [{ keys: ['a'], content: 'b', insertion_order: 0 }] }), /lorebook\.entries\.0\.enabled/],
      ['a __proto__ key', '{"entries": {"0": {"__proto__": {"x": 1}, "content": "c"}}}', /"__proto__" key \(at entries\.0\.__proto__\)/],
      ['a NUL character', JSON.stringify({ entries: { '0': { ...entry, content: 'a\u0000b' } } }), /NUL/],
    ];
    for (const [what, body, reason] of cases) {
      const res = await importRaw(body);
      assert.equal(res.status, 400, what);
      assert.match(((await res.json()) as { error: string }).error, reason, what);
    }
    const form = new FormData();
    form.append('file', new Blob([JSON.stringify(worldInfo)]), 'good.json');
    form.append('file', new Blob(['{oops']), 'bad.json');
    const res = await api('/api/lorebooks/import', { method: 'POST', body: form });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: string }).error, /"bad.json": the file is not valid JSON/);
    assert.equal(await lorebookCount(), 0, 'nothing half-imported');
    assert.equal((await api('/api/lorebooks/import', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' })).status, 415);
  });

  test('listed, renamed and deleted over REST and the WebSocket', async () => {
    const [book] = await imported(await importRaw(JSON.stringify(worldInfo)));
    assert.equal(book!.name, 'Lorebook', 'no name anywhere: "Lorebook"');
    const renamed = await api(`/api/lorebooks/${book!.id}`, json('PATCH', { name: 'Harbour' }));
    assert.equal(((await renamed.json()) as Lorebook).name, 'Harbour');
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      const listed = await client.request({ type: 'get_lorebooks' });
      assert.equal(listed.type, 'lorebooks_data');
      assert.deepEqual((listed as { data: Lorebook[] }).data.map((b) => b.name), ['Harbour']);
      const deleted = await client.request({ type: 'delete_lorebook', data: { id: book!.id } });
      assert.deepEqual(deleted, { type: 'lorebook_deleted', data: { id: book!.id }, request_id: (deleted as { request_id: string }).request_id });
      const again = await client.request({ type: 'get_lorebook', data: { id: book!.id } });
      assert.equal(again.type, 'db_error');
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
    }
    assert.equal((await api(`/api/lorebooks/${book!.id}`)).status, 404);
    assert.equal((await api('/api/lorebooks/not-a-uuid', { method: 'DELETE' })).status, 400, 'ids are UUIDs');
  });
});

describe('a conversation with attached lorebooks', () => {
  const card = {
    spec: 'chara_card_v2',
    spec_version: '2.0',
    data: {
      name: 'Ione', description: '', personality: '', scenario: '', first_mes: '', mes_example: '', system_prompt: '', post_history_instructions: '',
      creator_notes: '', alternate_greetings: [], tags: [], creator: '', character_version: '', extensions: {},
      character_book: { entries: [{ keys: ['rope'], content: 'Her own lore: the ropes are new.', enabled: true, insertion_order: 15, position: 'after_char' }] },
    },
  };

  async function importIone(): Promise<Character> {
    const res = await api('/api/characters/import', json('POST', card));
    assert.equal(res.status, 201, await res.clone().text());
    return ((await res.json()) as { characters: Character[] }).characters[0]!;
  }

  test('its entries join the character\'s own, only while their key is in scope, in insertion order', async () => {
    const ione = await importIone();
    const [book] = await imported(await importRaw(JSON.stringify(worldInfo), '?name=Harbour'));
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      const session = client.frames[0] as { data: { conversation_id: string } };
      const conversationId = session.data.conversation_id;
      const missing = await client.request({ type: 'update_conversation', data: { conversation_id: conversationId, lorebook_ids: ['00000000-0000-4000-8000-000000000000'] } });
      assert.equal(missing.type, 'db_error', 'an unknown lorebook is refused');
      const attached = await client.request({ type: 'update_conversation', data: { conversation_id: conversationId, lorebook_ids: [book!.id] } });
      assert.equal(attached.type, 'conversation_updated');
      assert.deepEqual((attached as { data: { lorebook_ids: string[] } }).data.lorebook_ids, [book!.id]);

      const system = (...lore: string[]) => [defaultInstruction(ione, [ione], 'Jay'), ...lore].join('\n\n');
      const turn = async (text: string) => {
        llm.chat.enqueue({ tokens: tokenize('Hm.') });
        const before = llm.chat.requests.length;
        client.send({ type: 'user_message', data: { text } });
        const requests = await llm.chat.waitForRequests(before + 1);
        await client.next('text_stream_stop');
        return requests.at(-1)!.body.messages?.[0]?.content;
      };
      // "Salt" is constant (order 5, before), the light needs lighthouse + storm (order 10, after), hers is "rope" (15, after).
      assert.equal(await turn('Ione, is the lighthouse lit?'), system('Salt is in the air.'), 'selective: no "storm" yet');
      assert.equal(await turn('Ione, the storm broke the lighthouse and a rope.'), system('Salt is in the air.', 'The lighthouse has been dark since the storm.\nHer own lore: the ropes are new.'));
      for (let i = 0; i < 2; i++) await turn(`Ione, quiet ${i}.`);
      assert.equal(await turn('Ione, nothing more.'), system('Salt is in the air.'), 'out of the last four messages: gone');
      assert.deepEqual(client.errors, []);

      const stored = (await (await api(`/api/conversations/${conversationId}`)).json()) as { lorebook_ids: string[] };
      assert.deepEqual(stored.lorebook_ids, [book!.id], 'stored with the conversation');
      assert.equal((await api(`/api/lorebooks/${book!.id}`, { method: 'DELETE' })).status, 200);
      assert.deepEqual(((await (await api(`/api/conversations/${conversationId}`)).json()) as { lorebook_ids: string[] }).lorebook_ids, [], 'detached when deleted');
      assert.equal(await turn('Ione, the lighthouse in the storm?'), system(), 'a deleted lorebook is no longer used');
    } finally {
      await client.close();
    }
  });

  test('a character\'s linked world (extensions.world) is used by name, once: not beside its own copy, not again when attached', async () => {
    const importCard = async (name: string, data: Record<string, unknown>) => {
      const res = await api('/api/characters/import', json('POST', { spec: 'chara_card_v2', spec_version: '2.0', data: { ...card.data, name, character_book: null, ...data } }));
      assert.equal(res.status, 201, await res.clone().text());
      return ((await res.json()) as { characters: Character[] }).characters[0]!;
    };
    const wren = await importCard('Wren', { extensions: { world: 'Eldoria' } });
    // SillyTavern embeds the world it links as the card's own book, under the world's name.
    const sera = await importCard('Seraphina', { extensions: { world: 'Eldoria' }, character_book: { name: 'Eldoria', entries: [{ keys: ['glade'], content: 'Her own copy of the glade.', enabled: true, insertion_order: 1 }] } });
    const cast = [sera, wren];
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      const conversationId = (client.frames[0] as { data: { conversation_id: string } }).data.conversation_id;
      const turn = async (text: string) => {
        llm.chat.enqueue({ tokens: tokenize('Hm.') });
        const before = llm.chat.requests.length;
        client.send({ type: 'user_message', data: { text } });
        const requests = await llm.chat.waitForRequests(before + 1);
        await client.next('text_stream_stop');
        return requests.at(-1)!.body.messages?.[0]?.content;
      };
      const system = (who: Character, ...lore: string[]) => [defaultInstruction(who, cast, 'Jay'), ...lore].join('\n\n');
      await client.request({ type: 'update_conversation', data: { conversation_id: conversationId, reply_strategy: 'manual' } }); // only the one named answers
      assert.equal(await turn('Wren, the glade?'), system(wren), 'no lorebook of that name yet');
      const [eldoria] = await imported(await importRaw(JSON.stringify({ entries: { '0': { uid: 0, key: ['glade'], content: 'The glade is hidden.', order: 1, position: 0 } } }), '?name=Eldoria'));
      assert.equal(await turn('Wren, the glade?'), system(wren, 'The glade is hidden.'), 'imported later: linked from then on');
      assert.equal(await turn('Seraphina, the glade?'), system(sera, 'Her own copy of the glade.'), 'her own book is that world: used once');
      await client.request({ type: 'update_conversation', data: { conversation_id: conversationId, lorebook_ids: [eldoria!.id] } });
      assert.equal(await turn('Wren, the glade again?'), system(wren, 'The glade is hidden.'), 'attached as well: still once');
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
    }
  });

  test('attached over REST to a stored conversation, the session in it uses them at its next turn', async () => {
    const ione = await importIone();
    const [book] = await imported(await importRaw(JSON.stringify({ entries: { '0': { uid: 0, key: ['fog'], content: 'The fog never lifts.', order: 1, position: 0 } } })));
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      const conversationId = (client.frames[0] as { data: { conversation_id: string } }).data.conversation_id;
      llm.chat.enqueue({ tokens: tokenize('Hm.') }, { tokens: tokenize('Hm.') });
      client.send({ type: 'user_message', data: { text: 'Ione, the fog?' } });
      await client.next('text_stream_stop');
      const patched = await api(`/api/conversations/${conversationId}`, json('PATCH', { lorebook_ids: [book!.id] }));
      assert.equal(patched.status, 200, await patched.clone().text());
      client.send({ type: 'user_message', data: { text: 'Ione, the fog again?' } });
      await client.next('text_stream_stop');
      const requests = await llm.chat.waitForRequests(2);
      assert.equal(requests[0]!.body.messages?.[0]?.content, defaultInstruction(ione, [ione], 'Jay'));
      assert.equal(requests[1]!.body.messages?.[0]?.content, `${defaultInstruction(ione, [ione], 'Jay')}\n\nThe fog never lifts.`);
      assert.equal((await api(`/api/conversations/${conversationId}`, json('PATCH', { lorebook_ids: ['00000000-0000-4000-8000-000000000000'] }))).status, 409);
    } finally {
      await client.close();
    }
  });
});

describe('access control', () => {
  test('the lorebook import and records need the token like the rest of the API', async () => {
    const [db] = await openTestDatabases();
    const guarded = await startChorus({ database: db!.database, env: { TTS_ENGINE: 'none', AUTH_TOKEN: 'lorebook-test-token-1' } });
    try {
      const post = (headers: Record<string, string>) => fetch(`${guarded.httpUrl}/api/lorebooks/import`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(worldInfo) });
      assert.equal((await post({})).status, 401);
      assert.equal((await post({ authorization: 'Bearer lorebook-test-token-1', origin: 'https://evil.example' })).status, 403);
      assert.equal((await fetch(`${guarded.httpUrl}/api/personas`)).status, 401);
      assert.equal(await lorebookCount(), 0);
      assert.equal((await post({ authorization: 'Bearer lorebook-test-token-1' })).status, 201);
    } finally {
      await guarded.close();
    }
  });
});
