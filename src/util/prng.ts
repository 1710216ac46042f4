// A seedable PRNG for the choices a conversation makes at random (who speaks up unaddressed),
// so that a seed (REPLY_SEED) makes every choice reproducible; without one the seed is random.
import { randomInt } from 'node:crypto';

/** mulberry32 whose state can be read and set, so a choice taken back leaves no trace. */
export class SeededRandom {
  state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next number in [0, 1). */
  readonly next = (): number => {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** mulberry32: a small deterministic PRNG returning numbers in [0, 1). */
export function prng(seed: number): () => number {
  return new SeededRandom(seed).next;
}

/** A fresh seed when none is configured. */
export const randomSeed = (): number => randomInt(0, 2 ** 32);
