// How a character's prompt is built (src/llm/prompt.ts, macros.ts, lorebook.ts): the sections in
// their order, macros, example blocks, post-history instructions, lorebook entries (scan depth,
// whole words, selective, constant, disabled, order, position, budget) and the history budget;
// then one real turn: a card imported over REST, and the exact messages the LLM received.
process.env.TZ = 'UTC'; // {{time}} and {{date}} are the server's local time
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ChatLLM, createLlm } from '../src/llm/chat.ts';
import { activeLore } from '../src/llm/lorebook.ts';
import { expandMacros } from '../src/llm/macros.ts';
import { buildPrompt, defaultInstruction, estimateTokens } from '../src/llm/prompt.ts';
import { loadConfig } from '../src/config.ts';
import type { Character } from '../src/protocol.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

const character = (fields: Partial<Character> = {}): Character => ({
  id: 'ione-001', name: 'Ione', voice: null, system_prompt: '', image_url: null, images: [], is_active: true, last_message: null,
  talkativeness: 0.5, narration: null, narrator_voice: null, style: null, description: '', personality: '', scenario: '', first_mes: '', mes_example: '', creator_notes: '',
  post_history_instructions: '', alternate_greetings: [], tags: [], creator: '', character_version: '', character_book: null, extensions: {},
  nickname: '', group_only_greetings: [], creator_notes_multilingual: {}, assets: [], source: [], creation_date: null, modification_date: null,
  created_at: '', updated_at: '', ...fields,
});

const NOON = new Date('2026-03-04T15:05:00Z'); // a Wednesday
const prompt = (c: Character, history: string[] = [], random = () => 0) => buildPrompt({ character: c, cast: [c], userName: 'Jay', history, now: NOON, random });
const ORIGINAL = defaultInstruction(character(), [character()], 'Jay');

describe('the prompt of a card character', () => {
  const card = character({
    system_prompt: 'You are {{Char}}, talking to {{USER}}.\n{{original}}',
    description: '{{char}} keeps the harbour.',
    personality: 'gruff, kind',
    scenario: 'A foggy pier; <USER> arrives.',
    mes_example: '<START>\n{{user}}: Hello\n{{char}}: Hm.\n<start>\n<USER>: Boats?\n<BOT>: At dawn.\n<START>\n',
    post_history_instructions: 'Stay in character as {{char}}.',
  });

  test('sections in order, macros replaced, examples one block each, post-history apart', () => {
    assert.deepEqual(prompt(card), {
      system: [
        `You are Ione, talking to Jay.\n${ORIGINAL}`,
        'Ione keeps the harbour.',
        "Ione's personality: gruff, kind",
        'Scenario: A foggy pier; Jay arrives.',
        '[Example dialogue]\nJay: Hello\nIone: Hm.',
        '[Example dialogue]\nJay: Boats?\nIone: At dawn.',
      ].join('\n\n'),
      postHistory: 'Stay in character as Ione.',
      injections: [],
    });
  });

  test('a system prompt without {{original}} is followed by the default; an empty one is the default', () => {
    assert.equal(prompt(character({ system_prompt: '  You bake bread.  ' })).system, `You bake bread.\n\n${ORIGINAL}`);
    assert.equal(prompt(character()).system, ORIGINAL);
    assert.equal(ORIGINAL, 'You are Ione. You are talking with Jay.\n\nReply only as Ione, in the first person, with Ione\'s next line of dialogue. Do not write lines for anyone else, and do not prefix your reply with your name. Your words are spoken aloud, so keep them conversational.');
  });

  test('empty sections are left out entirely (blank, or blank once expanded)', () => {
    const sparse = character({ system_prompt: 'Plain.', description: '  ', personality: '{{noop}}', scenario: '\n', mes_example: '<START>\n \n<START>', post_history_instructions: '{{trim}}' });
    assert.deepEqual(prompt(sparse), { system: `Plain.\n\n${ORIGINAL}`, postHistory: '', injections: [] });
  });

  test('the history, then the post-history instructions, as ChatLLM sends them', () => {
    const chat = new ChatLLM(createLlm({ ...loadConfig({}).llm, baseUrl: 'http://127.0.0.1:1/v1' }), 'Jay');
    chat.history.push({ role: 'user', name: 'Jay', content: 'Hello Ione', character_id: null });
    assert.deepEqual(chat.buildMessages(card, [card]).slice(1), [
      { role: 'user', name: 'Jay', content: 'Hello Ione' },
      { role: 'system', content: 'Stay in character as Ione.' },
    ]);
  });
});

