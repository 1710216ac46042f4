// Tests of the streaming sentence splitter: where it splits, when (how much text it needs to
// have seen), and that chunking never changes the result.
import { prng } from './support/random.ts';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SentenceSplitter, splitSentences, type SplitterOptions } from '../src/llm/sentences.ts';

/** Disables the quick first fragment so a table case shows only sentence splitting. */
const NO_FRAGMENT: SplitterOptions = { firstFragmentMinChars: Number.POSITIVE_INFINITY };

function splitChunks(chunks: string[], opts?: SplitterOptions): string[] {
  const splitter = new SentenceSplitter(opts);
  const out = chunks.flatMap((chunk) => splitter.push(chunk));
  return [...out, ...splitter.flush()];
}
const split = (text: string, opts?: SplitterOptions) => splitChunks([text], opts);
/** One UTF-16 code unit per delta: the worst case, and it cuts surrogate pairs. */
const perUnit = (text: string, opts?: SplitterOptions) => splitChunks(text.split(''), opts);

/** Feeds one code unit at a time; each emitted sentence with how much text had been fed then. */
function timeline(text: string, opts?: SplitterOptions): Array<[string, string]> {
  const splitter = new SentenceSplitter(opts);
  const seen: Array<[string, string]> = [];
  for (let i = 0; i < text.length; i++) {
    for (const sentence of splitter.push(text.charAt(i))) seen.push([sentence, text.slice(0, i + 1)]);
  }
  for (const sentence of splitter.flush()) seen.push([sentence, '<flush>']);
  return seen;
}

/** Runs each [input, expected] case whole and one code unit at a time. */
function table(cases: Array<[string, string[]]>, opts?: SplitterOptions): void {
  for (const [input, expected] of cases) {
    assert.deepEqual(split(input, opts), expected, input);
    assert.deepEqual(perUnit(input, opts), expected, `${input} (per character)`);
  }
}

describe('sentence ends', () => {
  test('a sentence is emitted when the next word starts, not at its period or the space after', () => {
    assert.deepEqual(timeline('The weather is lovely today. Shall we go out?'), [
      ['The weather is lovely today.', 'The weather is lovely today. S'],
      ['Shall we go out?', '<flush>'],
    ]);
  });

  test('runs of ! and ? stay with their sentence', () => {
    table([
      ['Are you serious?! That is the best news ever!!! I cannot believe it?!',
        ['Are you serious?!', 'That is the best news ever!!!', 'I cannot believe it?!']],
      ['Wait, what?? No way, that cannot be true!? Tell me more.',
        ['Wait, what?? No way, that cannot be true!?', 'Tell me more.']],
    ], NO_FRAGMENT);
  });

  test('a terminator followed by a lowercase word does not end the sentence', () => {
    table([
      ['"Where did it go?" she asked, looking around. Nobody knew.', ['"Where did it go?" she asked, looking around.', 'Nobody knew.']],
      ['Wow! that was close, said the pilot quietly. We landed.', ['Wow! that was close, said the pilot quietly.', 'We landed.']],
    ], NO_FRAGMENT);
  });

  test('a line break ends a sentence at once', () => {
    const text = 'Here is the list of items:\n- apples and pears\n- bread and butter\nThat is all.';
    assert.deepEqual(timeline(text), [
      ['Here is the list of items:', 'Here is the list of items:\n'],
      ['- apples and pears', 'Here is the list of items:\n- apples and pears\n'],
      ['- bread and butter', 'Here is the list of items:\n- apples and pears\n- bread and butter\n'],
      ['That is all.', '<flush>'],
    ]);
  });
});

