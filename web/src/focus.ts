// Focus kept in place across a re-render: lists here are redrawn from data (replaceChildren),
// which would drop the focused row or button to <body>. keepFocus notes what had focus — the
// row by its data-id, and the control in it by its first class — and focuses its successor.
export function keepFocus(container: HTMLElement, render: () => void): void {
  const active = document.activeElement;
  const selector = active instanceof HTMLElement && container.contains(active) ? focusSelector(active) : null;
  render();
  if (selector && !container.contains(document.activeElement)) container.querySelector<HTMLElement>(selector)?.focus();
}

function focusSelector(el: HTMLElement): string | null {
  const row = el.closest<HTMLElement>('[data-id]');
  if (!row?.dataset.id) return null;
  const rowSelector = `[data-id="${CSS.escape(row.dataset.id)}"]`;
  if (row === el) return rowSelector;
  const cls = el.classList[0];
  return cls ? `${rowSelector} .${CSS.escape(cls)}` : rowSelector;
}