describe('macros', () => {
  const ctx = { char: 'Ione', user: 'Jay', original: 'ORIG', now: NOON, random: () => 0.99 };
  test('names, case-insensitively, and the legacy forms', () => {
    assert.equal(expandMacros('{{char}} {{CHAR}} {{ User }} <user> <BOT> {{original}}', ctx), 'Ione Ione Jay Jay Ione ORIG');
  });
  test('time, date, weekday, newline, trim, random', () => {
    assert.equal(expandMacros('{{time}} | {{date}} | {{weekday}}', ctx), '3:05 PM | March 4, 2026 | Wednesday');
    assert.equal(expandMacros('a{{newline}}b', ctx), 'a\nb');
    assert.equal(expandMacros('a\n\n{{trim}}\nb', ctx), 'ab');
    assert.equal(expandMacros('{{random:x,y,z}}', ctx), 'z');
    assert.equal(expandMacros('{{random:x,y,z}}', { ...ctx, random: () => 0 }), 'x');
    assert.equal(expandMacros('{{random::a, b::c}}', { ...ctx, random: () => 0 }), 'a, b');
  });
  test('unknown macros stay; a replacement is not expanded again', () => {
    assert.equal(expandMacros('{{mystery}} {{char}}', { ...ctx, char: '{{user}}' }), '{{mystery}} {{user}}');
  });
});

