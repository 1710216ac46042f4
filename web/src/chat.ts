// The conversation view: one entry per message, the user's on the right under the persona's
// name and picture (or initial), each character's under its name and picture. Replies grow as `text_chunk`s stream in (one text node, appended
// to), show a "replying" marker while streaming and a "speaking" marker while their audio
// plays, and say "interrupted" when cut off. Loaded history is drawn the same way.
// Every stored message has actions, on hover and on keyboard focus (docs/client.md): copy,
// edit in place, delete; a character's last reply also regenerate and continue, and a
// regenerated one its versions (‹ 2/3 ›). A cut reply shows what was not heard greyed out
// (message_truncated); a failed one has a retry button.
import { avatar, h, icon, iconButton, replace } from './dom.ts';
import { REPLY_CUT_WORDS, type ReplyCut } from './errors.ts';
import { renderReply, whenMarkdownReady } from './markdown.ts';
import { pictureOf } from './picture-memory.ts';
import type { Store } from './store.ts';
import type { Character, ClientMessage, Message, ServerMessageOf } from './types.ts';

interface Entry {
  el: HTMLElement;
  /** The message's text as written (the source of truth; `box` shows it, a reply as markdown). */
  text: Text;
  /** The element showing the text. */
  box: HTMLElement;
  /** Why the reply will end early, learned before its stop (an error naming the cause). */
  reason?: string;
  status: HTMLElement;
  streaming: boolean;
  role: 'user' | 'assistant';
  /** The stored message's id (a user message gets it from user_message_accepted). */
  id: string | undefined;
  alternatives: string[];
  index: number;
  /** The versions counter and the buttons that depend on the message's state. */
  counter: HTMLElement;
}

/** What a message action sends (regenerate and continue stop what is playing first). */
export type SendAction = (message: ClientMessage) => boolean;

/** The user's picture on a message, marked with what it shows (so a redraw can tell it is current). */
function userAvatar(name: string, picture: string | null): HTMLElement {
  const el = avatar(name, picture);
  el.classList.add('msg-user-avatar');
  el.setAttribute('data-picture', picture ?? '');
  el.setAttribute('data-name', name);
  return el;
}

