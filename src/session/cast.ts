// ConversationCast: one per connection. The cast of the conversation the session is in and its
// rules for who speaks (reply_strategy, allow_self_responses, muted, auto_mode), the character
// records they refer to, and the conversation's PRNG. A new conversation starts from the
// default cast (the characters with is_active) and follows it until its cast is set or its
// first message is stored; a loaded one has its own, stored with it (docs/protocol.md, "Cast").
import type { HistoryEntry } from '../llm/chat.ts';
import { mentions } from '../llm/mentions.ts';
import { type Character, type Conversation, type ConversationCreate, DEFAULT_AUTO_MODE_DELAY_MS, type ReplyStrategy } from '../protocol.ts';
import { randomSeed, SeededRandom } from '../util/prng.ts';
import { chooseResponders } from './reply-strategy.ts';

/** The conversation fields the cast is made of (as stored and as update_conversation takes them). */
export interface CastSettings {
  active_characters: string[];
  reply_strategy: ReplyStrategy;
  allow_self_responses: boolean;
  muted: string[];
  auto_mode: boolean;
  auto_mode_delay_ms: number;
  /** Who the user speaks as and the attached lorebooks (ConversationContext resolves them). */
  persona_id: string | null;
  lorebook_ids: string[];
}
const castKeys = ['active_characters', 'reply_strategy', 'allow_self_responses', 'muted', 'auto_mode', 'auto_mode_delay_ms', 'persona_id', 'lorebook_ids'] as const;

const defaults = (active: string[]): CastSettings => ({
  active_characters: active,
  reply_strategy: 'natural',
  allow_self_responses: false,
  muted: [],
  auto_mode: false,
  auto_mode_delay_ms: DEFAULT_AUTO_MODE_DELAY_MS,
  persona_id: null,
  lorebook_ids: [],
});

const defaultCast = (characters: readonly Character[]) => characters.filter((c) => c.is_active).map((c) => c.id);

export class ConversationCast {
  private characters = new Map<string, Character>();
  private current: CastSettings = defaults([]);
  /** A new conversation whose cast was not set: it takes the default cast as it changes. */
  private followsDefaults = true;

  private random: SeededRandom;

  /** `seed`: REPLY_SEED; every conversation's PRNG starts from it, so choices are reproducible. */
  constructor(private readonly seed: number | undefined) {
    this.random = new SeededRandom(seed ?? randomSeed());
  }

  /** Where the PRNG stands; the returned function puts it back (a turn taken back draws nothing). */
  checkpoint(): () => void {
    const random = this.random;
    const state = random.state;
    return () => {
      random.state = state;
    };
  }

  get settings(): CastSettings {
    return { ...this.current, active_characters: [...this.current.active_characters], muted: [...this.current.muted], lorebook_ids: [...this.current.lorebook_ids] };
  }

  /** The cast members that exist, in cast order. */
  get members(): Character[] {
    return this.current.active_characters.flatMap((id) => this.characters.get(id) ?? []);
  }

  isMuted(id: string): boolean {
    return this.current.muted.includes(id);
  }

  character(id: string): Character | undefined {
    return this.characters.get(id);
  }

  /** New character records (all of them, after any change). */
  takeCharacters(all: readonly Character[]): void {
    this.characters = new Map(all.map((c) => [c.id, c]));
    if (this.followsDefaults) this.current.active_characters = defaultCast(all);
  }

  /** A new conversation: the default cast and rules, and a fresh PRNG. */
  startNew(): void {
    this.current = defaults(defaultCast([...this.characters.values()]));
    this.followsDefaults = true;
    this.reseed();
  }

  /** A stored conversation's own cast and rules (on load, a fresh PRNG; on an update, the same). */
  adopt(conversation: Conversation, { reseed = true } = {}): void {
    this.current = pickCast(conversation);
    this.followsDefaults = false;
    if (reseed) this.reseed();
  }

  /** The first message is stored with this cast: from now on it is the conversation's. */
  fix(): void {
    this.followsDefaults = false;
  }

  /** The default cast (the active characters' ids) becomes this conversation's (refresh_active_characters). */
  resetTo(defaultIds: string[]): void {
    this.current.active_characters = [...defaultIds];
  }

  /** The conversation's cast fields to create it with (with its first message, or before an update). */
  creation(): ConversationCreate {
    return this.settings;
  }

  /**
   * Who answers the history's last message by the strategy: a user message (nobody has spoken
   * since), or in auto-mode the last reply (its speaker is the last speaker).
   */
  responders(history: readonly HistoryEntry[]): Character[] {
    const last = history.at(-1);
    let userAt = history.length - 1;
    while (userAt >= 0 && history[userAt]?.role !== 'user') userAt--;
    const sinceUser = history.slice(userAt + 1);
    const cast = this.members.map((c) => ({ ...c, muted: this.isMuted(c.id) }));
    const chosen = chooseResponders({
      text: last?.content ?? '',
      cast,
      lastSpeaker: last?.role === 'assistant' ? (last.character_id ?? undefined) : undefined,
      spokeSinceUser: sinceUser.flatMap((h) => (h.character_id ? [h.character_id] : [])),
      strategy: this.current.reply_strategy,
      allowSelfResponses: this.current.allow_self_responses,
      rng: this.random.next,
    });
    return chosen.flatMap((c) => this.characters.get(c.id) ?? []);
  }

  /**
   * Characters the text names who are not in the cast, in order of mention. A mention that is
   * also one of a cast member ("Ada" with Ada Lovelace in the cast and Ada Byron not) is the
   * cast member's.
   */
  namedOutside(text: string): Character[] {
    const members = this.members;
    const taken = new Set(mentions(text, members).map((m) => m.at));
    const outside = [...this.characters.values()].filter((c) => !members.includes(c));
    return mentions(text, outside).filter((m) => !taken.has(m.at)).map((m) => m.character);
  }

  private reseed(): void {
    this.random = new SeededRandom(this.seed ?? randomSeed());
  }
}

/** The cast fields of a conversation record. */
export function pickCast(conversation: Conversation): CastSettings {
  return Object.fromEntries(castKeys.map((k) => [k, structuredClone(conversation[k])])) as unknown as CastSettings;
}
