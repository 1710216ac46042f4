// The Character Card V3 fields of a character (nickname, group_only_greetings,
// creator_notes_multilingual, assets, source, creation_date, modification_date). They live in
// the character's `card` (the card's other `data` fields) exactly as the card had them, so an
// export gives back what was imported, absent fields staying absent; the Character record shows
// them typed, with the empty value (null for the dates) for an absent or mistyped one. An
// update changes only the fields whose value differs from what the record shows, and an empty
// value removes the field.
import { type CardV3Field, cardV3Fields, type Character } from './protocol.ts';
import { isJsonObject } from './util/json.ts';

type V3 = Pick<Character, CardV3Field>;
type Card = Record<string, unknown>;

const own = (card: Card, key: string): unknown => (Object.hasOwn(card, key) ? card[key] : undefined);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const isAsset = (v: unknown): v is V3['assets'][number] => isJsonObject(v) && typeof own(v, 'type') === 'string' && typeof own(v, 'uri') === 'string';
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Each field as the record shows it, from the value in the card (undefined when absent). */
const READERS: { [K in CardV3Field]: (value: unknown) => V3[K] } = {
  nickname: (v) => (typeof v === 'string' ? v : ''),
  group_only_greetings: (v) => (isStrings(v) ? v : []),
  creator_notes_multilingual: (v) => (isJsonObject(v) && Object.values(v).every((t) => typeof t === 'string') ? (v as Record<string, string>) : {}),
  assets: (v) => (Array.isArray(v) && v.every(isAsset) ? v : []),
  source: (v) => (isStrings(v) ? v : []),
  creation_date: (v) => (isFiniteNumber(v) ? v : null),
  modification_date: (v) => (isFiniteNumber(v) ? v : null),
};

/** The V3 fields of a stored card, as the Character record has them. */
export function cardV3View(card: Card): V3 {
  return Object.fromEntries(cardV3Fields.map((key) => [key, READERS[key](own(card, key))])) as V3;
}

const isEmpty = (value: unknown): boolean =>
  value === null || value === '' || (Array.isArray(value) && value.length === 0) || (isJsonObject(value) && Object.keys(value).length === 0);

/**
 * The card with the V3 fields of `fields` written in: a field given with the value the record
 * already shows stays as the card has it; an empty one is removed; any other replaces it.
 */
export function withV3Fields(card: Card, fields: Partial<V3>): Card {
  const shown = cardV3View(card);
  const next: Card = { ...card };
  for (const key of cardV3Fields) {
    if (!Object.hasOwn(fields, key) || fields[key] === undefined) continue;
    const value = fields[key];
    if (JSON.stringify(value) === JSON.stringify(shown[key])) continue;
    if (isEmpty(value)) delete next[key];
    else Object.defineProperty(next, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return next;
}

