// A character's lorebook (Character Card V2/V3 `character_book`): which entries go into the
// prompt for this reply. An entry is active when it is enabled and either `constant` or one of
// its `keys` appears in the last `scan_depth` messages (and, when `selective`, one of its
// `secondary_keys` too). Keys match as whole words, case-insensitively, unless the entry says
// otherwise (`case_sensitive`, `extensions.match_whole_words`); a key written `/pattern/flags`
// is a regular expression. Active entries are kept highest priority first (`priority`, then
// `insertion_order`) until `token_budget` is spent, then placed by `insertion_order`, lowest first.
// Several books (a character's and a conversation's attached lorebooks) are each scanned and
// budgeted by their own settings, and their kept entries placed together by `insertion_order`.
// Not supported: recursive scanning, probability, groups, timed effects (SillyTavern extensions).
import { isJsonObject as isObject } from '../util/json.ts';

export const DEFAULT_SCAN_DEPTH = 4;
export const DEFAULT_TOKEN_BUDGET = 500;

export type LorePosition = 'before_char' | 'after_char';
export interface ActiveLore {
  before_char: string[];
  after_char: string[];
}

interface Entry {
  /** Which of the books it is from (ties in insertion_order keep the books' order). */
  book: number;
  index: number;
  keys: string[];
  secondary: string[];
  content: string;
  enabled: boolean;
  constant: boolean;
  selective: boolean;
  caseSensitive: boolean;
  wholeWords: boolean;
  order: number;
  priority: number;
  position: LorePosition;
}

type Json = Record<string, unknown>;
const own = (o: Json, key: string): unknown => (Object.hasOwn(o, key) ? o[key] : undefined);
const strings = (v: unknown) => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string' && s.trim() !== '') : []);
const finite = (v: unknown, fallback: number) => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);
/** The entry's own field, else SillyTavern's copy under `extensions`, else the default. */
const flag = (entry: Json, extensions: Json, key: string, fallback: boolean): boolean => {
  const value = own(entry, key) ?? own(extensions, key);
  return typeof value === 'boolean' ? value : fallback;
};

/** The spec's names, and SillyTavern's numbers under `extensions.position` (0 before, 1 after; others, at depth or by the author's note, go after). */
const POSITIONS = new Map<unknown, LorePosition>([
  ['before_char', 'before_char'],
  ['after_char', 'after_char'],
  [0, 'before_char'],
  [1, 'after_char'],
]);
const positionOf = (entry: Json, extensions: Json): LorePosition => {
  const stated = own(entry, 'position') ?? own(extensions, 'position');
  if (stated === undefined || stated === null) return 'before_char';
  return POSITIONS.get(stated) ?? 'after_char';
};

function readEntry(raw: unknown, index: number, book: number): Entry | undefined {
  if (!isObject(raw)) return undefined;
  const content = own(raw, 'content');
  if (typeof content !== 'string' || content.trim() === '') return undefined;
  const extensions = isObject(own(raw, 'extensions')) ? (own(raw, 'extensions') as Json) : {};
  return {
    book,
    index,
    keys: strings(own(raw, 'keys')),
    secondary: strings(own(raw, 'secondary_keys')),
    content,
    enabled: own(raw, 'enabled') !== false,
    constant: own(raw, 'constant') === true,
    selective: own(raw, 'selective') === true,
    caseSensitive: flag(raw, extensions, 'case_sensitive', false),
    wholeWords: flag(raw, extensions, 'match_whole_words', true),
    order: finite(own(raw, 'insertion_order'), 0),
    priority: finite(own(raw, 'priority'), 0),
    position: positionOf(raw, extensions),
  };
}

// ---------------------------------------------------------------------------------------------
// Keys

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const REGEX_KEY = /^\/(.+)\/([a-z]*)$/s;
/**
 * Patterns that can backtrack catastrophically — a quantified group holding a quantifier
 * ("(a+)+"), or a back-reference — are not run: such a key is matched as literal text, as an
 * invalid pattern is. The scan runs on the server, on every reply, over what anyone typed.
 */
