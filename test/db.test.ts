// The storage layer against every test database (PGlite always; PostgreSQL when
// TEST_DATABASE_URL is set): CRUD round trips, the rules kept from the original (slug ids,
// titles, what deletes cascade and what survives), stable message order, errors, seeding.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, beforeEach, describe, test } from 'node:test';
import { eq, sql } from 'drizzle-orm';
import type { Database } from '../src/db/client.ts';
import { ConflictError, conversationTitle, NotFoundError, Repo, slugify } from '../src/db/repo.ts';
import { characters, messages } from '../src/db/schema.ts';
import { characterSchema, conversationSchema, messageSchema, voiceSchema } from '../src/protocol.ts';
import { closeTestDatabases, openTestDatabases, postgresSkip, resetData } from './support/db.ts';

const databases = await openTestDatabases();
after(closeTestDatabases);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const time = (iso: string) => Date.parse(iso);

async function rejectsWith(promise: Promise<unknown>, type: typeof NotFoundError, message: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    assert.equal(error.message, message);
    return true;
  });
}

async function messageCount(database: Database, conversationId: string): Promise<number> {
  const rows = await database.db
    .select({ n: sql<number>`count(*)::int` })
    .from(messages)
    .where(eq(messages.conversation_id, conversationId));
  return rows[0]?.n ?? -1;
}

describe('conversationTitle', () => {
  const now = new Date(Date.UTC(2024, 2, 5, 7, 9, 59));

  test('a short first message is the whole title, trimmed', () => {
    assert.equal(conversationTitle('  Hello there, crew!  ', now), 'Hello there, crew!');
  });

  test('exactly 50 characters stay whole; 51 are cut to 50 plus "..."', () => {
    const fifty = 'a'.repeat(50);
    assert.equal(conversationTitle(fifty, now), fifty);
    assert.equal(conversationTitle(`${fifty}b`, now), `${fifty}...`);
  });

  test('counts characters, not UTF-16 units, so an emoji is never split', () => {
    assert.equal(conversationTitle(`${'a'.repeat(49)}😀😀`, now), `${'a'.repeat(49)}😀...`);
  });

  test('no text gives the UTC date and time', () => {
    for (const text of [undefined, '', '   \n ']) {
      assert.equal(conversationTitle(text, now), 'Conversation 2024-03-05 07:09');
    }
  });
});

describe('slugify', () => {
  const cases: Array<[string, string]> = [
    ['Jenna Haze', 'jenna-haze'],
    ['Crème Brûlée!', 'creme-brulee'],
    ['  --Hello__World--  ', 'hello-world'],
    ['Ｒｏｂｏ ﬁx 2000', 'robo-fix-2000'],
    ['!!!', 'character'],
    ['日本', 'character'],
  ];
  for (const [name, slug] of cases) {
    test(`${JSON.stringify(name)} → ${slug}`, () => assert.equal(slugify(name), slug));
  }
});

// Shown as skipped, with the reason, rather than silently absent.
if (postgresSkip) describe('repository on postgres', { skip: postgresSkip }, () => {});

