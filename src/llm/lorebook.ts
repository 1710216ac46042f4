// A character's lorebook (Character Card V2/V3 `character_book`): which entries go into the
// prompt for this reply. An entry is active when it is enabled and either `constant` or one of
// its `keys` appears in the last `scan_depth` messages (and, when `selective` with
// `secondary_keys`, its secondary keys satisfy SillyTavern's `extensions.selectiveLogic`: AND
// ANY, NOT ALL, NOT ANY, AND ALL). Keys match as whole words, case-insensitively, unless the entry
// says otherwise (`case_sensitive`, `extensions.match_whole_words`); a key written
// `/pattern/flags` is a regular expression. Active entries are kept highest priority first
// (`priority`, then `insertion_order`) until `token_budget` is spent, then placed by
// `insertion_order`, lowest first, at their position: SillyTavern's `extensions.position` (its
// seven places) or the spec's `before_char` / `after_char`. Several books (a character's, its
// linked world, a conversation's attached lorebooks) are each scanned and budgeted by their own
// settings, and their kept entries placed together by `insertion_order`.
// Not supported: recursive scanning, probability, groups, timed effects (SillyTavern extensions).
import type { Character } from '../protocol.ts';
import { isJsonObject as isObject } from '../util/json.ts';

export const DEFAULT_SCAN_DEPTH = 4;
export const DEFAULT_TOKEN_BUDGET = 500;
/** SillyTavern's depth for entries at a depth, and for its Author's Note. */
export const DEFAULT_DEPTH = 4;

/**
 * Where an entry goes (SillyTavern's world_info_position, 0–6): before or after the character
 * definition, at the top or bottom of the Author's Note, into the history at a depth, before or
 * after the example dialogue.
 */
export type LorePosition = 'before_char' | 'after_char' | 'an_top' | 'an_bottom' | 'at_depth' | 'em_top' | 'em_bottom';
export type LoreRole = 'system' | 'user' | 'assistant';
/** Active entries of one depth and role, in order: one message of the history. */
export interface DepthLore {
  depth: number;
  role: LoreRole;
  contents: string[];
}
export type ActiveLore = Record<Exclude<LorePosition, 'at_depth'>, string[]> & { at_depth: DepthLore[] };

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
  /** SillyTavern's selectiveLogic: how the secondary keys must match. */
  logic: SecondaryLogic;
  /** For `at_depth`: how many messages from the end, and as whom. */
  depth: number;
  role: LoreRole;
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

/** SillyTavern's numbers under `extensions.position`, and the spec's names; anything else goes after the definition. */
const POSITIONS = new Map<unknown, LorePosition>([
  [0, 'before_char'],
  [1, 'after_char'],
  [2, 'an_top'],
  [3, 'an_bottom'],
  [4, 'at_depth'],
  [5, 'em_top'],
  [6, 'em_bottom'],
  ['before_char', 'before_char'],
  ['after_char', 'after_char'],
]);
/** SillyTavern's number wins over the spec's name, as it reads a card's book (its name is only before/after). */
const positionOf = (entry: Json, extensions: Json): LorePosition => {
  const stated = own(extensions, 'position') ?? own(entry, 'position');
  if (stated === undefined || stated === null) return 'before_char';
  return POSITIONS.get(stated) ?? 'after_char';
};

/** SillyTavern's extension_prompt_roles: 0 system, 1 user, 2 assistant. */
const ROLES = new Map<unknown, LoreRole>([
  [0, 'system'],
  [1, 'user'],
  [2, 'assistant'],
]);

type SecondaryLogic = (found: boolean[]) => boolean;
/** SillyTavern's world_info_logic: AND ANY (0, the default), NOT ALL (1), NOT ANY (2), AND ALL (3). */
const LOGIC = new Map<unknown, SecondaryLogic>([
  [0, (found) => found.some(Boolean)],
  [1, (found) => !found.every(Boolean)],
  [2, (found) => !found.some(Boolean)],
  [3, (found) => found.every(Boolean)],
]);
const AND_ANY = LOGIC.get(0) as SecondaryLogic;

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
    logic: LOGIC.get(own(extensions, 'selectiveLogic') ?? own(raw, 'selectiveLogic')) ?? AND_ANY,
    depth: Math.max(0, Math.floor(finite(own(extensions, 'depth'), DEFAULT_DEPTH))),
    role: ROLES.get(own(extensions, 'role')) ?? 'system',
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
  return !entry.selective || entry.secondary.length === 0 || entry.logic(entry.secondary.map((key) => keyMatcher(key, entry).test(text)));
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
  const lore: ActiveLore = { before_char: [], after_char: [], an_top: [], an_bottom: [], em_top: [], em_bottom: [], at_depth: [] };
  const contents = new Map<Entry, string>();
  const cost = (e: Entry) => estimate(contents.get(e) ?? '');
  const kept = (Array.isArray(books) ? books : [books]).flatMap((book, i) => {
    const entries = triggeredEntries(book, i, recent);
    for (const e of entries) contents.set(e, expand(e.content).trim());
    return withinBudget(entries, finite(isObject(book) ? own(book, 'token_budget') : undefined, DEFAULT_TOKEN_BUDGET), cost);
  });
  for (const entry of kept.sort(byInsertion)) {
    const content = contents.get(entry) ?? '';
    if (content === '') continue;
    if (entry.position === 'at_depth') atDepth(lore.at_depth, entry, content);
    else lore[entry.position].push(content);
  }
  return lore;
}

/** Entries of one depth and role share a message, as SillyTavern joins them. */
function atDepth(groups: DepthLore[], entry: Entry, content: string): void {
  const group = groups.find((g) => g.depth === entry.depth && g.role === entry.role);
  if (group) group.contents.push(content);
  else groups.push({ depth: entry.depth, role: entry.role, contents: [content] });
}

/** The standalone lorebook a character links by name (SillyTavern's `extensions.world`), if any. */
export function worldOf(character: Pick<Character, 'extensions'>): string | undefined {
  const world = Object.hasOwn(character.extensions, 'world') ? character.extensions.world : undefined;
  return typeof world === 'string' && world.trim() !== '' ? world : undefined;
}

/** A book's entries whose keys are in its last `scan_depth` messages (or that are constant). */
function triggeredEntries(book: unknown, bookIndex: number, recent: readonly string[]): Entry[] {
  if (!isObject(book) || !Array.isArray(own(book, 'entries'))) return [];
  const depth = Math.max(0, Math.floor(finite(own(book, 'scan_depth'), DEFAULT_SCAN_DEPTH)));
  const text = depth === 0 ? '' : recent.slice(-depth).join('\n');
  return (own(book, 'entries') as unknown[]).map((raw, i) => readEntry(raw, i, bookIndex)).filter((e): e is Entry => e !== undefined && triggered(e, text));
}
