// Character cards (Character Card V1, V2 and V3, as SillyTavern and others share them): reading a
// card from its JSON or from the PNG that carries it in a tEXt chunk (`chara`, V3's `ccv3`,
// base64 of UTF-8 JSON), and writing a character back out as one. The card's fields Chorus
// models are columns; its other `data` fields (V3's, which the record shows typed, and unknown
// ones) are kept as the character's `card`, its own top-level fields (SillyTavern's `avatar`,
// `chat`, `create_date`, unknown ones) as `card_top`, and both are written back on export, so
// import → export → import changes nothing. An export repeats the V1 fields at the top level,
// as SillyTavern writes a card, for readers of V1 only. The card's picture is stored apart
// (character_pictures, src/db/repo.ts) and embedded again on export.
import { deflateSync } from 'node:zlib';
import encodeChunks from 'png-chunks-encode';
import extractChunks from 'png-chunks-extract';
import textChunk from 'png-chunk-text';
import type { CharacterImport, Picture, StoredCard } from './db/repo.ts';
import { type Character, cardV3Fields, characterCreateSchema, describeZodError, isStorableJson, protoKeyPath, talkativenessOf, UNSTORABLE_TEXT } from './protocol.ts';
import { JsonInputError, isJsonObject as isObject, parseJson, parseJsonFile } from './util/json.ts';

/** A card that cannot be imported; the message says why, for the person who sent it. */
export class CardError extends Error {
  override name = 'CardError';
}

/** The largest card file read (PNG or JSON); its picture may be almost all of it. */
export const MAX_CARD_BYTES = 8 * 1024 * 1024;
/** Cards in one multipart upload. */
export const MAX_CARD_FILES = 20;

export type CardSpec = 'v2' | 'v3';
const SPECS = new Map<string, CardSpec>([
  ['chara_card_v2', 'v2'],
  ['chara_card_v3', 'v3'],
]);

/** The card fields that are Character columns. */
const COLUMN_FIELDS = [
  'name',
  'description',
  'personality',
  'scenario',
  'first_mes',
  'mes_example',
  'creator_notes',
  'system_prompt',
  'post_history_instructions',
  'alternate_greetings',
  'tags',
  'creator',
  'character_version',
  'character_book',
  'extensions',
] as const satisfies ReadonlyArray<keyof Character>;
/** The fields read through the Character schema: the columns and V3's (kept in `card` as they came). */
const RECORD_FIELDS = new Set<string>([...COLUMN_FIELDS, ...cardV3Fields]);
const isV3Field = (key: string) => (cardV3Fields as readonly string[]).includes(key);

/**
 * SillyTavern's top-level copy of the V1 fields beside `spec` and `data` (and the name it gives
 * each in `data`): written afresh from the character on every export, so not kept on import.
 */
const V1_COPY = ['name', 'description', 'personality', 'scenario', 'first_mes', 'mes_example', 'creatorcomment', 'talkativeness', 'fav', 'tags'];
/** A V2/V3 card's top-level keys that are the card itself. */
const ENVELOPE = new Set(['spec', 'spec_version', 'data']);

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const PNG_DATA_URL = 'data:image/png;base64,';
/** The tEXt keywords a card is stored under, preferred first (V3 writers also write a V2 `chara`). */
const CARD_KEYWORDS = ['ccv3', 'chara'] as const;

export const isPng = (bytes: Uint8Array): boolean => bytes.length >= 8 && PNG_SIGNATURE.equals(bytes.subarray(0, 8));

type Json = Record<string, unknown>;
const define = (target: Json, key: string, value: unknown) => Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });

// ---------------------------------------------------------------------------------------------
// Import

/** A card file's bytes, PNG (by its signature) or JSON, as the character to create. */
export function cardFromFile(bytes: Buffer, kind: 'png' | 'json'): CharacterImport {
  if (bytes.length > MAX_CARD_BYTES) throw new CardError(`the card is ${bytes.length} bytes; the limit is ${MAX_CARD_BYTES} bytes (${mb(MAX_CARD_BYTES)})`);
  if (kind === 'png') return cardFromPng(bytes);
  let json: unknown;
  try {
    json = parseJsonFile(bytes);
  } catch (error) {
    throw new CardError(`the JSON card ${(error as JsonInputError).message.replace(/^it /, '')}`);
  }
  return cardFromJson(json);
}

