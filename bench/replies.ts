// The scripted conversation of the benchmark: what each simulated user says, and what the
// loopback LLM answers (tokens and timing). Every sentence and opening clause carries a number
// unique in the run, so a speech request can be traced back to its turn and sentence by its input
// text alone.
// The sentences the server will cut each reply into are computed here with the server's own
// splitter, together with the token that completes the first fragment.
import { tokenize } from '../test/support/engine-server.ts';
import { SentenceSplitter } from '../src/llm/sentences.ts';
import { speakable } from '../src/speech/speech.ts';

export interface LlmTiming {
  /** Time to first token. */
  firstTokenDelayMs: number;
  /** Delay between tokens: each reply picks one in [min, max]. */
  tokenDelayMs: [number, number];
}

export interface TurnPlan {
  /** Unique in the run; the user message carries it as "question <tag>". */
  tag: number;
  session: number;
  /** The user message. */
  text: string;
  /** Interrupted after the first audio frame plus `interruptAfterMs`. */
  interrupt: boolean;
  interruptAfterMs: number;
  tokens: string[];
  firstTokenDelayMs: number;
  tokenDelayMs: number;
  /** The sentences the server's splitter makes of the reply, as the speech server receives them. */
  sentences: string[];
  /** Index of the token after which the splitter emits the first fragment. */
  firstFragmentToken: number;
}

/** Openers the splitter sends to the TTS on their own (the first clause of ten characters or more); {n} keeps each one unique. */
const OPENERS = ['Well, case {n}, ', 'Now then, ticket {n}, ', 'Funny, entry {n} says, ', 'Oh, chart {n}, ', 'Right, log {n}, '];

/** Reply sentences: no comma inside, so only an opener makes an early fragment (and every fragment holds its number). */
const SENTENCES = [
  'The chart for sector {n} shows a quiet stretch of sky.',
  'I filed report {n} on exactly that last winter.',
  'My machine number {n} hums when it is happy.',
  'We logged {n} hours before the lights came back on.',
  'Case {n} taught me to look twice at the obvious.',
  'There were {n} bolts in the drawer and none of them fit.',
  'Give me {n} minutes and a spanner and I will show you.',
  'The old map had {n} islands on it and most were imaginary.',
  'Nobody on deck {n} believed it until the lights went green.',
  'I once waited {n} days for a witness who never came.',
];

const QUESTIONS = [
  'what do you make of the noise in the engine room?',
  'how would you start if you were me?',
  'is there anything we have missed?',
  'what happened the last time you tried this?',
  'tell me something I do not know.',
  'where should we go next?',
];

/** Turns a reply text into the sentences the server sends to the TTS, and the token completing the first. */
export function splitReply(tokens: readonly string[]): { sentences: string[]; firstFragmentToken: number } {
  const splitter = new SentenceSplitter();
  const sentences: string[] = [];
  let firstFragmentToken = -1;
  tokens.forEach((token, i) => {
    const out = splitter.push(token);
    if (out.length > 0 && firstFragmentToken < 0) firstFragmentToken = i;
    sentences.push(...out);
  });
  sentences.push(...splitter.flush());
  return { sentences: sentences.map(speakable).filter((s) => s !== ''), firstFragmentToken };
}

export function planTurn(opts: {
  tag: number;
  session: number;
  turn: number;
  /** First names of the active characters; one is addressed per turn. */
  names: readonly string[];
  random: () => number;
  llm: LlmTiming;
  interruptEvery: number;
}): TurnPlan {
  const { tag, random } = opts;
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  // Every Nth turn, counted from a different start in each session, so short runs interrupt too.
  const interrupt = opts.interruptEvery > 0 && (opts.session + opts.turn) % opts.interruptEvery === 0;
  // 1–3 sentences (3 when it will be interrupted, so the LLM is still streaming at the interrupt).
  const count = interrupt ? 3 : 1 + Math.floor(random() * 3);
  const parts: string[] = [];
  for (let i = 0; i < count; i++) parts.push(pick(SENTENCES).replace('{n}', String(tag * 10 + i)));
  let reply = parts.join(' ');
  // Some replies open with a short clause, which the splitter sends to the TTS early; a single
  // sentence always does, so its first fragment is completed by a token, not by the stream's end.
  if (count === 1 || random() < 0.4) {
    const first = reply.charAt(0);
    reply = pick(OPENERS).replace('{n}', String(tag * 10 + 9)) + (reply.startsWith('I ') ? reply : first.toLowerCase() + reply.slice(1));
  }
  const tokens = tokenize(reply);
  const { sentences, firstFragmentToken } = splitReply(tokens);
  if (firstFragmentToken < 0) throw new Error(`bench reply has no early first fragment: ${reply}`);
  const [lo, hi] = opts.llm.tokenDelayMs;
  const name = opts.names.length > 0 ? pick(opts.names) : 'everyone';
  return {
    tag,
    session: opts.session,
    text: `${name}, question ${tag}: ${pick(QUESTIONS)}`,
    interrupt,
    interruptAfterMs: Math.floor(random() * 200),
    tokens,
    firstTokenDelayMs: opts.llm.firstTokenDelayMs,
    tokenDelayMs: lo + Math.floor(random() * (hi - lo + 1)),
    sentences,
    firstFragmentToken,
  };
}

/** The tag of the turn a chat request belongs to, read from its last user message. */
export function tagOf(userMessage: string): number | undefined {
  const m = /question (\d+):/.exec(userMessage);
  return m ? Number(m[1]) : undefined;
}
