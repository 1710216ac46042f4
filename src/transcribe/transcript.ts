// What the live transcript says about the turn: which of its words have stopped changing,
// whether the speaker sounds finished (end the turn sooner) or mid-thought (wait longer), and
// whether two transcripts say the same words (a preemptive reply stands or is cancelled).

export interface EndSilences {
  endSilenceMs: number;
  endSilenceShortMs: number;
  endSilenceLongMs: number;
}

/** First match wins: trailing off is checked before a full stop, since "..." ends in one. */
const ENDINGS: Array<[RegExp, keyof EndSilences]> = [
  [/(\.\.\.|…)\s*$/, 'endSilenceLongMs'],
  [/\b(and|but|so|because|or)\s*,?\s*$/i, 'endSilenceLongMs'],
  [/\b(um+|uh+|erm|hmm+)[\s,.]*$/i, 'endSilenceLongMs'],
  [/[.?!]["'”’)\]]*\s*$/, 'endSilenceShortMs'],
];

/** The trailing silence that ends an utterance whose latest live transcript is `text`. */
export function endSilenceFor(text: string | undefined, silences: EndSilences): number {
  const match = text ? ENDINGS.find(([pattern]) => pattern.test(text)) : undefined;
  return silences[match?.[1] ?? 'endSilenceMs'];
}

/** Words compared without case or punctuation, so "there." and "there" count as the same word. */
const normal = (word: string) => word.toLowerCase().replace(/[^\p{L}\p{N}']/gu, '');

/** The words `newer` starts with that `older` also started with (spelled as in `newer`). */
export function commonWordPrefix(older: string, newer: string): string {
  const a = older.split(/\s+/).filter(Boolean);
  const b = newer.split(/\s+/).filter(Boolean);
  let n = 0;
  while (n < a.length && n < b.length && normal(a[n] as string) === normal(b[n] as string)) n++;
  return b.slice(0, n).join(' ');
}

/** Two transcripts say the same words (case and punctuation aside): a reply started on one stands for the other. */
export function sameWords(a: string, b: string): boolean {
  const words = (text: string) => text.split(/\s+/).map(normal).filter(Boolean);
  const [x, y] = [words(a), words(b)];
  return x.length === y.length && x.every((word, i) => word === y[i]);
}
