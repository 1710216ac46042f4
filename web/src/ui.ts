// Shared pieces of UI: toasts (errors and notices in plain words), modal panels built on
// <dialog>, and a confirmation dialog (deleting asks first).
import { h, icon, iconButton } from './dom.ts';
import { raiseToasts } from './toast.ts';

export { toast, type ToastKind } from './toast.ts';

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
    raiseToasts(dialog); // the toasts leave with the panel's close, not with it
    dialog.remove();
    onClose?.();
  });
  dialog.addEventListener('click', (ev) => {
    if (ev.target === dialog) dialog.close(); // a click on the backdrop
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  raiseToasts(); // a panel opened over a toast must not hide it
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
      raiseToasts(dialog);
      dialog.remove();
      resolve(answer);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    raiseToasts();
  });
}

/** A labelled form row. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLLabelElement {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control, hint ? h('span', { class: 'field-hint' }, hint) : null);
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
