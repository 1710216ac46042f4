// Who responds to a user message: the characters it mentions, in order of first mention, or
// every active character (by name) when it mentions nobody. A mention is a whole-word,
// case-insensitive match of the full name or any part of it ("Ada" and "Lovelace" both
// mention "Ada Lovelace").
import type { Character } from '../protocol.ts';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Name parts worth matching: the full name and each word of it that contains a letter or digit. */
function nameParts(name: string): string[] {
  const words = name.split(/\s+/).map((w) => w.replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, ''));
  return [name.trim(), ...words].filter((w) => /[\p{L}\p{N}]/u.test(w));
}

/** Index of the first whole-word mention of the character in text, or -1. */
export function firstMention(text: string, name: string): number {
  let best = -1;
  for (const part of nameParts(name)) {
    const re = new RegExp(`(?<![\\p{L}\\p{N}_])${escape(part)}(?![\\p{L}\\p{N}_])`, 'iu');
    const at = text.search(re);
    if (at >= 0 && (best < 0 || at < best)) best = at;
  }
  return best;
}

const byName = (a: Character, b: Character) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id);

export function respondingCharacters(text: string, active: readonly Character[]): Character[] {
  const mentioned = active
    .map((character) => ({ character, at: firstMention(text, character.name) }))
    .filter((m) => m.at >= 0)
    .sort((a, b) => a.at - b.at || byName(a.character, b.character))
    .map((m) => m.character);
  return mentioned.length > 0 ? mentioned : [...active].sort(byName);
}
