// Toasts: short notices in plain words in the corner of the page. They live in the top layer
// (a `popover="manual"` host), so they are never behind an open <dialog> and its backdrop: a
// popover shown after a dialog is above it, and every new toast — and every panel opened or
// closed (raiseToasts) — puts the host back on top, inside the open modal dialog so it is not
// inert there. Errors stay longer than notices.
import { h, iconButton } from './dom.ts';

export type ToastKind = 'error' | 'info' | 'success';

let host: HTMLElement | undefined;

const LIFETIME_MS: Record<ToastKind, number> = { error: 12_000, info: 5_000, success: 4_000 };
const MAX_SHOWN = 5;

function toastHost(): HTMLElement {
  if (!host) {
    host = h('div', { class: 'toasts', attrs: { popover: 'manual', 'aria-live': 'polite', role: 'status' } });
    document.body.appendChild(host);
  }
  return host;
}

/**
 * Puts the toasts above everything: inside the topmost open modal dialog (everything outside a
 * modal dialog is inert: not clickable, not even hit by elementFromPoint), shown again as a
 * popover so they are last in the top layer. `closing`: a dialog about to go, which the toasts
 * leave (for the next dialog down, or the page).
 */
export function raiseToasts(closing?: Element): void {
  const el = host;
  if (!el) return;
  const dialogs = [...document.querySelectorAll<HTMLDialogElement>('dialog[open]')].filter((d) => d !== closing && d.matches(':modal'));
  const parent = dialogs.at(-1) ?? document.body;
  if (typeof el.showPopover !== 'function') return;
  if (el.matches(':popover-open')) el.hidePopover();
  if (el.parentElement !== parent) parent.appendChild(el);
  if (el.childElementCount > 0) el.showPopover();
}

function hideIfEmpty(): void {
  if (host && host.childElementCount === 0 && host.matches(':popover-open')) host.hidePopover();
}

/** Shows a message in the corner for a while; returns its element. */
export function toast(message: string, kind: ToastKind = 'info', title?: string): HTMLElement {
  const target = toastHost();
  const close = () => {
    el.remove();
    hideIfEmpty();
  };
  const el = h(
    'div',
    { class: `toast toast-${kind}`, attrs: { role: kind === 'error' ? 'alert' : 'status' } },
    h('div', { class: 'toast-body' }, title ? h('strong', { class: 'toast-title' }, title) : null, h('span', { class: 'toast-text' }, message)),
    iconButton('close', 'Dismiss', close, 'toast-close'),
  );
  target.appendChild(el);
  while (target.children.length > MAX_SHOWN) target.firstElementChild?.remove();
  raiseToasts();
  window.setTimeout(close, LIFETIME_MS[kind]);
  return el;
}
