// Keys that work anywhere on the page: Esc stops what is replying or playing (unless something
// nearer used it first — a dialog, the drawer, a message being edited, a rename), `/` goes to the
// message box (not while typing in a field). And the skip link, the page's first stop for Tab,
// which jumps straight to the message box.
import { h } from './dom.ts';

export interface ShortcutActions {
  stop(): void;
  focusMessageBox(): void;
}

const isTyping = (target: EventTarget | null) =>
  target instanceof HTMLElement && (target.isContentEditable || target.matches('input, textarea, select'));

export function installShortcuts(actions: ShortcutActions): void {
  document.addEventListener('keydown', (ev) => {
    if (ev.defaultPrevented || ev.isComposing || document.querySelector('dialog[open]')) return;
    if (ev.key === 'Escape') {
      actions.stop();
      return;
    }
    if (ev.key === '/' && !ev.ctrlKey && !ev.metaKey && !ev.altKey && !isTyping(ev.target)) {
      ev.preventDefault();
      actions.focusMessageBox();
    }
  });
}

/** "Skip to the message box": hidden until it has keyboard focus. */
export function skipLink(target: HTMLElement): HTMLAnchorElement {
  const link = h('a', { class: 'skip-link', href: `#${target.id}` }, 'Skip to the message box');
  link.addEventListener('click', (ev) => {
    ev.preventDefault();
    target.focus();
  });
  return link;
}
