// The lorebook editor (a character's own book in the character editor, a standalone one in the
// Lorebooks panel): the book's scan depth and token budget, and its entries, each a collapsible
// section with its keys, secondary keys and how they must match (SillyTavern's selectiveLogic),
// content, constant, enabled, insertion order, position (SillyTavern's seven places, with the
// depth and role of one in the history) and comment; entries are added and deleted in place.
// What the editor does not show (an entry's or the book's other fields, SillyTavern's other
// extensions) is kept as it was; a field the user leaves alone is written back as it came.
import { h, icon } from './dom.ts';
import { field } from './ui.ts';

type Json = Record<string, unknown>;

export interface BookEditor {
  el: HTMLElement;
  /** The book as edited (null: the character had none and none was started). */
  value(): Json | null;
}

const own = (o: Json, key: string): unknown => (Object.hasOwn(o, key) ? o[key] : undefined);
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);
const define = (o: Json, key: string, value: unknown) => Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });

/** SillyTavern's world_info_position (docs/architecture.md, "Lorebook"). */
const POSITIONS: ReadonlyArray<readonly [number, string]> = [
  [0, 'Before the character definition'],
  [1, 'After the character definition'],
  [5, 'Before the example dialogue'],
  [6, 'After the example dialogue'],
  [2, 'Top of the Author’s Note (depth 4)'],
  [3, 'Bottom of the Author’s Note (depth 4)'],
  [4, 'In the conversation, at a depth'],
];
const AT_DEPTH = 4;
/** SillyTavern's world_info_logic: how the secondary keys must match. */
const LOGIC: ReadonlyArray<readonly [number, string]> = [
  [0, 'and any of them'],
  [3, 'and all of them'],
  [2, 'and none of them'],
  [1, 'and not all of them'],
];
const ROLES: ReadonlyArray<readonly [number, string]> = [
  [0, 'System'],
  [1, 'User'],
  [2, 'Assistant'],
];

const options = (choices: ReadonlyArray<readonly [number, string]>) => choices.map(([value, label]) => h('option', { value: String(value) }, label));

/** The entry's SillyTavern position number: its `extensions.position`, else the spec's name. */
function positionOf(entry: Json, extensions: Json): number {
  const stated = own(extensions, 'position');
  if (typeof stated === 'number' && POSITIONS.some(([n]) => n === stated)) return stated;
  return own(entry, 'position') === 'after_char' ? 1 : 0;
}

/** Keys as typed (comma-separated); text the user did not change gives back the keys as they were. */
function keysInput(name: string, label: string, keys: string[]) {
  const shown = keys.join(', ');
  const input = h('input', { type: 'text', class: 'input', name, value: shown, attrs: { 'aria-label': label } });
  const value = () => (input.value === shown ? keys : input.value.split(',').map((k) => k.trim()).filter(Boolean));
  return { input, value };
}

