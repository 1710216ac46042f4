// The Characters panel: list and search the cast, create and edit a character (name, voice, what
// of its replies is spoken and the narrator's voice, its delivery style on Higgs v3,
// talkativeness, picture by URL or uploaded file, active or not, and every Character Card field:
// the long ones in collapsible sections, the greetings as lists, the V3 fields, the extensions
// (SillyTavern's as fields, the rest as checked JSON) and the card's own lorebook, entry by
// entry, web/src/card-sections.ts and lorebook-editor.ts), switch characters on and off,
// delete one after confirming, import cards (PNG or JSON, V1/V2/V3) by file picker or by
// dropping files on the panel, several at once, and export one as a PNG or JSON card (V2 or
// V3). Records go through the REST API; the server's sessions pick up the change on their own.
import { api } from './api.ts';
import { cardSection, extensionsSection, greetingList, v3Section } from './card-sections.ts';
import { avatar, h, icon, replace } from './dom.ts';
import { bookEditor } from './lorebook-editor.ts';
import { pictureField } from './picture-field.ts';
import type { Store } from './store.ts';
import { styleFields } from './style-fields.ts';
import type { Character, CharacterCreate, NarrationMode } from './types.ts';
import { setFieldError } from './field-error.ts';
import { keepFocus } from './focus.ts';
import { confirmDialog, describeError, field, openPanel, toast } from './ui.ts';

export function openCharacters(store: Store): void {
  let selected: Character | null = null;
  let query = '';
  let searchTimer: number | undefined;
  let results: Character[] | null = null;

  const list = h('ul', { class: 'record-list', attrs: { 'aria-label': 'Characters' } });
  const search = h('input', { type: 'search', class: 'input', placeholder: 'Search…', name: 'search', attrs: { 'aria-label': 'Search characters' } });
  const editor = h('div', { class: 'record-editor' });

  const renderList = () => keepFocus(list, drawList);
  const drawList = () => {
    const shown = results ?? store.characters;
    replace(
      list,
      shown.length === 0 ? h('li', { class: 'record-empty' }, query ? `No character matches “${query}”.` : 'No characters yet.') : null,
      shown.map((c) => {
        const toggle = h('input', { type: 'checkbox', checked: c.is_active, class: 'switch', title: c.is_active ? 'Active: in the cast of new conversations' : 'Inactive: not in new conversations', attrs: { 'aria-label': `${c.name} active` } });
        toggle.addEventListener('click', (ev) => ev.stopPropagation());
        toggle.addEventListener('change', () => {
          api
            .updateCharacter(c.id, { is_active: toggle.checked })
            .then(() => reload())
            .catch((e: unknown) => {
              toggle.checked = !toggle.checked;
              toast(describeError(e), 'error', 'Could not change the character');
            });
        });
        return h(
          'li',
          {
            class: `record-row char-row${selected?.id === c.id ? ' is-selected' : ''}${c.is_active ? '' : ' is-inactive'}`,
            data: { id: c.id },
            tabIndex: 0,
            onclick: () => edit(c),
            onkeydown: (ev: KeyboardEvent) => {
              if (ev.target !== ev.currentTarget || (ev.key !== 'Enter' && ev.key !== ' ')) return;
              ev.preventDefault();
              edit(c);
            },
          },
          avatar(c.name, c.image_url, 'sm'),
          h('span', { class: 'record-main' }, h('span', { class: 'record-name' }, c.name), h('span', { class: 'record-sub' }, c.voice ?? 'default voice')),
          toggle,
        );
      }),
    );
  };

  const runSearch = async () => {
    query = search.value.trim();
    if (query === '') results = null;
    else {
      try {
        results = await api.searchCharacters(query);
      } catch (e) {
        toast(describeError(e), 'error', 'Search failed');
      }
    }
    renderList();
  };
  search.addEventListener('input', () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => void runSearch(), 200);
  });

  const reload = async () => {
    await store.reloadCharacters();
    if (selected) selected = store.character(selected.id) ?? null;
    await runSearch();
  };

  const edit = (character: Character | null) => {
    selected = character;
    renderList();
    replace(editor, characterForm(character, store, async (saved) => {
      selected = saved;
      await reload();
      edit(saved);
    }, async () => {
      selected = null;
      await reload();
      edit(null);
    }));
  };

  const importCards = async (files: File[]) => {
    if (files.length === 0) return;
    try {
      const { characters } = await api.importCards(files);
      toast(`Imported ${characters.map((c) => c.name).join(', ')}.`, 'success');
      await reload();
      const first = characters[0];
      if (first) edit(store.character(first.id) ?? first);
    } catch (e) {
      toast(describeError(e), 'error', 'Could not import');
    }
  };
  const picker = filePicker('card_files', '.png,.json,image/png,application/json', 'Character card files', (files) => void importCards(files));
  const importButton = h('button', { type: 'button', class: 'btn import-cards', title: 'Import character cards (PNG or JSON); you can also drop them here', onclick: () => picker.click() }, 'Import…');

  const panel = openPanel('Characters', 'records-panel characters-panel', () => unsubscribe());
  const unsubscribe = store.subscribe(renderList);
  const records = h(
    'div',
    { class: 'records' },
    h(
      'div',
      { class: 'record-side' },
      h('div', { class: 'record-tools' }, search, h('button', { type: 'button', class: 'btn btn-primary new-character', onclick: () => edit(null) }, icon('plus'), 'New'), importButton, picker),
      h('p', { class: 'field-hint drop-hint' }, 'Drop character cards (PNG or JSON) here to import them.'),
      list,
    ),
    editor,
  );
  dropFiles(records, (files) => void importCards(files));
  panel.body.append(records);
  renderList();
  edit(null);
  void Promise.all([store.reloadCharacters(), store.reloadVoices()]).catch((e: unknown) => toast(describeError(e), 'error', 'Could not load characters'));
}