describe('abbreviations and numbers', () => {
  test('titles and initials do not end a sentence', () => {
    table([
      ['I met Dr. Smith at the park. He waved at me.', ['I met Dr. Smith at the park.', 'He waved at me.']],
      ['Mrs. Jones and Mr. Brown came by. Ms. Lee did too.', ['Mrs. Jones and Mr. Brown came by.', 'Ms. Lee did too.']],
      ['Prof. Xavier teaches here every day. We like him.', ['Prof. Xavier teaches here every day.', 'We like him.']],
      ['We walked down St. James Street today. It was sunny.', ['We walked down St. James Street today.', 'It was sunny.']],
      ['Martin Luther King Jr. Day is a holiday here. Sr. Maria agrees.', ['Martin Luther King Jr. Day is a holiday here.', 'Sr. Maria agrees.']],
      ['It was Alien vs. Predator on the TV. We watched it.', ['It was Alien vs. Predator on the TV.', 'We watched it.']],
      ['Bring fruit, e.g. Apples or pears, to the picnic. Thanks a lot!', ['Bring fruit, e.g. Apples or pears, to the picnic.', 'Thanks a lot!']],
      ['Use a synonym, i.e. A word with the same meaning. Got it?', ['Use a synonym, i.e. A word with the same meaning.', 'Got it?']],
      ['We met at 9 a.m. Then we left at 5 p.m. Sharp. It was long.', ['We met at 9 a.m. Then we left at 5 p.m. Sharp.', 'It was long.']],
      ['She moved to the U.S. Last year she came back. Now she is happy.', ['She moved to the U.S. Last year she came back.', 'Now she is happy.']],
      ['He flew to the U.K. Once again he was late. Typical.', ['He flew to the U.K. Once again he was late.', 'Typical.']],
      ['The book by J. R. R. Tolkien is long. I loved it.', ['The book by J. R. R. Tolkien is long.', 'I loved it.']],
    ], NO_FRAGMENT);
  });

  test('every title keeps its sentence whole past the minimum length, where only the abbreviation rule can', () => {
    // Each title sits after the first 15 characters, so the minimum-length rule cannot hide it.
    for (const title of ['Dr', 'Mr', 'Mrs', 'Ms', 'Prof', 'St', 'Jr', 'Sr', 'Vs', 'Mt']) {
      const first = `We talked for a long while with ${title}. Smith today.`;
      table([[`${first} It was fun.`, [first, 'It was fun.']]], NO_FRAGMENT);
    }
  });

  test('etc. splits before a capital but not before a lowercase word', () => {
    table([
      ['We need pens, paper, etc. and some snacks too. Thanks.', ['We need pens, paper, etc. and some snacks too.', 'Thanks.']],
      ['We need pens, paper, pencils, etc. Then we can start working.', ['We need pens, paper, pencils, etc.', 'Then we can start working.']],
    ], NO_FRAGMENT);
  });

  test('the pronoun "I." still ends a sentence', () => {
    table([['Nobody is more tired than I. What about you, my friend?', ['Nobody is more tired than I.', 'What about you, my friend?']]], NO_FRAGMENT);
  });

  test('decimals and versions do not split, even when streamed up to the dot', () => {
    table([
      ['Pi is about 3.14 and e is about 2.72 today. Version 1.2.3 shipped in 2024. It costs $5. Wow.',
        ['Pi is about 3.14 and e is about 2.72 today.', 'Version 1.2.3 shipped in 2024.', 'It costs $5. Wow.']],
    ]);
    const splitter = new SentenceSplitter();
    assert.deepEqual(splitter.push('The value is 3.'), []);
    assert.deepEqual(splitter.push(' '), []);
    assert.deepEqual(splitter.flush(), ['The value is 3.']);
    assert.deepEqual(splitChunks(['The value is 3.', '14159 roughly. And', ' then']), ['The value is 3.14159 roughly.', 'And then']);
  });
});

