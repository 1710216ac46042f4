// Replies as markdown, loaded apart: the renderer (marked + DOMPurify, markdown-render.ts) is
// about 86 KB of the bundle, so it is its own chunk, fetched as soon as the page starts rather
// than before it can show anything. Until it has arrived (normally long before the first reply)
// a reply is shown as plain text, and every reply is drawn again when it comes.
type Render = (text: string) => DocumentFragment;

let render: Render | undefined;
let loading: Promise<void> | undefined;
const waiting = new Set<() => void>();

/** Starts loading the renderer (once). */
export function loadMarkdown(): Promise<void> {
  loading ??= import('./markdown-render.ts').then((m) => {
    render = m.renderMarkdown;
    for (const ready of waiting) ready();
    waiting.clear();
  });
  return loading;
}

/** The reply's text as sanitized markdown, or as plain text while the renderer is loading. */
export function renderReply(text: string): Node {
  return render ? render(text) : document.createTextNode(text);
}

/** Runs `ready` once the renderer has loaded (at once if it has). */
export function whenMarkdownReady(ready: () => void): void {
  if (render) ready();
  else {
    waiting.add(ready);
    void loadMarkdown();
  }
}
