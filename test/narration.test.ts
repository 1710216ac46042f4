// The narration splitter (src/speech/narration.ts): what of a message's sentences is spoken, and
// by whom, in each mode; quotes and *actions* across sentences; code and URLs never spoken.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SentenceSplitter } from '../src/llm/sentences.ts';
import { Narration, narrationOf } from '../src/speech/narration.ts';
import type { NarrationMode } from '../src/protocol.ts';

/** The message cut as the playout cuts it, each sentence's parts as [voice, text]. */
function spoken(mode: NarrationMode, message: string): Array<[string, string]> {
  const splitter = new SentenceSplitter();
  const narration = new Narration(mode);
  const sentences = [...splitter.push(message), ...splitter.flush()];
  let cursor = 0;
  const out: Array<[string, string]> = [];
  for (const sentence of sentences) {
    const at = message.indexOf(sentence, cursor);
    for (const part of narration.parts(sentence, message.slice(cursor, at))) {
      assert.ok(part.start >= 0 && part.end <= sentence.length && part.start < part.end, 'a part lies in its sentence');
      out.push([part.voice, part.text]);
    }
    cursor = at + sentence.length;
  }
  return out;
}

const MESSAGE = '*She leans back, smiling.* "Well, hello there," she says. "It has been a long time." The door creaks.';

test('all: everything is spoken in the character voice, actions included, marks dropped', () => {
  assert.deepEqual(spoken('all', MESSAGE), [
    ['character', 'She leans back,'],
    ['character', 'smiling. Well, hello there, she says.'],
    ['character', 'It has been a long time.'],
    ['character', 'The door creaks.'],
  ]);
});

test('dialogue_only: only quoted dialogue is spoken, the quotes of one sentence as one part', () => {
  assert.deepEqual(spoken('dialogue_only', MESSAGE), [
    ['character', 'Well, hello there,'],
    ['character', 'It has been a long time.'],
  ]);
  assert.deepEqual(spoken('dialogue_only', 'So she told them all "hello there," and then "come in, please."'), [
    ['character', 'hello there, come in,'], // two quotes, one part (the splitter's quick first fragment ends at the comma)
    ['character', 'please.'],
  ]);
  assert.deepEqual(spoken('dialogue_only', 'No quotes at all in this reply.'), [], 'unquoted text is narration');
});

test('narrated: dialogue in the character voice, actions and unquoted text in the narrator voice, in order', () => {
  assert.deepEqual(spoken('narrated', MESSAGE), [
    ['narrator', 'She leans back,'],
    ['narrator', 'smiling.'],
    ['character', 'Well, hello there,'],
    ['narrator', 'she says.'],
    ['character', 'It has been a long time.'],
    ['narrator', 'The door creaks.'],
  ]);
});

test('a quote spanning sentences stays dialogue in the next sentence, and ends where it closes', () => {
  const message = '"This is the first thing I say. And this, the second thing I say." He sighs deeply.';
  assert.deepEqual(spoken('narrated', message), [
    ['character', 'This is the first thing I say. And this,'], // the splitter's quick first fragment
    ['character', 'the second thing I say.'],
    ['narrator', 'He sighs deeply.'],
  ]);
  assert.deepEqual(spoken('narrated', '“Curly quotes work. Like straight ones.” She nods once.'), [
    ['character', 'Curly quotes work. Like straight ones.'],
    ['narrator', 'She nods once.'],
  ]);
});

test('an action spanning sentences stays narration; quotes inside it and *emphasis* inside dialogue do not switch', () => {
  const message = '*She walks to the window. She reads the sign "Closed" aloud.* "I *really* did not expect that."';
  assert.deepEqual(spoken('narrated', message), [
    ['narrator', 'She walks to the window.'],
    ['narrator', 'She reads the sign "Closed" aloud.'],
    ['character', 'I really did not expect that.'],
  ]);
  assert.deepEqual(spoken('narrated', 'This is **very** important to know. "Yes it is!"'), [
    ['narrator', 'This is very important to know.'],
    ['character', 'Yes it is!'],
  ]);
});

test('a blank line ends an open quote or action: a stray mark does not swallow the rest', () => {
  assert.deepEqual(spoken('narrated', '*She starts to speak but stops.\n\nThe room is quiet now. "Hello?"'), [
    ['narrator', 'She starts to speak but stops.'],
    ['narrator', 'The room is quiet now.'],
    ['character', 'Hello?'],
  ]);
  assert.deepEqual(spoken('narrated', '*She waves\ngoodbye to them.* "Bye now!"'), [
    ['narrator', 'She waves'],
    ['narrator', 'goodbye to them.'],
    ['character', 'Bye now!'],
  ], 'a single line break does not end an action');
});

test('fenced code blocks are never spoken, in any mode, across sentences', () => {
  const message = 'Here is the code you asked for:\n```js\nconst answer = 42;\nconsole.log("the answer is", answer);\n```\nRun it and see what happens.';
  for (const mode of ['all', 'narrated'] as const) {
    const texts = spoken(mode, message).map(([, text]) => text);
    assert.deepEqual(texts, ['Here is the code you asked for:', 'Run it and see what happens.'], mode);
  }
  assert.deepEqual(spoken('dialogue_only', '"Look at this:"\n```\nlet s = "a quoted string";\n```\n"Nice, right?"'), [
    ['character', 'Look at this:'],
    ['character', 'Nice, right?'],
  ], 'quotes inside code are not dialogue');
});

test('inline code is never spoken', () => {
  assert.deepEqual(spoken('all', 'Type `npm test --watch` and wait for it.'), [['character', 'Type and wait for it.']]);
  assert.deepEqual(spoken('narrated', '"Call `fetch()` first," she says.'), [['character', 'Call first,'], ['narrator', 'she says.']]);
});

test('URLs are never spoken; a markdown link speaks its label', () => {
  assert.deepEqual(spoken('all', 'See https://example.com/docs?page=2#top for details. Or www.example.org, too.'), [
    ['character', 'See for details.'],
    ['character', 'Or, too.'],
  ]);
  assert.deepEqual(spoken('narrated', '"Read [the guide](https://example.com/guide) first." She points.'), [
    ['character', 'Read the guide first.'],
    ['narrator', 'She points.'],
  ]);
  assert.deepEqual(spoken('all', 'https://example.com/only-a-link'), [], 'a sentence of only a URL is not spoken');
});

test('a character without its own settings takes the defaults', () => {
  const defaults = { mode: 'narrated', narratorVoice: 'deep' } as const;
  assert.deepEqual(narrationOf({ narration: null, narrator_voice: null }, defaults), defaults);
  assert.deepEqual(narrationOf({ narration: 'dialogue_only', narrator_voice: 'soft' }, defaults), { mode: 'dialogue_only', narratorVoice: 'soft' });
  assert.deepEqual(narrationOf(undefined, defaults), defaults);
});