describe('lorebook entries', () => {
  type Entry = Record<string, unknown>;
  const entry = (content: string, fields: Entry = {}): Entry => ({ keys: [content.toLowerCase()], content, enabled: true, insertion_order: 0, ...fields });
  const lore = (entries: Entry[], history: string[], book: Entry = {}) => activeLore({ entries, ...book }, history, estimateTokens);
  const before = (entries: Entry[], history: string[], book: Entry = {}) => lore(entries, history, book).before_char;

  test('an entry is active only while its key is within scan_depth messages', () => {
    const cat = [entry('Cat')];
    const history = ['the cat sat', 'b', 'c', 'd'];
    assert.deepEqual(before(cat, history), ['Cat'], 'default depth 4: the oldest of four is in scope');
    assert.deepEqual(before(cat, ['x', ...history]), ['Cat']);
    assert.deepEqual(before(cat, [...history, 'e']), [], 'five back: out of scope');
    assert.deepEqual(before(cat, history, { scan_depth: 1 }), []);
    assert.deepEqual(before(cat, ['d', 'CAT!'], { scan_depth: 1 }), ['Cat'], 'case-insensitive by default');
  });

  test('keys are whole words: "cat" is not in "concatenate"', () => {
    assert.deepEqual(before([entry('Cat')], ['concatenate the cats']), []);
    assert.deepEqual(before([entry('Cat')], ['a cat.']), ['Cat']);
    assert.deepEqual(before([entry('Cat', { extensions: { match_whole_words: false } })], ['concatenate']), ['Cat']);
  });

  test('case_sensitive, on the entry or under extensions', () => {
    assert.deepEqual(before([entry('Cat', { keys: ['Cat'], case_sensitive: true })], ['a cat']), []);
    assert.deepEqual(before([entry('Cat', { keys: ['Cat'], extensions: { case_sensitive: true } })], ['a cat']), []);
    assert.deepEqual(before([entry('Cat', { keys: ['Cat'], case_sensitive: true })], ['a Cat']), ['Cat']);
  });

  test('selective entries need a secondary key too', () => {
    const storm = [entry('Light', { keys: ['lighthouse'], selective: true, secondary_keys: ['storm'] })];
    assert.deepEqual(before(storm, ['the lighthouse']), []);
    assert.deepEqual(before(storm, ['the lighthouse', 'a storm']), ['Light']);
    assert.deepEqual(before([entry('Light', { keys: ['lighthouse'], secondary_keys: ['storm'] })], ['the lighthouse']), ['Light'], 'not selective: secondary keys ignored');
    assert.deepEqual(before([entry('Light', { keys: ['lighthouse'], selective: true, secondary_keys: [] })], ['the lighthouse']), ['Light'], 'selective without secondary keys: the primary key alone');
  });

  test('constant entries always; disabled entries never', () => {
    assert.deepEqual(before([entry('Always', { keys: [], constant: true }), entry('Off', { enabled: false, constant: true })], ['off']), ['Always']);
  });

  test('ordered by insertion_order, placed before or after the character definition', () => {
    const entries = [
      entry('Third', { keys: ['go'], insertion_order: 30 }),
      entry('First', { keys: ['go'], insertion_order: 10 }),
      entry('After', { keys: ['go'], insertion_order: 20, position: 'after_char' }),
      entry('AfterByNumber', { keys: ['go'], insertion_order: 5, extensions: { position: 1 } }),
    ];
    assert.deepEqual(lore(entries, ['go']), { before_char: ['First', 'Third'], after_char: ['AfterByNumber', 'After'], an_top: [], an_bottom: [], em_top: [], em_bottom: [], at_depth: [] });
    const c = character({ description: 'DEF', mes_example: '<START>EX', character_book: { entries } });
    assert.equal(prompt(c, ['go']).system, [ORIGINAL, 'First\nThird', 'DEF', '[Example dialogue]\nEX', 'AfterByNumber\nAfter'].join('\n\n'));
  });

  test('selectiveLogic (SillyTavern): AND ANY 0, NOT ALL 1, NOT ANY 2, AND ALL 3, on the secondary keys', () => {
    const gated = (logic: number | undefined) => [entry('Gate', { keys: ['gate'], selective: true, secondary_keys: ['night', 'storm'], extensions: logic === undefined ? {} : { selectiveLogic: logic } })];
    const cases: Array<[number | undefined, string, boolean]> = [
      [undefined, 'the gate', false], [undefined, 'the gate at night', true],
      [0, 'the gate', false], [0, 'the gate at night', true], [0, 'the gate at night in a storm', true],
      [1, 'the gate', true], [1, 'the gate at night', true], [1, 'the gate at night in a storm', false],
      [2, 'the gate', true], [2, 'the gate at night', false], [2, 'the gate at night in a storm', false],
      [3, 'the gate', false], [3, 'the gate at night', false], [3, 'the gate at night in a storm', true],
    ];
    for (const [logic, text, active] of cases) assert.deepEqual(before(gated(logic), [text]), active ? ['Gate'] : [], `logic ${logic}: "${text}"`);
    assert.deepEqual(before(gated(2), ['night, no key']), [], 'the primary key is needed whatever the logic');
  });

  test('SillyTavern positions: before/after the examples (5, 6) are example blocks; around the Author\'s Note (2, 3) and at a depth (4) go into the history', () => {
    const at = (content: string, position: number, extensions: Entry = {}) => entry(content, { keys: ['go'], position: 'before_char', extensions: { position, ...extensions } });
    const c = character({
      description: 'DEF', mes_example: '<START>\n{{user}}: Hi\n{{char}}: Hm.',
      character_book: {
        entries: [
          at('<START>\n{{user}}: Top?\n{{char}}: Top.', 5), at('<START>\n{{char}}: Bottom.', 6),
          at('AN top', 2), at('AN bottom', 3),
          at('Deep as user', 4, { depth: 2, role: 1 }), at('Deep as system', 4, { depth: 2 }), at('At the end', 4, { depth: 0, role: 2 }),
          at('Unknown goes after', 9),
        ],
      },
    });
    assert.deepEqual(prompt(c, ['go']), {
      system: [ORIGINAL, 'DEF', '[Example dialogue]\nJay: Top?\nIone: Top.', '[Example dialogue]\nJay: Hi\nIone: Hm.', '[Example dialogue]\nIone: Bottom.', 'Unknown goes after'].join('\n\n'),
      postHistory: '',
      injections: [
        { depth: 4, role: 'system', content: 'AN top\nAN bottom' },
        { depth: 2, role: 'user', content: 'Deep as user' },
        { depth: 2, role: 'system', content: 'Deep as system' },
        { depth: 0, role: 'assistant', content: 'At the end' },
      ],
    });
  });

  test('SillyTavern\'s extensions.position wins over the spec\'s position, as SillyTavern reads a card\'s book', () => {
    assert.deepEqual(lore([entry('Deep', { keys: ['go'], position: 'after_char', extensions: { position: 4 } })], ['go']).at_depth, [{ depth: 4, role: 'system', contents: ['Deep'] }]);
    assert.deepEqual(lore([entry('Before', { keys: ['go'], position: 'after_char', extensions: { position: 0 } })], ['go']).before_char, ['Before']);
  });

  test('the token budget cuts the lowest-priority entries', () => {
    const words = (label: string) => `${label} ${'w'.repeat(36)}`; // 40 characters: 14 tokens
    const entries = [entry(words('low'), { keys: ['go'], insertion_order: 1 }), entry(words('mid'), { keys: ['go'], insertion_order: 2 }), entry(words('top'), { keys: ['go'], insertion_order: 3 })];
    assert.equal(estimateTokens(words('low')), 14);
    assert.deepEqual(before(entries, ['go'], { token_budget: 42 }).map((e) => e.slice(0, 3)), ['low', 'mid', 'top']);
    assert.deepEqual(before(entries, ['go'], { token_budget: 41 }).map((e) => e.slice(0, 3)), ['mid', 'top']);
    assert.deepEqual(before(entries, ['go'], { token_budget: 27 }).map((e) => e.slice(0, 3)), ['top']);
    const ranked = [...entries, entry(words('vip'), { keys: ['go'], insertion_order: 0, priority: 9 })];
    assert.deepEqual(before(ranked, ['go'], { token_budget: 28 }).map((e) => e.slice(0, 3)), ['vip', 'top'], 'priority outranks insertion_order');
  });

  test('regex keys; invalid or catastrophic ones are literal text', () => {
    assert.deepEqual(before([entry('Re', { keys: ['/li(gh)?t/i'] })], ['a LIT candle']), ['Re']);
    assert.deepEqual(before([entry('Bad', { keys: ['/(/'] })], ['a /(/ here']), ['Bad'], 'invalid: literal');
    assert.deepEqual(before([entry('Bad', { keys: ['/(/'] })], ['a ( here']), []);
    const evil = '/(a+)+b/'; // as a pattern it would match "aab" (and backtrack exponentially on "aaa…")
    assert.deepEqual(before([entry('Evil', { keys: [evil] })], ['aab']), [], 'not run as a pattern');
    assert.deepEqual(before([entry('Evil', { keys: ['/(a)+b/'] })], ['aab']), ['Evil'], 'a safe pattern is run');
    assert.deepEqual(before([entry('Evil', { keys: [evil] })], [`see ${evil} here`]), ['Evil'], 'matched as text');
  });

  test('macros are expanded in entries', () => {
    const c = character({ character_book: { entries: [entry('{{char}} owns the {{user}} boat', { keys: ['boat'] })] } });
    assert.equal(prompt(c, ['a boat']).system, `${ORIGINAL}\n\nIone owns the Jay boat`);
  });
});

