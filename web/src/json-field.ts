// A JSON value edited as text (a card's unknown extension fields, V3 assets, multilingual notes):
// checked as it is typed, the reason shown under it, and read back only when it is valid JSON of
// the wanted shape. Keys such as `__proto__` are the server's to refuse (with the field named).
import { h } from './dom.ts';

export type JsonShape = 'object' | 'array';

export interface JsonField {
  el: HTMLElement;
  /** The value, or undefined while the text is not valid (the reason is on show). */
  value(): unknown;
  /** The reason the text is not valid, '' when it is. */
  problem(): string;
}

const SHAPES: ReadonlyMap<JsonShape, (v: unknown) => boolean> = new Map([
  ['object', (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v)],
  ['array', (v: unknown) => Array.isArray(v)],
]);

export function jsonField(name: string, label: string, initial: unknown, shape: JsonShape, hint: string): JsonField {
  const area = h('textarea', { class: 'input json-input', name, rows: 5, spellcheck: false, value: JSON.stringify(initial, null, 2), attrs: { 'aria-label': label } });
  const error = h('span', { class: 'field-error json-error', attrs: { role: 'alert' } });
  const read = (): { value?: unknown; problem: string } => {
    let value: unknown;
    try {
      value = JSON.parse(area.value);
    } catch (e) {
      return { problem: `${label} is not valid JSON: ${e instanceof Error ? e.message : String(e)}` };
    }
    return SHAPES.get(shape)?.(value) ? { value, problem: '' } : { problem: `${label} must be a JSON ${shape}.` };
  };
  const check = () => {
    const { problem } = read();
    error.textContent = problem;
    area.setAttribute('aria-invalid', String(problem !== ''));
  };
  area.addEventListener('input', check);
  const el = h('label', { class: 'field json-field' }, h('span', { class: 'field-label' }, label), area, h('span', { class: 'field-hint' }, hint), error);
  return { el, value: () => read().value, problem: () => read().problem };
}
