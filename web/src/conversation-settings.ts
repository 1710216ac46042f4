// The open conversation's persona and attached lorebooks, as the Personas and Lorebooks panels
// show and change them. A change goes out as update_conversation over the socket (the session
// applies it at once, to a conversation not stored yet as well); what the panels show is read
// from the stored conversation, or, before it is stored, from the changes made here.
import { api, ApiError } from './api.ts';
import type { ClientMessage } from './types.ts';

export interface ConversationSettings {
  persona_id: string | null;
  lorebook_ids: string[];
}

/** How a panel reaches the open conversation: main.ts provides it. */
export interface ConversationLink {
  conversationId(): string | null;
  send(message: ClientMessage): boolean;
}

const unstored = new Map<string, Partial<ConversationSettings>>();

export async function conversationSettings(id: string | null): Promise<ConversationSettings> {
  const none: ConversationSettings = { persona_id: null, lorebook_ids: [] };
  if (!id) return none;
  try {
    const c = await api.conversation(id);
    return { persona_id: c.persona_id, lorebook_ids: c.lorebook_ids };
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return { ...none, ...unstored.get(id) };
    throw e;
  }
}

/** Sends the change; false when not connected (nothing changed). */
export function changeConversation(link: ConversationLink, patch: Partial<ConversationSettings>): boolean {
  const id = link.conversationId();
  if (!id) return false;
  const sent = link.send({ type: 'update_conversation', data: { conversation_id: id, ...patch } });
  if (sent) unstored.set(id, { ...unstored.get(id), ...patch });
  return sent;
}