for (const { name, database } of databases) {
  describe(`repository on ${name}`, () => {
    const repo = new Repo(database);

    describe('characters', () => {
      beforeEach(() => resetData(database)); // each test on its own data

      test('create, get, update, delete round trip', async () => {
        await repo.createVoice({ voice: 'alto' });
        const created = await repo.createCharacter({
          name: 'Mara Quill',
          voice: 'alto',
          system_prompt: 'You are Mara.',
          image_url: 'https://example.test/mara.png',
          images: ['a.png', 'b.png'],
          is_active: false,
        });
        characterSchema.strict().parse(created);
        assert.equal(created.id, 'mara-quill-001');
        assert.deepEqual(
          { ...created, created_at: undefined, updated_at: undefined },
          {
            id: 'mara-quill-001',
            name: 'Mara Quill',
            voice: 'alto',
            system_prompt: 'You are Mara.',
            image_url: 'https://example.test/mara.png',
            images: ['a.png', 'b.png'],
            is_active: false,
            last_message: null,
            // The card fields' defaults (docs/protocol.md, Character).
            talkativeness: 0.5,
            narration: null,
            narrator_voice: null,
            style: null,
            description: '',
            personality: '',
            scenario: '',
            first_mes: '',
            mes_example: '',
            creator_notes: '',
            post_history_instructions: '',
            alternate_greetings: [],
            tags: [],
            creator: '',
            character_version: '',
            character_book: null,
            extensions: {},
            nickname: '',
            group_only_greetings: [],
            creator_notes_multilingual: {},
            assets: [],
            source: [],
            creation_date: null,
            modification_date: null,
            created_at: undefined,
            updated_at: undefined,
          },
        );
        assert.equal(new Date(created.created_at).toISOString(), created.created_at);
        assert.deepEqual(await repo.getCharacter(created.id), created);

        await sleep(5);
        const updated = await repo.updateCharacter({ id: created.id, name: 'Mara Q.', last_message: 'Bye' });
        assert.equal(updated.id, created.id, 'the id survives a rename');
        assert.equal(updated.name, 'Mara Q.');
        assert.equal(updated.last_message, 'Bye');
        assert.equal(updated.system_prompt, 'You are Mara.', 'fields not given are kept');
        assert.deepEqual(updated.images, ['a.png', 'b.png']);
        assert.equal(updated.voice, 'alto');
        assert.equal(updated.created_at, created.created_at);
        assert.ok(time(updated.updated_at) > time(created.updated_at), 'updated_at moves on');
        assert.deepEqual(await repo.getCharacter(created.id), updated);

        await repo.deleteCharacter(created.id);
        await rejectsWith(repo.getCharacter(created.id), NotFoundError, 'character "mara-quill-001" not found');
        await rejectsWith(repo.deleteCharacter(created.id), NotFoundError, 'character "mara-quill-001" not found');
      });

      test('defaults of a character created by name only', async () => {
        const c = await repo.createCharacter({ name: 'Plain' });
        assert.deepEqual([c.voice, c.system_prompt, c.image_url, c.images, c.is_active], [null, '', null, [], true]);
      });

      test('lists by name (case-insensitive) then id; active ones only when asked', async () => {
        await resetData(database);
        await repo.createCharacter({ name: 'charlie' });
        await repo.createCharacter({ name: 'Alice', is_active: false });
        await repo.createCharacter({ name: 'bob' });
        await repo.createCharacter({ name: 'Alice' });
        const all = await repo.listCharacters();
        assert.deepEqual(
          all.map((c) => c.id),
          ['alice-001', 'alice-002', 'bob-001', 'charlie-001'],
        );
        const active = await repo.listActiveCharacters();
        assert.deepEqual(
          active.map((c) => c.id),
          ['alice-002', 'bob-001', 'charlie-001'],
        );
      });

      test('search matches name or system prompt, ignoring case; blank query lists all', async () => {
        await resetData(database);
        await repo.createCharacter({ name: 'Captain Rowe', system_prompt: 'A sailor.' });
        await repo.createCharacter({ name: 'Doctor Lin', system_prompt: 'Loves the SEA and 100% honest.' });
        await repo.createCharacter({ name: 'Gus', system_prompt: 'A baker.' });
        const ids = async (query: string) => (await repo.searchCharacters(query)).map((c) => c.id);
        assert.deepEqual(await ids('rOWe'), ['captain-rowe-001']);
        assert.deepEqual(await ids('sea'), ['doctor-lin-001']);
        assert.deepEqual(await ids('a'), ['captain-rowe-001', 'doctor-lin-001', 'gus-001']);
        assert.deepEqual(await ids('100%'), ['doctor-lin-001'], '% is a plain character, not a wildcard');
        assert.deepEqual(await ids('_'), []);
        assert.deepEqual(await ids('nobody'), []);
        assert.equal((await ids('')).length, 3);
        assert.equal((await ids('  ')).length, 3);
      });

      test('a voice that does not exist is a conflict; a blank one means none', async () => {
        await rejectsWith(repo.createCharacter({ name: 'Echo', voice: 'nope' }), ConflictError, 'voice "nope" does not exist');
        assert.deepEqual(await repo.searchCharacters('Echo'), [], 'nothing was stored');
        const echo = await repo.createCharacter({ name: 'Echo', voice: '' });
        assert.equal(echo.voice, null);
        await rejectsWith(repo.updateCharacter({ id: echo.id, voice: 'nope' }), ConflictError, 'voice "nope" does not exist');
        assert.equal((await repo.getCharacter(echo.id)).voice, null);
      });

      test('updating an unknown character is not found', async () => {
        await rejectsWith(repo.updateCharacter({ id: 'ghost-001', name: 'Ghost' }), NotFoundError, 'character "ghost-001" not found');
      });
    });

    describe('character pictures', () => {
      test('a card picture is stored with its character, read back byte for byte, and goes with it', async () => {
        const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31) & 0xff));
        const [c] = await repo.importCharacters([{ name: 'Pictured', picture: { content_type: 'image/png', bytes } }]);
        assert.match(c!.image_url ?? '', /^\/api\/characters\/pictured-001\/image\?v=[0-9a-f]{16}$/);
        const stored = await repo.getCharacterPicture(c!.id);
        assert.equal(stored.content_type, 'image/png');
        assert.ok(stored.bytes.equals(bytes), 'the same bytes');
        assert.equal((await repo.getCharacterCard(c!.id)).picture?.bytes.length, bytes.length);
        await repo.deleteCharacter(c!.id);
        await assert.rejects(repo.getCharacterPicture(c!.id), NotFoundError);
      });
    });

    describe('character ids', () => {
      beforeEach(() => resetData(database)); // each test on its own data

      test('slug of the name plus the next free number', async () => {
        assert.equal((await repo.createCharacter({ name: 'Jenna Haze' })).id, 'jenna-haze-001');
        assert.equal((await repo.createCharacter({ name: 'jenna  HAZE!' })).id, 'jenna-haze-002');
        assert.equal((await repo.createCharacter({ name: '¡¡¡' })).id, 'character-001');
      });

      test('a deleted number is not reused while a higher one exists', async () => {
        await repo.createCharacter({ name: 'Nora' });
        await repo.createCharacter({ name: 'Nora' });
        await repo.deleteCharacter('nora-001');
        assert.equal((await repo.createCharacter({ name: 'Nora' })).id, 'nora-003');
      });

      test('ids of other slugs that share the prefix do not count', async () => {
        await database.db.insert(characters).values({ id: 'pat-rick-050', name: 'Pat Rick' });
        assert.equal((await repo.createCharacter({ name: 'Pat' })).id, 'pat-001');
      });

      test('20 concurrent creates with one name get 20 distinct ids', async () => {
        const created = await Promise.all(Array.from({ length: 20 }, () => repo.createCharacter({ name: 'Crowd' })));
        const ids = created.map((c) => c.id).sort();
        const expected = Array.from({ length: 20 }, (_, i) => `crowd-${String(i + 1).padStart(3, '0')}`);
        assert.deepEqual(ids, expected);
      });

      test('after 999 comes 1000, then 1001 (numbers compare as numbers)', async () => {
        await database.db.insert(characters).values({ id: 'x-999', name: 'X' });
        assert.equal((await repo.createCharacter({ name: 'X' })).id, 'x-1000');
        assert.equal((await repo.createCharacter({ name: 'X' })).id, 'x-1001');
      });
    });

    describe('voices', () => {
      beforeEach(() => resetData(database)); // each test on its own data

      test('create, get, update, delete round trip', async () => {
        const created = await repo.createVoice({
          voice: 'narrator',
          method: 'clone',
          audio_path: 'voices/narrator.wav',
          text_path: 'voices/narrator.txt',
          speaker_desc: 'Deep and calm',
          scene_prompt: 'A quiet study',
          audio_tokens: { codes: [1, 2, 3] },
          engine: 'openai',
          engine_voice: 'onyx',
          speed: 1.25,
          pitch: 0.75,
          style: { emotion: 'contentment', prosody: ['speed_slow'] },
        });
        voiceSchema.strict().parse(created);
        assert.deepEqual(
          { ...created, created_at: undefined, updated_at: undefined },
          {
            voice: 'narrator',
            method: 'clone',
            audio_path: 'voices/narrator.wav',
            text_path: 'voices/narrator.txt',
            speaker_desc: 'Deep and calm',
            scene_prompt: 'A quiet study',
            audio_tokens: { codes: [1, 2, 3] },
            engine: 'openai',
            engine_voice: 'onyx',
            speed: 1.25,
            pitch: 0.75,
            style: { emotion: 'contentment', prosody: ['speed_slow'] },
            created_at: undefined,
            updated_at: undefined,
          },
        );
        assert.deepEqual(await repo.getVoice('narrator'), created);

        await sleep(5);
        const updated = await repo.updateVoice({ voice: 'narrator', speed: 0.5, engine_voice: null });
        assert.equal(updated.speed, 0.5);
        assert.equal(updated.engine_voice, null);
        assert.equal(updated.pitch, 0.75, 'fields not given are kept');
        assert.equal(updated.method, 'clone');
        assert.ok(time(updated.updated_at) > time(created.updated_at));

        await repo.deleteVoice('narrator');
        await rejectsWith(repo.getVoice('narrator'), NotFoundError, 'voice "narrator" not found');
        await rejectsWith(repo.deleteVoice('narrator'), NotFoundError, 'voice "narrator" not found');
        await rejectsWith(repo.updateVoice({ voice: 'narrator', pitch: 1 }), NotFoundError, 'voice "narrator" not found');
      });

      test('defaults, listing order and duplicate keys', async () => {
        const plain = await repo.createVoice({ voice: 'zed' });
        assert.deepEqual(
          [plain.method, plain.engine, plain.engine_voice, plain.audio_tokens, plain.speed, plain.pitch, plain.style],
          ['preset', null, null, null, 1, 1, null],
        );
        await repo.createVoice({ voice: 'amy' });
        assert.deepEqual(
          (await repo.listVoices()).map((v) => v.voice),
          ['amy', 'zed'],
        );
        await rejectsWith(repo.createVoice({ voice: 'amy', speed: 2 }), ConflictError, 'voice "amy" already exists');
        assert.equal((await repo.getVoice('amy')).speed, 1, 'the existing voice is untouched');
      });

      test('deleting a voice leaves its characters without a voice', async () => {
        await repo.createVoice({ voice: 'soon-gone' });
        await repo.createVoice({ voice: 'amy' });
        const user = await repo.createCharacter({ name: 'Voiced', voice: 'soon-gone' });
        const other = await repo.createCharacter({ name: 'Other', voice: 'amy' });
        await repo.deleteVoice('soon-gone');
        assert.equal((await repo.getCharacter(user.id)).voice, null);
        assert.equal((await repo.getCharacter(other.id)).voice, 'amy');
      });
    });

    describe('conversations', () => {
      beforeEach(() => resetData(database)); // each test on its own data

      test('create, get, update, delete round trip', async () => {
        const created = await repo.createConversation({ title: 'Tea time', active_characters: ['a-001', 'b-001'] });
        conversationSchema.strict().parse(created);
        assert.match(created.conversation_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.equal(created.title, 'Tea time');
        assert.deepEqual(created.active_characters, ['a-001', 'b-001']);
        assert.deepEqual(await repo.getConversation(created.conversation_id), created);

        await sleep(5);
        const updated = await repo.updateConversation({ conversation_id: created.conversation_id, title: 'Supper' });
        assert.equal(updated.title, 'Supper');
        assert.deepEqual(updated.active_characters, ['a-001', 'b-001'], 'fields not given are kept');
        assert.ok(time(updated.updated_at) > time(created.updated_at));
        const recast = await repo.updateConversation({ conversation_id: created.conversation_id, active_characters: [] });
        assert.deepEqual(recast.active_characters, []);
        assert.equal(recast.title, 'Supper');

        await repo.deleteConversation(created.conversation_id);
        const missing = `conversation "${created.conversation_id}" not found`;
        await rejectsWith(repo.getConversation(created.conversation_id), NotFoundError, missing);
        await rejectsWith(repo.deleteConversation(created.conversation_id), NotFoundError, missing);
        await rejectsWith(
          repo.updateConversation({ conversation_id: created.conversation_id, title: 'x' }),
          NotFoundError,
          missing,
        );
      });

      test('default title is the date; a given id is used once', async () => {
        const untitled = await repo.createConversation({});
        assert.match(untitled.title, /^Conversation \d{4}-\d{2}-\d{2} \d{2}:\d{2}$/);
        assert.deepEqual(untitled.active_characters, []);
        const id = randomUUID();
        assert.equal((await repo.createConversation({ title: 'Mine' }, id)).conversation_id, id);
        await rejectsWith(repo.createConversation({ title: 'Again' }, id), ConflictError, `conversation "${id}" already exists`);
        assert.equal((await repo.getConversation(id)).title, 'Mine');
      });

      test('a malformed id is simply not found', async () => {
        await rejectsWith(repo.getConversation('not-a-uuid'), NotFoundError, 'conversation "not-a-uuid" not found');
        await rejectsWith(repo.deleteConversation('42'), NotFoundError, 'conversation "42" not found');
      });

      test('listed newest first, paged, 50 by default', async () => {
        await resetData(database);
        const titles: string[] = [];
        for (let i = 0; i < 55; i++) {
          titles.push(`c${i}`);
          await repo.createConversation({ title: `c${i}` });
          await sleep(2); // "newest" is by timestamp, and PGlite's clock ticks in milliseconds
        }
        const newestFirst = [...titles].reverse();
        const firstPage = await repo.listConversations();
        assert.equal(firstPage.length, 50);
        assert.deepEqual(
          firstPage.map((c) => c.title),
          newestFirst.slice(0, 50),
        );
        const page = await repo.listConversations({ limit: 3, offset: 2 });
        assert.deepEqual(
          page.map((c) => c.title),
          newestFirst.slice(2, 5),
        );
        assert.deepEqual(await repo.listConversations({ offset: 55 }), []);
      });

      test('a new message moves its conversation to the top', async () => {
        const oldest = await repo.createConversation({ title: 'old' });
        await sleep(2); // "newest" is by timestamp, and PGlite's clock ticks in milliseconds
        await repo.createConversation({ title: 'new' });
        assert.notEqual((await repo.listConversations({ limit: 1 }))[0]?.conversation_id, oldest.conversation_id);
        await sleep(2);
        await repo.createMessage({ conversation_id: oldest.conversation_id, role: 'user', content: 'hi' });
        assert.equal((await repo.listConversations({ limit: 1 }))[0]?.conversation_id, oldest.conversation_id);
      });
    });

    describe('messages', () => {
      let conversationId = '';
      beforeEach(async () => {
        await resetData(database);
        conversationId = (await repo.createConversation({ title: 'Chat' })).conversation_id;
      });

      test('status and interrupted say one thing: given either, the other follows; failed is kept', async () => {
        const own = await repo.createConversation({ title: 'statuses' }); // its own: the next tests count this group's messages
        const put = (m: { interrupted?: boolean; status?: 'complete' | 'interrupted' | 'failed' }) =>
          repo.createMessage({ conversation_id: own.conversation_id, role: 'assistant', content: 'x', ...m });
        assert.deepEqual([(await put({ status: 'interrupted' })).interrupted, (await put({ interrupted: true })).status], [true, 'interrupted']);
        assert.deepEqual([(await put({})).status, (await put({ status: 'failed' })).status], ['complete', 'failed']);
      });

      test('create returns the stored record', async () => {
        await repo.createCharacter({ name: 'Speaker' });
        const message = await repo.createMessage({
          conversation_id: conversationId,
          role: 'assistant',
          name: 'Speaker',
          content: 'Hello!',
          character_id: 'speaker-001',
          interrupted: true,
        });
        messageSchema.strict().parse(message);
        assert.deepEqual(
          { ...message, message_id: undefined, created_at: undefined, updated_at: undefined },
          {
            message_id: undefined,
            conversation_id: conversationId,
            role: 'assistant',
            name: 'Speaker',
            content: 'Hello!',
            character_id: 'speaker-001',
            interrupted: true,
            status: 'interrupted',
            alternatives: [],
            alternative_index: 0,
            created_at: undefined,
            updated_at: undefined,
          },
        );
        const plain = await repo.createMessage({ conversation_id: conversationId, role: 'user', content: 'Hi' });
        assert.deepEqual([plain.name, plain.character_id, plain.interrupted], [null, null, false]);
        assert.notEqual(plain.message_id, message.message_id);
        const stored = await repo.listMessages({ conversation_id: conversationId });
        assert.deepEqual(stored, [message, plain]);
      });

      test('saveMessage stores under the given id, then replaces text, status and versions; another conversation\'s id is refused', async () => {
        const id = '7c0e3f2a-1b2c-4d5e-8f90-123456789abc';
        const first = await repo.saveMessage({ message_id: id, conversation_id: conversationId, role: 'assistant', name: 'Speaker', content: 'One.', status: 'interrupted' });
        assert.equal(first.message_id, id);
        assert.equal(first.interrupted, true);
        const again = await repo.saveMessage({ message_id: id, conversation_id: conversationId, role: 'assistant', content: 'Two.', alternatives: ['One.', 'Two.'], alternative_index: 1 });
        assert.deepEqual([again.content, again.status, again.interrupted, again.alternatives, again.alternative_index], ['Two.', 'complete', false, ['One.', 'Two.'], 1]);
        assert.equal(again.created_at, first.created_at);
        const stored = await repo.listMessages({ conversation_id: conversationId });
        assert.deepEqual(stored.map((m) => [m.message_id, m.content]), [[id, 'Two.']], 'one message, replaced');
        const other = await repo.createConversation({ title: 'Other' });
        await assert.rejects(repo.saveMessage({ message_id: id, conversation_id: other.conversation_id, role: 'user', content: 'Taken' }), ConflictError);
        assert.equal((await repo.listMessages({ conversation_id: conversationId }))[0]!.content, 'Two.');
      });

      test('bumps the conversation updated_at in the same transaction', async () => {
        const before = await repo.getConversation(conversationId);
        await sleep(5);
        const message = await repo.createMessage({ conversation_id: conversationId, role: 'user', content: 'Tick' });
        const after = await repo.getConversation(conversationId);
        assert.ok(time(after.updated_at) > time(before.updated_at));
        assert.equal(after.updated_at, message.created_at);
        assert.equal(after.created_at, before.created_at);
      });

      test('a character that no longer exists is stored as null', async () => {
        const message = await repo.createMessage({
          conversation_id: conversationId,
          role: 'assistant',
          content: 'Who am I?',
          character_id: 'ghost-001',
        });
        assert.equal(message.character_id, null);
      });

      test('unknown conversation: not found, nothing stored', async () => {
        const ghost = randomUUID();
        const missing = `conversation "${ghost}" not found`;
        await rejectsWith(repo.createMessage({ conversation_id: ghost, role: 'user', content: 'x' }), NotFoundError, missing);
        assert.equal(await messageCount(database, ghost), 0);
        await rejectsWith(repo.listMessages({ conversation_id: ghost }), NotFoundError, missing);
        await rejectsWith(
          repo.createMessage({ conversation_id: 'nope', role: 'user', content: 'x' }),
          NotFoundError,
          'conversation "nope" not found',
        );
      });

      test('many messages in quick succession read back in insertion order, paged', async () => {
        const id = (await repo.createConversation({ title: 'Burst' })).conversation_id;
        const contents = Array.from({ length: 60 }, (_, i) => `m${i}`);
        for (const content of contents) await repo.createMessage({ conversation_id: id, role: 'user', content });
        const all = await repo.listMessages({ conversation_id: id });
        assert.deepEqual(
          all.map((m) => m.content),
          contents,
        );
        const page = await repo.listMessages({ conversation_id: id, limit: 10, offset: 25 });
        assert.deepEqual(
          page.map((m) => m.content),
          contents.slice(25, 35),
        );
        const tail = await repo.listMessages({ conversation_id: id, offset: 55 });
        assert.deepEqual(
          tail.map((m) => m.content),
          contents.slice(55),
        );
      });

      test('messages with one identical timestamp keep insertion order', async () => {
        const id = (await repo.createConversation({ title: 'Same instant' })).conversation_id;
        const contents = Array.from({ length: 80 }, (_, i) => `s${i}`);
        // One statement: every row gets the same now(); random uuids do not follow insertion order.
        await database.db
          .insert(messages)
          .values(contents.map((content) => ({ message_id: randomUUID(), conversation_id: id, role: 'user' as const, content })));
        // Rewrite the first half so the table's physical order no longer matches insertion order.
        await database.db.execute(sql`update messages set interrupted = true where conversation_id = ${id} and content < 's4'`);
        const all = await repo.listMessages({ conversation_id: id });
        assert.equal(new Set(all.map((m) => m.created_at)).size, 1, 'the timestamps are identical');
        assert.deepEqual(
          all.map((m) => m.content),
          contents,
        );
        const page = await repo.listMessages({ conversation_id: id, limit: 7, offset: 40 });
        assert.deepEqual(
          page.map((m) => m.content),
          contents.slice(40, 47),
        );
      });

      test('delete a message', async () => {
        const message = await repo.createMessage({ conversation_id: conversationId, role: 'user', content: 'Oops' });
        await repo.deleteMessage(message.message_id);
        const left = await repo.listMessages({ conversation_id: conversationId });
        assert.ok(!left.some((m) => m.message_id === message.message_id));
        await rejectsWith(repo.deleteMessage(message.message_id), NotFoundError, `message "${message.message_id}" not found`);
        await rejectsWith(repo.deleteMessage('nope'), NotFoundError, 'message "nope" not found');
      });

      test('deleting a character keeps its messages, without the link', async () => {
        const character = await repo.createCharacter({ name: 'Leaver' });
        const message = await repo.createMessage({
          conversation_id: conversationId,
          role: 'assistant',
          content: 'Farewell',
          character_id: character.id,
        });
        assert.equal(message.character_id, character.id);
        await repo.deleteCharacter(character.id);
        const kept = (await repo.listMessages({ conversation_id: conversationId })).find((m) => m.message_id === message.message_id);
        assert.ok(kept, 'the message is still there');
        assert.equal(kept.character_id, null);
        assert.equal(kept.content, 'Farewell');
      });

      test('deleting a conversation deletes its messages, and only its', async () => {
        await repo.createMessage({ conversation_id: conversationId, role: 'user', content: 'kept' });
        const doomed = (await repo.createConversation({ title: 'Doomed' })).conversation_id;
        await repo.createMessage({ conversation_id: doomed, role: 'user', content: 'a' });
        await repo.createMessage({ conversation_id: doomed, role: 'user', content: 'b' });
        const othersBefore = await messageCount(database, conversationId);
        assert.equal(await messageCount(database, doomed), 2);
        await repo.deleteConversation(doomed);
        assert.equal(await messageCount(database, doomed), 0);
        assert.equal(await messageCount(database, conversationId), othersBefore);
        assert.ok(othersBefore > 0);
      });
    });

    describe('starter cast', () => {
      beforeEach(() => resetData(database)); // each test on its own data

      test('seeds three espeak voices and three characters once', async () => {
        assert.equal(await repo.ensureStarterCast(), true);
        const voices = await repo.listVoices();
        const cast = await repo.listCharacters();
        assert.equal(voices.length, 3);
        assert.equal(cast.length, 3);
        for (const voice of voices) {
          assert.equal(voice.engine, 'espeak');
          assert.equal(voice.method, 'preset');
          assert.match(voice.engine_voice ?? '', /^[a-z]{2}(-[a-z0-9]+)*\+[fm]\d$/, 'an espeak-ng voice+variant id');
          assert.notEqual(voice.engine_voice, 'en-gb', 'plain en-gb does not load');
        }
        assert.equal(new Set(voices.map((v) => v.engine_voice)).size, 3);
        assert.equal(new Set(voices.map((v) => `${v.speed}/${v.pitch}`)).size, 3);
        assert.equal(new Set(voices.map((v) => v.speed)).size, 3, 'distinct speeds');
        assert.equal(new Set(voices.map((v) => v.pitch)).size, 3, 'distinct pitches');

        const voiceKeys = new Set(voices.map((v) => v.voice));
        assert.equal(new Set(cast.map((c) => c.voice)).size, 3, 'one voice each');
        for (const character of cast) {
          assert.equal(character.id, `${slugify(character.name)}-001`);
          assert.ok(character.voice && voiceKeys.has(character.voice), `${character.name} has a stored voice`);
          assert.equal(character.is_active, true);
          const sentences = character.system_prompt.split(/(?<=[.!?])\s+/).filter(Boolean);
          assert.ok(sentences.length >= 2 && sentences.length <= 4, `${character.name}: 2–4 sentences`);
          assert.ok(character.system_prompt.includes(character.name), 'the prompt names its character');
        }
        assert.equal(new Set(cast.map((c) => c.system_prompt)).size, 3);

        assert.equal(await repo.ensureStarterCast(), false, 'no-op the second time');
        assert.equal((await repo.listVoices()).length, 3);
        assert.equal((await repo.listCharacters()).length, 3);
      });

      test('concurrent calls seed exactly once', async () => {
        await resetData(database);
        const results = await Promise.all([repo.ensureStarterCast(), repo.ensureStarterCast(), repo.ensureStarterCast()]);
        assert.deepEqual(
          results.filter(Boolean),
          [true],
        );
        assert.equal((await repo.listCharacters()).length, 3);
      });

      test('does nothing when either voices or characters exist', async () => {
        await resetData(database);
        await repo.createVoice({ voice: 'mine' });
        assert.equal(await repo.ensureStarterCast(), false);
        assert.deepEqual(await repo.listCharacters(), []);
        await resetData(database);
        await repo.createCharacter({ name: 'Solo' });
        assert.equal(await repo.ensureStarterCast(), false);
        assert.deepEqual(await repo.listVoices(), []);
      });
    });
  });
}