describe('quotes', () => {
  test('terminators inside quotes mid-sentence do not split', () => {
    table([
      ['He said "Stop that right now. Go away." and left the room quickly. Then silence.',
        ['He said "Stop that right now. Go away." and left the room quickly.', 'Then silence.']],
      ['“Is it really over now? Really?” she asked, looking away. He nodded slowly.',
        ['“Is it really over now? Really?” she asked, looking away.', 'He nodded slowly.']],
    ], NO_FRAGMENT);
  });

  test('a closing quote after a terminator ends the sentence and stays with it', () => {
    table([
      ['"Go away right now!" She left the room.', ['"Go away right now!"', 'She left the room.']],
      ["'Run for your lives!' They all ran away.", ["'Run for your lives!'", 'They all ran away.']],
      ['He said "Stop. Now." Then he left the room.', ['He said "Stop. Now."', 'Then he left the room.']],
    ], NO_FRAGMENT);
  });

  test('a line break closes a quote left open', () => {
    table([['The sign said "Closed.\nWe went home after that. It was late.', ['The sign said "Closed.', 'We went home after that.', 'It was late.']]]);
  });
});

describe('ellipses', () => {
  test('an ellipsis before a lowercase word continues the sentence, before a capital it ends it', () => {
    table([
      ['Well... maybe we could go later tonight. Sounds good to me.', ['Well... maybe we could go later tonight.', 'Sounds good to me.']],
      ['Hmm… let me think about that for a while. Okay then.', ['Hmm… let me think about that for a while.', 'Okay then.']],
      ['I waited for hours… Nobody ever came to the door. So sad.', ['I waited for hours…', 'Nobody ever came to the door.', 'So sad.']],
      ['I waited and waited... Nobody came. So sad.', ['I waited and waited...', 'Nobody came. So sad.']],
    ], NO_FRAGMENT);
  });
});

describe('CJK', () => {
  const short: SplitterOptions = { firstFragmentMinChars: 5, sentenceMinChars: 5 };

  test('a CJK terminator needs no space: the very next character confirms it', () => {
    assert.deepEqual(timeline('今天的天气非常非常好。我们一起去公园散步吧！你觉得怎么样呢？', short), [
      ['今天的天气非常非常好。', '今天的天气非常非常好。我'],
      ['我们一起去公园散步吧！', '今天的天气非常非常好。我们一起去公园散步吧！你'],
      ['你觉得怎么样呢？', '<flush>'],
    ]);
  });

  test('terminator runs and closing brackets stay with the CJK sentence; quotes hold it', () => {
    table([
      ['你说什么？！我不相信这件事情。', ['你说什么？！', '我不相信这件事情。']],
      ['他问：「真的吗？你确定？」然后就走了。好吧！', ['他问：「真的吗？你确定？」', '然后就走了。', '好吧！']],
    ], short);
  });

  test('a CJK comma can end the first fragment', () => {
    table([['今天我们一起去公园，然后去吃饭吧。', ['今天我们一起去公园，', '然后去吃饭吧。']]], short);
  });
});

describe('first fragment', () => {
  test('the first clause of ≥ firstFragmentMinChars goes out at its delimiter, later ones do not', () => {
    assert.deepEqual(timeline('Well, honestly, I think that, in the end, you are right about it. Sure thing, my friend.'), [
      ['Well, honestly,', 'Well, honestly, '], // "Well," is shorter than 10
      ['I think that, in the end, you are right about it.', 'Well, honestly, I think that, in the end, you are right about it. S'],
      ['Sure thing, my friend.', '<flush>'],
    ]);
  });

  test('every fragment delimiter counts', () => {
    table([
      ['Listen to me; this is important now.', ['Listen to me;', 'this is important now.']],
      ['Here is the thing: we are late again.', ['Here is the thing:', 'we are late again.']],
      ['I really think—no, wait, hear me out.', ['I really think—', 'no, wait, hear me out.']],
      ['The best years – at least for me – were then.', ['The best years –', 'at least for me – were then.']],
      ['I was thinking... maybe we should go out tonight.', ['I was thinking...', 'maybe we should go out tonight.']],
      ['I was thinking… maybe we should go out tonight.', ['I was thinking…', 'maybe we should go out tonight.']],
    ]);
  });

  test('a delimiter glued to digits is not a fragment end', () => {
    table([
      ['Prices rose to 1,000 dollars, sadly for us all.', ['Prices rose to 1,000 dollars,', 'sadly for us all.']],
      ['We meet at 10:30 tomorrow, right after lunch.', ['We meet at 10:30 tomorrow,', 'right after lunch.']],
      ['It takes about 1–5 days, depending on the weather.', ['It takes about 1–5 days,', 'depending on the weather.']],
    ]);
  });

  test('a first sentence needs only firstFragmentMinChars, later ones sentenceMinChars', () => {
    table([
      ['Hello there! How are you doing today?', ['Hello there!', 'How are you doing today?']],
      ['Hello there! Hi you. How are you doing today?', ['Hello there!', 'Hi you. How are you doing today?']],
    ]);
  });

  test('the minimum is configurable, and an infinite one disables fragments but not sentences', () => {
    const text = 'Well, honestly, I think that you are right about it. Sure thing, my friend.';
    assert.deepEqual(split(text, { firstFragmentMinChars: 4 }), ['Well,', 'honestly, I think that you are right about it.', 'Sure thing, my friend.']);
    assert.deepEqual(split(text, NO_FRAGMENT), ['Well, honestly, I think that you are right about it.', 'Sure thing, my friend.']);
  });
});