/** A PNG card: the card from its `ccv3` (preferred) or `chara` chunk, the image as the picture. */
export function cardFromPng(bytes: Buffer): CharacterImport {
  if (!isPng(bytes)) throw new CardError('the file is not a PNG image (its signature is wrong)');
  let chunks: Array<{ name: string; data: Uint8Array }>;
  try {
    chunks = extractChunks(new Uint8Array(bytes));
  } catch {
    throw new CardError('the PNG is damaged or cut short (a chunk is truncated or fails its CRC)');
  }
  const texts = new Map<string, string>();
  for (const chunk of chunks) {
    if (chunk.name !== 'tEXt') continue;
    const keyword = textKeyword(chunk.data);
    if (!CARD_KEYWORDS.some((k) => k === keyword) || texts.has(keyword)) continue;
    try {
      texts.set(keyword, textChunk.decode(chunk.data).text);
    } catch {
      throw new CardError(`the PNG's "${keyword}" text chunk is malformed`);
    }
  }
  const keyword = CARD_KEYWORDS.find((k) => texts.has(k));
  if (keyword === undefined) throw new CardError('the PNG carries no character card (it has no "chara" or "ccv3" text chunk)');
  const json = decodeBase64Utf8(texts.get(keyword) ?? '', `the PNG's "${keyword}" chunk`);
  const input = cardFromJson(parseCardJson(json, `the PNG's "${keyword}" chunk`));
  // The picture without the card in it: the card is stored as fields, not twice.
  return { ...input, picture: { content_type: 'image/png', bytes: withoutCard(bytes, chunks) } };
}

/** A parsed card (V1 flat, V2 or V3 with `data`) as the character to create. */
export function cardFromJson(card: unknown): CharacterImport {
  if (!isObject(card)) throw new CardError('the card is not a JSON object');
  const proto = protoKeyPath(card);
  if (proto !== undefined) throw new CardError(`the card has a "__proto__" key (at ${proto}); such keys are refused`);
  const { data, where, top } = Object.hasOwn(card, 'spec') ? specCard(card) : v1Card(card);
  if (!Object.hasOwn(data, 'name') || typeof data.name !== 'string' || data.name.trim() === '') {
    throw new CardError(`the card has no name (${where}.name)`);
  }
  const fields: Json = {};
  const extras: Json = {};
  for (const [key, value] of Object.entries(data)) {
    if (!RECORD_FIELDS.has(key)) define(extras, key, value);
    // A null field is an absent one (some writers put null for empty), except the lorebook's.
    else if (value !== null || key === 'character_book') define(fields, key, value);
  }
  const parsed = characterCreateSchema.safeParse(fields);
  if (!parsed.success) throw new CardError(`the card has invalid fields: ${describeZodError(parsed.error, where)}`);
  // V3's fields are kept as the card has them (the record shows them typed, src/card-v3.ts).
  const columns: Json = {};
  for (const [key, value] of Object.entries(parsed.data)) define(isV3Field(key) ? extras : columns, key, value);
  if (!isStorableJson(extras) || !isStorableJson(top)) throw new CardError(`the card's other fields ${UNSTORABLE_TEXT}`);
  return { ...(columns as typeof parsed.data), ...v1Extras(card, where), card: extras, card_top: top };
}

/** A V2/V3 card: the fields under `data`; its other top-level fields but the V1 copy are its own. */
function specCard(card: Json): { data: Json; where: string; top: Json } {
  const spec = card.spec;
  if (typeof spec !== 'string' || !SPECS.has(spec)) {
    throw new CardError(`the card's spec is ${JSON.stringify(spec)}; Chorus reads "chara_card_v2" and "chara_card_v3" (or a V1 card without spec)`);
  }
  const data = Object.hasOwn(card, 'data') ? card.data : undefined;
  if (!isObject(data)) throw new CardError(`the ${spec} card has no "data" object`);
  return { data, where: 'data', top: Object.fromEntries(Object.entries(card).filter(([key]) => !ENVELOPE.has(key) && !V1_COPY.includes(key))) };
}