function characterForm(character: Character | null, store: Store, saved: (c: Character) => Promise<void>, deleted: () => Promise<void>): HTMLElement {
  const name = h('input', { type: 'text', class: 'input', name: 'name', required: true, maxLength: 100, value: character?.name ?? '', placeholder: 'e.g. Mira Vance' });
  const texts = CARD_TEXTS.map((spec) => cardText(spec, character?.[spec.name] ?? ''));
  const greetings = greetingList(character?.alternate_greetings ?? [], 'alternate_greeting', 'Alternate greetings');
  const tags = h('input', { type: 'text', class: 'input', name: 'tags', value: (character?.tags ?? []).join(', '), placeholder: 'e.g. fantasy, mentor' });
  const creator = h('input', { type: 'text', class: 'input', name: 'creator', maxLength: 1000, value: character?.creator ?? '' });
  const version = h('input', { type: 'text', class: 'input', name: 'character_version', maxLength: 1000, value: character?.character_version ?? '' });
  const voice = h('select', { class: 'input', name: 'voice' }, h('option', { value: '' }, 'Default voice'), store.voices.map((v) => h('option', { value: v.voice }, v.voice)));
  voice.value = character?.voice ?? '';
  const narration = h('select', { class: 'input', name: 'narration' }, h('option', { value: '' }, 'As the server is set up'), [...NARRATION_LABELS].map(([mode, label]) => h('option', { value: mode }, label)));
  narration.value = character?.narration ?? '';
  const narratorVoice = h('select', { class: 'input', name: 'narrator_voice' }, h('option', { value: '' }, 'The server’s narrator voice'), store.voices.map((v) => h('option', { value: v.voice }, v.voice)));
  narratorVoice.value = character?.narrator_voice ?? '';
  // The narrator's voice matters only when narration is spoken apart (or may be: the server default).
  const narratorField = field('Narrator voice', narratorVoice, 'Reads *actions* and narration when they are spoken apart.');
  const showNarrator = () => (narratorField.hidden = narration.value === 'all' || narration.value === 'dialogue_only');
  narration.addEventListener('change', showNarrator);
  showNarrator();
  const style = styleFields(character?.style ?? null, 'As its voice');
  const active = h('input', { type: 'checkbox', name: 'is_active', checked: character?.is_active ?? true });
  const picture = pictureField(character?.image_url ?? null, () => name.value);
  name.addEventListener('input', () => picture.refresh());
  const talk = talkativenessField(character?.talkativeness ?? 0.5);
  const v3 = v3Section(character);
  const extensions = extensionsSection(character?.extensions ?? {}, api.lorebooks().then((books) => books.map((b) => b.name)).catch(() => []));
  const book = bookEditor(character?.character_book ?? null);
  const bookSection = cardSection('character_book', 'Lorebook (the card’s own)', (character?.character_book?.entries.length ?? 0) > 0, null, h('p', { class: 'field-hint' }, 'Entries go into this character’s prompt when their keys come up (docs: How a character’s prompt is built).'), book.el);

  const formError = h('p', { class: 'field-error form-error', attrs: { role: 'alert' } });
  const save = h('button', { type: 'submit', class: 'btn btn-primary save' }, character ? 'Save changes' : 'Create character');
  const form = h(
    'form',
    { class: 'record-form char-form', noValidate: true, data: { updatedAt: character?.updated_at ?? '' } },
    h('h3', null, character ? `Edit ${character.name}` : 'New character'),
    field('Name', name),
    field('Voice', voice, 'Manage voices under Voices.'),
    h(
      'div',
      { class: 'field-pair narration-fields' },
      field('Spoken', narration, 'What of a reply is read aloud; code and links never are.'),
      narratorField,
    ),
    style.el,
    picture.el,
    talk.el,
    texts.map((t) => t.el),
    greetings.el,
    h('div', { class: 'field-row card-meta' }, field('Tags', tags, 'Separated by commas.'), field('Creator', creator), field('Version', version)),
    v3.el,
    extensions.el,
    bookSection,
    h('label', { class: 'check' }, active, h('span', null, 'Active — answers in conversations')),
    character ? exportControls(character) : null,
    h(
      'div',
      { class: 'form-actions' },
      formError,
      save,
      character
        ? h('button', { type: 'button', class: 'btn btn-danger delete', onclick: () => void remove() }, icon('trash'), 'Delete')
        : null,
    ),
  );

  const remove = async () => {
    if (!character) return;
    if (!(await confirmDialog(`Delete ${character.name}? Their past messages stay in your conversations.`))) return;
    try {
      await api.deleteCharacter(character.id);
      toast(`${character.name} was deleted.`, 'success');
      await deleted();
    } catch (e) {
      toast(describeError(e), 'error', 'Could not delete');
    }
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    formError.textContent = '';
    const trimmed = name.value.trim();
    setFieldError([name], trimmed === '' ? 'A character needs a name.' : null);
    if (trimmed === '') {
      name.focus();
      return;
    }
    if (picture.problem()) {
      formError.textContent = 'Fix the picture first.';
      return;
    }
    const problem = v3.problem() || extensions.problem();
    if (problem) {
      formError.textContent = problem;
      return;
    }
    const input: CharacterCreate = {
      name: trimmed,
      voice: voice.value || null,
      narration: (narration.value || null) as NarrationMode | null,
      narrator_voice: narratorVoice.value || null,
      style: style.value(),
      image_url: picture.value(),
      is_active: active.checked,
      // Unless moved here, the character's own (the cast bar may have set one the slider cannot show).
      talkativeness: talk.touched() || !character ? talk.value() : character.talkativeness,
      ...Object.fromEntries(texts.map((t) => [t.name, t.value()])),
      alternate_greetings: greetings.values(),
      tags: tags.value.split(',').map((t) => t.trim()).filter(Boolean),
      creator: creator.value,
      character_version: version.value,
      ...v3.value(),
      extensions: extensions.value(),
      character_book: book.value() as CharacterCreate['character_book'],
    };
    save.disabled = true;
    const request = character ? api.updateCharacter(character.id, input) : api.createCharacter(input);
    request
      .then(async (result) => {
        toast(character ? `Saved ${result.name}.` : `${result.name} joined the cast.`, 'success');
        await saved(result);
      })
      .catch((e: unknown) => {
        formError.textContent = describeError(e);
      })
      .finally(() => (save.disabled = false));
  });
  return form;
}

