// Standalone lorebooks (POST /api/lorebooks/import): a SillyTavern world-info file
// (`{entries: {"<uid>": {uid, key, keysecondary, content, comment, constant, selective, order,
// position, disable, …}}}`) or a Character Card `character_book` (`{entries: [{keys, content,
// enabled, insertion_order, …}]}`), read into the character_book form the prompt builder uses
// (src/llm/lorebook.ts). A world-info entry's fields map onto the spec's as SillyTavern's own
// export does; every other field is kept under the entry's `extensions` (SillyTavern's names in
// snake_case where it has one), so nothing of the file is dropped.
import { type CharacterBook, characterBookSchema, describeZodError, type LorebookCreate, protoKeyPath } from './protocol.ts';
import { isJsonObject as isObject, type JsonInputError, parseJsonFile } from './util/json.ts';

/** A lorebook file that cannot be imported; the message says why. */
export class LorebookError extends Error {
  override name = 'LorebookError';
}

export const MAX_LOREBOOK_BYTES = 8 * 1024 * 1024;
/** Lorebooks in one multipart upload. */
export const MAX_LOREBOOK_FILES = 20;

type Json = Record<string, unknown>;

/** World-info entry fields that become spec fields (the rest go to `extensions`). */
const SPEC_FIELDS = new Set(['uid', 'key', 'keysecondary', 'comment', 'content', 'constant', 'selective', 'order', 'disable', 'position']);
/** SillyTavern's camelCase world-info fields and the names its character_book export gives them under `extensions`. */
const EXTENSION_NAMES = new Map([
  ['excludeRecursion', 'exclude_recursion'],
  ['displayIndex', 'display_index'],
  ['groupOverride', 'group_override'],
  ['groupWeight', 'group_weight'],
  ['preventRecursion', 'prevent_recursion'],
  ['delayUntilRecursion', 'delay_until_recursion'],
  ['scanDepth', 'scan_depth'],
  ['matchWholeWords', 'match_whole_words'],
  ['useGroupScoring', 'use_group_scoring'],
  ['caseSensitive', 'case_sensitive'],
  ['automationId', 'automation_id'],
]);

/** A lorebook file's bytes as the lorebook to create; `name` when the request gives one (else the book's, the file's, "Lorebook"). */
export function lorebookFromFile(bytes: Buffer, names: { given?: string | undefined; file?: string | undefined } = {}): LorebookCreate {
  if (bytes.length > MAX_LOREBOOK_BYTES) throw new LorebookError(`the file is ${bytes.length} bytes; the limit is ${MAX_LOREBOOK_BYTES} bytes`);
  let json: unknown;
  try {
    json = parseJsonFile(bytes);
  } catch (error) {
    throw new LorebookError(`the file ${(error as JsonInputError).message.replace(/^it /, '')}`);
  }
  return lorebookFromJson(json, names);
}

export function lorebookFromJson(json: unknown, names: { given?: string | undefined; file?: string | undefined } = {}): LorebookCreate {
  if (!isObject(json)) throw new LorebookError('the file is not a JSON object');
  const proto = protoKeyPath(json);
  if (proto !== undefined) throw new LorebookError(`the file has a "__proto__" key (at ${proto}); such keys are refused`);
  if (!Object.hasOwn(json, 'entries')) throw new LorebookError('the file has no "entries": it is neither SillyTavern world info nor a character_book');
  const entries = json.entries;
  const book = Array.isArray(entries) && entries.every((e) => isObject(e) && Object.hasOwn(e, 'keys')) ? { ...json } : fromWorldInfo(json, entries);
  const parsed = characterBookSchema.safeParse(book);
  if (!parsed.success) throw new LorebookError(`the lorebook has invalid fields: ${describeZodError(parsed.error, 'lorebook')}`);
  const ownName = typeof parsed.data.name === 'string' && parsed.data.name.trim() !== '' ? parsed.data.name : undefined;
  const name = (names.given?.trim() || ownName || names.file?.replace(/\.json$/i, '').trim() || 'Lorebook').slice(0, 200);
  const description = typeof parsed.data.description === 'string' ? parsed.data.description.slice(0, 10_000) : '';
  return { name, description, book: parsed.data };
}

/** A world-info file's entries (an object keyed by uid, or an array) as a character_book. */
function fromWorldInfo(file: Json, entries: unknown): CharacterBook {
  const list = Array.isArray(entries) ? entries.map((e, i) => [String(i), e] as const) : isObject(entries) ? Object.entries(entries) : undefined;
  if (!list) throw new LorebookError('"entries" must be an object of world-info entries (or an array)');
  const { entries: _entries, ...rest } = file;
  return { ...rest, entries: list.map(([key, entry]) => fromWorldInfoEntry(key, entry)) } as CharacterBook;
}

/** One world-info entry in the spec's shape; `where` names it in errors. */
function fromWorldInfoEntry(where: string, raw: unknown): CharacterBook['entries'][number] {
  const at = `entry "${where}"`;
  if (!isObject(raw)) throw new LorebookError(`${at} is not an object`);
  const own = (key: string) => (Object.hasOwn(raw, key) ? raw[key] : undefined);
  const content = own('content');
  if (typeof content !== 'string') throw new LorebookError(`${at} has no text "content"`);
  const keys = keyList(own('key'), `${at}: "key"`);
  const secondary = keyList(own('keysecondary'), `${at}: "keysecondary"`);
  const order = own('order') ?? 100;
  if (typeof order !== 'number' || !Number.isFinite(order)) throw new LorebookError(`${at}: "order" must be a number`);
  const position = own('position') ?? 0;
  const extensions: Json = isObject(own('extensions')) ? { ...(own('extensions') as Json) } : {};
  for (const [field, value] of Object.entries(raw)) {
    if (SPEC_FIELDS.has(field) || field === 'extensions') continue;
    Object.defineProperty(extensions, EXTENSION_NAMES.get(field) ?? field, { value, enumerable: true, writable: true, configurable: true });
  }
  extensions.position = position;
  const flag = (key: string) => (typeof own(key) === 'boolean' ? (own(key) as boolean) : false);
  const comment = typeof own('comment') === 'string' ? (own('comment') as string) : '';
  return {
    id: typeof own('uid') === 'number' || typeof own('uid') === 'string' ? (own('uid') as number | string) : where,
    keys,
    secondary_keys: secondary,
    comment,
    content,
    constant: flag('constant'),
    selective: flag('selective'),
    insertion_order: order,
    enabled: !flag('disable'),
    position: position === 0 ? 'before_char' : 'after_char',
    extensions,
  };
}

/** SillyTavern keeps keys as a list; old files have one comma-separated string. */
function keyList(value: unknown, what: string): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return value.split(',').map((k) => k.trim()).filter(Boolean);
  if (Array.isArray(value) && value.every((k) => typeof k === 'string')) return value;
  throw new LorebookError(`${what} must be a list of text keys`);
}
