// The character editor's card sections beyond its text fields (web/src/characters.ts): lists of
// greetings, the V3 fields (nickname, group-only greetings, multilingual creator notes, assets;
// source and dates shown but not edited, as the V3 spec asks), and the card's `extensions`, with
// SillyTavern's own as fields — the character's note (`depth_prompt`: prompt, depth, role), the
// linked lorebook (`world`), favourite (`fav`) — and every other key in a checked JSON editor.
// A field the user leaves alone is written back as the card had it.
import { h, icon } from './dom.ts';
import { jsonField } from './json-field.ts';
import type { Character } from './types.ts';
import { field } from './ui.ts';

type Json = Record<string, unknown>;
const own = (o: Json, key: string): unknown => (Object.hasOwn(o, key) ? o[key] : undefined);
const define = (o: Json, key: string, value: unknown) => Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface Section<T> {
  el: HTMLElement;
  value(): T;
  /** Why it cannot be saved, '' when it can. */
  problem(): string;
}

/** A collapsible card section (open when it has something in it). */
export const cardSection = (field: string, title: string, open: boolean, count: Node | string | null, ...children: Array<Node | null>) =>
  h('details', { class: 'card-section', open, data: { field } }, h('summary', null, h('span', { class: 'card-section-title' }, title), count ?? ''), ...children);

/** Greetings: one text box each, added and removed in place (`name` names each box). */
export function greetingList(initial: readonly string[], name: string, title: string, hint = '') {
  const items = h('ol', { class: 'greeting-list' });
  const add = (text = '') => {
    const area = h('textarea', { class: 'input', name, rows: 2, maxLength: 100_000, value: text });
    const li = h('li', { class: 'greeting-item' }, area);
    const remove = h('button', { type: 'button', class: 'btn btn-quiet remove-greeting', onclick: () => li.remove() }, 'Remove');
    li.append(remove);
    const label = () => `${title.replace(/s$/, '')} ${[...items.children].indexOf(li) + 1}`;
    items.append(li);
    area.setAttribute('aria-label', label());
    remove.setAttribute('aria-label', `Remove ${label().toLowerCase()}`);
    return area;
  };
  for (const text of initial) add(text);
  const el = cardSection(
    name === 'alternate_greeting' ? 'alternate_greetings' : 'group_only_greetings',
    title,
    initial.length > 0,
    h('span', { class: 'card-count' }, String(initial.length)),
    hint ? h('p', { class: 'field-hint' }, hint) : null,
    items,
    h('button', { type: 'button', class: name === 'alternate_greeting' ? 'btn add-greeting' : `btn add-${name.replace(/_/g, '-')}`, onclick: () => add().focus() }, icon('plus'), 'Add greeting'),
  );
  const values = () => [...items.querySelectorAll('textarea')].map((a) => a.value).filter((v) => v.trim() !== '');
  return { el, values };
}

const dateText = (seconds: number | null) => (seconds === null ? 'not stated' : seconds === 0 ? 'unknown (0)' : `${new Date(seconds * 1000).toISOString().replace('T', ' ').slice(0, 19)} UTC (${seconds})`);

/** The V3 fields: nickname, group-only greetings, multilingual notes, assets; source and dates read-only. */
export function v3Section(character: Character | null): Section<Pick<Character, 'nickname' | 'group_only_greetings' | 'creator_notes_multilingual' | 'assets'>> {
  const nickname = h('input', { type: 'text', class: 'input', name: 'nickname', maxLength: 1000, value: character?.nickname ?? '', placeholder: 'e.g. Mira' });
  const groupOnly = greetingList(character?.group_only_greetings ?? [], 'group_only_greeting', 'Group-only greetings', 'Offered as further greetings when this character opens a conversation with others.');
  const notes = jsonField('creator_notes_multilingual', 'Creator notes by language', character?.creator_notes_multilingual ?? {}, 'object', 'e.g. {"fr": "…"}: language codes (ISO 639-1) and their notes.');
  const assets = jsonField('assets', 'Assets', character?.assets ?? [], 'array', 'e.g. [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]');
  const source = character?.source ?? [];
  const filled = Boolean(character && (character.nickname || character.group_only_greetings.length || character.assets.length || source.length || Object.keys(character.creator_notes_multilingual).length || character.creation_date !== null));
  const el = cardSection(
    'v3',
    'Character Card V3',
    filled,
    null,
    field('Nickname', nickname, '{{char}} stands for it in the prompt and greetings when set.'),
    groupOnly.el,
    notes.el,
    assets.el,
    h(
      'dl',
      { class: 'card-facts' },
      h('dt', null, 'Source'),
      h('dd', { class: 'card-source' }, source.length === 0 ? 'not stated' : source.join(', ')),
      h('dt', null, 'Created'),
      h('dd', { class: 'card-creation-date' }, dateText(character?.creation_date ?? null)),
      h('dt', null, 'Modified'),
      h('dd', { class: 'card-modification-date' }, dateText(character?.modification_date ?? null)),
    ),
  );
  return {
    el,
    value: () => ({
      nickname: nickname.value,
      group_only_greetings: groupOnly.values(),
      creator_notes_multilingual: (notes.value() ?? {}) as Record<string, string>,
      assets: (assets.value() ?? []) as Character['assets'],
    }),
    problem: () => notes.problem() || assets.problem(),
  };
}

