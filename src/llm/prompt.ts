// The fixed part of a character's prompt, built from its fields in this order (docs/architecture.md,
// "How a character's prompt is built"):
//   1. system prompt: the card's `system_prompt`, `{{original}}` standing for Chorus's default
//      instruction; one without `{{original}}` is followed by it (so a plain prompt gets what it
//      always got); an empty one is the default alone
//   2. lore entries placed `before_char`
//   3. description, 4. personality, 5. scenario
//   6. example dialogue: `mes_example` split at `<START>`, one block each
//   7. lore entries placed `after_char`
//   8. the user's persona description (SillyTavern's story string ends with it, too)
//   — these are one system message, sections apart by a blank line; then the history —
//   9. `post_history_instructions`, a system message after the history
// Lore comes from the character's `character_book` and the conversation's attached lorebooks.
// Macros are expanded in every section; empty sections are left out entirely.
import type { Character } from '../protocol.ts';
import { activeLore } from './lorebook.ts';
import { expandMacros, type MacroContext } from './macros.ts';

/** A cheap token estimate (≈ 4 characters a token, plus framing) for the history and lore budgets. */
export const estimateTokens = (text: string): number => Math.ceil(text.length / 4) + 4;

export interface PromptInput {
  character: Character;
  cast: readonly Character[];
  userName: string;
  /** The conversation's message texts, oldest first (the lorebook scans the newest). */
  history: readonly string[];
  /** The persona's description ('' for none); `userName` is its name. */
  persona?: string;
  /** The conversation's attached lorebooks (character_book-shaped), after the character's own. */
  lorebooks?: readonly unknown[];
  now?: Date;
  random?: () => number;
}

export interface Prompt {
  /** Sections 1–8, the first message. */
  system: string;
  /** Section 9, after the history; '' when the character has none. */
  postHistory: string;
}

/** Chorus's own instruction: who is speaking to whom, and how a spoken reply should read. */
export function defaultInstruction(character: Character, cast: readonly Character[], userName: string): string {
  const others = cast.filter((c) => c.id !== character.id).map((c) => c.name);
  const company = others.length > 0 ? ` The others in this conversation are ${others.join(', ')} and ${userName}.` : ` You are talking with ${userName}.`;
  return [
    `You are ${character.name}.${company}`,
    `Reply only as ${character.name}, in the first person, with ${character.name}'s next line of dialogue. Do not write lines for anyone else, and do not prefix your reply with your name. Your words are spoken aloud, so keep them conversational.`,
  ].join('\n\n');
}

const ORIGINAL = /\{\{original\}\}/i;
const START = /<START>/i;
const EXAMPLE_HEADING = '[Example dialogue]';

/** SillyTavern's default framing of the definition fields (its personality and scenario formats). */
const DEFINITION: ReadonlyArray<readonly ['description' | 'personality' | 'scenario', (text: string, char: string) => string]> = [
  ['description', (text) => text],
  ['personality', (text, char) => `${char}'s personality: ${text}`],
  ['scenario', (text) => `Scenario: ${text}`],
];

function systemSection(character: Character, expand: (text: string) => string, original: string): string {
  const own = character.system_prompt.trim();
  if (own === '') return original;
  return ORIGINAL.test(own) ? expand(own) : `${expand(own)}\n\n${original}`;
}

const exampleBlocks = (mesExample: string, expand: (text: string) => string) =>
  mesExample
    .split(START)
    .map((block) => expand(block).trim())
    .filter(Boolean)
    .map((block) => `${EXAMPLE_HEADING}\n${block}`);

export function buildPrompt(input: PromptInput): Prompt {
  const { character } = input;
  const original = defaultInstruction(character, input.cast, input.userName);
  const ctx: MacroContext = { char: character.name, user: input.userName, original, now: input.now ?? new Date(), random: input.random ?? Math.random };
  const expand = (text: string) => expandMacros(text, ctx);
  const lore = activeLore([character.character_book, ...(input.lorebooks ?? [])], input.history, estimateTokens, expand);
  const definition = DEFINITION.map(([field, frame]) => {
    const text = expand(character[field]).trim();
    return text === '' ? '' : frame(text, character.name);
  });
  const sections = [
    systemSection(character, expand, original),
    lore.before_char.join('\n'),
    ...definition,
    ...exampleBlocks(character.mes_example, expand),
    lore.after_char.join('\n'),
    expand(input.persona ?? ''),
  ];
  // Chorus has no post-history instruction of its own for `{{original}}` to stand for.
  const postHistory = expandMacros(character.post_history_instructions, { ...ctx, original: '' }).trim();
  return { system: sections.map((s) => s.trim()).filter(Boolean).join('\n\n'), postHistory };
}
