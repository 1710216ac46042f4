// Who a message names: the characters it mentions, in order of first mention. A mention is a
// whole-word, case-insensitive match of the full name or any part of it ("Ada" and "Lovelace"
// both mention "Ada Lovelace"). Who then answers is the conversation's reply strategy
// (src/session/reply-strategy.ts).
import type { Character } from '../protocol.ts';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Name parts worth matching: the full name and each word of it that contains a letter or digit. */
function nameParts(name: string): string[] {
  const words = name.split(/\s+/).map((w) => w.replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, ''));
  return [name.trim(), ...words].filter((w) => /[\p{L}\p{N}]/u.test(w));
}

/** Each name's matchers, made once: every message is matched against every character's name. */
const matchers = new Map<string, RegExp[]>();
const MATCHERS_KEPT = 10_000;

function matchersOf(name: string): RegExp[] {
  let found = matchers.get(name);
  if (!found) {
    if (matchers.size >= MATCHERS_KEPT) matchers.clear();
    found = nameParts(name).map((part) => new RegExp(`(?<![\\p{L}\\p{N}_])${escape(part)}(?![\\p{L}\\p{N}_])`, 'iu'));
    matchers.set(name, found);
  }
  return found;
}

/** Index of the first whole-word mention of the character in text, or -1. */
export function firstMention(text: string, name: string): number {
  let best = -1;
  for (const re of matchersOf(name)) {
    const at = text.search(re);
    if (at >= 0 && (best < 0 || at < best)) best = at;
  }
  return best;
}

const byName = (a: Pick<Character, 'id' | 'name'>, b: Pick<Character, 'id' | 'name'>) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id);

/** Where each mentioned character is first mentioned, earliest first (ties by name). */
export function mentions<C extends Pick<Character, 'id' | 'name'>>(text: string, characters: readonly C[]): Array<{ character: C; at: number }> {
  return characters
    .map((character) => ({ character, at: firstMention(text, character.name) }))
    .filter((m) => m.at >= 0)
    .sort((a, b) => a.at - b.at || byName(a.character, b.character));
}

/** The characters the text mentions, in order of first mention. */
export function mentionedCharacters<C extends Pick<Character, 'id' | 'name'>>(text: string, characters: readonly C[]): C[] {
  return mentions(text, characters).map((m) => m.character);
}

/** The original rule (the `list` fallback by name): the mentioned ones, or everyone by name. */
export function respondingCharacters(text: string, active: readonly Character[]): Character[] {
  const mentioned = mentionedCharacters(text, active);
  return mentioned.length > 0 ? mentioned : [...active].sort(byName);
}