describe('the character\'s note and lore in the history (SillyTavern\'s in-chat prompts)', () => {
  const chatFor = () => {
    const chat = new ChatLLM(createLlm({ ...loadConfig({}).llm, baseUrl: 'http://127.0.0.1:1/v1' }), 'Jay');
    for (const [i, text] of ['one', 'two', 'three', 'four go', 'five'].entries()) chat.history.push({ role: 'user', name: 'Jay', content: `${text} (${i})`, character_id: null });
    return chat;
  };
  const user = (content: string) => ({ role: 'user', name: 'Jay', content });

  test('extensions.depth_prompt is put `depth` messages from the end, as its role, macros replaced; with lore of the same depth and role it is one message', () => {
    const c = character({
      post_history_instructions: 'PH',
      extensions: { depth_prompt: { prompt: '{{char}} is wary of {{user}}.', depth: 2, role: 'system' } },
      character_book: { entries: [{ keys: ['go'], content: 'Lore at two.', enabled: true, insertion_order: 0, extensions: { position: 4, depth: 2, role: 0 } }, { keys: ['go'], content: 'Note top.', enabled: true, insertion_order: 0, extensions: { position: 2 } }] },
    });
    assert.deepEqual(chatFor().buildMessages(c, [c]).slice(1), [
      user('one (0)'),
      { role: 'system', content: 'Note top.' }, // the Author's Note's place: depth 4
      user('two (1)'),
      user('three (2)'),
      { role: 'system', content: 'Ione is wary of Jay.\nLore at two.' },
      user('four go (3)'),
      user('five (4)'),
      { role: 'system', content: 'PH' },
    ]);
  });

  test('depth 0 is after the last message; a depth past the history is before the first; role user and assistant; an empty note is none', () => {
    const note = (depth_prompt: unknown) => {
      const c = character({ extensions: { depth_prompt } });
      return chatFor().buildMessages(c, [c]).slice(1).map((m) => `${m.role}:${String(m.content)}`);
    };
    assert.deepEqual(note({ prompt: 'N', depth: 0, role: 'user' }).slice(-2), ['user:five (4)', 'user:N']);
    assert.deepEqual(note({ prompt: 'N', depth: 40, role: 'assistant' }).slice(0, 2), ['assistant:N', 'user:one (0)']);
    assert.deepEqual(note({ prompt: 'N' }).slice(0, 3), ['user:one (0)', 'system:N', 'user:two (1)'], 'depth 4 and system by default');
    assert.deepEqual(note({ prompt: 'N', depth: '1', role: 'user' }).slice(-2), ['user:N', 'user:five (4)'], 'a depth written as text, as SillyTavern\'s editor saves it');
    assert.equal(note({ prompt: '  ', depth: 1 }).length, 5);
    assert.equal(note('not an object').length, 5);
  });
});

