// Re-reading a loaded conversation's stored history into a session's live one: after waiting for
// another session's turn (its replies are stored by then, their notices may still be on the way)
// and after the change bus lost notices. Messages new or changed in storage are taken into the
// history and pushed (message_added / message_updated); messages gone from storage leave it
// (message_deleted), but only when the session has nothing of its own still to store.
import { NotFoundError, type Repo } from '../db/repo.ts';
import type { ChatLLM } from '../llm/chat.ts';
import type { Message, ServerMessage } from '../protocol.ts';

export interface HistorySyncDeps {
  repo: Repo;
  chat: ChatLLM;
  conversationId: string;
  /** Whether a history entry missing from storage was deleted (no message of the session is still unstored). */
  mayForget: () => boolean;
  /** Whether the session still has this conversation loaded (checked after the read). */
  isCurrent: () => boolean;
  send: (message: ServerMessage) => void;
}

type Entry = { content: string; name: string; alternatives?: string[] };

const sameEntry = (m: Message, entry: Entry | undefined) =>
  entry !== undefined && entry.content === m.content && (m.name === null || entry.name === m.name) && (entry.alternatives ?? []).length === m.alternatives.length;

/** The live history has this stored message as it is (a notice of it is old news). */
export const knows = (chat: ChatLLM, m: Message) => sameEntry(m, chat.history.find((h) => h.message_id === m.message_id));

export async function syncHistory(deps: HistorySyncDeps): Promise<void> {
  const { chat, conversationId } = deps;
  const stored = await deps.repo.listMessages({ conversation_id: conversationId }).catch((e: unknown) => {
    if (e instanceof NotFoundError) return undefined; // the conversation was deleted
    throw e;
  });
  if (!stored) return;
  if (!deps.isCurrent()) return;
  const entries = new Map(chat.history.flatMap((h) => (h.message_id === undefined ? [] : [[h.message_id, h] as const])));
  for (const message of stored) {
    const entry = entries.get(message.message_id);
    if (sameEntry(message, entry) || !chat.takeMessage(message)) continue;
    deps.send({ type: entry ? 'message_updated' : 'message_added', data: message });
  }
  if (!deps.mayForget()) return;
  const kept = new Set(stored.map((m) => m.message_id));
  for (const id of entries.keys()) {
    if (kept.has(id) || !chat.forgetMessage(id)) continue;
    deps.send({ type: 'message_deleted', data: { message_id: id, conversation_id: conversationId } });
  }
}