const RISKY = [/\((?:[^()\\]|\\.)*(?:[+*}]|\{\d)(?:[^()\\]|\\.)*\)\s*[+*{]/, /\\[1-9]|\\k</];
const MAX_PATTERN = 500;

function regexKey(key: string): RegExp | undefined {
  const parts = REGEX_KEY.exec(key);
  const pattern = parts?.[1];
  if (pattern === undefined || pattern.length > MAX_PATTERN || RISKY.some((r) => r.test(pattern))) return undefined;
  try {
    return new RegExp(pattern, (parts?.[2] ?? '').replace(/[gy]/g, '')); // no lastIndex state between tests
  } catch {
    return undefined;
  }
}

/** Letters, digits and `_` on neither side: "cat" is not found in "concatenate". */
const wholeWord = (body: string) => `(?<![\\p{L}\\p{N}_])${body}(?![\\p{L}\\p{N}_])`;

function keyMatcher(key: string, entry: Entry): RegExp {
  const trimmed = key.trim();
  const body = escape(trimmed);
  return regexKey(trimmed) ?? new RegExp(entry.wholeWords ? wholeWord(body) : body, entry.caseSensitive ? 'u' : 'iu');
}

const anyKey = (keys: string[], entry: Entry, text: string) => keys.some((key) => keyMatcher(key, entry).test(text));

function triggered(entry: Entry, text: string): boolean {
  if (!entry.enabled) return false;
  if (entry.constant) return true;
  if (!anyKey(entry.keys, entry, text)) return false;
  return !entry.selective || entry.secondary.length === 0 || anyKey(entry.secondary, entry, text);
}

// ---------------------------------------------------------------------------------------------
// Selection

const byPriority = (a: Entry, b: Entry) => b.priority - a.priority || b.order - a.order || a.index - b.index;
const byInsertion = (a: Entry, b: Entry) => a.order - b.order || a.book - b.book || a.index - b.index;

/** Highest priority first, as long as the budget lasts; the first entry that does not fit ends it. */
function withinBudget(entries: Entry[], budget: number, cost: (entry: Entry) => number): Entry[] {
  const kept: Entry[] = [];
  let spent = 0;
  for (const entry of [...entries].sort(byPriority)) {
    spent += cost(entry);
    if (spent > budget) break;
    kept.push(entry);
  }
  return kept;
}

/**
 * The entries of `books` (one lorebook, or a list of them) active for a reply, by position, their
 * content passed through `expand` (macros) and costed with `estimate`. `recent` is the history,
 * oldest first.
 */
export function activeLore(books: unknown, recent: readonly string[], estimate: (text: string) => number, expand: (text: string) => string = (t) => t): ActiveLore {
  const lore: ActiveLore = { before_char: [], after_char: [] };
  const contents = new Map<Entry, string>();
  const cost = (e: Entry) => estimate(contents.get(e) ?? '');
  const kept = (Array.isArray(books) ? books : [books]).flatMap((book, i) => {
    const entries = triggeredEntries(book, i, recent);
    for (const e of entries) contents.set(e, expand(e.content).trim());
    return withinBudget(entries, finite(isObject(book) ? own(book, 'token_budget') : undefined, DEFAULT_TOKEN_BUDGET), cost);
  });
  for (const entry of kept.sort(byInsertion)) {
    const content = contents.get(entry) ?? '';
    if (content !== '') lore[entry.position].push(content);
  }
  return lore;
}

/** A book's entries whose keys are in its last `scan_depth` messages (or that are constant). */
function triggeredEntries(book: unknown, bookIndex: number, recent: readonly string[]): Entry[] {
  if (!isObject(book) || !Array.isArray(own(book, 'entries'))) return [];
  const depth = Math.max(0, Math.floor(finite(own(book, 'scan_depth'), DEFAULT_SCAN_DEPTH)));
  const text = depth === 0 ? '' : recent.slice(-depth).join('\n');
  return (own(book, 'entries') as unknown[]).map((raw, i) => readEntry(raw, i, bookIndex)).filter((e): e is Entry => e !== undefined && triggered(e, text));
}
