// Unit tests of the small pure parts: who responds, reply cleaning, OpenAI names, config, queue.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.ts';
import { apiName, ChatLLM, createLlm } from '../src/llm/chat.ts';
import { respondingCharacters } from '../src/llm/mentions.ts';
import { ReplyCleaner } from '../src/llm/reply-cleaner.ts';
import type { Character } from '../src/protocol.ts';
import { AsyncQueue } from '../src/util/async-queue.ts';

const character = (id: string, name: string): Character => ({
  id, name, voice: null, system_prompt: '', image_url: null, images: [], is_active: true, last_message: null,
  talkativeness: 0.5, narration: null, narrator_voice: null, style: null, description: '', personality: '', scenario: '', first_mes: '', mes_example: '', creator_notes: '',
  post_history_instructions: '', alternate_greetings: [], tags: [], creator: '', character_version: '', character_book: null, extensions: {},
  nickname: '', group_only_greetings: [], creator_notes_multilingual: {}, assets: [], source: [], creation_date: null, modification_date: null,
  created_at: '', updated_at: '',
});
const ada = character('ada-lovelace-001', 'Ada Lovelace');
const bob = character('bob-001', 'Bob');
const cy = character('cy-001', 'Cy Twombly');
const cast = [cy, bob, ada];
const names = (cs: Character[]) => cs.map((c) => c.name);

describe('respondingCharacters', () => {
  test('mentioned characters answer in order of first mention', () => {
    assert.deepEqual(names(respondingCharacters('Bob, what does Lovelace think?', cast)), ['Bob', 'Ada Lovelace']);
    assert.deepEqual(names(respondingCharacters('ada lovelace and BOB', cast)), ['Ada Lovelace', 'Bob']);
  });
  test('a mention is a whole word', () => {
    assert.deepEqual(names(respondingCharacters('Bobby and Adam went out', cast)), ['Ada Lovelace', 'Bob', 'Cy Twombly']);
    assert.deepEqual(names(respondingCharacters("what's Bob's view?", cast)), ['Bob']);
  });
  test('nobody mentioned: every active character by name', () => {
    assert.deepEqual(names(respondingCharacters('hello everyone', cast)), ['Ada Lovelace', 'Bob', 'Cy Twombly']);
  });
  test('names with regex characters are matched literally', () => {
    const odd = character('x', 'R2.D2 (droid)');
    assert.deepEqual(names(respondingCharacters('hey R2.D2!', [bob, odd])), ['R2.D2 (droid)']);
    assert.deepEqual(names(respondingCharacters('hey R2xD2', [bob, odd])), ['Bob', 'R2.D2 (droid)']);
  });
});

describe('ReplyCleaner', () => {
  const clean = (deltas: string[], names = ['Ada Lovelace', 'Ada']) => {
    const c = new ReplyCleaner(names);
    return deltas.map((d) => c.push(d)).join('') + c.flush();
  };
  test('strips a leading name label, even when it arrives a character at a time', () => {
    assert.equal(clean([...'Ada: Hello there.']), 'Hello there.');
    assert.equal(clean(['**Ada Lovelace:** Hi']), 'Hi');
    assert.equal(clean(['[Ada', ']: ', 'Hi']), 'Hi');
  });
  test('strips <Name> wrappers split across deltas', () => {
    assert.equal(clean(['<Ad', 'a>Hello', ' world</A', 'da>']), 'Hello world');
  });
  test('keeps text that only looks like a start of a label', () => {
    assert.equal(clean(['Adam is here.']), 'Adam is here.');
    assert.equal(clean(['A', 'd', 'a', 'm']), 'Adam');
    assert.equal(clean(['1 < 2 and <b>bold</b>']), '1 < 2 and <b>bold</b>');
    assert.equal(clean(['I said Ada: no.']), 'I said Ada: no.');
  });
  test('passes plain deltas straight through once started', () => {
    const c = new ReplyCleaner(['Bob']);
    assert.equal(c.push('Hi'), 'Hi');
    assert.equal(c.push(' there'), ' there');
  });
});

test('apiName keeps only names OpenAI accepts', () => {
  assert.equal(apiName('Ada Lovelace'), 'Ada_Lovelace');
  assert.equal(apiName('Zoë'), 'Zoe');
  assert.equal(apiName('李'), undefined);
  assert.equal(apiName('x'.repeat(100))?.length, 64);
  assert.match(apiName('Dr. Who?!') ?? '', /^[a-zA-Z0-9_-]{1,64}$/);
});

