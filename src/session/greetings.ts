// Greetings: a new conversation opens with each cast member's `first_mes`, in cast order, as
// that character's first message: streamed and spoken like a reply (a ConversationTurn whose
// replies come from textSource), stored with the character's `alternate_greetings` as the
// message's alternatives after it (select_alternative picks one). In a conversation with more
// than one character, a member's V3 `group_only_greetings` are alternatives too (after the
// others; the first of them opens when the card has no other greeting). `{{char}}` (the card's
// nickname when it has one), `{{user}}` and the other macros are replaced. When a conversation
// is new: docs/protocol.md, "Greetings".
import { randomUUID } from 'node:crypto';
import { expandMacros } from '../llm/macros.ts';
import { charName } from '../llm/prompt.ts';
import type { Character } from '../protocol.ts';
import { type ReplyPlan, textSource } from './turn.ts';

/** A member's greetings, the one it opens with first: first_mes, the alternates, and in a group its group-only ones. */
const greetingsOf = (character: Character, inGroup: boolean) => [character.first_mes, ...character.alternate_greetings, ...(inGroup ? character.group_only_greetings : [])];

/** The greeting replies of `cast` (members without a greeting say nothing); undefined when nobody greets. */
export function greetingPlans(cast: readonly Character[], userName: string, now = new Date()): ReplyPlan[] | undefined {
  const inGroup = cast.length > 1;
  const plans = cast.flatMap((character): ReplyPlan[] => {
    const expand = (text: string) => expandMacros(text, { char: charName(character), user: userName, original: '', now, random: Math.random }).trim();
    const [greeting, ...alternatives] = greetingsOf(character, inGroup).map(expand).filter((text) => text !== '');
    if (greeting === undefined) return [];
    return [{ character, messageId: randomUUID(), source: textSource(greeting), ...(alternatives.length > 0 ? { alternativesAfter: alternatives } : {}) }];
  });
  return plans.length > 0 ? plans : undefined;
}