/** What of a character's replies is spoken (docs/protocol.md, Narration). */
const NARRATION_LABELS = new Map<NarrationMode, string>([
  ['all', 'Everything, in its voice'],
  ['dialogue_only', 'Only quoted dialogue'],
  ['narrated', 'Dialogue in its voice, narration in the narrator’s'],
]);

/** How readily the character speaks up unaddressed (0–1, SillyTavern's talkativeness). */
function talkativenessField(initial: number) {
  const range = h('input', { type: 'range', class: 'talkativeness', name: 'talkativeness', min: '0', max: '1', step: '0.05', value: String(initial), attrs: { 'aria-label': 'Talkativeness' } });
  const shown = h('output', { class: 'talkativeness-value' }, `${Math.round(initial * 100)}%`);
  let touched = false;
  range.addEventListener('input', () => {
    touched = true;
    shown.textContent = `${Math.round(Number(range.value) * 100)}%`;
  });
  const el = h('div', { class: 'field' }, h('span', { class: 'field-label' }, 'Talkativeness'), h('div', { class: 'talk-row' }, range, shown), h('span', { class: 'field-hint' }, 'How readily the character speaks up when not addressed.'));
  return { el, value: () => Number(range.value), touched: () => touched };
}

type CardTextField = 'system_prompt' | 'description' | 'personality' | 'scenario' | 'first_mes' | 'mes_example' | 'post_history_instructions' | 'creator_notes';

