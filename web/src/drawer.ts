// The sidebar as a drawer on narrow screens (≤ 760 px): the menu button opens it; a tap outside
// it (on the scrim), Esc, and every navigation from it (New conversation, a conversation, a
// panel) close it. While closed on a phone it is inert (not reachable by Tab, not read out);
// opening moves focus into it, closing with Esc or the scrim gives focus back to the menu button.
import { h } from './dom.ts';

const NARROW = '(max-width: 760px)';
/** What in the sidebar navigates away from it (and so closes the drawer). */
const NAVIGATES = '.new-chat, .nav-btn, .conv-open';

export class Drawer {
  private readonly scrim = h('div', { class: 'drawer-scrim', attrs: { 'aria-hidden': 'true' } });
  private readonly narrow = window.matchMedia(NARROW);

  constructor(
    private readonly sidebar: HTMLElement,
    private readonly button: HTMLButtonElement,
  ) {
    sidebar.id ||= 'sidebar';
    button.setAttribute('aria-controls', sidebar.id);
    button.onclick = () => (this.isOpen ? this.close(true) : this.open());
    this.scrim.addEventListener('click', () => this.close(true));
    sidebar.addEventListener('click', (ev) => {
      if ((ev.target as Element).closest(NAVIGATES)) this.close(false);
    });
    document.addEventListener('keydown', (ev) => {
      // Something nearer (a rename, the find box) that used Esc has marked it handled.
      if (ev.key !== 'Escape' || ev.defaultPrevented || !this.isOpen || document.querySelector('dialog[open]')) return;
      ev.preventDefault();
      this.close(true);
    });
    this.narrow.addEventListener('change', () => this.render());
    this.render();
  }

  /** The scrim goes next to the sidebar (it covers the page under the open drawer). */
  get el(): HTMLElement {
    return this.scrim;
  }

  get isOpen(): boolean {
    return document.body.classList.contains('sidebar-open');
  }

  open(): void {
    document.body.classList.add('sidebar-open');
    this.render();
    this.sidebar.querySelector<HTMLElement>('button, [tabindex="0"], input')?.focus();
  }

  /** `returnFocus`: the menu button gets focus back (not when navigation moves it elsewhere). */
  close(returnFocus: boolean): void {
    if (!this.isOpen) return;
    document.body.classList.remove('sidebar-open');
    this.render();
    if (returnFocus && this.narrow.matches) this.button.focus();
  }

  private render(): void {
    const open = this.isOpen;
    this.button.setAttribute('aria-expanded', String(open));
    this.sidebar.inert = this.narrow.matches && !open;
    this.scrim.hidden = !(this.narrow.matches && open);
  }
}
