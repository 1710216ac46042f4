// Streaming sentence splitter: turns LLM text deltas into speakable sentences as early as the
// text allows, so the TTS can start before the reply is complete (like RealtimeTTS /
// stream2sentence). A small state machine looks at each character once, in order, and never
// decides before it has seen what it needs to see. So the output depends only on the text, never
// on how it was split into deltas, and push() costs O(delta).

export interface SplitterOptions {
  /** The stream's first emission may be a clause this long, ending at `,` `;` `:` `—` `…` (default 10). */
  firstFragmentMinChars?: number;
  /** Later emissions are whole sentences at least this long; shorter ones join the next (default 15). */
  sentenceMinChars?: number;
}

interface Limits {
  firstFragment: number;
  sentence: number;
}

const TERMINATORS = new Set(['.', '!', '?', '…', '。', '！', '？']);
/** CJK text puts no space after these, so any next character confirms the end. */
const CJK_TERMINATORS = new Set(['。', '！', '？']);
/** May directly follow a terminator and still belong to its sentence: `"Stop!"`, `(sic.)`, `*waves.*`. */
const CLOSERS = new Set(['"', "'", '”', '’', '»', ')', ']', '}', '*', '_', '」', '』', '）', '】', '》']);
/** Paired quotes; a terminator inside them does not end the sentence. (`‘’` are apostrophes too often.) */
const OPEN_QUOTES = new Set(['“', '「', '『', '«']);
const CLOSE_QUOTES = new Set(['”', '」', '』', '»']);
/** Words whose period rarely ends a sentence, even before a capital ("Dr. Smith", "Alien vs. Predator"). */
const ABBREVIATIONS = new Set(['dr', 'mr', 'mrs', 'ms', 'prof', 'st', 'jr', 'sr', 'vs', 'mt']);
/** Longer words cannot be abbreviations or initials; capping keeps the per-character work O(1). */
const MAX_WORD = 16;

