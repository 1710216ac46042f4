// Export of the open conversation as a download, made in the page: its stored messages over REST
// (GET /api/conversations/:id/messages, every field, versions included) as JSON, or as Markdown
// (a heading, then each message under its speaker's name). A conversation not stored yet has
// nothing to export, and the menu says so.
import { api } from './api.ts';
import { h } from './dom.ts';
import type { Message } from './types.ts';
import { describeError, toast } from './ui.ts';

export type ExportFormat = 'markdown' | 'json';

export interface ExportSource {
  /** The open conversation when it is stored, else null. */
  storedConversation(): string | null;
  title(): string;
  userName(): string;
}

/** The conversation as Markdown: its title, then each message under its speaker's name. */
export function toMarkdown(title: string, messages: Message[], userName: string): string {
  const lines = [`# ${title}`, ''];
  for (const m of messages) {
    const who = m.role === 'system' ? 'Note' : (m.name ?? (m.role === 'user' ? userName : 'Character'));
    lines.push(`**${who}**${m.status === 'complete' ? '' : ` _(${m.status})_`}`, '', m.content, '');
  }
  return lines.join('\n');
}

const FORMATS: ReadonlyMap<ExportFormat, { label: string; ext: string; type: string; make: (title: string, messages: Message[], user: string) => string }> = new Map([
  ['markdown', { label: 'Markdown', ext: 'md', type: 'text/markdown', make: toMarkdown }],
  ['json', { label: 'JSON', ext: 'json', type: 'application/json', make: (title: string, messages: Message[]) => JSON.stringify({ title, messages }, null, 2) }],
] as const);

async function download(source: ExportSource, format: ExportFormat): Promise<void> {
  const id = source.storedConversation();
  const spec = FORMATS.get(format);
  if (!spec) return;
  if (!id) {
    toast('This conversation has no messages yet, so there is nothing to export.', 'info', 'Nothing to export');
    return;
  }
  try {
    const messages = await api.messages(id);
    const blob = new Blob([spec.make(source.title(), messages, source.userName())], { type: spec.type });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `${safeFileName(source.title())}.${spec.ext}`, hidden: true });
    document.body.appendChild(a);
    a.click();
    a.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (e) {
    toast(describeError(e), 'error', 'Could not export');
  }
}

function safeFileName(title: string): string {
  return title.replace(/[^\p{L}\p{N} _-]+/gu, '').trim().slice(0, 80) || 'conversation';
}

/** The Export menu (a <details>, so it opens with Enter/Space and closes with a second one). */
export function exportMenu(source: ExportSource): HTMLElement {
  const menu = h('details', { class: 'export-menu' }, h('summary', { class: 'btn btn-small' }, 'Export'));
  const list = h('div', { class: 'export-list', attrs: { role: 'group', 'aria-label': 'Export this conversation' } });
  for (const [format, spec] of FORMATS) {
    list.append(
      h('button', { type: 'button', class: `btn btn-small export-${format}`, onclick: () => {
        menu.open = false;
        void download(source, format);
      } }, `${spec.label} file`),
    );
  }
  menu.append(list);
  return menu;
}