/** A V1 card (SillyTavern's old format): the fields at the top level; the ones a V2 card keeps elsewhere stay there. */
function v1Card(card: Json): { data: Json; where: string; top: Json } {
  const data: Json = {};
  const top: Json = {};
  for (const [key, value] of Object.entries(card)) {
    if (RECORD_FIELDS.has(key)) define(data, key, value);
    else if (!V1_COPY.includes(key)) define(top, key, value); // the V1 copy's own names: v1Extras
  }
  return { data, where: 'card', top };
}

/** What a V1 card says in its own names: `creatorcomment` (the creator notes), `talkativeness`, `fav`. */
function v1Extras(card: Json, where: string): Partial<CharacterImport> {
  if (where !== 'card') return {};
  const own = (key: string) => (Object.hasOwn(card, key) ? card[key] : undefined);
  const notes = own('creatorcomment');
  const talkativeness = talkativenessOf(card);
  return {
    ...(typeof notes === 'string' && own('creator_notes') === undefined ? { creator_notes: notes } : {}),
    ...(talkativeness === undefined ? {} : { talkativeness }),
    ...(typeof own('fav') === 'boolean' && own('extensions') === undefined ? { extensions: { fav: own('fav') } } : {}),
  };
}

function parseCardJson(text: string, what: string): unknown {
  try {
    return parseJson(text);
  } catch (error) {
    const reason = error instanceof JsonInputError ? error.message : 'it cannot be parsed';
    throw new CardError(`${what} is not valid JSON: ${reason}`);
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

function decodeBase64Utf8(text: string, what: string): string {
  const compact = text.replace(/\s+/g, '');
  if (compact === '' || !BASE64.test(compact)) throw new CardError(`${what} is not valid base64`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(compact, 'base64'));
  } catch {
    throw new CardError(`${what} is not base64 of UTF-8 text`);
  }
}

/** A tEXt chunk's keyword (the Latin-1 bytes before the first NUL), lower-cased as readers do. */
function textKeyword(data: Uint8Array): string {
  const end = data.indexOf(0);
  return Buffer.from(data.subarray(0, end < 0 ? data.length : end)).toString('latin1').toLowerCase();
}
const isCardKeyword = (keyword: string) => CARD_KEYWORDS.some((k) => k === keyword);

// ---------------------------------------------------------------------------------------------
// Export

/** What an export is made from (Repo.getCharacterCard). */
export type Exportable = Pick<StoredCard, 'character' | 'card' | 'card_top'> & { picture?: Picture | undefined };

/**
 * The character as a card of `spec` (V2: chara_card_v2 2.0; V3: chara_card_v3 3.0): the V1 copy
 * and the card's own top-level fields, then `spec`, `spec_version` and `data`.
 */
export function characterCard({ character, card, card_top: top }: Exportable, spec: CardSpec): Json {
  const extensions = exportedExtensions(character);
  const columns = COLUMN_FIELDS.map((key) => [key, key === 'extensions' ? extensions : character[key]] as const);
  const data = Object.fromEntries<unknown>([
    ...columns.filter(([key, value]) => !(key === 'character_book' && value === null)), // no lorebook: no field
    ...(spec === 'v3' ? [['group_only_greetings', []] as const] : []), // required by V3; the card's own wins below
    ...Object.entries(card),
  ]);
  const envelope = spec === 'v3' ? { spec: 'chara_card_v3', spec_version: '3.0' } : { spec: 'chara_card_v2', spec_version: '2.0' };
  return { ...v1Copy(character, extensions), ...top, ...envelope, data };
}

/**
 * The V1 fields at the top level, as SillyTavern's charaFormatData writes them beside `data`:
 * the six V1 fields, `creatorcomment` (the creator notes), `avatar` ("none"; a card's own wins),
 * `talkativeness` (as `extensions` has it, else the character's), `fav` and `tags`.
 */
function v1Copy(character: Character, extensions: Json): Json {
  const own = (key: string) => (Object.hasOwn(extensions, key) ? extensions[key] : undefined);
  return {
    name: character.name,
    description: character.description,
    personality: character.personality,
    scenario: character.scenario,
    first_mes: character.first_mes,
    mes_example: character.mes_example,
    creatorcomment: character.creator_notes,
    avatar: 'none',
    talkativeness: Object.hasOwn(extensions, 'talkativeness') ? own('talkativeness') : character.talkativeness,
    fav: own('fav') === true,
    tags: character.tags,
  };
}

/**
 * The extensions as stored, with talkativeness written in only when the character's differs
 * from what they say (so a card's "0.8" stays "0.8", and a card without one stays without).
 */
function exportedExtensions(character: Character): Json {
  const implied = talkativenessOf(character.extensions) ?? 0.5;
  if (implied === character.talkativeness) return character.extensions;
  return { ...character.extensions, talkativeness: character.talkativeness };
}

/**
 * The character's picture (its stored card picture, or a PNG data URL; otherwise a generated
 * one) with the card in it: `chara` (V2) and, for V3, `ccv3` as well, as SillyTavern writes them.
 */
export function characterPng(stored: Exportable, spec: CardSpec): Buffer {
  const picture = pictureOf(stored);
  const base64 = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
  const texts = [textChunk.encode('chara', base64(characterCard(stored, 'v2')))];
  if (spec === 'v3') texts.push(textChunk.encode('ccv3', base64(characterCard(stored, 'v3'))));
  // The text chunks go just before IEND, which ends the file (12 bytes: no data).
  const encoded = Buffer.from(encodeChunks(texts)).subarray(PNG_SIGNATURE.length);
  return Buffer.concat([picture.subarray(0, picture.length - IEND_BYTES), encoded, picture.subarray(picture.length - IEND_BYTES)]);
}

const IEND_BYTES = 12;

/** A readable PNG of the character without any card chunk, ending with IEND. */
function pictureOf({ character, picture }: Exportable): Buffer {
  const url = character.image_url;
  const bytes = picture?.content_type === 'image/png' ? picture.bytes : url?.startsWith(PNG_DATA_URL) ? Buffer.from(url.slice(PNG_DATA_URL.length), 'base64') : undefined;
  if (bytes && isPng(bytes)) {
    try {
      const chunks = extractChunks(new Uint8Array(bytes));
      if (chunks.at(-1)?.name === 'IEND') return withoutCard(bytes, chunks);
    } catch {
      // Not a readable PNG after all: the generated picture stands in.
    }
  }
  return Buffer.from(encodeChunks(solidPng(colourOf(character.id))));
}

/**
 * The PNG's bytes without its card chunks, cut out of the file as they are (each chunk is
 * 12 bytes and its data, in file order after the signature): no chunk is encoded again, which
 * for a picture of megabytes is most of the cost.
 */
function withoutCard(bytes: Buffer, chunks: ReadonlyArray<{ name: string; data: Uint8Array }>): Buffer {
  const kept: Buffer[] = [bytes.subarray(0, PNG_SIGNATURE.length)];
  let at = PNG_SIGNATURE.length;
  for (const chunk of chunks) {
    const end = at + 12 + chunk.data.length;
    if (!(chunk.name === 'tEXt' && isCardKeyword(textKeyword(chunk.data)))) kept.push(bytes.subarray(at, end));
    at = end;
  }
  return Buffer.concat(kept);
}

/** A 64×64 PNG of one colour (RGB, 8 bits, no interlace). */
function solidPng([r, g, b]: [number, number, number], size = 64): Array<{ name: string; data: Uint8Array }> {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8); // bit depth 8, colour type RGB, deflate, filter 0, no interlace
  const row = Buffer.alloc(1 + size * 3); // filter byte 0, then the pixels
  for (let x = 0; x < size; x++) row.set([r, g, b], 1 + x * 3);
  const pixels = Buffer.concat(Array.from({ length: size }, () => row));
  return [
    { name: 'IHDR', data: new Uint8Array(header) },
    { name: 'IDAT', data: new Uint8Array(deflateSync(pixels)) },
    { name: 'IEND', data: new Uint8Array(0) },
  ];
}

/** A muted colour that is the same for one character every time. */
function colourOf(id: string): [number, number, number] {
  let hash = 0;
  for (const c of id) hash = (hash * 31 + (c.codePointAt(0) ?? 0)) >>> 0;
  return [80 + (hash & 0x7f), 80 + ((hash >> 7) & 0x7f), 80 + ((hash >> 14) & 0x7f)];
}

// ---------------------------------------------------------------------------------------------

const mb = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
