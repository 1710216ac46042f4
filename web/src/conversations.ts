// The conversation list in the sidebar: stored conversations, newest first. Click one to open
// it (main.ts sends `load_conversation`), rename one in place, delete one after confirming,
// or start a new one. Reloaded whenever a turn may have stored something.
import { api } from './api.ts';
import { formatDate, h, iconButton, replace } from './dom.ts';
import type { Conversation } from './types.ts';
import { confirmDialog, describeError, toast } from './ui.ts';

export interface ConversationActions {
  open(id: string): void;
  /** A conversation was deleted (main.ts starts a new one if it was the open one). */
  deleted(id: string): void;
  /** The titles changed (the header shows the open one's). */
  changed(): void;
}

export class ConversationList {
  readonly el: HTMLElement;
  private readonly list: HTMLElement;
  private conversations: Conversation[] = [];
  private current: string | null = null;
  private renaming: string | null = null;
  private refreshTimer: number | undefined;
  private loaded = false;

  constructor(private readonly actions: ConversationActions) {
    this.list = h('ul', { class: 'conv-list', attrs: { 'aria-label': 'Conversations' } });
    this.el = h('nav', { class: 'conversations' }, h('h2', { class: 'side-heading' }, 'Conversations'), this.list);
  }

  get currentTitle(): string | null {
    return this.conversations.find((c) => c.conversation_id === this.current)?.title ?? null;
  }

  has(id: string): boolean {
    return this.conversations.some((c) => c.conversation_id === id);
  }

  setCurrent(id: string | null): void {
    this.current = id;
    this.render();
  }

  /** Reloads soon (several events in a row cause one request). */
  refreshSoon(delayMs = 400): void {
    window.clearTimeout(this.refreshTimer);
    this.refreshTimer = window.setTimeout(() => void this.refresh(), delayMs);
  }

  async refresh(): Promise<void> {
    try {
      this.conversations = await api.conversations();
      this.loaded = true;
    } catch (e) {
      toast(describeError(e), 'error', 'Could not load conversations');
    }
    this.render();
    this.actions.changed();
  }

  private render(): void {
    if (this.renaming) return; // do not pull the input out from under the user
    replace(
      this.list,
      this.loaded && this.conversations.length === 0 ? h('li', { class: 'conv-empty' }, 'Your conversations appear here.') : null,
      this.conversations.map((c) => this.row(c)),
    );
  }

  private row(c: Conversation): HTMLElement {
    const id = c.conversation_id;
    const open = h(
      'button',
      { type: 'button', class: 'conv-open', title: c.title, onclick: () => this.actions.open(id) },
      h('span', { class: 'conv-title' }, c.title),
      h('span', { class: 'conv-date' }, formatDate(c.updated_at)),
    );
    const li = h(
      'li',
      { class: `conv-row${id === this.current ? ' is-current' : ''}`, data: { id } },
      open,
      h('span', { class: 'conv-actions' }, iconButton('pencil', 'Rename', () => this.rename(li, c), 'conv-rename'), iconButton('trash', 'Delete', () => void this.remove(c), 'conv-delete')),
    );
    if (id === this.current) open.setAttribute('aria-current', 'true');
    return li;
  }

  private rename(li: HTMLElement, c: Conversation): void {
    this.renaming = c.conversation_id;
    const input = h('input', { type: 'text', class: 'input conv-title-input', value: c.title, maxLength: 200, attrs: { 'aria-label': 'Conversation title' } });
    let done = false;
    const finish = async (save: boolean, refocus = false) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (save && title !== '' && title !== c.title) {
        try {
          await api.renameConversation(c.conversation_id, title);
        } catch (e) {
          toast(describeError(e), 'error', 'Could not rename');
        }
      }
      this.renaming = null;
      await this.refresh();
      // A rename ended from the keyboard gives focus back to its pencil, not to the page.
      if (refocus) this.list.querySelector<HTMLElement>(`[data-id="${CSS.escape(c.conversation_id)}"] .conv-rename`)?.focus();
    };
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') void finish(true, true);
      else if (ev.key === 'Escape') {
        ev.preventDefault(); // Esc ends the rename, it does not stop the reply too
        void finish(false, true);
      }
    });
    input.addEventListener('blur', () => void finish(true));
    replace(li, input);
    input.focus();
    input.select();
  }

  private async remove(c: Conversation): Promise<void> {
    if (!(await confirmDialog(`Delete “${c.title}” and all its messages?`))) return;
    try {
      await api.deleteConversation(c.conversation_id);
      this.actions.deleted(c.conversation_id);
    } catch (e) {
      toast(describeError(e), 'error', 'Could not delete');
    }
    await this.refresh();
  }
}
