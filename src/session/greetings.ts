// Greetings: a new conversation opens with each cast member's `first_mes`, in cast order, as
// that character's first message: streamed and spoken like a reply (a ConversationTurn whose
// replies come from textSource), stored with the character's `alternate_greetings` as the
// message's alternatives after it (select_alternative picks one). `{{char}}`, `{{user}}` and
// the other macros are replaced. When a conversation is new: docs/protocol.md, "Greetings".
import { randomUUID } from 'node:crypto';
import { expandMacros } from '../llm/macros.ts';
import type { Character } from '../protocol.ts';
import { type ReplyPlan, textSource } from './turn.ts';

/** The greeting replies of `cast` (members without a first_mes say nothing); undefined when nobody greets. */
export function greetingPlans(cast: readonly Character[], userName: string, now = new Date()): ReplyPlan[] | undefined {
  const plans = cast.flatMap((character): ReplyPlan[] => {
    const expand = (text: string) => expandMacros(text, { char: character.name, user: userName, original: '', now, random: Math.random }).trim();
    const greeting = expand(character.first_mes);
    if (greeting === '') return [];
    const alternatives = character.alternate_greetings.map(expand).filter((text) => text !== '');
    return [{ character, messageId: randomUUID(), source: textSource(greeting), ...(alternatives.length > 0 ? { alternativesAfter: alternatives } : {}) }];
  });
  return plans.length > 0 ? plans : undefined;
}
