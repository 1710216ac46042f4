// A form error shown next to its field, not in a toast: a message element right after the
// control's row, tied to the control by aria-describedby and aria-invalid, so it is seen where
// the mistake is and read out with the field. Clearing it removes both.
import { h } from './dom.ts';

let counter = 0;

/** Shows `message` under the field holding `control` (null clears it); every control listed is marked. */
export function setFieldError(controls: HTMLElement[], message: string | null): void {
  const first = controls[0];
  const field = first?.closest('.field') ?? first?.parentElement;
  if (!first || !field) return;
  let el = field.querySelector<HTMLElement>(':scope > .field-error');
  if (message === null) {
    el?.remove();
    for (const c of controls) {
      c.removeAttribute('aria-invalid');
      const rest = (c.getAttribute('aria-describedby') ?? '').split(' ').filter((id) => id !== '' && id !== el?.id);
      if (rest.length > 0) c.setAttribute('aria-describedby', rest.join(' '));
      else c.removeAttribute('aria-describedby');
    }
    return;
  }
  if (!el) {
    el = h('span', { class: 'field-error', id: `field-error-${++counter}`, attrs: { role: 'alert' } });
    field.appendChild(el);
  }
  el.textContent = message;
  for (const c of controls) {
    c.setAttribute('aria-invalid', 'true');
    const ids = new Set((c.getAttribute('aria-describedby') ?? '').split(' ').filter(Boolean));
    ids.add(el.id);
    c.setAttribute('aria-describedby', [...ids].join(' '));
  }
}
