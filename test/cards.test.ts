// Character cards over real HTTP: importing V1/V2/V3 cards from JSON, PNG and multipart uploads
// (every field kept, unknown ones too), refusing broken cards with the reason and nothing stored,
// exporting as PNG or JSON (V2, V3), and import → export → import changing nothing. The cards
// are built here, byte by byte.
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { after, before, beforeEach, describe, test } from 'node:test';
import encodeChunks from 'png-chunks-encode';
import extractChunks from 'png-chunks-extract';
import textChunk from 'png-chunk-text';
import { readFileSync } from 'node:fs';
import { seedCardPath, STARTER_CARDS } from '../src/db/starter-cast.ts';
import { type Character, characterSchema } from '../src/protocol.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';

let chorus: ChorusUnderTest;

before(async () => {
  const [db] = await openTestDatabases();
  assert.ok(db);
  chorus = await startChorus({ database: db.database, env: { TTS_ENGINE: 'none' } });
});

beforeEach(async () => {
  await resetData((await openTestDatabases())[0]!.database);
});

after(async () => {
  await chorus?.close();
});

// ---------------------------------------------------------------------------------------------
// Building cards

type Chunk = { name: string; data: Uint8Array };

/** A small PNG of one colour, as chunks (IHDR, IDAT, IEND). */
function pictureChunks(rgb: [number, number, number], size = 4): Chunk[] {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), ...Array.from({ length: size }, () => Buffer.from(rgb))]);
  return [
    { name: 'IHDR', data: new Uint8Array(header) },
    { name: 'IDAT', data: new Uint8Array(deflateSync(Buffer.concat(Array.from({ length: size }, () => row)))) },
    { name: 'IEND', data: new Uint8Array(0) },
  ];
}

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8').toString('base64');

/** A PNG with text chunks (keyword → text) before IEND. */
function png(texts: Array<[string, string]>, chunks: Chunk[] = pictureChunks([200, 40, 40])): Buffer {
  const end = chunks.findIndex((c) => c.name === 'IEND');
  return Buffer.from(encodeChunks([...chunks.slice(0, end), ...texts.map(([k, t]) => textChunk.encode(k, t)), ...chunks.slice(end)]));
}

const lorebook = {
  name: 'Harbour lore',
  scan_depth: 4,
  token_budget: 512,
  recursive_scanning: false,
  extensions: { chorus_test: { depth: 2 } },
  entries: [
    {
      keys: ['lighthouse', 'beacon'],
      content: 'The lighthouse has been dark since the storm.',
      extensions: { position: 1, probability: 100 },
      enabled: true,
      insertion_order: 10,
      case_sensitive: false,
      name: 'Lighthouse',
      priority: 5,
      id: 0,
      comment: 'the old light',
      selective: true,
      secondary_keys: ['storm'],
      constant: false,
      position: 'before_char',
      unknown_entry_field: { kept: [1, 2, 3] },
    },
    { keys: ['harbour'], content: 'Boats come in at dawn.', extensions: {}, enabled: false, insertion_order: 20 },
  ],
  unknown_book_field: 'kept',
};

/** A V2 card with every field, unknown extension fields and an unknown data field. */
function v2Card(name = 'Captain Ione') {
  return {
    spec: 'chara_card_v2',
    spec_version: '2.0',
    data: {
      name,
      description: '{{char}} keeps the harbour.',
      personality: 'gruff, kind',
      scenario: 'A foggy pier at dawn.',
      first_mes: 'Mind the ropes.',
      mes_example: '<START>\n{{user}}: Hello\n{{char}}: Hm.',
      creator_notes: 'Best with a slow model.',
      system_prompt: 'You are {{char}}, a harbour master.',
      post_history_instructions: 'Stay in character.',
      alternate_greetings: ['Fog again.', 'You are late.'],
      character_book: lorebook,
      tags: ['sea', 'mentor'],
      creator: 'tester',
      character_version: '1.2',
      extensions: { talkativeness: '0.8', fav: true, world: 'Harbour', depth_prompt: { prompt: 'salt', depth: 4 }, constructor: { kept: 'as data' } },
      unknown_data_field: { nested: ['x', { y: 1 }] },
    },
  };
}

/** A V3 card: V2's fields and V3's own. */
function v3Card(name = 'Navigator Sable') {
  const { data } = v2Card(name);
  return {
    spec: 'chara_card_v3',
    spec_version: '3.0',
    data: {
      ...data,
      nickname: 'Sab',
      group_only_greetings: ['Everyone, gather round.'],
      assets: [{ type: 'icon', uri: 'ccdefault:', name: 'main', ext: 'png' }],
      creator_notes_multilingual: { fr: 'Meilleur lentement.' },
      source: ['https://example.invalid/card'],
      creation_date: 1_700_000_000,
      modification_date: 1_700_000_100,
    },
  };
}


/**
 * A card exactly as SillyTavern writes one (src/endpoints/characters.js, charaFormatData and
 * convertWorldInfoToCharacterBook): the V1 fields repeated at the top level beside spec and data,
 * its old extension fields (creatorcomment, avatar, chat, talkativeness as text, fav, create_date),
 * and a lorebook whose entries carry SillyTavern's whole `extensions` (nulls included).
 */
