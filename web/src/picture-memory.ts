// Pictures of characters that have since been deleted: messages carry a character's id and name
// but not its picture, and the server forgets the picture with the character. The page remembers
// (in localStorage) each character's picture it has seen — links, and uploaded pictures up to
// 64 KB — by id and by name (a deleted character's messages keep only its name: their
// character_id is set to null), so its old messages keep their picture in this browser.
import type { Character } from './types.ts';

const KEY = 'chorus.pictures';
const MAX_PICTURE_CHARS = 64 * 1024;
const MAX_KEPT = 200;

function load(): Map<string, string> {
  try {
    const value: unknown = JSON.parse(localStorage.getItem(KEY) ?? '[]');
    return new Map(Array.isArray(value) ? value.filter((e): e is [string, string] => Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'string') : []);
  } catch {
    return new Map();
  }
}

const kept = load();

/** Remembers the pictures of these characters (newest last, at most MAX_KEPT). */
export function rememberPictures(characters: Character[]): void {
  let changed = false;
  for (const c of characters) {
    const url = c.image_url;
    if (!url || url.length > MAX_PICTURE_CHARS) continue;
    for (const key of [`id:${c.id}`, `name:${c.name}`]) {
      if (kept.get(key) === url) continue;
      kept.delete(key);
      kept.set(key, url);
      changed = true;
    }
  }
  if (!changed) return;
  while (kept.size > MAX_KEPT) kept.delete(kept.keys().next().value as string);
  try {
    localStorage.setItem(KEY, JSON.stringify([...kept]));
  } catch {
    // Storage full: the pictures are still kept for this visit.
  }
}

/** A character's picture: its own while it exists, else the one remembered (by id, else by name). */
export function pictureOf(character: Character | undefined, id: string, name: string): string | null {
  if (character) return character.image_url;
  return (id ? kept.get(`id:${id}`) : undefined) ?? kept.get(`name:${name}`) ?? null;
}
