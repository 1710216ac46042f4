// The conversation view: one entry per message, the user's on the right, each character's
// under its name and picture. Replies grow as `text_chunk`s stream in (one text node, appended
// to), show a "replying" marker while streaming and a "speaking" marker while their audio
// plays, and say "interrupted" when cut off. Loaded history is drawn the same way.
import { avatar, h, icon, replace } from './dom.ts';
import type { Store } from './store.ts';
import type { Character, Message } from './types.ts';

interface Entry {
  el: HTMLElement;
  text: Text;
  status: HTMLElement;
  streaming: boolean;
}

interface StreamIds {
  message_id: string;
  character_id: string;
  character_name: string;
}

export class ChatView {
  readonly el: HTMLElement;
  private readonly list: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly entries = new Map<string, Entry>();
  private localCount = 0;

  constructor(private readonly store: Store) {
    this.empty = h('div', { class: 'chat-empty' });
    this.list = h('div', { class: 'chat-list', attrs: { role: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation' } });
    this.el = h('section', { class: 'chat-scroll' }, this.empty, this.list);
    store.subscribe(() => this.renderEmpty());
    this.renderEmpty();
  }

  /** How many replies are still streaming. */
  get replying(): number {
    let n = 0;
    for (const entry of this.entries.values()) if (entry.streaming) n++;
    return n;
  }

  /** Who is replying right now (names), for the status line. */
  get replyingNames(): string[] {
    const names: string[] = [];
    for (const entry of this.entries.values()) if (entry.streaming) names.push(entry.el.dataset.characterName ?? '');
    return names;
  }

  clear(): void {
    this.entries.clear();
    this.list.replaceChildren();
    this.renderEmpty();
  }

  showHistory(messages: Message[], userName: string): void {
    this.clear();
    this.keepAtBottom(() => {
      for (const m of messages) {
        if (m.role === 'user') this.list.appendChild(this.userEntry(m.content, m.name ?? userName, false));
        else if (m.role === 'assistant') {
          const entry = this.characterEntry({ message_id: m.message_id, character_id: m.character_id ?? '', character_name: m.name ?? 'Character' }, m.content);
          if (m.status === 'failed') this.setFailed(entry);
          else if (m.interrupted) this.setInterrupted(entry);
          this.entries.set(m.message_id, entry);
          this.list.appendChild(entry.el);
        } else this.list.appendChild(this.noteEntry(m.content));
      }
    }, true);
    this.renderEmpty();
  }

  addUser(text: string, name: string, spoken: boolean): void {
    this.keepAtBottom(() => this.list.appendChild(this.userEntry(text, name, spoken)), true);
    this.renderEmpty();
  }

  addNote(text: string): void {
    this.keepAtBottom(() => this.list.appendChild(this.noteEntry(text)));
    this.renderEmpty();
  }

  streamStart(ids: StreamIds): void {
    if (this.entries.has(ids.message_id)) return;
    const entry = this.characterEntry(ids, '');
    entry.streaming = true;
    entry.el.classList.add('is-replying');
    entry.status.replaceChildren(h('span', { class: 'dots', attrs: { 'aria-hidden': 'true' } }, h('i'), h('i'), h('i')), 'replying');
    this.entries.set(ids.message_id, entry);
    this.keepAtBottom(() => this.list.appendChild(entry.el));
    this.renderEmpty();
  }

  streamChunk(ids: StreamIds, text: string): void {
    let entry = this.entries.get(ids.message_id);
    if (!entry) {
      this.streamStart(ids); // joined mid-stream (e.g. after a reconnect)
      entry = this.entries.get(ids.message_id);
    }
    if (!entry || !entry.streaming || text === '') return;
    const grow = entry.text;
    this.keepAtBottom(() => grow.appendData(text));
  }

  /** `end`: how the reply ended — whole, cut off by the user, or cut short by a failure. */
  streamStop(ids: StreamIds, fullText: string, end: 'complete' | 'interrupted' | 'failed'): void {
    const entry = this.entries.get(ids.message_id);
    if (!entry) return;
    entry.streaming = false;
    entry.el.classList.remove('is-replying');
    // The stop carries the whole reply: it is authoritative over the chunks.
    if (fullText !== '' || end !== 'complete') entry.text.data = fullText;
    if (end === 'interrupted') this.setInterrupted(entry);
    else if (end === 'failed') this.setFailed(entry);
    else if (!entry.el.classList.contains('is-speaking') && !entry.el.classList.contains('is-interrupted')) entry.status.replaceChildren();
    this.keepAtBottom(() => undefined);
  }

  /** The connection dropped: streams still open will never finish. */
  cutOpenStreams(): void {
    for (const entry of this.entries.values()) {
      if (!entry.streaming) continue;
      entry.streaming = false;
      entry.el.classList.remove('is-replying');
      this.setInterrupted(entry);
    }
  }

  /** The reply's audio was stopped before the end: it was not all heard. */
  audioCut(messageId: string): void {
    const entry = this.entries.get(messageId);
    if (entry) this.setInterrupted(entry);
  }

  speaking(messageId: string, on: boolean): void {
    const entry = this.entries.get(messageId);
    if (!entry) return;
    entry.el.classList.toggle('is-speaking', on);
    if (entry.el.classList.contains('is-interrupted')) return;
    if (on) entry.status.replaceChildren(h('span', { class: 'eq', attrs: { 'aria-hidden': 'true' } }, h('i'), h('i'), h('i'), h('i')), 'speaking');
    else if (!entry.streaming) entry.status.replaceChildren();
  }

  // -- entries --------------------------------------------------------------------------------

  private characterEntry(ids: StreamIds, text: string): Entry {
    const character: Character | undefined = this.store.character(ids.character_id);
    const name = ids.character_name || character?.name || 'Character';
    const textNode = document.createTextNode(text);
    const status = h('span', { class: 'msg-status' });
    const el = h(
      'article',
      { class: 'msg msg-char', data: { messageId: ids.message_id, characterId: ids.character_id, characterName: name } },
      avatar(name, character?.image_url),
      h('div', { class: 'msg-body' }, h('div', { class: 'msg-meta' }, h('span', { class: 'msg-name' }, name), status), h('div', { class: 'msg-text' }, textNode)),
    );
    return { el, text: textNode, status, streaming: false };
  }

  private userEntry(text: string, name: string, spoken: boolean): HTMLElement {
    this.localCount++;
    return h(
      'article',
      { class: 'msg msg-user', data: { local: String(this.localCount) } },
      h(
        'div',
        { class: 'msg-body' },
        h('div', { class: 'msg-meta' }, spoken ? h('span', { class: 'msg-via', title: 'Spoken' }, icon('mic')) : null, h('span', { class: 'msg-name' }, name)),
        h('div', { class: 'msg-text' }, text),
      ),
    );
  }

  private noteEntry(text: string): HTMLElement {
    return h('div', { class: 'msg-note', attrs: { role: 'note' } }, text);
  }

  private setInterrupted(entry: Entry): void {
    entry.el.classList.add('is-interrupted');
    entry.el.classList.remove('is-speaking');
    entry.status.replaceChildren(h('span', { class: 'badge badge-warn' }, 'interrupted'));
  }

  /** The LLM failed mid-reply: what is shown is all there is, and it is not the whole answer. */
  private setFailed(entry: Entry): void {
    entry.el.classList.add('is-interrupted', 'is-failed');
    entry.el.classList.remove('is-speaking');
    entry.status.replaceChildren(h('span', { class: 'badge badge-danger', attrs: { title: 'The reply was cut short by an error' } }, 'failed'));
  }

  private renderEmpty(): void {
    const hasMessages = this.list.childElementCount > 0;
    this.empty.hidden = hasMessages;
    if (hasMessages) return;
    const cast = this.store.activeCharacters;
    const names = cast.map((c) => c.name);
    const who = names.length === 0 ? 'No character is active yet: add one under Characters.' : `Say hello to ${listNames(names)}. Mention a name to talk to one of them.`;
    replace(this.empty, h('div', { class: 'chat-empty-cast' }, cast.slice(0, 6).map((c) => avatar(c.name, c.image_url, 'lg'))), h('h2', null, 'A new conversation'), h('p', null, who));
  }

  /** Runs a change and keeps the view pinned to the newest message if it was (or `force`). */
  private keepAtBottom(change: () => void, force = false): void {
    const s = this.el;
    const pinned = force || s.scrollHeight - s.scrollTop - s.clientHeight < 120;
    change();
    if (pinned) s.scrollTop = s.scrollHeight;
  }
}

function listNames(names: string[]): string {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}