function sillyTavernCard() {
  const fields = {
    name: 'Seraphina',
    description: '{{char}} is a guardian of the Eldoria forest.',
    personality: 'caring, protective',
    scenario: '{{user}} wakes in her glade.',
    first_mes: '*{{char}} kneels beside you.* You are safe now, {{user}}.',
    mes_example: '<START>\n{{user}}: Who are you?\n{{char}}: A friend of the forest.',
  };
  const stEntry = (id: number, keys: string[], content: string, extra: Record<string, unknown>) => ({
    id, keys, secondary_keys: [], comment: `entry ${id}`, content, constant: false, selective: true, insertion_order: 100, enabled: true,
    position: 'before_char', use_regex: true,
    extensions: {
      position: 0, exclude_recursion: false, display_index: id, probability: 100, useProbability: true, depth: 4, selectiveLogic: 0, group: '',
      group_override: false, group_weight: 100, prevent_recursion: false, delay_until_recursion: false, scan_depth: null, match_whole_words: null,
      use_group_scoring: false, case_sensitive: null, automation_id: '', role: 0, vectorized: false, sticky: 0, cooldown: 0, delay: 0, ...extra,
    },
  });
  return {
    ...fields,
    creatorcomment: 'Made for slow burns.',
    avatar: 'none',
    chat: 'Seraphina - 2025-1-12 @15h 03m 12s 123ms',
    talkativeness: '0.5',
    fav: false,
    tags: ['fantasy', 'guardian'],
    spec: 'chara_card_v2',
    spec_version: '2.0',
    data: {
      ...fields,
      creator_notes: 'Made for slow burns.',
      system_prompt: '',
      post_history_instructions: '',
      tags: ['fantasy', 'guardian'],
      creator: 'st-user',
      character_version: '',
      alternate_greetings: ['*The glade is quiet.* Rest, {{user}}.'],
      extensions: { talkativeness: '0.5', fav: false, world: 'Eldoria', depth_prompt: { prompt: '{{char}} never leaves the forest.', depth: 4, role: 'system' } },
      group_only_greetings: [],
      character_book: {
        entries: [
          stEntry(0, ['glade'], 'The glade is hidden by old magic.', {}),
          { ...stEntry(1, ['shadow'], 'Shadowcreatures hunt at night.', { position: 4, depth: 2, role: 0, selectiveLogic: 3 }), secondary_keys: ['night', 'forest'], position: 'after_char' },
        ],
        name: 'Eldoria',
      },
    },
    create_date: '2025-1-12 @15h 03m 12s 123ms',
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP

const api = (path: string, init: RequestInit = {}) => fetch(`${chorus.httpUrl}${path}`, init);
/** fetch and Blob want a Uint8Array over a plain ArrayBuffer. */
const bytesOf = (buffer: Buffer) => new Uint8Array(buffer);
const importBody = (body: string | Buffer, contentType?: string) =>
  api('/api/characters/import', { method: 'POST', body: typeof body === 'string' ? body : bytesOf(body), ...(contentType ? { headers: { 'content-type': contentType } } : {}) });

async function imported(res: Response): Promise<Character[]> {
  const text = await res.text();
  assert.equal(res.status, 201, text);
  const reply = JSON.parse(text) as { characters: Character[] };
  for (const c of reply.characters) characterSchema.strict().parse(c);
  return reply.characters;
}
const importJson = async (card: unknown) => (await imported(await importBody(JSON.stringify(card), 'application/json')))[0]!;
const importPng = async (bytes: Buffer) => (await imported(await importBody(bytes, 'image/png')))[0]!;

/** The stored picture an imported PNG card's image_url points at. */
async function pictureOf(c: Character): Promise<Buffer> {
  const res = await api(c.image_url ?? '');
  assert.equal(res.status, 200, c.image_url ?? 'no image_url');
  assert.equal(res.headers.get('content-type'), 'image/png');
  return Buffer.from(await res.arrayBuffer());
}

/** A real picture of `size`×`size` noisy pixels, stored uncompressed: over 3 MB at 1024. */
function bigPictureChunks(size: number): Chunk[] {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const pixels = Buffer.alloc(size * (1 + size * 3));
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24; // noise, which does not compress
  for (let y = 0; y < size; y++) pixels[y * (1 + size * 3)] = 0; // each row's filter byte: none
  return [
    { name: 'IHDR', data: new Uint8Array(header) },
    { name: 'IDAT', data: new Uint8Array(deflateSync(pixels, { level: 0 })) },
    { name: 'IEND', data: new Uint8Array(0) },
  ];
}

async function characterCount(): Promise<number> {
  return ((await (await api('/api/characters')).json()) as unknown[]).length;
}

async function exported(id: string, query: string): Promise<Response> {
  const res = await api(`/api/characters/${id}/export?${query}`);
  assert.equal(res.status, 200, await res.clone().text());
  return res;
}

/** The text chunks of a PNG, keyword → decoded text. */
function textsOf(bytes: Buffer): Map<string, string> {
  const texts = new Map<string, string>();
  for (const chunk of extractChunks(new Uint8Array(bytes))) {
    if (chunk.name === 'tEXt') {
      const { keyword, text } = textChunk.decode(chunk.data);
      texts.set(keyword, text);
    }
  }
  return texts;
}
const cardIn = (bytes: Buffer, keyword: string) => JSON.parse(Buffer.from(textsOf(bytes).get(keyword) ?? '', 'base64').toString('utf8'));

/** The character's fields that come from its card (all but id, timestamps, voice, activity; the picture by its version). */
function cardFields(c: Character) {
  const { id: _id, created_at: _c, updated_at: _u, voice: _v, is_active: _a, last_message: _l, ...fields } = c;
  return { ...fields, image_url: fields.image_url?.replace(`/api/characters/${c.id}/image`, '<its picture>') ?? null };
}

/** Every field of a V2 card's data as a character has it. */
function assertHasV2Fields(c: Character, data: ReturnType<typeof v2Card>['data']) {
  for (const key of ['name', 'description', 'personality', 'scenario', 'first_mes', 'mes_example', 'creator_notes', 'system_prompt', 'post_history_instructions', 'creator', 'character_version'] as const) {
    assert.equal(c[key], data[key], key);
  }
  assert.deepEqual(c.alternate_greetings, data.alternate_greetings);
  assert.deepEqual(c.tags, data.tags);
  assert.deepEqual(c.character_book, data.character_book);
  assert.deepEqual(c.extensions, data.extensions);
  assert.equal(c.talkativeness, 0.8, 'extensions.talkativeness "0.8" sets talkativeness');
}

// ---------------------------------------------------------------------------------------------

describe('importing cards', () => {
  test('a V1 JSON card: its six fields, SillyTavern\'s V1 names, the defaults for the rest', async () => {
    const c = await importJson({ name: 'Old Tom', description: 'a fisherman', personality: 'quiet', scenario: 'a boat', first_mes: 'Ahoy.', mes_example: '<START>', talkativeness: '0.3', avatar: 'tom.png', creatorcomment: 'Salty.', chat: 'Old Tom - 2024-5-1', fav: true });
    assert.equal(c.id, 'old-tom-001');
    assert.deepEqual([c.name, c.description, c.personality, c.scenario, c.first_mes, c.mes_example], ['Old Tom', 'a fisherman', 'quiet', 'a boat', 'Ahoy.', '<START>']);
    assert.equal(c.talkativeness, 0.3, 'V1 talkativeness at the top level');
    assert.equal(c.creator_notes, 'Salty.', 'creatorcomment is the creator notes');
    assert.deepEqual([c.system_prompt, c.image_url, c.character_book, c.extensions, c.tags], ['', null, null, { fav: true }, []]);
    const json = await (await exported(c.id, 'format=json')).json();
    assert.deepEqual([json.avatar, json.chat, json.creatorcomment, json.fav, json.talkativeness], ['tom.png', 'Old Tom - 2024-5-1', 'Salty.', true, 0.3], 'a V1 card\'s own fields stay at the top level');
    assert.equal(json.data.avatar, undefined);
  });

  test('a V2 JSON card: every field, the lorebook, unknown extension and data fields', async () => {
    const card = v2Card();
    const c = await importJson(card);
    assertHasV2Fields(c, card.data);
    assert.deepEqual((c.character_book as typeof lorebook).entries[0]!.unknown_entry_field, { kept: [1, 2, 3] });
    assert.deepEqual(c.extensions.constructor, { kept: 'as data' }, 'a "constructor" key is data');
    const stored = (await (await api(`/api/characters/${c.id}`)).json()) as Character;
    assert.deepEqual(stored, c, 'stored as imported');
    const json = await (await exported(c.id, 'format=json')).json();
    assert.deepEqual(json.data.unknown_data_field, card.data.unknown_data_field);
    assert.equal(json.data.extensions.talkativeness, '0.8', 'the card\'s own value is written back as it was');
  });

  test('a V2 PNG card: the card from the "chara" chunk, the image as the picture without the card in it', async () => {
    const card = v2Card();
    const picture = pictureChunks([10, 120, 200]);
    const c = await importPng(png([['chara', b64(card)]], picture));
    assertHasV2Fields(c, card.data);
    assert.match(c.image_url ?? '', new RegExp(`^/api/characters/${c.id}/image\\?v=[0-9a-f]{16}$`));
    const stored = await pictureOf(c);
    assert.deepEqual(textsOf(stored), new Map(), 'no card text left in the picture');
    assert.deepEqual(extractChunks(new Uint8Array(stored)), picture, 'the same image');
  });

  test('a V3 PNG card with both chunks: "ccv3" wins; V3 fields kept', async () => {
    const v3 = v3Card('From Ccv3');
    const c = await importPng(png([['chara', b64(v2Card('From Chara'))], ['ccv3', b64(v3)]]));
    assert.equal(c.name, 'From Ccv3');
    const json = await (await exported(c.id, 'format=json&spec=v3')).json();
    assert.equal(json.spec, 'chara_card_v3');
    assert.equal(json.spec_version, '3.0');
    for (const key of ['nickname', 'group_only_greetings', 'assets', 'creator_notes_multilingual', 'source', 'creation_date', 'modification_date'] as const) {
      assert.deepEqual(json.data[key], v3.data[key], key);
    }
  });

  test('a multipart upload of two files imports both, in one reply', async () => {
    const form = new FormData();
    form.append('file', new Blob([bytesOf(png([['chara', b64(v2Card('Png Card'))]]))], { type: 'image/png' }), 'png-card.png');
    form.append('file', new Blob([JSON.stringify(v3Card('Json Card'))], { type: 'application/json' }), 'json-card.json');
    const characters = await imported(await api('/api/characters/import', { method: 'POST', body: form }));
    assert.deepEqual(characters.map((c) => c.name), ['Png Card', 'Json Card']);
    assert.ok(characters[0]!.image_url?.startsWith(`/api/characters/${characters[0]!.id}/image?v=`), String(characters[0]!.image_url));
    assert.equal(characters[1]!.image_url, null);
    assert.equal(await characterCount(), 2);
  });

  test('an imported character joins the open sessions\' cast', async () => {
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      const c = await importJson(v2Card());
      const reply = await client.request({ type: 'get_active_characters' });
      assert.equal(reply.type, 'active_characters_data');
      if (reply.type === 'active_characters_data') assert.deepEqual(reply.data.map((x) => x.id), [c.id]);
    } finally {
      await client.close();
    }
  });
});

describe('broken cards', () => {
  const good = v2Card();
  const broken: Array<[string, () => Promise<Response>, RegExp]> = [
    ['a PNG without a card chunk', () => importBody(png([['Comment', 'just a picture']]), 'image/png'), /no "chara" or "ccv3" text chunk/],
    ['a bad PNG signature', () => importBody(Buffer.concat([Buffer.from('GIF89a..'), png([['chara', b64(good)]]).subarray(8)]), 'image/png'), /not a PNG image \(its signature is wrong\)/],
    ['a damaged PNG chunk', () => {
      const bytes = png([['chara', b64(good)]]);
      bytes[40] = (bytes[40] ?? 0) ^ 0xff;
      return importBody(bytes, 'image/png');
    }, /PNG is damaged or cut short/],
    ['bad base64 in the chunk', () => importBody(png([['chara', 'not*base64!']]), 'image/png'), /"chara" chunk is not valid base64/],
    ['bad JSON in the chunk', () => importBody(png([['chara', b64('{"spec": "chara_card_v2", "data": ')]]), 'image/png'), /"chara" chunk is not valid JSON/],
    ['a broken ccv3 next to a good chara', () => importBody(png([['chara', b64(good)], ['ccv3', b64('{oops')]]), 'image/png'), /"ccv3" chunk is not valid JSON/],
    ['a bad JSON file', () => importBody('{"name": "x",', 'application/json'), /the JSON card is not valid JSON/],
    ['a wrong spec', () => importBody(JSON.stringify({ ...good, spec: 'chara_card_v9' }), 'application/json'), /spec is "chara_card_v9"; Chorus reads "chara_card_v2" and "chara_card_v3"/],
    ['a V2 card without data', () => importBody(JSON.stringify({ spec: 'chara_card_v2', name: 'x' }), 'application/json'), /chara_card_v2 card has no "data" object/],
    ['no name', () => importBody(JSON.stringify({ ...good, data: { ...good.data, name: '  ' } }), 'application/json'), /the card has no name \(data\.name\)/],
    ['a field of the wrong type', () => importBody(JSON.stringify({ ...good, data: { ...good.data, tags: 'sea, mentor' } }), 'application/json'), /data\.tags: .*expected array/],
    ['a lorebook entry without keys', () => importBody(JSON.stringify({ ...good, data: { ...good.data, character_book: { entries: [{ content: 'x', enabled: true, insertion_order: 1 }] } } }), 'application/json'), /data\.character_book\.entries\.0\.keys/],
    ['a card over the size limit', () => importBody(png([['chara', b64(good)], ['Comment', 'x'.repeat(8 * 1024 * 1024)]]), 'image/png'), /the card is 83\d{5} bytes; the limit is 8388608 bytes \(8\.0 MB\)/],
    ['an upload over the body limit', () => importBody(Buffer.concat([png([['chara', b64(good)]]), Buffer.alloc(17 * 1024 * 1024)]), 'image/png'), /the upload is over 16 MB; a card may be up to 8 MB/],
    ['base64 of bytes that are not UTF-8', () => importBody(png([['chara', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]).toString('base64')]]), 'image/png'), /"chara" chunk is not base64 of UTF-8 text/],
    ['a V3 field of the wrong type', () => importBody(JSON.stringify({ ...v3Card(), data: { ...v3Card().data, group_only_greetings: 'hi' } }), 'application/json'), /data\.group_only_greetings: .*expected array/],
    ['an empty body', () => importBody('', 'image/png'), /the body is empty/],
    ['a multipart upload with one good and one broken file', () => {
      const form = new FormData();
      form.append('file', new Blob([JSON.stringify(good)], { type: 'application/json' }), 'good.json');
      form.append('file', new Blob([bytesOf(png([]))], { type: 'image/png' }), 'bad.png');
      return api('/api/characters/import', { method: 'POST', body: form });
    }, /"bad\.png": the PNG carries no character card/],
    ['a multipart file over the size limit', () => {
      const form = new FormData();
      form.append('file', new Blob([JSON.stringify({ name: 'Big', description: 'x'.repeat(8 * 1024 * 1024) })], { type: 'application/json' }), 'big.json');
      return api('/api/characters/import', { method: 'POST', body: form });
    }, /"big\.json" is over the 8 MB card limit/],
    ['a multipart upload without files', () => {
      const form = new FormData();
      form.append('note', 'no card here');
      return api('/api/characters/import', { method: 'POST', body: form });
    }, /has no file in it/],
  ];
  for (const [what, send, reason] of broken) {
    test(`${what}: 400 with the reason, nothing stored`, async () => {
      await importJson(v2Card('Already Here'));
      const before = await characterCount();
      const res = await send();
      const body = (await res.json()) as { error: string };
      assert.equal(res.status, 400, body.error);
      assert.match(body.error, reason);
      assert.equal(await characterCount(), before);
    });
  }

  test('other content types are 415 on the import route, and PNG is 415 on the other routes', async () => {
    const text = await importBody(JSON.stringify(good), 'text/plain');
    assert.equal(text.status, 415);
    assert.match(((await text.json()) as { error: string }).error, /image\/png, application\/json or multipart\/form-data/);
    const pngElsewhere = await api('/api/characters', { method: 'POST', headers: { 'content-type': 'image/png' }, body: bytesOf(png([['chara', b64(good)]])) });
    assert.equal(pngElsewhere.status, 415);
    const form = new FormData();
    form.append('name', 'Eve');
    assert.equal((await api('/api/characters', { method: 'POST', body: form })).status, 415, 'multipart elsewhere');
    assert.equal(await characterCount(), 0);
  });

  test('a "__proto__" key is refused, wherever it is, and pollutes nothing', async () => {
    const hostile = (where: 'extensions' | 'book' | 'data') => {
      const card = JSON.parse(JSON.stringify(v2Card())) as ReturnType<typeof v2Card>;
      const text = JSON.stringify(card);
      const proto = '"__proto__":{"polluted":true},';
      if (where === 'extensions') return text.replace('"extensions":{"talkativeness"', `"extensions":{${proto}"talkativeness"`);
      if (where === 'book') return text.replace('"keys":["harbour"]', `${proto}"keys":["harbour"]`);
      return text.replace('"name":"Captain Ione"', `${proto}"name":"Captain Ione"`);
    };
    for (const [where, path] of [['extensions', /data\.extensions\.__proto__/], ['book', /data\.character_book\.entries\[1\]\.__proto__/], ['data', /at data\.__proto__/]] as const) {
      const body = hostile(where);
      assert.ok(body.includes('__proto__'), where);
      const res = await importBody(body, 'application/json');
      assert.equal(res.status, 400);
      const { error } = (await res.json()) as { error: string };
      assert.match(error, /"__proto__" key/);
      assert.match(error, path);
      const viaPng = await importBody(png([['chara', b64(body)]]), 'image/png');
      assert.equal(viaPng.status, 400, `${where} in a PNG`);
    }
    // The same over create_character: refused, not silently dropped.
    const create = await api('/api/characters', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"Eve","extensions":{"__proto__":{"polluted":true}}}' });
    assert.equal(create.status, 400);
    assert.match(((await create.json()) as { error: string }).error, /extensions: must not contain a "__proto__" key/);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
    assert.equal(await characterCount(), 0);
  });
});

