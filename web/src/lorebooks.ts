// The Lorebooks panel: standalone lorebooks (SillyTavern world info, or a card's character_book).
// Import them by file picker or by dropping files (several at once), see their entries, delete
// them, and attach them to this conversation or detach them: the entries of attached books join
// the characters' own when their keys come up. Records go through the REST API; attaching goes
// to the session (update_conversation).
import { api } from './api.ts';
import { dropFiles, filePicker } from './characters.ts';
import { h, iconButton, replace } from './dom.ts';
import { changeConversation, type ConversationLink, conversationSettings } from './conversation-settings.ts';
import type { Lorebook } from './types.ts';
import { confirmDialog, describeError, openPanel, toast } from './ui.ts';

export function openLorebooks(link: ConversationLink): void {
  let books: Lorebook[] = [];
  let attached: string[] = [];
  const list = h('ul', { class: 'record-list lorebook-list', attrs: { 'aria-label': 'Lorebooks' } });

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
      await reload();
    } catch (e) {
      toast(describeError(e), 'error', 'Could not delete');
    }
  };
  const render = () =>
    replace(
      list,
      books.length === 0 ? h('li', { class: 'record-empty' }, 'No lorebooks yet: import a SillyTavern world-info file.') : null,
      books.map((book) => {
        const box = h('input', { type: 'checkbox', class: 'switch', checked: attached.includes(book.id), attrs: { 'aria-label': `Attach ${book.name} to this conversation` } });
        box.addEventListener('change', () => attach(book, box.checked, box));
        const entries = book.book.entries.length;
        return h(
          'li',
          { class: 'record-row lorebook-row', data: { id: book.id } },
          h('span', { class: 'record-main' }, h('span', { class: 'record-name' }, book.name), h('span', { class: 'record-sub' }, `${entries} ${entries === 1 ? 'entry' : 'entries'}`)),
          box,
          iconButton('trash', `Delete ${book.name}`, () => void remove(book), 'delete-lorebook'),
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
    { class: 'lorebooks' },
    h('div', { class: 'record-tools' }, h('button', { type: 'button', class: 'btn btn-primary import-lorebooks', onclick: () => picker.click() }, 'Import…'), picker),
    h('p', { class: 'field-hint drop-hint' }, 'Drop world-info files here to import them. Switch a lorebook on to use it in this conversation.'),
    list,
  );
  dropFiles(body, (files) => void importFiles(files));
  panel.body.append(body);
  void reload();
}