describe('loadConfig', () => {
  test('defaults', () => {
    const c = loadConfig({});
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 8000);
    assert.equal(c.dataDir, './data');
    assert.equal(c.databaseUrl, undefined);
    assert.equal(c.llm.baseUrl, 'https://openrouter.ai/api/v1');
    assert.equal(c.llm.model, 'meta-llama/llama-3.1-8b-instruct');
    assert.equal(c.userName, 'User');
  });
  test('LLM_API_KEY falls back to OPENROUTER_API_KEY', () => {
    assert.equal(loadConfig({ OPENROUTER_API_KEY: 'or' }).llm.apiKey, 'or');
    assert.equal(loadConfig({ OPENROUTER_API_KEY: 'or', LLM_API_KEY: 'k' }).llm.apiKey, 'k');
  });
  test('each bad value is named', () => {
    assert.throws(
      () => loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', TTS_ENGINE: 'loud' }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.problems.length, 3);
        assert.match(e.message, /PORT="eighty"/);
        assert.match(e.message, /DATABASE_URL="mysql:\/\/x"/);
        assert.match(e.message, /TTS_ENGINE="loud"/);
        return true;
      },
    );
  });
});

describe('AsyncQueue', () => {
  test('delivers in order to a waiting consumer', async () => {
    const q = new AsyncQueue<number>();
    const first = q.shift();
    q.push(1);
    q.push(2);
    assert.equal(await first, 1);
    assert.equal(await q.shift(), 2);
  });
  test('clear drops matching items only; close ends iteration', async () => {
    const q = new AsyncQueue<number>();
    for (const n of [1, 2, 3, 4]) q.push(n);
    assert.equal(q.clear((n) => n % 2 === 0), 2);
    const seen: number[] = [];
    const loop = (async () => { for await (const n of q) seen.push(n); })();
    await new Promise((r) => setImmediate(r));
    q.close();
    await loop;
    assert.deepEqual(seen, [1, 3]);
  });
});

describe('ChatLLM.buildMessages', () => {
  const llm = (budget: number) => createLlm({ ...loadConfig({}).llm, historyTokenBudget: budget, baseUrl: 'http://127.0.0.1:1/v1' });
  const fill = (chat: ChatLLM, n: number) => {
    for (let i = 0; i < n; i++) chat.history.push({ role: 'user', name: 'Jay', content: `message ${i} ${'x'.repeat(36)}`, character_id: null });
  };

  test('keeps the newest history that fits the budget, oldest first', () => {
    const chat = new ChatLLM(llm(300), 'Jay');
    fill(chat, 50);
    const messages = chat.buildMessages(bob, [bob]);
    assert.equal(messages[0]?.role, 'system');
    const kept = messages.slice(1).map((m) => String(m.content));
    // ≈ 4 characters a token plus 4 for framing; the system prompt is paid for first.
    const tokens = (text: string) => Math.ceil(text.length / 4) + 4;
    assert.equal(kept.length, Math.floor((300 - tokens(String(messages[0]?.content))) / tokens(kept[0]!)), 'as many as fit');
    assert.equal(kept.at(-1), chat.history.at(-1)?.content, 'the newest message is last');
    assert.ok(kept[0]?.startsWith(`message ${50 - kept.length} `), 'a contiguous run of the newest messages');
  });

  test('the newest message is sent even over budget', () => {
    const tiny = new ChatLLM(llm(100), 'Jay');
    tiny.history.push({ role: 'user', name: 'Jay', content: 'y'.repeat(4000), character_id: null });
    assert.equal(tiny.buildMessages(bob, [bob]).length, 2);
  });
});

describe('ChatLLM history budget arithmetic', () => {
  // The estimate the budget is counted in: ≈ 4 characters a token, plus 4 for framing.
  const tokens = (text: string) => Math.ceil(text.length / 4) + 4;
  const wordy = { ...bob, system_prompt: 'You bake bread. '.repeat(100) }; // a system prompt of ~400 tokens

  /** How many history messages are sent for a given budget, and what one message and the prompt cost. */
  const keptFor = (budget: number) => {
    const chat = new ChatLLM(createLlm({ ...loadConfig({}).llm, historyTokenBudget: budget, baseUrl: 'http://127.0.0.1:1/v1' }), 'Jay');
    for (let i = 0; i < 40; i++) chat.history.push({ role: 'user', name: 'Jay', content: `message ${String(i).padStart(2, '0')} ${'x'.repeat(36)}`, character_id: null });
    const [system, ...kept] = chat.buildMessages(wordy, [wordy]);
    return { kept: kept.length, system: tokens(String(system?.content)), message: tokens(String(kept[0]?.content)) };
  };

  test('the system prompt and exactly as many messages as fit: a budget one token short keeps one fewer', () => {
    const { system, message } = keptFor(100_000);
    assert.ok(system > 400, `the prompt counts ${system} tokens`);
    for (const n of [1, 5, 12]) {
      assert.equal(keptFor(system + n * message).kept, n, `budget for the prompt and ${n} messages`);
      assert.equal(keptFor(system + n * message - 1).kept, Math.max(1, n - 1), `one token short of ${n}`);
    }
  });
});
