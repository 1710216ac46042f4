// Who answers a message: the conversation's reply strategy (SillyTavern's group activation
// strategies), as one pure function of the message, the cast and what was said since the user
// last spoke. Randomness comes only from `rng`, so a seeded PRNG makes every choice exact.
import { mentionedCharacters } from '../llm/mentions.ts';
import type { ReplyStrategy } from '../protocol.ts';

/** A cast member as the strategies see it (a Character has all of these but `muted`). */
export interface CastMember {
  id: string;
  name: string;
  /** 0–1: the chance of speaking up unaddressed under `natural`. */
  talkativeness: number;
  /** Never chosen by a strategy (only trigger_character makes it speak). */
  muted: boolean;
}

export interface ReplyContext<C extends CastMember> {
  /** The message being answered: the user's, or (auto-mode) the last reply. */
  text: string;
  /** The conversation's cast, in cast order. */
  cast: readonly C[];
  /** The character who spoke the last message; undefined when it was the user's (or none). */
  lastSpeaker: string | undefined;
  /** Characters who have spoken since the user's last message. */
  spokeSinceUser: readonly string[];
  strategy: ReplyStrategy;
  /** The last speaker may answer itself. */
  allowSelfResponses: boolean;
  /** Uniform in [0, 1). */
  rng: () => number;
}

type Choose = <C extends CastMember>(ctx: ReplyContext<C>, eligible: readonly C[]) => C[];

/** One at random; no draw when there is nothing to choose from. */
const pick = <T>(items: readonly T[], rng: () => number): T | undefined =>
  items.length === 0 ? undefined : items[Math.floor(rng() * items.length)];

/** Fisher–Yates with the given rng. */
function shuffled<T>(items: readonly T[], rng: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const strategies: Record<ReplyStrategy, Choose> = {
  // The named ones in order of mention; then each other member (in random order) with
  // probability = its talkativeness; nobody at all: one random member with talkativeness > 0.
  natural: (ctx, eligible) => {
    const named = mentionedCharacters(ctx.text, eligible);
    const others = shuffled(eligible.filter((c) => !named.includes(c)), ctx.rng);
    const talkers = others.filter((c) => ctx.rng() < c.talkativeness);
    const chosen = [...named, ...talkers];
    if (chosen.length > 0) return chosen;
    const fallback = pick(eligible.filter((c) => c.talkativeness > 0), ctx.rng);
    return fallback ? [fallback] : [];
  },
  // Everyone, in cast order (the last speaker too: the list is the order of a round).
  list: (ctx) => ctx.cast.filter((c) => !c.muted),
  // Only the named ones; nobody named, nobody answers.
  manual: (ctx, eligible) => mentionedCharacters(ctx.text, eligible),
  // One member who has not spoken since the user's last message; when all have, any one.
  pooled: (ctx, eligible) => {
    const fresh = eligible.filter((c) => !ctx.spokeSinceUser.includes(c.id));
    const chosen = pick(fresh.length > 0 ? fresh : eligible, ctx.rng);
    return chosen ? [chosen] : [];
  },
};

/** The characters who answer, in the order they speak. */
export function chooseResponders<C extends CastMember>(ctx: ReplyContext<C>): C[] {
  const banned = ctx.allowSelfResponses ? undefined : ctx.lastSpeaker;
  const eligible = ctx.cast.filter((c) => !c.muted && c.id !== banned);
  return strategies[ctx.strategy](ctx, eligible);
}
