// Find in the open conversation: a box in the top bar (Ctrl+F is the browser's; this one knows
// messages). Every match in the shown messages is highlighted with the CSS Custom Highlight API
// (no change to the DOM, so streaming and re-renders are unaffected); Enter / ↓ go to the next,
// Shift+Enter / ↑ to the previous, which is scrolled into view and marked; Esc closes.
import { h, iconButton } from './dom.ts';

const ALL = 'chorus-search';
const CURRENT = 'chorus-search-current';

export class ConversationSearch {
  readonly button: HTMLButtonElement;
  readonly bar: HTMLElement;
  private readonly input = h('input', { type: 'search', class: 'input search-input', placeholder: 'Find in this conversation', attrs: { 'aria-label': 'Find in this conversation' } });
  private readonly count = h('span', { class: 'search-count', attrs: { 'aria-live': 'polite' } });
  private matches: Range[] = [];
  private index = -1;

  constructor(private readonly list: () => HTMLElement) {
    this.button = h('button', { type: 'button', class: 'btn btn-small search-open', title: 'Find in this conversation', attrs: { 'aria-expanded': 'false' } }, 'Find');
    this.bar = h(
      'div',
      { class: 'search-bar', hidden: true, attrs: { role: 'search' } },
      this.input,
      this.count,
      iconButton('prev', 'Previous match', () => this.step(-1), 'search-prev'),
      iconButton('next', 'Next match', () => this.step(1), 'search-next'),
      iconButton('close', 'Close search', () => this.close(), 'search-close'),
    );
    this.button.onclick = () => (this.bar.hidden ? this.open() : this.close());
    this.input.addEventListener('input', () => this.run());
    this.input.addEventListener('keydown', (ev) => {
      const step = ev.key === 'Enter' ? (ev.shiftKey ? -1 : 1) : ev.key === 'ArrowDown' ? 1 : ev.key === 'ArrowUp' ? -1 : 0;
      if (step !== 0) {
        ev.preventDefault();
        this.step(step);
      } else if (ev.key === 'Escape') {
        ev.preventDefault(); // closes the search; does not stop the reply
        this.close();
      }
    });
  }

  open(): void {
    this.bar.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    this.input.focus();
    this.input.select();
    this.run();
  }

  close(): void {
    this.bar.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
    this.clear();
    this.button.focus();
  }

  /** Finds every match of the query in the messages' text. */
  run(): void {
    this.clear();
    const query = this.input.value.trim().toLocaleLowerCase();
    if (query === '') {
      this.count.textContent = '';
      return;
    }
    const walker = document.createTreeWalker(this.list(), NodeFilter.SHOW_TEXT, {
      acceptNode: (n) => (n.parentElement?.closest('.msg-text') ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT),
    });
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = (node.nodeValue ?? '').toLocaleLowerCase();
      for (let at = text.indexOf(query); at !== -1; at = text.indexOf(query, at + query.length)) {
        const range = new Range();
        range.setStart(node, at);
        range.setEnd(node, at + query.length);
        this.matches.push(range);
      }
    }
    if (typeof Highlight === 'function') CSS.highlights.set(ALL, new Highlight(...this.matches));
    this.index = this.matches.length > 0 ? 0 : -1;
    this.show();
  }

  private step(by: number): void {
    if (this.matches.length === 0) return;
    this.index = (this.index + by + this.matches.length) % this.matches.length;
    this.show();
  }

  private show(): void {
    for (const el of this.list().querySelectorAll('.is-search-current')) el.classList.remove('is-search-current');
    const range = this.matches[this.index];
    this.count.textContent = this.matches.length === 0 ? 'No matches' : `${this.index + 1} of ${this.matches.length}`;
    if (!range) return;
    if (typeof Highlight === 'function') CSS.highlights.set(CURRENT, new Highlight(range));
    const message = range.startContainer.parentElement?.closest('.msg');
    message?.classList.add('is-search-current');
    message?.scrollIntoView({ block: 'center' });
  }

  private clear(): void {
    this.matches = [];
    this.index = -1;
    if (typeof Highlight === 'function') {
      CSS.highlights.delete(ALL);
      CSS.highlights.delete(CURRENT);
    }
    for (const el of this.list().querySelectorAll('.is-search-current')) el.classList.remove('is-search-current');
  }
}
