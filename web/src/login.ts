// Access to a server that has an AUTH_TOKEN (docs/security.md). On a 401 the page asks for the
// token once, in a dialog, and POST /api/login turns it into an HttpOnly cookie that the browser
// then sends by itself, on REST calls and on the same-origin WebSocket upgrade alike; so the
// page never stores the token. Everything that hits a 401 at the same time waits on one dialog.
import { h } from './dom.ts';
import { field } from './ui.ts';
import { raiseToasts } from './toast.ts';

let pending: Promise<void> | undefined;

/** Resolves once the server has accepted a token; the dialog stays until then. */
export function logIn(): Promise<void> {
  pending ??= askForToken().finally(() => (pending = undefined));
  return pending;
}

/**
 * Makes sure this page may use the server, asking for the token when it may not; true when it
 * had to. A browser cannot see why a WebSocket upgrade was refused, so the socket's caller
 * asks GET /api/session, which answers 401 for the same reasons.
 */
export async function ensureSession(): Promise<boolean> {
  const response = await fetch('/api/session').catch(() => undefined);
  if (response?.status !== 401) return false;
  await logIn();
  return true;
}

function askForToken(): Promise<void> {
  return new Promise((resolve) => {
    const input = h('input', { type: 'password', name: 'token', required: true, autocomplete: 'current-password', spellcheck: false, class: 'login-token' });
    const error = h('p', { class: 'field-error login-error', attrs: { role: 'alert', 'aria-live': 'assertive' } });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Unlock');
    const form = h(
      'form',
      { class: 'login-form', method: 'dialog' },
      h('h2', { id: 'login-title' }, 'Access token'),
      h('p', { class: 'login-text' }, 'This Chorus server asks for an access token: the one its administrator gave you. This browser remembers it after you enter it once.'),
      field('Token', input),
      error,
      h('div', { class: 'confirm-actions' }, submit),
    );
    const dialog = h('dialog', { class: 'confirm login', attrs: { 'aria-labelledby': 'login-title' } }, form);
    dialog.addEventListener('cancel', (ev) => ev.preventDefault()); // nothing works without it: Esc does not dismiss
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      error.textContent = '';
      void sendToken(input.value).then((problem) => {
        submit.disabled = false;
        if (problem === undefined) {
          dialog.close();
          raiseToasts(dialog);
          dialog.remove();
          resolve();
          return;
        }
        error.textContent = problem;
        input.select();
      });
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    raiseToasts(); // a toast stays above (and usable over) the dialog
    input.focus();
  });
}

/** POST /api/login; undefined when accepted, else what to tell the person. */
async function sendToken(token: string): Promise<string | undefined> {
  let response: Response;
  try {
    response = await fetch('/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: token.trim() }) });
  } catch {
    return 'The server cannot be reached.';
  }
  if (response.ok) return undefined;
  if (response.status === 401) return 'That is not the right token.';
  const body: unknown = await response.json().catch(() => undefined);
  const reason = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  return typeof reason === 'string' ? reason : 'The server could not check the token just now. Try again in a moment.';
}