/** SillyTavern's extensions that have fields of their own; talkativeness is the character's own field. */
const KNOWN = ['talkativeness', 'fav', 'world', 'depth_prompt'];
const ROLES = ['system', 'user', 'assistant'] as const;

/** The card's extensions: the character's note, the linked lorebook, favourite, and the rest as JSON. */
export function extensionsSection(initial: Json, lorebookNames: Promise<string[]>): Section<Json> {
  const note = isObject(own(initial, 'depth_prompt')) ? (own(initial, 'depth_prompt') as Json) : {};
  const noteDepth = own(note, 'depth') ?? 4;
  const prompt = h('textarea', { class: 'input', name: 'depth_prompt_prompt', rows: 3, maxLength: 100_000, value: typeof own(note, 'prompt') === 'string' ? (own(note, 'prompt') as string) : '' });
  const depth = h('input', { type: 'number', class: 'input', name: 'depth_prompt_depth', min: '0', step: '1', value: String(noteDepth) });
  const role = h('select', { class: 'input', name: 'depth_prompt_role' }, ROLES.map((r) => h('option', { value: r }, r)));
  role.value = ROLES.find((r) => r === own(note, 'role')) ?? 'system';
  const worlds = h('datalist', { id: `worlds-${Math.random().toString(36).slice(2)}` });
  void lorebookNames.then((names) => worlds.append(...names.map((n) => h('option', { value: n }))));
  const world = h('input', { type: 'text', class: 'input', name: 'world', value: typeof own(initial, 'world') === 'string' ? (own(initial, 'world') as string) : '', attrs: { list: worlds.id } });
  const fav = h('input', { type: 'checkbox', name: 'fav', checked: own(initial, 'fav') === true });
  const rest = jsonField('extensions_json', 'Other extensions', Object.fromEntries(Object.entries(initial).filter(([k]) => !KNOWN.includes(k))), 'object', 'Fields other apps keep here, as JSON; kept as they are.');
  const filled = Object.keys(initial).some((k) => k !== 'talkativeness');
  const el = cardSection(
    'extensions',
    'Extensions',
    filled,
    null,
    field('Character’s note', prompt, 'SillyTavern’s depth prompt: put into the conversation this many messages from the end, every reply.'),
    h('div', { class: 'field-row' }, field('Depth', depth), field('As', role)),
    field('Linked lorebook', world, 'The name of a lorebook (Lorebooks panel) used whenever this character speaks.'),
    worlds,
    h('label', { class: 'check' }, fav, h('span', null, 'Favourite')),
    rest.el,
  );
  const value = (): Json => {
    const next: Json = {};
    if (Object.hasOwn(initial, 'talkativeness')) define(next, 'talkativeness', initial.talkativeness); // the character's talkativeness field changes it
    for (const [k, v] of Object.entries((rest.value() ?? {}) as Json)) define(next, k, v);
    if (fav.checked || Object.hasOwn(initial, 'fav')) define(next, 'fav', fav.checked);
    if (world.value !== '' || Object.hasOwn(initial, 'world')) define(next, 'world', world.value);
    if (prompt.value !== '' || Object.hasOwn(initial, 'depth_prompt')) {
      // A new note gets all three, as SillyTavern writes it; a card's own keeps the keys it had unless changed.
      const fresh = !Object.hasOwn(initial, 'depth_prompt');
      const next_: Json = { ...note, prompt: prompt.value };
      const d = depth.value === String(noteDepth) ? noteDepth : Math.max(0, Math.floor(Number(depth.value) || 0));
      if (fresh || Object.hasOwn(note, 'depth') || d !== noteDepth) define(next_, 'depth', d);
      if (fresh || Object.hasOwn(note, 'role') || role.value !== 'system') define(next_, 'role', role.value);
      define(next, 'depth_prompt', next_);
    }
    return next;
  };
  return { el, value, problem: rest.problem };
}
