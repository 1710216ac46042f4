// The fixed part of a character's prompt, built from its fields in this order (docs/architecture.md,
// "How a character's prompt is built"):
//   1. system prompt: the card's `system_prompt`, `{{original}}` standing for Chorus's default
//      instruction; one without `{{original}}` is followed by it (so a plain prompt gets what it
//      always got); an empty one is the default alone
//   2. lore entries placed `before_char`
//   3. description, 4. personality, 5. scenario
//   6. example dialogue: lore placed before the examples, `mes_example`, lore placed after them,
//      each split at `<START>`, one block each
//   7. lore entries placed `after_char`
//   8. the user's persona description (SillyTavern's story string ends with it, too)
//   — these are one system message, sections apart by a blank line; then the history, into
//   which the injections go at their depth —
//   9. `post_history_instructions`, a system message after the history
// The injections (SillyTavern's in-chat prompts): lore placed around the Author's Note (Chorus
// has no note of its own, so these entries alone are the note, at its default depth 4, as
// system), the character's note (`extensions.depth_prompt`: prompt, depth, role), and lore placed
// at a depth; those of one depth and role are one message. Lore comes from the character's
// `character_book`, its linked world (`extensions.world`) and the conversation's attached
// lorebooks. Macros are expanded in every section (`{{char}}` is the card's `nickname` when it
// has one); empty sections are left out entirely.
import type { Character } from '../protocol.ts';
import { isJsonObject } from '../util/json.ts';
import { activeLore, DEFAULT_DEPTH, type LoreRole } from './lorebook.ts';
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
  /** Other lorebooks (character_book-shaped) scanned with the character's own: its world, the attached ones. */
  lorebooks?: readonly unknown[];
  now?: Date;
  random?: () => number;
}

/** A message put into the history `depth` messages from its end (0: after the last). */
export interface Injection {
  depth: number;
  role: LoreRole;
  content: string;
}

export interface Prompt {
  /** Sections 1–8, the first message. */
  system: string;
  /** Section 9, after the history; '' when the character has none. */
  postHistory: string;
  /** In the order they stand at one depth (as SillyTavern places them: assistant, user, system last). */
  injections: Injection[];
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

/** What `{{char}}` stands for: the V3 card's nickname when it has one, else its name. */
export const charName = (character: Pick<Character, 'name' | 'nickname'>): string => (character.nickname.trim() === '' ? character.name : character.nickname);

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

/** Example dialogue (macros already replaced) as its blocks, split at `<START>`. */
const exampleBlocks = (examples: string) =>
  examples
    .split(START)
    .map((block) => block.trim())
    .filter(Boolean)
    .map((block) => `${EXAMPLE_HEADING}\n${block}`);

/** SillyTavern's extension_prompt_roles by name (depth_prompt.role), system by default. */
const ROLE_NAMES = new Map<unknown, LoreRole>([
  ['system', 'system'],
  ['user', 'user'],
  ['assistant', 'assistant'],
]);

/** The character's note: `extensions.depth_prompt` {prompt, depth (default 4), role (default system)}. */
function characterNote(character: Character, expand: (text: string) => string): Injection[] {
  const note = Object.hasOwn(character.extensions, 'depth_prompt') ? character.extensions.depth_prompt : undefined;
  if (!isJsonObject(note)) return [];
  const own = (key: string) => (Object.hasOwn(note, key) ? note[key] : undefined);
  const prompt = typeof own('prompt') === 'string' ? expand(own('prompt') as string).trim() : '';
  if (prompt === '') return [];
  const depth = Number(own('depth') ?? DEFAULT_DEPTH); // SillyTavern's editor stores it as text, too
  return [{ depth: Number.isFinite(depth) ? Math.max(0, Math.floor(depth)) : DEFAULT_DEPTH, role: ROLE_NAMES.get(own('role')) ?? 'system', content: prompt }];
}

/** At one depth SillyTavern ends with the system message: assistant, then user, then system. */
const ROLE_ORDER: readonly LoreRole[] = ['assistant', 'user', 'system'];

/** One message per depth and role, its parts joined by a line break, in placing order. */
function merged(parts: readonly Injection[]): Injection[] {
  const byKey = new Map<string, Injection>();
  for (const part of parts) {
    const key = `${part.depth}:${part.role}`;
    const same = byKey.get(key);
    if (same) same.content = `${same.content}\n${part.content}`;
    else byKey.set(key, { ...part });
  }
  return [...byKey.values()].sort((a, b) => b.depth - a.depth || ROLE_ORDER.indexOf(a.role) - ROLE_ORDER.indexOf(b.role));
}

export function buildPrompt(input: PromptInput): Prompt {
  const { character } = input;
  const original = defaultInstruction(character, input.cast, input.userName);
  const char = charName(character);
  const ctx: MacroContext = { char, user: input.userName, original, now: input.now ?? new Date(), random: input.random ?? Math.random };
  const expand = (text: string) => expandMacros(text, ctx);
  const lore = activeLore([character.character_book, ...(input.lorebooks ?? [])], input.history, estimateTokens, expand);
  const definition = DEFINITION.map(([field, frame]) => {
    const text = expand(character[field]).trim();
    return text === '' ? '' : frame(text, char);
  });
  const examples = [...lore.em_top, expand(character.mes_example), ...lore.em_bottom].flatMap(exampleBlocks); // lore comes expanded
  const sections = [
    systemSection(character, expand, original),
    lore.before_char.join('\n'),
    ...definition,
    ...examples,
    lore.after_char.join('\n'),
    expand(input.persona ?? ''),
  ];
  // The order SillyTavern gives prompts of one depth and role (by their keys): the Author's Note, the character's note, lore at a depth.
  const authorsNote = [...lore.an_top, ...lore.an_bottom].join('\n');
  const injections = merged([
    ...(authorsNote === '' ? [] : [{ depth: DEFAULT_DEPTH, role: 'system' as const, content: authorsNote }]),
    ...characterNote(character, expand),
    ...lore.at_depth.map((group) => ({ depth: group.depth, role: group.role, content: group.contents.join('\n') })),
  ]);
  // Chorus has no post-history instruction of its own for `{{original}}` to stand for.
  const postHistory = expandMacros(character.post_history_instructions, { ...ctx, original: '' }).trim();
  return { system: sections.map((s) => s.trim()).filter(Boolean).join('\n\n'), postHistory, injections };
}
