// The Characters panel: list and search the cast, create and edit a character (name, system
// prompt, voice, picture by URL or uploaded file, active or not), switch characters on and
// off, and delete one after confirming. Records go through the REST API; the server's
// sessions pick up the change on their own.
import { api } from './api.ts';
import { avatar, h, icon, replace, safeImageUrl } from './dom.ts';
import type { Store } from './store.ts';
import type { Character, CharacterCreate } from './types.ts';
import { confirmDialog, describeError, field, openPanel, toast } from './ui.ts';

/** Uploaded pictures are stored inline as data: URLs, so they are kept small. */
export const MAX_PICTURE_BYTES = 512 * 1024;

export function openCharacters(store: Store): void {
  let selected: Character | null = null;
  let query = '';
  let searchTimer: number | undefined;
  let results: Character[] | null = null;

  const list = h('ul', { class: 'record-list', attrs: { 'aria-label': 'Characters' } });
  const search = h('input', { type: 'search', class: 'input', placeholder: 'Search…', name: 'search', attrs: { 'aria-label': 'Search characters' } });
  const editor = h('div', { class: 'record-editor' });

  const renderList = () => {
    const shown = results ?? store.characters;
    replace(
      list,
      shown.length === 0 ? h('li', { class: 'record-empty' }, query ? `No character matches “${query}”.` : 'No characters yet.') : null,
      shown.map((c) => {
        const toggle = h('input', { type: 'checkbox', checked: c.is_active, class: 'switch', title: c.is_active ? 'Active: answers in chats' : 'Inactive', attrs: { 'aria-label': `${c.name} active` } });
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
              if (ev.key === 'Enter') edit(c);
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

  const panel = openPanel('Characters', 'records-panel characters-panel', () => unsubscribe());
  const unsubscribe = store.subscribe(renderList);
  panel.body.append(
    h(
      'div',
      { class: 'records' },
      h('div', { class: 'record-side' }, h('div', { class: 'record-tools' }, search, h('button', { type: 'button', class: 'btn btn-primary new-character', onclick: () => edit(null) }, icon('plus'), 'New')), list),
      editor,
    ),
  );
  renderList();
  edit(null);
  void Promise.all([store.reloadCharacters(), store.reloadVoices()]).catch((e: unknown) => toast(describeError(e), 'error', 'Could not load characters'));
}

function characterForm(character: Character | null, store: Store, saved: (c: Character) => Promise<void>, deleted: () => Promise<void>): HTMLElement {
  let image: string | null = character?.image_url ?? null;
  const name = h('input', { type: 'text', class: 'input', name: 'name', required: true, maxLength: 100, value: character?.name ?? '', placeholder: 'e.g. Mira Vance' });
  const prompt = h('textarea', { class: 'input', name: 'system_prompt', rows: 7, maxLength: 20_000, value: character?.system_prompt ?? '', placeholder: 'You are… (who they are, how they speak)' });
  const voice = h('select', { class: 'input', name: 'voice' }, h('option', { value: '' }, 'Default voice'), store.voices.map((v) => h('option', { value: v.voice }, v.voice)));
  voice.value = character?.voice ?? '';
  const active = h('input', { type: 'checkbox', name: 'is_active', checked: character?.is_active ?? true });

  const preview = h('span', { class: 'picture-preview' });
  const pictureNote = h('span', { class: 'field-hint picture-note' });
  const pictureError = h('span', { class: 'field-error picture-error', attrs: { role: 'alert' } });
  const url = h('input', { type: 'url', class: 'input', name: 'image_url', placeholder: 'https://… picture link', attrs: { inputmode: 'url' } });
  const file = h('input', { type: 'file', accept: 'image/*', name: 'image_file', class: 'visually-hidden' });
  const showPicture = () => {
    replace(preview, avatar(name.value || '?', image, 'lg'));
    const inline = image?.startsWith('data:') ?? false;
    url.value = inline ? '' : (image ?? '');
    url.placeholder = inline ? 'Uploaded picture (stored with the character)' : 'https://… picture link';
    pictureNote.textContent = inline && image ? `Uploaded picture, ${Math.round((image.length * 3) / 4 / 1024)} KB` : '';
  };
  url.addEventListener('change', () => {
    const value = url.value.trim();
    pictureError.textContent = '';
    if (value !== '' && !safeImageUrl(value)) {
      pictureError.textContent = 'A picture link must start with http:// or https://.';
      return;
    }
    image = value === '' ? null : value;
    showPicture();
  });
  file.addEventListener('change', () => {
    const chosen = file.files?.[0];
    file.value = '';
    pictureError.textContent = '';
    if (!chosen) return;
    if (!chosen.type.startsWith('image/')) {
      pictureError.textContent = `“${chosen.name}” is not a picture.`;
      return;
    }
    if (chosen.size > MAX_PICTURE_BYTES) {
      pictureError.textContent = `That picture is ${formatKb(chosen.size)}; the limit is ${formatKb(MAX_PICTURE_BYTES)}. Choose a smaller image or use a link.`;
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      const result = typeof reader.result === 'string' ? reader.result : '';
      if (!safeImageUrl(result)) {
        pictureError.textContent = 'That file could not be read as a picture.';
        return;
      }
      image = result;
      showPicture();
    };
    reader.onerror = () => (pictureError.textContent = 'That file could not be read.');
    reader.readAsDataURL(chosen);
  });
  name.addEventListener('input', () => showPicture());
  showPicture();

  const formError = h('p', { class: 'field-error form-error', attrs: { role: 'alert' } });
  const save = h('button', { type: 'submit', class: 'btn btn-primary save' }, character ? 'Save changes' : 'Create character');
  const form = h(
    'form',
    { class: 'record-form char-form', noValidate: true, data: { updatedAt: character?.updated_at ?? '' } },
    h('h3', null, character ? `Edit ${character.name}` : 'New character'),
    field('Name', name),
    field('Voice', voice, 'Manage voices under Voices.'),
    field('System prompt', prompt, 'Who the character is and how they talk.'),
    h(
      'div',
      { class: 'field' },
      h('span', { class: 'field-label' }, 'Picture'),
      h(
        'div',
        { class: 'picture-row' },
        preview,
        h(
          'div',
          { class: 'picture-controls' },
          url,
          h(
            'div',
            { class: 'picture-buttons' },
            h('button', { type: 'button', class: 'btn upload', onclick: () => file.click() }, `Upload… (max ${formatKb(MAX_PICTURE_BYTES)})`),
            h('button', { type: 'button', class: 'btn btn-quiet remove-picture', onclick: () => ((image = null), (pictureError.textContent = ''), showPicture()) }, 'Remove'),
          ),
          pictureNote,
          pictureError,
          file,
        ),
      ),
    ),
    h('label', { class: 'check' }, active, h('span', null, 'Active — answers in conversations')),
    formError,
    h(
      'div',
      { class: 'form-actions' },
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
    if (trimmed === '') {
      formError.textContent = 'A character needs a name.';
      name.focus();
      return;
    }
    if (pictureError.textContent) {
      formError.textContent = 'Fix the picture first.';
      return;
    }
    const input: CharacterCreate = { name: trimmed, system_prompt: prompt.value, voice: voice.value || null, image_url: image, is_active: active.checked };
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

function formatKb(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.round(bytes / 1024)} KB`;
}