describe('nickname', () => {
  test('{{char}} is the V3 nickname when the card has one; Chorus\'s own instruction keeps the name', () => {
    const c = character({ nickname: 'Io', description: '{{char}} keeps the harbour.', personality: 'gruff' });
    assert.equal(prompt(c).system, [ORIGINAL, 'Io keeps the harbour.', "Io's personality: gruff"].join('\n\n'));
  });
});

describe('the history budget counts the whole fixed prompt', () => {
  const card = character({
    system_prompt: 'You bake bread. '.repeat(40), description: 'd'.repeat(400), post_history_instructions: 'p'.repeat(400),
    character_book: { entries: [{ keys: ['message'], content: 'l'.repeat(400), enabled: true, insertion_order: 0 }] },
  });
  const keptFor = (budget: number) => {
    const chat = new ChatLLM(createLlm({ ...loadConfig({}).llm, historyTokenBudget: budget, baseUrl: 'http://127.0.0.1:1/v1' }), 'Jay');
    for (let i = 0; i < 40; i++) chat.history.push({ role: 'user', name: 'Jay', content: `message ${String(i).padStart(2, '0')} ${'x'.repeat(36)}`, character_id: null });
    const messages = chat.buildMessages(card, [card]);
    const fixed = estimateTokens(String(messages[0]?.content)) + estimateTokens(String(messages.at(-1)?.content));
    assert.equal(messages.at(-1)?.content, 'p'.repeat(400));
    assert.ok(String(messages[0]?.content).includes('l'.repeat(400)), 'the lore entry is in the prompt');
    return { kept: messages.length - 2, fixed, message: estimateTokens(String(messages[1]?.content)) };
  };
  test('a budget one token short of n messages keeps n - 1', () => {
    const { fixed, message } = keptFor(100_000);
    assert.ok(fixed > 500, `the fixed prompt counts ${fixed} tokens`);
    for (const n of [1, 5, 12]) {
      assert.equal(keptFor(fixed + n * message).kept, n, `budget for the prompt and ${n} messages`);
      assert.equal(keptFor(fixed + n * message - 1).kept, Math.max(1, n - 1), `one token short of ${n}`);
    }
  });
});

