// A voice's delivery style (emotion, style, prosody: src/protocol.ts, voiceStyleSchema) as Higgs
// Audio v3 reads it: sentence-level tags in front of each sentence, e.g.
// `<|emotion:elation|><|style:whispering|><|prosody:speed_slow|>Hello.` A character's style
// overrides its voice's part by part (its emotion, its style, each prosody group), and a tag the
// sentence already opens with (written by the reply itself) overrides both. Only the higgs engine
// calls tagsFor(); the registry strips tags from every other engine's text.
import { prosodyGroupOf, type VoiceStyle } from '../protocol.ts';

/** The character's style over its voice's; undefined when neither sets anything. */
export function mergeStyles(voice: VoiceStyle | null | undefined, character: VoiceStyle | null | undefined): VoiceStyle | undefined {
  if (!character) return isEmpty(voice) ? undefined : (voice ?? undefined);
  if (!voice) return isEmpty(character) ? undefined : character;
  const prosody = new Map((voice.prosody ?? []).map((tag) => [prosodyGroupOf(tag), tag]));
  for (const tag of character.prosody ?? []) prosody.set(prosodyGroupOf(tag), tag);
  const merged: VoiceStyle = {
    emotion: character.emotion ?? voice.emotion ?? null,
    style: character.style ?? voice.style ?? null,
    prosody: [...prosody.values()],
  };
  return isEmpty(merged) ? undefined : merged;
}

function isEmpty(style: VoiceStyle | null | undefined): boolean {
  return !style || (!style.emotion && !style.style && (style.prosody ?? []).length === 0);
}

/** The tags a sentence opens with: `<|category:value|>`, in order, before any text. */
const LEADING_TAGS = /^(?:\s*<\|([a-z_]+):([^|>]*)\|>)+/i;
const TAG = /<\|([a-z_]+):([^|>]*)\|>/gi;

/** What the sentence's own leading tags already set: categories, and prosody groups. */
function ownSettings(text: string): Set<string> {
  const lead = LEADING_TAGS.exec(text)?.[0] ?? '';
  const own = new Set<string>();
  for (const [, category = '', value = ''] of lead.matchAll(TAG)) {
    const kind = category.toLowerCase();
    own.add(kind === 'prosody' ? `prosody:${prosodyGroupOf(value.trim().toLowerCase()) ?? value}` : kind);
  }
  return own;
}

/** The sentence with the style's tags in front (those it does not set itself). */
export function withStyleTags(text: string, style: VoiceStyle | undefined): string {
  if (!style) return text;
  const own = ownSettings(text);
  const tags: string[] = [];
  if (style.emotion && !own.has('emotion')) tags.push(`<|emotion:${style.emotion}|>`);
  if (style.style && !own.has('style')) tags.push(`<|style:${style.style}|>`);
  for (const tag of style.prosody ?? []) if (!own.has(`prosody:${prosodyGroupOf(tag)}`)) tags.push(`<|prosody:${tag}|>`);
  return tags.length === 0 ? text : `${tags.join('')}${text}`;
}