function entryEditor(original: Json, index: number, onRemove: (el: HTMLElement) => void) {
  const extensions = isObject(own(original, 'extensions')) ? (own(original, 'extensions') as Json) : {};
  const keys = keysInput('lore_keys', 'Keys', strings(own(original, 'keys')));
  const secondary = keysInput('lore_secondary_keys', 'Secondary keys', strings(own(original, 'secondary_keys')));
  const comment = h('input', { type: 'text', class: 'input', name: 'lore_comment', maxLength: 10_000, value: typeof own(original, 'comment') === 'string' ? (own(original, 'comment') as string) : '' });
  const content = h('textarea', { class: 'input', name: 'lore_content', rows: 4, maxLength: 100_000, value: typeof own(original, 'content') === 'string' ? (own(original, 'content') as string) : '' });
  const check = (name: string, checked: boolean) => h('input', { type: 'checkbox', name, checked });
  const enabled = check('lore_enabled', own(original, 'enabled') !== false);
  const constant = check('lore_constant', own(original, 'constant') === true);
  const selective = check('lore_selective', own(original, 'selective') === true);
  const logic = h('select', { class: 'input input-inline', name: 'lore_logic', attrs: { 'aria-label': 'How the secondary keys must match' } }, options(LOGIC));
  const originalLogic = typeof own(extensions, 'selectiveLogic') === 'number' ? (own(extensions, 'selectiveLogic') as number) : 0;
  logic.value = String(originalLogic);
  const order = h('input', { type: 'number', class: 'input', name: 'lore_order', step: 'any', value: String(typeof own(original, 'insertion_order') === 'number' ? own(original, 'insertion_order') : 100) });
  const position = h('select', { class: 'input', name: 'lore_position' }, options(POSITIONS));
  const originalPosition = positionOf(original, extensions);
  position.value = String(originalPosition);
  const originalDepth = typeof own(extensions, 'depth') === 'number' ? (own(extensions, 'depth') as number) : 4;
  const originalRole = typeof own(extensions, 'role') === 'number' ? (own(extensions, 'role') as number) : 0;
  const depth = h('input', { type: 'number', class: 'input', name: 'lore_depth', min: '0', step: '1', value: String(originalDepth) });
  const role = h('select', { class: 'input', name: 'lore_role' }, options(ROLES));
  role.value = String(originalRole);
  const depthFields = h('div', { class: 'field-row lore-depth' }, field('Depth (messages from the end)', depth), field('As', role));
  const showDepth = () => (depthFields.hidden = Number(position.value) !== AT_DEPTH);
  position.addEventListener('change', showDepth);
  showDepth();

  const title = h('span', { class: 'card-section-title lore-title' });
  const flags = h('span', { class: 'card-count lore-flags' });
  const retitle = () => {
    title.textContent = comment.value.trim() || keys.value().join(', ') || `Entry ${index + 1}`;
    flags.textContent = [!enabled.checked && 'off', constant.checked && 'always'].filter(Boolean).join(' · ');
  };
  for (const el of [comment, keys.input, enabled, constant]) el.addEventListener('input', retitle);
  retitle();

  const el: HTMLDetailsElement = h(
    'details',
    { class: 'card-section lore-entry', open: false },
    h('summary', null, title, flags),
    field('Title (comment)', comment, 'For you; never sent to the model.'),
    field('Keys', keys.input, 'Comma-separated. Whole words, any case; /regex/flags for a pattern.'),
    h('div', { class: 'lore-selective' }, h('label', { class: 'check' }, selective, h('span', null, 'Secondary keys too,')), logic),
    field('Secondary keys', secondary.input),
    field('Content', content, '{{char}} and {{user}} are replaced.'),
    h('div', { class: 'lore-flags-row' }, h('label', { class: 'check' }, enabled, h('span', null, 'Enabled')), h('label', { class: 'check' }, constant, h('span', null, 'Constant — always in the prompt'))),
    h('div', { class: 'field-row' }, field('Insertion order', order, 'Lower goes first.'), field('Position', position)),
    depthFields,
    h('button', { type: 'button', class: 'btn btn-quiet remove-lore-entry', onclick: () => onRemove(el) }, icon('trash'), 'Delete entry'),
  );

  /** The entry as edited: its other fields kept, SillyTavern's numbers written when they are set or changed. */
  const value = (): Json => {
    const next: Json = { ...original };
    const ext: Json = { ...extensions };
    define(next, 'keys', keys.value());
    define(next, 'secondary_keys', secondary.value());
    define(next, 'comment', comment.value);
    define(next, 'content', content.value);
    define(next, 'enabled', enabled.checked);
    define(next, 'constant', constant.checked);
    define(next, 'selective', selective.checked);
    const insertion = Number(order.value);
    define(next, 'insertion_order', Number.isFinite(insertion) ? insertion : 100);
    if (Number(logic.value) !== originalLogic || Object.hasOwn(extensions, 'selectiveLogic')) define(ext, 'selectiveLogic', Number(logic.value));
    const place = Number(position.value);
    if (place !== originalPosition) {
      define(next, 'position', place === 0 ? 'before_char' : 'after_char');
      define(ext, 'position', place);
    }
    if (place === AT_DEPTH) {
      const [d, r] = [Math.max(0, Math.floor(Number(depth.value) || 0)), Number(role.value)];
      if (d !== originalDepth || Object.hasOwn(extensions, 'depth') || place !== originalPosition) define(ext, 'depth', d);
      if (r !== originalRole || Object.hasOwn(extensions, 'role') || place !== originalPosition) define(ext, 'role', r);
    }
    if (Object.keys(ext).length > 0 || Object.hasOwn(original, 'extensions')) define(next, 'extensions', ext);
    return next;
  };
  return { el, value, open: () => ((el.open = true), comment.focus()) };
}

/** A new entry: enabled, keyed on nothing yet, before the definition, as SillyTavern starts one. */
const blankEntry = (id: number): Json => ({ id, keys: [], secondary_keys: [], comment: '', content: '', enabled: true, constant: false, selective: true, insertion_order: 100, position: 'before_char', extensions: { position: 0 } });

export function bookEditor(initial: Json | null): BookEditor {
  const book: Json = initial ?? {};
  const entries = (Array.isArray(own(book, 'entries')) ? (own(book, 'entries') as unknown[]) : []).filter(isObject);
  let started = initial !== null;
  let nextId = entries.reduce<number>((max, e) => (typeof own(e, 'id') === 'number' ? Math.max(max, (own(e, 'id') as number) + 1) : max), entries.length);
  const list = h('div', { class: 'lore-entries' });
  const editors: Array<ReturnType<typeof entryEditor>> = [];
  const count = h('span', { class: 'card-count' });
  const recount = () => (count.textContent = `${editors.length} ${editors.length === 1 ? 'entry' : 'entries'}`);
  const add = (entry: Json) => {
    const editor = entryEditor(entry, editors.length, (el) => {
      editors.splice(editors.indexOf(editor), 1);
      el.remove();
      recount();
    });
    editors.push(editor);
    list.append(editor.el);
    recount();
    return editor;
  };
  for (const entry of entries) add(entry);
  const number = (name: string, key: string, placeholder: string) =>
    h('input', { type: 'number', class: 'input', name, min: '0', step: '1', placeholder, value: typeof own(book, key) === 'number' ? String(own(book, key)) : '' });
  const scanDepth = number('lore_scan_depth', 'scan_depth', '4');
  const budget = number('lore_token_budget', 'token_budget', '500');
  const el = h(
    'div',
    { class: 'book-editor' },
    h('div', { class: 'field-row' }, field('Scan depth', scanDepth, 'Messages searched for keys.'), field('Token budget', budget, 'Most lore per reply.')),
    h('div', { class: 'book-entries-head' }, h('span', { class: 'field-label' }, 'Entries'), count),
    list,
    h('button', { type: 'button', class: 'btn add-lore-entry', onclick: () => ((started = true), add(blankEntry(nextId++)).open()) }, icon('plus'), 'Add entry'),
  );
  const value = (): Json | null => {
    if (!started && editors.length === 0) return null;
    const next: Json = { ...book };
    for (const [input, key] of [[scanDepth, 'scan_depth'], [budget, 'token_budget']] as const) {
      if (input.value.trim() !== '') define(next, key, Math.max(0, Math.floor(Number(input.value))));
      else if (typeof own(book, key) === 'number') delete next[key]; // cleared; a null stays null
    }
    define(next, 'entries', editors.map((e) => e.value()));
    return next;
  };
  return { el, value };
}