describe('exporting cards', () => {
  test('JSON is V2 by default, as an attachment named after the character', async () => {
    const c = await importJson(v2Card());
    const res = await exported(c.id, 'format=json');
    assert.equal(res.headers.get('content-disposition'), 'attachment; filename="captain-ione.json"');
    const json = await res.json();
    assert.equal(json.spec, 'chara_card_v2');
    assert.equal(json.spec_version, '2.0');
    assert.equal(json.data.name, 'Captain Ione');
  });

  test('a PNG has the picture and the card in "chara"; V3 writes "ccv3" too', async () => {
    const picture = pictureChunks([9, 9, 9]);
    const c = await importPng(png([['ccv3', b64(v3Card())]], picture));
    const v2 = Buffer.from(await (await exported(c.id, 'format=png')).arrayBuffer());
    assert.deepEqual([...textsOf(v2).keys()], ['chara']);
    assert.equal(cardIn(v2, 'chara').spec, 'chara_card_v2');
    const res = await exported(c.id, 'format=png&spec=v3');
    assert.equal(res.headers.get('content-type'), 'image/png');
    assert.equal(res.headers.get('content-disposition'), 'attachment; filename="navigator-sable.png"');
    const v3 = Buffer.from(await res.arrayBuffer());
    assert.deepEqual([...textsOf(v3).keys()].sort(), ['ccv3', 'chara']);
    assert.equal(cardIn(v3, 'ccv3').spec, 'chara_card_v3');
    assert.equal(cardIn(v3, 'chara').spec, 'chara_card_v2');
    const image = extractChunks(new Uint8Array(v3)).filter((chunk) => chunk.name !== 'tEXt');
    assert.deepEqual(image, picture, 'the character\'s own picture');
  });

  test('a character without a PNG picture gets a generated PNG; a changed talkativeness is written', async () => {
    const created = await api('/api/characters', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Plain', system_prompt: 'You are plain.', image_url: 'https://example.invalid/a.jpg', talkativeness: 0.2 }) });
    assert.equal(created.status, 201);
    const c = (await created.json()) as Character;
    const bytes = Buffer.from(await (await exported(c.id, 'format=png')).arrayBuffer());
    const chunks = extractChunks(new Uint8Array(bytes));
    assert.deepEqual(chunks.map((chunk) => chunk.name), ['IHDR', 'IDAT', 'tEXt', 'IEND']);
    const card = cardIn(bytes, 'chara');
    assert.equal(card.data.system_prompt, 'You are plain.');
    assert.equal(card.data.extensions.talkativeness, 0.2);
    assert.equal((await importPng(bytes)).talkativeness, 0.2);
  });

  test('bad requests: unknown character 404, unknown format or spec 400, other methods 405', async () => {
    assert.equal((await api('/api/characters/nobody-001/export')).status, 404);
    const c = await importJson(v2Card());
    const format = await api(`/api/characters/${c.id}/export?format=gif`);
    assert.equal(format.status, 400);
    assert.match(((await format.json()) as { error: string }).error, /query\.format/);
    assert.equal((await api(`/api/characters/${c.id}/export?spec=v1`)).status, 400);
    const post = await api(`/api/characters/${c.id}/export`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    const get = await api('/api/characters/import');
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
  });
});

describe('import → export → import', () => {
  const cases: Array<[string, () => { data: Record<string, unknown> }, 'v2' | 'v3', 'png' | 'json']> = [
    ['V2 as JSON', () => v2Card(), 'v2', 'json'],
    ['V2 as PNG', () => v2Card(), 'v2', 'png'],
    ['V3 as JSON', () => v3Card(), 'v3', 'json'],
    ['V3 as PNG', () => v3Card(), 'v3', 'png'],
    ['SillyTavern\'s V2 as JSON', sillyTavernCard, 'v2', 'json'],
    ['SillyTavern\'s V2 as PNG', sillyTavernCard, 'v2', 'png'],
  ];
  for (const [what, card, spec, format] of cases) {
    test(`${what}: every field equal, unknown ones included`, async () => {
      const first = format === 'png' ? await importPng(png([[spec === 'v3' ? 'ccv3' : 'chara', b64(card())]])) : await importJson(card());
      const file = await exported(first.id, `format=${format}&spec=${spec}`);
      const bytes = Buffer.from(await file.arrayBuffer());
      const second = format === 'png' ? await importPng(bytes) : await importJson(JSON.parse(bytes.toString('utf8')));
      assert.notEqual(second.id, first.id);
      const [a, b] = [cardFields(first), cardFields(second)];
      for (const key of Object.keys(a) as Array<keyof typeof a>) assert.deepEqual(b[key], a[key], key);
      assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
      // The fields kept only for export (V3's, unknown ones) too: the two exports are the same card.
      const again = await (await exported(second.id, `format=json&spec=${spec}`)).json();
      const once = await (await exported(first.id, `format=json&spec=${spec}`)).json();
      assert.deepEqual(again, once);
      const original = card().data as Record<string, unknown>;
      for (const key of Object.keys(original)) assert.deepEqual(again.data[key], original[key], `data.${key}`);
    });
  }
});


describe('a card exactly as SillyTavern exports it', () => {
  for (const format of ['json', 'png'] as const) {
    test(`${format.toUpperCase()}: every field kept, top-level extras too, and Chorus's export is the card itself`, async () => {
      const card = sillyTavernCard();
      const c = format === 'json' ? await importJson(card) : await importPng(png([['chara', b64(card)]]));
      for (const key of ['name', 'description', 'personality', 'scenario', 'first_mes', 'mes_example', 'creator_notes', 'creator'] as const) assert.equal(c[key], card.data[key], key);
      assert.deepEqual(c.character_book, card.data.character_book, 'the lorebook with SillyTavern\'s extensions, nulls and all');
      assert.deepEqual(c.extensions, card.data.extensions);
      assert.deepEqual([c.talkativeness, c.group_only_greetings], [0.5, []]);
      const exported_ = await (await exported(c.id, 'format=json')).json();
      assert.deepEqual(exported_, card, 'the V1 copy, the top-level extras (avatar, chat, create_date) and data, all as SillyTavern wrote them');
      if (format === 'png') {
        const fromPng = cardIn(Buffer.from(await (await exported(c.id, 'format=png')).arrayBuffer()), 'chara');
        assert.deepEqual(fromPng, card);
      }
    });
  }

  test('the V1 copy follows the character: a reader of V1 fields sees an edit', async () => {
    const c = await importJson(sillyTavernCard());
    const patched = await api(`/api/characters/${c.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ description: 'A new description.', creator_notes: 'New notes.', tags: ['x'], talkativeness: 0.9, extensions: { ...c.extensions, fav: true } }) });
    assert.equal(patched.status, 200);
    const json = await (await exported(c.id, 'format=json&spec=v3')).json();
    assert.deepEqual(
      [json.description, json.creatorcomment, json.tags, json.talkativeness, json.fav, json.name, json.avatar, json.create_date],
      ['A new description.', 'New notes.', ['x'], 0.9, true, 'Seraphina', 'none', '2025-1-12 @15h 03m 12s 123ms'],
    );
    assert.equal(json.data.description, 'A new description.');
    assert.equal(json.spec, 'chara_card_v3', 'a V3 export carries the V1 copy too, as SillyTavern\'s ccv3 chunk does');
  });

  test('a talkativeness the card cannot state ("", null, "abc") is the default 0.5; one out of range is held to 0–1; each is given back as written', async () => {
    for (const [stated, expected] of [['', 0.5], [null, 0.5], ['abc', 0.5], ['7', 1], [-2, 0]] as const) {
      const card = sillyTavernCard();
      const c = await importJson({ ...card, talkativeness: stated, data: { ...card.data, name: `T ${String(stated)}`, extensions: { ...card.data.extensions, talkativeness: stated } } });
      assert.equal(c.talkativeness, expected, JSON.stringify(stated));
      const json = await (await exported(c.id, 'format=json')).json();
      assert.deepEqual([json.data.extensions.talkativeness, json.talkativeness], [stated, stated]);
    }
    const v1 = await importJson({ name: 'Old', talkativeness: 'chatty' });
    assert.equal(v1.talkativeness, 0.5, 'a V1 card\'s too');
  });
});

describe('card pictures', () => {
  test('a card with a picture over 3 MB imports, its picture stored apart, served, and embedded again on export', async () => {
    const picture = bigPictureChunks(1024);
    const file = png([['chara', b64(v2Card('Big Picture'))]], picture);
    assert.ok(file.length > 3 * 1024 * 1024, `the card is ${file.length} bytes`);
    const c = await importPng(file);
    const list = await api('/api/characters');
    const listed = Buffer.byteLength(await list.text());
    assert.ok(listed < 20_000, `the list of characters is ${listed} bytes: the picture is not in it`);
    const stored = await pictureOf(c);
    assert.deepEqual(extractChunks(new Uint8Array(stored)), picture, 'the picture as the card had it, without its card chunk');
    const again = await api(c.image_url!, { headers: { 'if-none-match': (await api(c.image_url!)).headers.get('etag') ?? '' } });
    assert.equal(again.status, 304, 'a browser that has it is told so');
    const out = Buffer.from(await (await exported(c.id, 'format=png&spec=v3')).arrayBuffer());
    assert.deepEqual(extractChunks(new Uint8Array(out)).filter((chunk) => chunk.name !== 'tEXt'), picture, 'the export embeds the picture');
    assert.equal(cardIn(out, 'ccv3').data.name, 'Big Picture');
    assert.equal((await importPng(out)).name, 'Big Picture', 'and imports again');
  });

  test('a picture goes with its character: replaced or deleted, it is gone; a character without one has none', async () => {
    const a = await importPng(png([['chara', b64(v2Card('Pic A'))]]));
    const b = await importPng(png([['chara', b64(v2Card('Pic B'))]]));
    const imageOfA = a.image_url!;
    assert.equal((await api(imageOfA)).status, 200);
    const renamed = await api(`/api/characters/${a.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Pic A2', image_url: imageOfA }) });
    assert.equal(((await renamed.json()) as Character).image_url, imageOfA, 'an update that keeps image_url keeps the picture');
    assert.equal((await api(imageOfA)).status, 200);
    await api(`/api/characters/${a.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image_url: 'https://example.invalid/a.png' }) });
    assert.equal((await api(imageOfA)).status, 404, 'replaced: the stored picture is deleted');
    await api(`/api/characters/${b.id}`, { method: 'DELETE' });
    assert.equal((await api(b.image_url!)).status, 404);
    const plain = await importJson(v2Card('No Pic'));
    const none = await api(`/api/characters/${plain.id}/image`);
    assert.equal(none.status, 404);
    assert.match(((await none.json()) as { error: string }).error, /the picture of character "no-pic-001" not found/);
  });
});

describe('Character Card V3 fields on the record', () => {
  test('shown typed, edited, and kept as the card had them when not edited', async () => {
    const card = v3Card();
    const c = await importJson(card);
    assert.deepEqual(
      [c.nickname, c.group_only_greetings, c.assets, c.creator_notes_multilingual, c.source, c.creation_date, c.modification_date],
      [card.data.nickname, card.data.group_only_greetings, card.data.assets, card.data.creator_notes_multilingual, card.data.source, card.data.creation_date, card.data.modification_date],
    );
    const plain = await importJson(v2Card('Plain V2'));
    assert.deepEqual([plain.nickname, plain.group_only_greetings, plain.assets, plain.source, plain.creation_date], ['', [], [], [], null], 'absent: the empty value');
    const res = await api(`/api/characters/${c.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      // As the editor sends them: every field, most unchanged.
      body: JSON.stringify({ nickname: 'Sabby', group_only_greetings: [], assets: c.assets, source: c.source, creation_date: c.creation_date, modification_date: c.modification_date, creator_notes_multilingual: c.creator_notes_multilingual }),
    });
    const edited = (await res.json()) as Character;
    assert.equal(res.status, 200, JSON.stringify(edited));
    assert.deepEqual([edited.nickname, edited.group_only_greetings, edited.creation_date], ['Sabby', [], card.data.creation_date]);
    const v2 = await (await exported(c.id, 'format=json')).json();
    assert.equal(v2.data.nickname, 'Sabby');
    assert.equal(Object.hasOwn(v2.data, 'group_only_greetings'), false, 'emptied: removed from the card');
    assert.deepEqual(v2.data.source, card.data.source);
    assert.deepEqual((await (await exported(c.id, 'format=json&spec=v3')).json()).data.group_only_greetings, [], 'V3 requires it: written empty');
    assert.deepEqual(Object.hasOwn((await (await exported(plain.id, 'format=json')).json()).data, 'nickname'), false, 'never added to a card that had none');
    // A card that states a field empty keeps it so when an edit leaves it alone.
    const stated = await importJson({ ...v3Card('Stated Empty'), data: { ...v3Card('Stated Empty').data, nickname: '', source: [] } });
    const untouched = await api(`/api/characters/${stated.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ nickname: '', source: [], description: 'edited' }) });
    assert.equal(untouched.status, 200);
    const statedCard = await (await exported(stated.id, 'format=json&spec=v3')).json();
    assert.deepEqual([statedCard.data.nickname, statedCard.data.source], ['', []], 'still stated, as the card had it');
    const bad = await api(`/api/characters/${c.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ assets: [{ uri: 'x' }] }) });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /data\.assets\.0\.type/);
  });
});

describe('card fields on create and update', () => {
  test('REST and WebSocket accept them, validated', async () => {
    const created = await api('/api/characters', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Rae', description: 'a pilot', tags: ['air'], character_book: { entries: [{ keys: ['jet'], content: 'fast', enabled: true, insertion_order: 1, extra: 1 }] }, extensions: { talkativeness: 0.9 } }),
    });
    assert.equal(created.status, 201);
    const rae = (await created.json()) as Character;
    assert.deepEqual([rae.description, rae.tags, rae.talkativeness, rae.character_book?.entries[0]?.extra], ['a pilot', ['air'], 0.9, 1]);
    const bad = await api(`/api/characters/${rae.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ talkativeness: 1.5 }) });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /data\.talkativeness/);
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      const updated = await client.request({ type: 'update_character', data: { id: rae.id, scenario: 'a hangar', talkativeness: 0.1, alternate_greetings: ['Hi.'] } });
      assert.equal(updated.type, 'character_updated');
      if (updated.type === 'character_updated') assert.deepEqual([updated.data.scenario, updated.data.talkativeness, updated.data.alternate_greetings, updated.data.description], ['a hangar', 0.1, ['Hi.'], 'a pilot']);
      const refused = await client.request({ type: 'update_character', data: { id: rae.id, character_book: { entries: [{ keys: 'jet' }] } } });
      assert.equal(refused.type, 'db_error');
      if (refused.type === 'db_error') assert.match(refused.error, /character_book\.entries\.0\.keys/);
      assert.equal(client.errors.length, 0, client.errors.join('\n'));
    } finally {
      await client.close();
    }
  });
});

describe('access control', () => {
  test('import and export need the token like the rest of the API', async () => {
    const [db] = await openTestDatabases();
    const guarded = await startChorus({ database: db!.database, env: { TTS_ENGINE: 'none', AUTH_TOKEN: 'card-test-token-123' } });
    try {
      const url = `${guarded.httpUrl}/api/characters/import`;
      const denied = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(v2Card()) });
      assert.equal(denied.status, 401);
      assert.equal(await characterCount(), 0);
      const foreign = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer card-test-token-123', origin: 'https://evil.example' }, body: JSON.stringify(v2Card()) });
      assert.equal(foreign.status, 403);
      const allowed = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer card-test-token-123' }, body: JSON.stringify(v2Card()) });
      assert.equal(allowed.status, 201);
      const [c] = ((await allowed.json()) as { characters: Character[] }).characters;
      assert.equal((await fetch(`${guarded.httpUrl}/api/characters/${c!.id}/export`)).status, 401);
    } finally {
      await guarded.close();
    }
  });
});

describe('the starter cast', () => {
  test('is seeded from its three card files, through the import code: every field as in the file, exported back equal', async () => {
    assert.equal(await chorus.repo.ensureStarterCast(), true);
    const cast = await chorus.repo.listCharacters();
    assert.equal(STARTER_CARDS.length, 3);
    for (const { file, voice } of STARTER_CARDS) {
      const card = JSON.parse(readFileSync(seedCardPath(file), 'utf8')) as ReturnType<typeof v2Card>;
      assert.equal(card.spec, 'chara_card_v2', file);
      const seeded = cast.find((c) => c.name === card.data.name);
      assert.ok(seeded, `${file}: ${card.data.name} is seeded`);
      assert.equal(seeded.voice, voice);
      const asCard = (await (await exported(seeded.id, 'format=json')).json()) as ReturnType<typeof v2Card>;
      assert.deepEqual(asCard, card, `${file}: the seeded character exports as its card file`);
      // And the file imported over REST gives the same character (but for id, voice, timestamps).
      const again = await importJson(card);
      assert.deepEqual(cardFields(again), cardFields(seeded));
    }
  });
});
