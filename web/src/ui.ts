// Shared pieces of UI: toasts (errors and notices in plain words), modal panels built on
// <dialog>, and a confirmation dialog (deleting asks first).
import { h, icon, iconButton } from './dom.ts';

let toastHost: HTMLElement | undefined;

export type ToastKind = 'error' | 'info' | 'success';

/** Shows a message in the corner for a while (errors stay longer); returns the element. */
export function toast(message: string, kind: ToastKind = 'info', title?: string): HTMLElement {
  if (!toastHost) {
    toastHost = h('div', { class: 'toasts', attrs: { 'aria-live': 'polite', role: 'status' } });
    document.body.appendChild(toastHost);
  }
  const close = () => el.remove();
  const el = h(
    'div',
    { class: `toast toast-${kind}`, attrs: { role: kind === 'error' ? 'alert' : 'status' } },
    h('div', { class: 'toast-body' }, title ? h('strong', { class: 'toast-title' }, title) : null, h('span', { class: 'toast-text' }, message)),
    iconButton('close', 'Dismiss', close, 'toast-close'),
  );
  toastHost.appendChild(el);
  while (toastHost.children.length > 5) toastHost.firstElementChild?.remove();
  window.setTimeout(close, kind === 'error' ? 10_000 : 4_000);
  return el;
}

export interface Panel {
  dialog: HTMLDialogElement;
  body: HTMLElement;
  close(): void;
}

/** A modal panel with a title bar and a close button; removed from the page when closed. */
export function openPanel(title: string, className: string, onClose?: () => void): Panel {
  const body = h('div', { class: 'panel-body' });
  const dialog = h(
    'dialog',
    { class: `panel ${className}` },
    h('header', { class: 'panel-head' }, h('h2', null, title), iconButton('close', 'Close', () => dialog.close(), 'panel-close')),
    body,
  );
  dialog.addEventListener('close', () => {
    dialog.remove();
    onClose?.();
  });
  dialog.addEventListener('click', (ev) => {
    if (ev.target === dialog) dialog.close(); // a click on the backdrop
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  return { dialog, body, close: () => dialog.close() };
}

/** Asks before something irreversible; resolves true when confirmed. */
export function confirmDialog(question: string, confirmLabel = 'Delete'): Promise<boolean> {
  return new Promise((resolve) => {
    let answer = false;
    const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel');
    const ok = h('button', { type: 'button', class: 'btn btn-danger confirm-ok' }, icon('trash'), confirmLabel);
    const dialog = h('dialog', { class: 'confirm' }, h('p', { class: 'confirm-text' }, question), h('div', { class: 'confirm-actions' }, cancel, ok));
    cancel.onclick = () => dialog.close();
    ok.onclick = () => {
      answer = true;
      dialog.close();
    };
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

/** A labelled form row. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLLabelElement {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control, hint ? h('span', { class: 'field-hint' }, hint) : null);
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