const SPACE = /\s/;
const ALNUM = /[\p{L}\p{N}]/u;
const LOWER = /\p{Ll}/u;
const DIGIT = /\p{Nd}/u;
/** "J", "U.S", "e.g", "a.m": single letters joined by dots (the word before the final period). */
const INITIALS = /^(?:\p{L}\.)*\p{L}$/u;
const LEADING_OPENERS = /^[\p{Ps}\p{Pi}"'*_¿¡]+/u;

const isSpace = (ch: string): boolean => ch === ' ' || SPACE.test(ch);
const notDigit = (ch: string): boolean => !DIGIT.test(ch);
const always = (): boolean => true;

/** First-fragment delimiters, each with what the next character must be for it to count. */
type Confirm = (next: string) => boolean;
const FRAGMENT_ENDS = new Map<string, Confirm>([
  [',', isSpace], [';', isSpace], [':', isSpace], // not "1,000", "10:30", "https://"
  ['—', notDigit], ['–', notDigit], // dashes may hug words, but not ranges like "1–5"
  ['，', always], ['；', always], ['：', always], ['、', always], // CJK: no space follows
]);

const isEllipsis = (run: string): boolean => run.includes('…') || run.includes('..');

function isAbbreviation(word: string | null): boolean {
  if (word === null) return false;
  const bare = word.replace(LEADING_OPENERS, '');
  // A lone "I." is far more often the pronoun ending a sentence than an initial.
  return ABBREVIATIONS.has(bare.toLowerCase()) || (bare !== 'I' && INITIALS.test(bare));
}

export class SentenceSplitter {
  private readonly limits: Limits;
  private scanner: Scanner;
  /** A high surrogate whose low half is in the next delta: holding it keeps code points whole. */
  private carry = '';

  constructor(opts: SplitterOptions = {}) {
    this.limits = { firstFragment: opts.firstFragmentMinChars ?? 10, sentence: opts.sentenceMinChars ?? 15 };
    this.scanner = new Scanner(this.limits);
  }

  /** Feed one delta; returns the sentences it completed (often none). Must be cheap: it runs per token. */
  push(delta: string): string[] {
    let text = this.carry + delta;
    this.carry = '';
    const last = text.charCodeAt(text.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) {
      this.carry = text.slice(-1);
      text = text.slice(0, -1);
    }
    return text === '' ? [] : this.scanner.feed(text);
  }

  /** End of stream: returns what remains (trimmed, if it has any letter/digit), then resets. */
  flush(): string[] {
    const rest = this.scanner.rest(this.carry);
    this.scanner = new Scanner(this.limits);
    this.carry = '';
    return rest === null ? [] : [rest];
  }
}

export async function* splitSentences(deltas: AsyncIterable<string>, opts?: SplitterOptions): AsyncGenerator<string> {
  const splitter = new SentenceSplitter(opts);
  for await (const delta of deltas) yield* splitter.push(delta);
  yield* splitter.flush();
}

/**
 * Where the scanner is relative to a possible sentence end: in plain text, in a run of
 * terminators ("?!", "..."), in the closers after it ('."'), or in the whitespace after those,
 * waiting for the character that decides.
 */
type Phase = 'text' | 'run' | 'closers' | 'space';

/** The state of one stream. Positions index `buf`, which holds only text not yet emitted. */
class Scanner {
  private buf = '';
  private pos = 0; // of the character being examined
  private out: string[] = [];
  private first = true; // nothing emitted yet: the quick-fragment rule applies

  // The sentence being read.
  private contentStart = -1; // first non-space position; -1 while there is none
  private contentEnd = 0; // just past the last non-space character
  private hasAlnum = false;
  private word: string | null = ''; // current non-space run; null once longer than MAX_WORD

  private straightQuoteOpen = false;
  private quoteDepth = 0;

  // The candidate sentence end being decided.
  private phase: Phase = 'text';
  private run = '';
  private runIsCjk = false;
  private runWord: string | null = ''; // the word just before the run
  private closed = false; // closers followed the run
  private candidateEnd = 0;

  // A first-fragment delimiter waiting for the next character.
  private fragmentEnd = -1;
  private fragmentConfirm: Confirm = always;

  constructor(private readonly limits: Limits) {}

  feed(text: string): string[] {
    this.buf += text;
    this.out = [];
    // Iterate the delta, not `buf`: reading a freshly concatenated string would flatten it.
    for (const ch of text) {
      this.step(ch);
      this.pos += ch.length;
    }
    return this.out;
  }

  rest(carry: string): string | null {
    const rest = (this.buf + carry).trim();
    return ALNUM.test(rest) ? rest : null;
  }

  private step(ch: string): void {
    if (this.pos === this.fragmentEnd) this.confirmFragment(ch);
    const consumed = this.phase !== 'text' && this.extendCandidate(ch);
    if (!consumed) this.readText(ch);
    this.track(ch);
  }

  /** Bookkeeping of the sentence's extent, letters and current word, after any decision. */
  private track(ch: string): void {
    if (isSpace(ch)) {
      this.word = '';
      return;
    }
    if (this.contentStart < 0) this.contentStart = this.pos;
    this.contentEnd = this.pos + ch.length;
    if (!this.hasAlnum && ALNUM.test(ch)) this.hasAlnum = true;
    if (this.word !== null) this.word = this.word.length < MAX_WORD ? this.word + ch : null;
  }

  private readText(ch: string): void {
    if (ch === '\n') return this.lineBreak();
    if (TERMINATORS.has(ch)) return this.startRun(ch);
    this.trackQuote(ch);
    const confirm = this.first ? FRAGMENT_ENDS.get(ch) : undefined;
    if (confirm) {
      this.fragmentEnd = this.pos + ch.length;
      this.fragmentConfirm = confirm;
    }
  }

  /** A line break ends a sentence outright (list items, headings) and closes any stray quote. */
  private lineBreak(): void {
    this.straightQuoteOpen = false;
    this.quoteDepth = 0;
    this.emit(this.contentEnd, this.sentenceMin());
  }

  private startRun(ch: string): void {
    this.phase = 'run';
    this.run = ch;
    this.runIsCjk = CJK_TERMINATORS.has(ch);
    this.runWord = this.word;
    this.closed = false;
    this.candidateEnd = this.pos + ch.length;
  }

  /** Advances the candidate end; true if `ch` belongs to it, false once `ch` has decided it. */
  private extendCandidate(ch: string): boolean {
    if (this.phase === 'space') return this.afterSpace(ch);
    if (this.phase === 'run' && TERMINATORS.has(ch)) {
      this.run += ch;
      this.runIsCjk ||= CJK_TERMINATORS.has(ch);
      this.candidateEnd = this.pos + ch.length;
      return true;
    }
    if (CLOSERS.has(ch)) {
      this.closeQuote(ch);
      this.closed = true;
      this.phase = 'closers';
      this.candidateEnd = this.pos + ch.length;
      return true;
    }
    if (this.runIsCjk) {
      this.conclude(!this.inQuote(), ch);
      return false;
    }
    if (isSpace(ch)) {
      this.phase = 'space';
      return this.afterSpace(ch);
    }
    this.conclude(false, ch); // glued to what follows: "3.14", "e.g", "example.com"
    return false;
  }

  private afterSpace(ch: string): boolean {
    if (ch === '\n') {
      this.phase = 'text'; // readText's line break decides
      return false;
    }
    if (isSpace(ch)) return true;
    this.conclude(this.endsSentence(ch), ch);
    return false;
  }

  /** A Latin terminator run, its closers and whitespace, followed by `next`: a sentence end? */
  private endsSentence(next: string): boolean {
    if (this.inQuote() || LOWER.test(next)) return false; // "Stop. Now." and… / etc. and / ... maybe
    return this.closed || this.run !== '.' || !isAbbreviation(this.runWord);
  }

  private conclude(isEnd: boolean, next: string): void {
    this.phase = 'text';
    if (isEnd) this.emit(this.candidateEnd, this.sentenceMin());
    else if (this.first && isEllipsis(this.run) && notDigit(next)) this.emit(this.candidateEnd, this.limits.firstFragment);
  }

  private confirmFragment(next: string): void {
    const end = this.fragmentEnd;
    this.fragmentEnd = -1;
    if (this.fragmentConfirm(next)) this.emit(end, this.limits.firstFragment);
  }

  /** Before the first emission a sentence end may come as early as a fragment would. */
  private sentenceMin(): number {
    return this.first ? Math.min(this.limits.firstFragment, this.limits.sentence) : this.limits.sentence;
  }

  private trackQuote(ch: string): void {
    if (ch === '"') this.straightQuoteOpen = !this.straightQuoteOpen;
    else if (OPEN_QUOTES.has(ch)) this.quoteDepth++;
    else if (CLOSE_QUOTES.has(ch)) this.quoteDepth = Math.max(0, this.quoteDepth - 1);
  }

  /** Right after a terminator a quote mark always closes, even if its opening was missed. */
  private closeQuote(ch: string): void {
    if (ch === '"') this.straightQuoteOpen = false;
    else if (CLOSE_QUOTES.has(ch)) this.quoteDepth = Math.max(0, this.quoteDepth - 1);
  }

  private inQuote(): boolean {
    return this.straightQuoteOpen || this.quoteDepth > 0;
  }

  /**
   * Emits the sentence up to `end` (just past a non-space character) if it is long enough and
   * speakable; otherwise it stays and joins what follows. Only whitespace lies between `end`
   * and `pos`, so the trackers reset cleanly.
   */
  private emit(end: number, minChars: number): boolean {
    if (this.contentStart < 0 || !this.hasAlnum || end - this.contentStart < minChars) return false;
    this.out.push(this.buf.slice(this.contentStart, end));
    this.buf = this.buf.slice(end);
    this.pos -= end;
    this.contentStart = -1;
    this.hasAlnum = false;
    this.first = false;
    this.fragmentEnd = -1;
    return true;
  }
}
