// Unit tests of who answers (src/session/reply-strategy.ts): every strategy, with the random
// draws given exactly (a scripted rng) or seeded (src/util/prng.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ReplyStrategy } from '../src/protocol.ts';
import { type CastMember, chooseResponders, type ReplyContext } from '../src/session/reply-strategy.ts';
import { prng } from '../src/util/prng.ts';

const member = (id: string, name: string, talkativeness = 0.5, muted = false): CastMember => ({ id, name, talkativeness, muted });
const ada = member('ada', 'Ada Lovelace');
const bob = member('bob', 'Bob');
const cy = member('cy', 'Cy Twombly');

/** An rng that returns the given draws in order and fails the test if asked for more. */
function scripted(...draws: number[]): () => number {
  return () => {
    const next = draws.shift();
    assert.notEqual(next, undefined, 'the strategy drew more random numbers than expected');
    return next as number;
  };
}

const choose = (strategy: ReplyStrategy, over: Partial<ReplyContext<CastMember>>) =>
  chooseResponders({ text: '', cast: [ada, bob, cy], lastSpeaker: undefined, spokeSinceUser: [], strategy, allowSelfResponses: false, rng: scripted(), ...over }).map((c) => c.id);

describe('natural', () => {
  test('the named answer first in order of mention, then the others by talkativeness', () => {
    const cast = [member('ada', 'Ada Lovelace', 0), member('bob', 'Bob', 0), member('cy', 'Cy Twombly', 1)];
    // Others: [ada] shuffled (no draw for one), roll 0.3 against talkativeness 0 → no.
    assert.deepEqual(choose('natural', { cast, text: 'Cy, then Bob?', rng: scripted(0.3) }), ['cy', 'bob']);
    // Nobody named: shuffle of three (2 draws), then a roll each; talkativeness 1 always, 0 never.
    assert.deepEqual(choose('natural', { cast, text: 'hello', rng: scripted(0.99, 0.99, 0, 0, 0) }), ['cy']);
  });
  test('each other member answers when its roll is under its talkativeness, in shuffled order', () => {
    // Shuffle [ada, bob, cy]: i=2 draws 0 (swap with 0 → cy, bob, ada), i=1 draws 0.9 (stay).
    // Rolls: cy 0.4 < 0.5 yes, bob 0.6 no, ada 0.1 yes.
    assert.deepEqual(choose('natural', { text: 'hello', rng: scripted(0, 0.9, 0.4, 0.6, 0.1) }), ['cy', 'ada']);
  });
  test('nobody picked: one random member with talkativeness above 0', () => {
    const cast = [member('ada', 'Ada Lovelace', 0), member('bob', 'Bob', 0.2), member('cy', 'Cy Twombly', 0.3)];
    // Shuffle (2 draws, stays), rolls all miss, then the fallback draw 0.6 of [bob, cy] → cy.
    assert.deepEqual(choose('natural', { cast, text: 'hello', rng: scripted(0.99, 0.99, 0.5, 0.5, 0.5, 0.6) }), ['cy']);
  });
  test('everyone at talkativeness 0 and nobody named: nobody answers', () => {
    const cast = [member('ada', 'Ada Lovelace', 0), member('bob', 'Bob', 0)];
    assert.deepEqual(choose('natural', { cast, text: 'hello', rng: scripted(0.5, 0, 0) }), []);
  });
  test('a muted member never answers, even when named', () => {
    const cast = [ada, member('bob', 'Bob', 1, true), cy];
    // Others after the named Ada: [cy] (bob muted); roll 0.9 misses.
    assert.deepEqual(choose('natural', { cast, text: 'Bob and Ada', rng: scripted(0.9) }), ['ada']);
  });
  test('the last speaker does not answer itself unless allow_self_responses', () => {
    const cast = [member('ada', 'Ada Lovelace', 1), member('bob', 'Bob', 1)];
    assert.deepEqual(choose('natural', { cast, text: 'Ada?', lastSpeaker: 'ada', rng: scripted(0) }), ['bob']);
    assert.deepEqual(choose('natural', { cast, text: 'Ada?', lastSpeaker: 'ada', allowSelfResponses: true, rng: scripted(0) }), ['ada', 'bob']);
  });
});

describe('list', () => {
  test('every member in cast order, the muted left out, no randomness', () => {
    assert.deepEqual(choose('list', { cast: [cy, ada, bob], text: 'Bob?' }), ['cy', 'ada', 'bob']);
    assert.deepEqual(choose('list', { cast: [cy, member('ada', 'Ada', 0.5, true), bob], text: 'hi' }), ['cy', 'bob']);
  });
});

describe('manual', () => {
  test('only the named answer, in order of mention', () => {
    assert.deepEqual(choose('manual', { text: 'Bob and then Ada' }), ['bob', 'ada']);
  });
  test('nobody named: nobody answers', () => {
    assert.deepEqual(choose('manual', { text: 'hello everyone' }), []);
  });
  test('a muted member named does not answer', () => {
    assert.deepEqual(choose('manual', { cast: [ada, member('bob', 'Bob', 0.5, true)], text: 'Bob and Ada' }), ['ada']);
  });
});

describe('pooled', () => {
  test('one member who has not spoken since the user last did, at random', () => {
    assert.deepEqual(choose('pooled', { spokeSinceUser: ['ada'], rng: scripted(0.7) }), ['cy']);
    assert.deepEqual(choose('pooled', { spokeSinceUser: ['ada'], rng: scripted(0.2) }), ['bob']);
  });
  test('when everyone has spoken: any one but the last speaker', () => {
    assert.deepEqual(choose('pooled', { spokeSinceUser: ['ada', 'bob', 'cy'], lastSpeaker: 'cy', rng: scripted(0.99) }), ['bob']);
  });
  test('the muted are never in the pool', () => {
    assert.deepEqual(choose('pooled', { cast: [member('ada', 'Ada', 0.5, true), bob], rng: scripted(0) }), ['bob']);
  });
});

describe('seeded randomness', () => {
  const run = (seed: number) => {
    const rng = prng(seed);
    return Array.from({ length: 30 }, () => choose('natural', { text: 'hello', rng }).join(','));
  };
  test('the same seed makes the same choices, another seed others', () => {
    assert.deepEqual(run(7), run(7));
    assert.notDeepEqual(run(7), run(8));
  });
  test('talkativeness 1 always answers, 0 never (unless the only fallback)', () => {
    const rng = prng(42);
    const cast = [member('ada', 'Ada', 1), member('bob', 'Bob', 0), member('cy', 'Cy', 0.5)];
    for (let i = 0; i < 200; i++) {
      const chosen = choose('natural', { cast, text: 'hello', rng });
      assert.ok(chosen.includes('ada'), `run ${i}: ${chosen}`);
      assert.ok(!chosen.includes('bob'), `run ${i}: ${chosen}`);
    }
  });
});