/** A character's picture on a reply, marked with what it shows. */
function charAvatar(name: string, picture: string | null): HTMLElement {
  const el = avatar(name, picture);
  el.setAttribute('data-picture', picture ?? '');
  return el;
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
  /** User entries waiting for their id, oldest first. */
  private readonly unconfirmed: Entry[] = [];
  /** Messages asked to stream again: a regenerate starts from nothing, a continue appends. */
  private readonly restreaming = new Map<string, 'regenerate' | 'continue'>();

  constructor(
    private readonly store: Store,
    private readonly act: SendAction = () => false,
  ) {
    this.empty = h('div', { class: 'chat-empty' });
    this.list = h('div', { class: 'chat-list', attrs: { role: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation' } });
    this.el = h('section', { class: 'chat-scroll' }, this.empty, this.list);
    store.subscribe(() => {
      this.renderEmpty();
      this.renderUserPictures();
      this.renderCharacterPictures();
    });
    this.renderEmpty();
    // Replies drawn as plain text before the markdown renderer arrived are drawn again with it.
    whenMarkdownReady(() => this.redrawReplies());
  }

  private redrawReplies(): void {
    for (const entry of this.entries.values()) {
      if (entry.role !== 'assistant' || entry.el.classList.contains('is-truncated')) continue;
      this.render(entry);
    }
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
    this.unconfirmed.length = 0;
    this.list.replaceChildren();
    this.renderEmpty();
  }

  showHistory(messages: Message[], userName: string): void {
    this.clear();
    this.keepAtBottom(() => {
      for (const m of messages) this.list.appendChild(this.storedEntry(m, userName));
    }, true);
    this.markLast();
    this.renderEmpty();
  }

  /** message_added: a message another tab (or the API) added to this conversation. */
  added(m: Message, userName: string): void {
    if (this.entries.has(m.message_id)) return;
    this.keepAtBottom(() => this.list.appendChild(this.storedEntry(m, userName)));
    this.markLast();
    this.renderEmpty();
  }

  /** A stored message's element (registered by id when it is a user's or a character's). */
  private storedEntry(m: Message, userName: string): HTMLElement {
    if (m.role === 'user') {
      const entry = this.userEntry(m.content, m.name ?? userName, false);
      this.identify(entry, m.message_id);
      return entry.el;
    }
    if (m.role !== 'assistant') return this.noteEntry(m.content);
    const entry = this.characterEntry({ message_id: m.message_id, character_id: m.character_id ?? '', character_name: m.name ?? 'Character' }, m.content);
    this.setVersions(entry, m.alternatives ?? [], m.alternative_index ?? 0);
    if (m.status === 'failed') this.setCut(entry, 'failed');
    else if (m.interrupted) this.setCut(entry, 'stopped');
    this.entries.set(m.message_id, entry);
    return entry.el;
  }

  addUser(text: string, name: string, spoken: boolean): void {
    const entry = this.userEntry(text, name, spoken);
    this.unconfirmed.push(entry);
    this.keepAtBottom(() => this.list.appendChild(entry.el), true);
    this.markLast();
    this.renderEmpty();
  }

  /** The server took a user message and stored it under this id, as `name` (the oldest one waiting gets it). */
  userAccepted(messageId: string, name?: string): void {
    const entry = this.unconfirmed.shift();
    if (!entry) return;
    this.identify(entry, messageId);
    if (name !== undefined && name !== entry.el.dataset.userName) {
      entry.el.dataset.userName = name;
      const shown = entry.el.querySelector('.msg-name');
      if (shown) shown.textContent = name;
      this.renderUserPicture(entry.el);
    }
  }

  /** Each user message's picture: the persona it was sent as (by its name), else its initial. */
  private renderUserPictures(): void {
    for (const el of this.list.querySelectorAll<HTMLElement>('.msg-user')) this.renderUserPicture(el);
  }

  private renderUserPicture(el: HTMLElement): void {
    const name = el.dataset.userName ?? '';
    const picture = this.store.personaNamed(name)?.image_url ?? null;
    const current = el.querySelector('.avatar');
    if (current && current.getAttribute('data-picture') === (picture ?? '') && current.getAttribute('data-name') === name) return;
    const next = userAvatar(name, picture);
    if (current) current.replaceWith(next);
    else el.append(next);
  }

  /** Each reply's picture, once the characters are known (history can be drawn before they load). */
  private renderCharacterPictures(): void {
    for (const el of this.list.querySelectorAll<HTMLElement>('.msg-char')) {
      const id = el.dataset.characterId ?? '';
      const picture = pictureOf(this.store.character(id), id, el.dataset.characterName ?? '');
      const current = el.querySelector(':scope > .avatar');
      if (!current || current.getAttribute('data-picture') === (picture ?? '')) continue;
      current.replaceWith(charAvatar(el.dataset.characterName ?? '', picture));
    }
  }

  /** An interrupted reply keeps only what was heard: the rest is shown greyed out, as not said. */
  truncated(messageId: string, kept: string): void {
    const entry = this.entries.get(messageId);
    if (!entry) return;
    const shown = entry.text.data;
    const unheard = shown.startsWith(kept) ? shown.slice(kept.length) : '';
    this.setText(entry, kept);
    if (unheard !== '') entry.box.appendChild(h('span', { class: 'msg-unheard', title: 'Not heard: not kept in the conversation' }, unheard));
    entry.el.classList.add('is-truncated');
    this.setCut(entry, 'stopped');
  }

  /** A message changed (edit, swipe, regenerate, continue): the stored state is shown. */
  updated(data: ServerMessageOf<'message_updated'>['data']): void {
    const entry = this.entries.get(data.message_id);
    if (!entry) return;
    this.setText(entry, data.content);
    entry.el.classList.remove('is-truncated');
    this.setVersions(entry, data.alternatives, data.alternative_index);
  }

  /** message_deleted: the entry goes. */
  deleted(messageId: string): void {
    const entry = this.entries.get(messageId);
    if (!entry) return;
    this.entries.delete(messageId);
    entry.el.remove();
    this.markLast();
    this.renderEmpty();
  }

  addNote(text: string): void {
    this.keepAtBottom(() => this.list.appendChild(this.noteEntry(text)));
    this.renderEmpty();
  }

  streamStart(ids: StreamIds): void {
    const existing = this.entries.get(ids.message_id);
    if (existing) {
      this.restream(existing, this.restreaming.get(ids.message_id));
      return;
    }
    const entry = this.characterEntry(ids, '');
    entry.streaming = true;
    entry.el.classList.add('is-replying');
    entry.status.replaceChildren(h('span', { class: 'dots', attrs: { 'aria-hidden': 'true' } }, h('i'), h('i'), h('i')), 'replying');
    this.entries.set(ids.message_id, entry);
    this.keepAtBottom(() => this.list.appendChild(entry.el));
    this.markLast();
    this.renderEmpty();
  }

  streamChunk(ids: StreamIds, text: string): void {
    let entry = this.entries.get(ids.message_id);
    if (!entry) {
      this.streamStart(ids); // joined mid-stream (e.g. after a reconnect)
      entry = this.entries.get(ids.message_id);
    }
    if (!entry || !entry.streaming || text === '') return;
    // The text grows at once; the bubble is re-rendered at most once per frame (renderSoon).
    entry.text.appendData(text);
    this.renderSoon(entry);
  }

  /** `end`: how the reply ended — whole, cut off by the user, or cut short by a failure. */
  streamStop(ids: StreamIds, fullText: string, end: 'complete' | 'interrupted' | 'failed'): void {
    const entry = this.entries.get(ids.message_id);
    if (!entry) return;
    entry.streaming = false;
    entry.el.classList.remove('is-replying');
    this.restreaming.delete(ids.message_id);
    // The stop carries the whole reply: it is authoritative over the chunks.
    if (fullText !== '' || end !== 'complete') this.setText(entry, fullText);
    else this.render(entry);
    if (end === 'interrupted') this.setCut(entry, 'stopped');
    else if (end === 'failed') this.setCut(entry, 'failed');
    else if (!entry.el.classList.contains('is-speaking') && !entry.el.classList.contains('is-interrupted')) entry.status.replaceChildren();
    this.keepAtBottom(() => undefined);
  }

  /** The connection dropped: streams still open will never finish. */
  cutOpenStreams(): void {
    for (const entry of this.entries.values()) {
      if (!entry.streaming) continue;
      entry.streaming = false;
      entry.el.classList.remove('is-replying');
      this.render(entry);
      this.setCut(entry, 'connection');
    }
  }

  /**
   * An error that belongs to a reply (the model failed, speech failed): its bubble says it, in
   * plain words, instead of a toast over the conversation. False when no reply is there to mark.
   */
  markReplyError(kind: 'failed' | 'speech', reason: string): boolean {
    const entries = [...this.entries.values()].filter((e) => e.role === 'assistant');
    const streaming = entries.filter((e) => e.streaming);
    if (kind === 'failed') {
      for (const entry of streaming) entry.reason = reason;
      return streaming.length > 0;
    }
    const target = streaming.at(-1) ?? entries.find((e) => e.el.classList.contains('is-speaking')) ?? entries.at(-1);
    if (!target) return false;
    if (!target.el.classList.contains('is-interrupted')) this.setCut(target, 'speech', reason);
    return true;
  }

  /** The reply's audio was stopped before the end: it was not all heard. */
  audioCut(messageId: string): void {
    const entry = this.entries.get(messageId);
    if (entry) this.setCut(entry, 'stopped');
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
    const box = h('div', { class: 'msg-text msg-markdown' });
    const status = h('span', { class: 'msg-status' });
    const counter = h('span', { class: 'msg-versions', hidden: true });
    const el = h(
      'article',
      { class: 'msg msg-char', data: { messageId: ids.message_id, characterId: ids.character_id, characterName: name }, tabIndex: 0 },
      charAvatar(name, pictureOf(character, ids.character_id, name)),
      h('div', { class: 'msg-body' }, h('div', { class: 'msg-meta' }, h('span', { class: 'msg-name' }, name), status), box),
    );
    const entry: Entry = { el, text: textNode, box, status, streaming: false, role: 'assistant', id: ids.message_id, alternatives: [], index: 0, counter };
    this.render(entry);
    this.addActions(entry);
    return entry;
  }

  private userEntry(text: string, name: string, spoken: boolean): Entry {
    this.localCount++;
    const textNode = document.createTextNode(text);
    const box = h('div', { class: 'msg-text' }, textNode);
    const el = h(
      'article',
      { class: 'msg msg-user', data: { local: String(this.localCount), userName: name }, tabIndex: 0 },
      h(
        'div',
        { class: 'msg-body' },
        h('div', { class: 'msg-meta' }, spoken ? h('span', { class: 'msg-via', title: 'Spoken' }, icon('mic')) : null, h('span', { class: 'msg-name' }, name)),
        box,
      ),
      userAvatar(name, this.store.personaNamed(name)?.image_url ?? null),
    );
    const entry: Entry = { el, text: textNode, box, status: h('span'), streaming: false, role: 'user', id: undefined, alternatives: [], index: 0, counter: h('span', { hidden: true }) };
    this.addActions(entry);
    return entry;
  }

  /** A user entry learns its stored id: from now on it has actions. */
  private identify(entry: Entry, messageId: string): void {
    entry.id = messageId;
    entry.el.dataset.messageId = messageId;
    this.entries.set(messageId, entry);
  }

  // -- message actions ----------------------------------------------------------------------

  /** The action bar (hover / focus) and the keys of a focused message. */
  private addActions(entry: Entry): void {
    const isChar = entry.role === 'assistant';
    const bar = h(
      'div',
      { class: 'msg-actions', attrs: { role: 'toolbar', 'aria-label': 'Message actions' } },
      isChar ? iconButton('prev', 'Previous version (←)', () => this.swipe(entry, -1), 'msg-act msg-act-prev msg-act-versions') : null,
      entry.counter,
      isChar ? iconButton('next', 'Next version (→)', () => this.swipe(entry, 1), 'msg-act msg-act-next msg-act-versions') : null,
      isChar ? iconButton('redo', 'Regenerate (R)', () => this.regenerate(entry), 'msg-act msg-act-regenerate msg-act-last') : null,
      isChar ? iconButton('more', 'Continue (C)', () => this.continueReply(entry), 'msg-act msg-act-continue msg-act-last') : null,
      iconButton('pencil', 'Edit (E)', () => this.edit(entry), 'msg-act msg-act-edit'),
      iconButton('copy', 'Copy', () => void navigator.clipboard?.writeText(entry.text.data).catch(() => undefined), 'msg-act msg-act-copy'),
      iconButton('trash', 'Delete (Delete)', () => this.remove(entry), 'msg-act msg-act-delete'),
    );
    entry.el.querySelector('.msg-body')?.appendChild(bar);
    entry.el.addEventListener('keydown', (ev) => {
      if (ev.target !== entry.el) return; // typing in the editor, or a button's own keys
      const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
      const run = keyActions(this, entry).get(key);
      if (!run) return;
      ev.preventDefault();
      run();
    });
  }

  swipe(entry: Entry, step: number): void {
    const index = entry.index + step;
    if (!entry.id || index < 0 || index >= entry.alternatives.length) return;
    this.act({ type: 'select_alternative', data: { message_id: entry.id, index } });
  }

  regenerate(entry: Entry): void {
    if (!entry.id || !this.isLast(entry)) return;
    const stored = entry.text.data.trim() !== '' || entry.alternatives.length > 0;
    // A failed reply with no text was never stored: retry means new replies to the user's message.
    if (stored) this.restreaming.set(entry.id, 'regenerate');
    else this.deleted(entry.id);
    this.act({ type: 'regenerate', data: stored ? { message_id: entry.id } : {} });
  }

  continueReply(entry: Entry): void {
    if (!entry.id || !this.isLast(entry) || entry.text.data.trim() === '') return;
    this.restreaming.set(entry.id, 'continue');
    this.act({ type: 'continue', data: { message_id: entry.id } });
  }

  remove(entry: Entry): void {
    if (entry.id) this.act({ type: 'delete_message', data: { message_id: entry.id } });
  }

  /** Edit in place: the text becomes a box; Enter saves (Shift+Enter: new line), Escape cancels. */
  edit(entry: Entry): void {
    const box = entry.box;
    if (!entry.id || entry.el.classList.contains('is-editing')) return;
    const id = entry.id;
    const input = h('textarea', { class: 'msg-edit', value: entry.text.data, attrs: { 'aria-label': 'Edit message' } });
    const done = (save: boolean) => {
      const content = input.value;
      form.remove();
      box.hidden = false;
      entry.el.classList.remove('is-editing');
      entry.el.focus();
      if (save && content.trim() !== '' && content !== entry.text.data) this.act({ type: 'edit_message', data: { message_id: id, content } });
    };
    const form = h(
      'div',
      { class: 'msg-edit-form' },
      input,
      h('div', { class: 'msg-edit-buttons' }, h('button', { type: 'button', class: 'btn btn-primary msg-edit-save', onclick: () => done(true) }, 'Save'), h('button', { type: 'button', class: 'btn msg-edit-cancel', onclick: () => done(false) }, 'Cancel')),
    );
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey) {
        ev.preventDefault();
        done(true);
      } else if (ev.key === 'Escape') {
        ev.preventDefault();
        ev.stopPropagation(); // Escape here cancels the edit, not the reply
        done(false);
      }
    });
    entry.el.classList.add('is-editing');
    box.hidden = true;
    box.after(form);
    input.focus();
  }

  private setVersions(entry: Entry, alternatives: string[], index: number): void {
    entry.alternatives = alternatives;
    entry.index = index;
    const many = alternatives.length > 1;
    entry.counter.hidden = !many;
    entry.counter.textContent = many ? `${index + 1}/${alternatives.length}` : '';
    entry.el.classList.toggle('has-versions', many);
  }

  /** A message streams again under its id: a regenerate starts from nothing, a continue appends. */
  private restream(entry: Entry, how: 'regenerate' | 'continue' | undefined): void {
    entry.streaming = true;
    entry.el.classList.remove('is-interrupted', 'is-failed', 'is-truncated', 'is-cut');
    entry.reason = undefined;
    entry.el.querySelector('.msg-cut')?.remove();
    this.setText(entry, how === 'continue' ? entry.text.data : '');
    entry.el.classList.add('is-replying');
    entry.status.replaceChildren(h('span', { class: 'dots', attrs: { 'aria-hidden': 'true' } }, h('i'), h('i'), h('i')), 'replying');
  }

  private isLast(entry: Entry): boolean {
    return this.list.lastElementChild === entry.el;
  }

  /** Only the last message can be regenerated or continued: it alone shows those buttons. */
  private markLast(): void {
    for (const el of this.list.querySelectorAll('.msg.is-last')) el.classList.remove('is-last');
    this.list.lastElementChild?.classList.add('is-last');
  }

  private noteEntry(text: string): HTMLElement {
    return h('div', { class: 'msg-note', attrs: { role: 'note' } }, text);
  }

  /**
   * The reply ended early: its status says how (badge), the bubble says why in plain words, and
   * a Retry button (shown on the last message, where regenerate applies) asks for it again.
   */
  private setCut(entry: Entry, cut: ReplyCut, reason?: string): void {
    const words = REPLY_CUT_WORDS.get(cut);
    if (!words) return;
    entry.el.classList.add('is-interrupted', 'is-cut');
    entry.el.classList.toggle('is-failed', cut === 'failed');
    entry.el.classList.remove('is-speaking');
    entry.el.dataset.cut = cut;
    const danger = cut === 'failed';
    entry.status.replaceChildren(h('span', { class: `badge ${danger ? 'badge-danger' : 'badge-warn'}` }, words.badge));
    entry.el.querySelector('.msg-cut')?.remove();
    const retry = h('button', { type: 'button', class: 'btn btn-small msg-retry', title: 'Ask for this reply again', onclick: () => this.regenerate(entry) }, icon('redo'), 'Retry');
    entry.box.after(h('div', { class: 'msg-cut', attrs: { role: danger ? 'alert' : 'note' } }, h('span', { class: 'msg-cut-reason' }, reason ?? entry.reason ?? words.reason), retry));
  }

  /** The text changes: the bubble shows it again (a reply as markdown). */
  private setText(entry: Entry, text: string): void {
    entry.text.data = text;
    this.render(entry);
  }

  private readonly dirty = new Set<Entry>();
  private frame: number | undefined;

  /** Streaming: one render per animation frame, however many chunks came in it. */
  private renderSoon(entry: Entry): void {
    this.dirty.add(entry);
    this.frame ??= window.requestAnimationFrame(() => {
      this.frame = undefined;
      const entries = [...this.dirty];
      this.dirty.clear();
      this.keepAtBottom(() => entries.forEach((e) => this.render(e)));
    });
  }

  private render(entry: Entry): void {
    this.dirty.delete(entry);
    if (entry.role === 'user') {
      entry.box.replaceChildren(entry.text);
      return;
    }
    entry.box.replaceChildren(renderReply(entry.text.data));
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

/** The keys of a focused message (shown in the buttons' titles). */
function keyActions(view: ChatView, entry: Entry): Map<string, () => void> {
  return new Map<string, () => void>([
    ['r', () => view.regenerate(entry)],
    ['c', () => view.continueReply(entry)],
    ['e', () => view.edit(entry)],
    ['Delete', () => view.remove(entry)],
    ['ArrowLeft', () => view.swipe(entry, -1)],
    ['ArrowRight', () => view.swipe(entry, 1)],
  ]);
}

function listNames(names: string[]): string {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}