describe('minimum length', () => {
  test('a sentence shorter than sentenceMinChars joins the next one', () => {
    const text = 'This is the opening sentence. Ok. Sure. That works for me, thanks. Fine.';
    assert.deepEqual(split(text), ['This is the opening sentence.', 'Ok. Sure. That works for me, thanks.', 'Fine.']);
    assert.deepEqual(split(text, { sentenceMinChars: 1 }), ['This is the opening sentence.', 'Ok.', 'Sure.', 'That works for me, thanks.', 'Fine.']);
  });
});

describe('symbols and markdown', () => {
  test('text without a letter or digit is merged into the next sentence or dropped', () => {
    table([
      ['This is the first sentence. *** ... *** ... *** ... Then the rest follows.', ['This is the first sentence.', '*** ... *** ... *** ... Then the rest follows.']],
      ['A perfectly normal sentence. ...', ['A perfectly normal sentence.']],
      ['... ... *', []],
      ['!!!!!!!!!!!!!!!!!!!!\n????????????????????\n', []],
    ]);
  });

  test('asterisk actions stay in the text', () => {
    table([['*smiles warmly* Hello there, it is so good to see you. *waves* Bye now!', ['*smiles warmly* Hello there,', 'it is so good to see you.', '*waves* Bye now!']]]);
    table([
      ['She nods. *waves goodbye.* See you later, friend!', ['She nods. *waves goodbye.*', 'See you later, friend!']],
      ['**Important:** do not *ever* touch the stove. It is hot!', ['**Important:** do not *ever* touch the stove.', 'It is hot!']],
    ], NO_FRAGMENT);
  });
});

describe('surrogate pairs', () => {
  test('letters outside the BMP count as letters even when a delta cuts them in half', () => {
    // Split in halves, 𝐇𝐞𝐥𝐥𝐨 would look letterless and be merged into the next sentence.
    table([['This is the opening sentence. 𝐇𝐞𝐥𝐥𝐨 𝐰𝐨𝐫𝐥𝐝. Then more text follows.',
      ['This is the opening sentence.', '𝐇𝐞𝐥𝐥𝐨 𝐰𝐨𝐫𝐥𝐝.', 'Then more text follows.']]]);
  });
});