/** The card's long text fields, in the order the prompt uses them (docs/architecture.md), each collapsible. */
const CARD_TEXTS: ReadonlyArray<{ name: CardTextField; label: string; hint: string; rows: number; max: number; open?: true }> = [
  { name: 'system_prompt', label: 'System prompt', hint: 'Who the character is and how they talk. {{original}} stands for Chorus’s own instruction.', rows: 6, max: 20_000, open: true },
  { name: 'description', label: 'Description', hint: 'Appearance, background, anything the character should know about themselves.', rows: 6, max: 100_000 },
  { name: 'personality', label: 'Personality', hint: 'A short summary of their temperament.', rows: 2, max: 100_000 },
  { name: 'scenario', label: 'Scenario', hint: 'Where and when the conversation takes place.', rows: 3, max: 100_000 },
  { name: 'first_mes', label: 'Greeting (first message)', hint: 'Said when a new conversation starts; {{user}} and {{char}} are replaced.', rows: 3, max: 100_000 },
  { name: 'mes_example', label: 'Example dialogue', hint: 'Sample exchanges, each starting with <START>.', rows: 5, max: 100_000 },
  { name: 'post_history_instructions', label: 'Post-history instructions', hint: 'Sent after the conversation, just before the reply.', rows: 2, max: 100_000 },
  { name: 'creator_notes', label: 'Creator notes', hint: 'For people, not the model.', rows: 2, max: 100_000 },
];

/** A collapsible text field (open when it has text, or always for the system prompt). */
function cardText(spec: (typeof CARD_TEXTS)[number], value: string) {
  const area = h('textarea', { class: 'input', name: spec.name, rows: spec.rows, maxLength: spec.max, value, attrs: { 'aria-label': spec.label } });
  const count = h('span', { class: 'card-count' });
  const recount = () => (count.textContent = area.value === '' ? 'empty' : `${area.value.length} characters`);
  area.addEventListener('input', recount);
  recount();
  const el = h(
    'details',
    { class: 'card-section', open: spec.open === true || value.trim() !== '', data: { field: spec.name } },
    h('summary', null, h('span', { class: 'card-section-title' }, spec.label), count),
    h('label', { class: 'field' }, h('span', { class: 'visually-hidden' }, spec.label), area, h('span', { class: 'field-hint' }, spec.hint)),
  );
  return { name: spec.name, el, value: () => area.value };
}

/** Download links for the character as a card: PNG or JSON, V2 or V3. */
function exportControls(character: Character): HTMLElement {
  const spec = h('select', { class: 'input input-inline', name: 'export_spec', attrs: { 'aria-label': 'Card version' } }, h('option', { value: 'v2' }, 'V2'), h('option', { value: 'v3' }, 'V3'));
  const link = (format: 'png' | 'json', label: string) => {
    const a = h('a', { class: 'btn', download: '' }, label);
    a.className = `btn export-${format}`;
    const update = () => (a.href = api.exportUrl(character.id, format, spec.value as 'v2' | 'v3'));
    spec.addEventListener('change', update);
    update();
    return a;
  };
  return h('div', { class: 'field export-row' }, h('span', { class: 'field-label' }, 'Export as a card'), h('div', { class: 'picture-buttons' }, spec, link('png', 'PNG'), link('json', 'JSON')));
}

/** A hidden multiple-file input (opened by a button's `.click()`); each choice goes to `onFiles`. */
export function filePicker(name: string, accept: string, label: string, onFiles: (files: File[]) => void): HTMLInputElement {
  const input = h('input', { type: 'file', multiple: true, accept, name, class: 'visually-hidden', attrs: { 'aria-label': label } });
  input.addEventListener('change', () => {
    const files = [...(input.files ?? [])];
    input.value = ''; // the same file chosen again is a new choice
    onFiles(files);
  });
  return input;
}

/** Files dropped on `el` (several at once), with a highlight while they are over it. */
export function dropFiles(el: HTMLElement, onFiles: (files: File[]) => void): void {
  const hasFiles = (ev: DragEvent) => ev.dataTransfer?.types.includes('Files') ?? false;
  el.addEventListener('dragover', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    el.classList.add('is-drop-target');
  });
  el.addEventListener('dragleave', (ev) => {
    if (ev.target === el) el.classList.remove('is-drop-target');
  });
  el.addEventListener('drop', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    el.classList.remove('is-drop-target');
    onFiles([...(ev.dataTransfer?.files ?? [])]);
  });
}