describe('a real turn with an imported card', () => {
  let llm: EngineServer;
  let chorus: ChorusUnderTest;
  before(async () => {
    const [db] = await openTestDatabases();
    assert.ok(db);
    await resetData(db.database);
    llm = await startEngineServer();
    chorus = await startChorus({ database: db.database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'test-key', LLM_MODEL: 'test/model', TTS_ENGINE: 'none', USER_NAME: 'Jay' } });
  });
  after(async () => {
    await chorus?.close();
    await llm?.close();
  });

  test('the LLM receives the card as its prompt, lore in scope, post-history last', async () => {
    const card = {
      spec: 'chara_card_v2',
      spec_version: '2.0',
      data: {
        name: 'Captain Ione', description: '{{char}} keeps the harbour.', personality: 'gruff', scenario: 'A pier; {{user}} arrives.',
        first_mes: 'Mind the ropes.', mes_example: '<START>\n{{user}}: Hi\n{{char}}: Hm.', system_prompt: 'You are {{char}}.\n{{original}}',
        post_history_instructions: 'Stay gruff.', creator_notes: '', alternate_greetings: [], tags: [], creator: '', character_version: '', extensions: {},
        character_book: {
          entries: [
            { keys: ['lighthouse'], content: 'The lighthouse is dark.', enabled: true, insertion_order: 1, position: 'before_char' },
            { keys: ['harbour'], content: 'Boats come at dawn.', enabled: false, insertion_order: 2 },
            { keys: ['tide'], content: 'The tide is high.', enabled: true, insertion_order: 3 },
          ],
        },
      },
    };
    const res = await fetch(`${chorus.httpUrl}/api/characters/import`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(card) });
    assert.equal(res.status, 201, await res.clone().text());
    const [ione] = ((await res.json()) as { characters: Character[] }).characters;
    llm.chat.enqueue({ tokens: tokenize('Hm.') });
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      client.send({ type: 'user_message', data: { text: 'Ione, is the lighthouse lit in the harbour?' } });
      await client.next('text_stream_stop');
      const [request] = await llm.chat.waitForRequests(1);
      const instruction = defaultInstruction(ione!, [ione!], 'Jay');
      assert.deepEqual(request!.body.messages, [
        {
          role: 'system',
          content: [
            `You are Captain Ione.\n${instruction}`,
            'The lighthouse is dark.',
            'Captain Ione keeps the harbour.',
            "Captain Ione's personality: gruff",
            'Scenario: A pier; Jay arrives.',
            '[Example dialogue]\nJay: Hi\nCaptain Ione: Hm.',
          ].join('\n\n'),
        },
        { role: 'assistant', name: 'Captain_Ione', content: 'Mind the ropes.' }, // its greeting opened the conversation
        { role: 'user', name: 'Jay', content: 'Ione, is the lighthouse lit in the harbour?' },
        { role: 'system', content: 'Stay gruff.' },
      ]);
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
    }
  });
  test('a SillyTavern card\'s note and lore at a depth reach the LLM in the history', async () => {
    await resetData((await openTestDatabases())[0]!.database);
    const card = {
      name: 'Warden', description: '', personality: '', scenario: '', first_mes: 'Halt.', mes_example: '', creatorcomment: '', avatar: 'none', talkativeness: '0.5', fav: false, tags: [],
      spec: 'chara_card_v2', spec_version: '2.0',
      data: {
        name: 'Warden', description: '', personality: '', scenario: '', first_mes: 'Halt.', mes_example: '', creator_notes: '', system_prompt: '', post_history_instructions: '',
        tags: [], creator: '', character_version: '', alternate_greetings: [], group_only_greetings: [],
        extensions: { talkativeness: '0.5', fav: false, world: '', depth_prompt: { prompt: '{{char}} distrusts {{user}}.', depth: 1, role: 'system' } },
        character_book: {
          entries: [{
            id: 0, keys: ['gate'], secondary_keys: ['key', 'pass'], comment: '', content: 'Nobody passes without a token.', constant: false, selective: true, insertion_order: 100, enabled: true,
            position: 'after_char', use_regex: true,
            extensions: { position: 4, depth: 0, role: 1, selectiveLogic: 2, exclude_recursion: false, display_index: 0, probability: 100, useProbability: true, group: '', scan_depth: null, match_whole_words: null, case_sensitive: null },
          }],
        },
      },
    };
    const res = await fetch(`${chorus.httpUrl}/api/characters/import`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(card) });
    assert.equal(res.status, 201, await res.clone().text());
    const [warden] = ((await res.json()) as { characters: Character[] }).characters;
    const client = await TestClient.connect(chorus.wsUrl);
    try {
      await client.next('text_stream_stop'); // the greeting
      const ask = async (text: string) => {
        llm.chat.enqueue({ tokens: tokenize('Hm.') });
        const before = llm.chat.requests.length;
        client.send({ type: 'user_message', data: { text } });
        const requests = await llm.chat.waitForRequests(before + 1);
        await client.next('text_stream_stop');
        return requests.at(-1)!.body.messages;
      };
      assert.deepEqual(await ask('Open the gate.'), [
        { role: 'system', content: defaultInstruction(warden!, [warden!], 'Jay') },
        { role: 'assistant', name: 'Warden', content: 'Halt.' },
        { role: 'system', content: 'Warden distrusts Jay.' },
        { role: 'user', name: 'Jay', content: 'Open the gate.' },
        { role: 'user', content: 'Nobody passes without a token.' }, // NOT ANY: neither "key" nor "pass" was said
      ]);
      const second = await ask('I have the key to the gate.');
      assert.deepEqual(second?.slice(-3), [
        { role: 'assistant', name: 'Warden', content: 'Hm.' },
        { role: 'system', content: 'Warden distrusts Jay.' },
        { role: 'user', name: 'Jay', content: 'I have the key to the gate.' },
      ], 'a secondary key was said: NOT ANY fails, and the note moved with the history');
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
    }
  });
});