describe('stream lifecycle', () => {
  test('flush returns the trimmed remainder and resets, so the next stream starts fresh', () => {
    const splitter = new SentenceSplitter();
    assert.deepEqual(splitter.push('The first sentence is here. And the'), ['The first sentence is here.']);
    assert.deepEqual(splitter.push(' rest of it  \n  '), ['And the rest of it']);
    assert.deepEqual(splitter.push('  trailing words '), []);
    assert.deepEqual(splitter.flush(), ['trailing words']);
    assert.deepEqual(splitter.flush(), []);
    // A fresh stream: the quick first fragment applies again and nothing old leaks in.
    assert.deepEqual(splitter.push('Hello, my good friend, how'), ['Hello, my good friend,']);
    assert.deepEqual(splitter.flush(), ['how']);
  });

  test('flush keeps a held short sentence with the remainder', () => {
    const splitter = new SentenceSplitter();
    assert.deepEqual(splitter.push('This is the opening sentence. Short one. Tail'), ['This is the opening sentence.']);
    assert.deepEqual(splitter.flush(), ['Short one. Tail']);
  });

  test('empty and whitespace-only streams emit nothing', () => {
    assert.deepEqual(splitChunks([]), []);
    assert.deepEqual(splitChunks(['', '']), []);
    assert.deepEqual(splitChunks([' ', '\n\n', '\t', '   ']), []);
  });

  test('splitSentences wraps push and flush over an async stream', async () => {
    async function* deltas(text: string) {
      for (let i = 0; i < text.length; i += 3) yield text.slice(i, i + 3);
    }
    const collect = async (it: AsyncIterable<string>) => {
      const out: string[] = [];
      for await (const sentence of it) out.push(sentence);
      return out;
    };
    assert.deepEqual(await collect(splitSentences(deltas('Well, honestly, I think so. That is all, my friend. Bye'))),
      ['Well, honestly,', 'I think so. That is all, my friend.', 'Bye']);
    assert.deepEqual(await collect(splitSentences(deltas('Hello there, friend.'), NO_FRAGMENT)), ['Hello there, friend.']);
    assert.deepEqual(await collect(splitSentences(deltas(''))), []);
  });
});

describe('chunking independence', () => {
  const paragraphs = [
    'Well, honestly, I met Dr. Smith at 9 a.m. today. He said "Stop. Now." and left! Did he?! I think so... Maybe not. '
      + 'Pi is 3.14, version 1.2.3 is out. We moved to the U.S. Last year. *smiles* That was fun… Really fun.',
    '"Go away!" She left the room quickly. Then, after a while — maybe an hour — she came back, e.g. To get her keys. '
      + 'Etc. and so on. Wow!!! What a day it was? Yes, it was 🎉 a great day 😀 for all of us.',
    '今天的天气非常非常好。我们一起去公园散步吧！你觉得怎么样呢？他问：「真的吗？你确定？」然后就走了。好吧！',
    'Here is the list:\n- apples, pears\n- bread and butter\n\nThat is all, my friend. Mrs. Jones and Mr. Brown agree; '
      + 'Prof. X does not. 𝐁𝐨𝐥𝐝 letters are fine. The end.',
  ];


  /** Cuts text at random code-unit positions (so surrogate pairs get cut too). */
  function randomChunks(text: string, random: () => number): string[] {
    const chunks: string[] = [];
    for (let i = 0; i < text.length;) {
      const size = 1 + Math.floor(random() * 8);
      chunks.push(text.slice(i, i + size));
      i += size;
    }
    return chunks;
  }

  const squash = (s: string) => s.replace(/\s+/g, '');

  test('random chunkings give the same sentences as one delta, and lose no text', () => {
    const random = prng(0xc0ffee);
    for (const text of paragraphs) {
      const whole = split(text);
      assert.ok(whole.length >= 4, `expected several sentences from: ${text}`);
      assert.equal(squash(whole.join('')), squash(text));
      assert.deepEqual(perUnit(text), whole, 'one code unit per delta');
      for (let round = 0; round < 50; round++) {
        const chunks = randomChunks(text, random);
        assert.deepEqual(splitChunks(chunks), whole, JSON.stringify(chunks));
      }
    }
  });

  test('all paragraphs as one stream, with other options, are chunking-independent too', () => {
    const random = prng(42);
    const text = paragraphs.join('\n\n');
    for (const opts of [{ firstFragmentMinChars: 3, sentenceMinChars: 1 }, { firstFragmentMinChars: 40, sentenceMinChars: 60 }]) {
      const whole = split(text, opts);
      assert.equal(squash(whole.join('')), squash(text));
      for (let round = 0; round < 30; round++) assert.deepEqual(splitChunks(randomChunks(text, random), opts), whole);
    }
  });
});
