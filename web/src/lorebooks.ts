// The Lorebooks panel: standalone lorebooks (SillyTavern world info, or a card's character_book).
// Import them by file picker or by dropping files (several at once), create an empty one, open
// one to see and edit its name, description, settings and entries (add, edit, delete: the
// lorebook editor, web/src/lorebook-editor.ts), delete them, and attach them to this
// conversation or detach them: the entries of attached books join the characters' own when
// their keys come up. Records go through the REST API; attaching goes to the session
// (update_conversation).
import { api } from './api.ts';
import { dropFiles, filePicker } from './characters.ts';
import { h, icon, iconButton, replace } from './dom.ts';
import { changeConversation, type ConversationLink, conversationSettings } from './conversation-settings.ts';
import { bookEditor } from './lorebook-editor.ts';
import type { Lorebook, LorebookCreate } from './types.ts';
import { confirmDialog, describeError, field, openPanel, toast } from './ui.ts';

export function openLorebooks(link: ConversationLink): void {
  let books: Lorebook[] = [];
  let attached: string[] = [];
  let selected: string | null = null;
  const list = h('ul', { class: 'record-list lorebook-list', attrs: { 'aria-label': 'Lorebooks' } });
  const editor = h('div', { class: 'record-editor lorebook-editor' });

  const attach = (book: Lorebook, on: boolean, box: HTMLInputElement) => {
    const next = on ? [...attached.filter((id) => id !== book.id), book.id] : attached.filter((id) => id !== book.id);
    if (!changeConversation(link, { lorebook_ids: next })) {
      box.checked = !on;
      toast('Not connected: try again once the connection is back.', 'error');
      return;
    }
    attached = next;
  };
  const remove = async (book: Lorebook) => {
    if (!(await confirmDialog(`Delete the lorebook ${book.name}? It is detached from every conversation.`))) return;
    try {
      await api.deleteLorebook(book.id);
      if (selected === book.id) edit(null);
      await reload();
    } catch (e) {
      toast(describeError(e), 'error', 'Could not delete');
    }
  };
  const render = () =>
    replace(
      list,
      books.length === 0 ? h('li', { class: 'record-empty' }, 'No lorebooks yet: import a SillyTavern world-info file, or start a new one.') : null,
      books.map((book) => {
        const box = h('input', { type: 'checkbox', class: 'switch', checked: attached.includes(book.id), attrs: { 'aria-label': `Attach ${book.name} to this conversation` } });
        box.addEventListener('click', (ev) => ev.stopPropagation());
        box.addEventListener('change', () => attach(book, box.checked, box));
        const entries = book.book.entries.length;
        return h(
          'li',
          {
            class: `record-row lorebook-row${selected === book.id ? ' is-selected' : ''}`,
            data: { id: book.id },
            tabIndex: 0,
            onclick: () => edit(book),
            onkeydown: (ev: KeyboardEvent) => ev.key === 'Enter' && edit(book),
          },
          h('span', { class: 'record-main' }, h('span', { class: 'record-name' }, book.name), h('span', { class: 'record-sub' }, `${entries} ${entries === 1 ? 'entry' : 'entries'}`)),
          box,
          iconButton('trash', `Delete ${book.name}`, (ev) => (ev.stopPropagation(), void remove(book)), 'delete-lorebook'),
        );
      }),
    );
  const reload = async () => {
    try {
      [books, { lorebook_ids: attached }] = await Promise.all([api.lorebooks(), conversationSettings(link.conversationId())]);
    } catch (e) {
      toast(describeError(e), 'error', 'Could not load lorebooks');
    }
    render();
  };
  const edit = (book: Lorebook | null) => {
    selected = book?.id ?? null;
    render();
    replace(
      editor,
      book
        ? lorebookForm(book, async (saved) => {
            await reload();
            edit(books.find((b) => b.id === saved.id) ?? saved);
          })
        : h('p', { class: 'field-hint' }, 'Choose a lorebook to see and edit its entries.'),
    );
  };
  const create = async () => {
    try {
      const book = await api.createLorebook({ name: 'New lorebook', book: { entries: [] } });
      await reload();
      edit(book);
    } catch (e) {
      toast(describeError(e), 'error', 'Could not create');
    }
  };
  const importFiles = async (files: File[]) => {
    if (files.length === 0) return;
    try {
      const { lorebooks } = await api.importLorebooks(files);
      toast(`Imported ${lorebooks.map((b) => b.name).join(', ')}.`, 'success');
      await reload();
    } catch (e) {
      toast(describeError(e), 'error', 'Could not import');
    }
  };
  const picker = filePicker('lorebook_files', '.json,application/json', 'Lorebook files', (files) => void importFiles(files));

  const panel = openPanel('Lorebooks', 'records-panel lorebooks-panel');
  const body = h(
    'div',
    { class: 'lorebooks records' },
    h(
      'div',
      { class: 'record-side' },
      h(
        'div',
        { class: 'record-tools' },
        h('button', { type: 'button', class: 'btn btn-primary import-lorebooks', onclick: () => picker.click() }, 'Import…'),
        h('button', { type: 'button', class: 'btn new-lorebook', onclick: () => void create() }, icon('plus'), 'New'),
        picker,
      ),
      h('p', { class: 'field-hint drop-hint' }, 'Drop world-info files here to import them. Switch a lorebook on to use it in this conversation.'),
      list,
    ),
    editor,
  );
  dropFiles(body, (files) => void importFiles(files));
  panel.body.append(body);
  edit(null);
  void reload();
}

/** One lorebook's name, description and entries, saved with PATCH /api/lorebooks/{id}. */
function lorebookForm(lorebook: Lorebook, saved: (book: Lorebook) => Promise<void>): HTMLElement {
  const name = h('input', { type: 'text', class: 'input', name: 'lorebook_name', required: true, maxLength: 200, value: lorebook.name });
  const description = h('textarea', { class: 'input', name: 'lorebook_description', rows: 2, maxLength: 10_000, value: lorebook.description });
  const book = bookEditor(lorebook.book);
  const error = h('p', { class: 'field-error form-error', attrs: { role: 'alert' } });
  const save = h('button', { type: 'submit', class: 'btn btn-primary save-lorebook' }, 'Save lorebook');
  const form = h(
    'form',
    { class: 'record-form lorebook-form', noValidate: true },
    h('h3', null, `Edit ${lorebook.name}`),
    field('Name', name, 'A character links a lorebook by this name (its card’s “world”).'),
    field('Description', description),
    book.el,
    error,
    h('div', { class: 'form-actions' }, save),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    error.textContent = '';
    if (name.value.trim() === '') return void ((error.textContent = 'A lorebook needs a name.'), name.focus());
    save.disabled = true;
    api
      .updateLorebook(lorebook.id, { name: name.value.trim(), description: description.value, book: (book.value() ?? { entries: [] }) as LorebookCreate['book'] })
      .then(async (result) => {
        toast(`Saved ${result.name}.`, 'success');
        await saved(result);
      })
      .catch((e: unknown) => (error.textContent = describeError(e)))
      .finally(() => (save.disabled = false));
  });
  return form;
}
