// ConversationContext: one per connection. Who the user speaks as and which standalone lorebooks
// join the characters' own, for the conversation the session is in: its `persona_id` (or, when
// it names none or the persona is gone, the default persona, else a persona called USER_NAME
// with no description), its `lorebook_ids`, and the lorebooks its cast members link by name
// (SillyTavern's `extensions.world`). They are read from storage before a turn when they changed
// (or a persona or lorebook was edited), and handed to ChatLLM: `{{user}}` and the stored user
// messages take the persona's name, the prompt its description.
//
// The old `session_settings {user_name}` keeps working: it makes the session speak as a persona
// of that name with no description, in every conversation of the session, until a persona is
// chosen (update_conversation with `persona_id`).
import type { Logger } from 'pino';
import { NotFoundError, type Repo } from '../db/repo.ts';
import type { ChatLLM } from '../llm/chat.ts';
import type { Persona } from '../protocol.ts';

export interface ContextSettings {
  persona_id: string | null;
  lorebook_ids: readonly string[];
}


export class ConversationContext {
  /** The name session_settings gave, in place of any persona. */
  private nameOnly: string | undefined;
  /** What chat holds now (persona id, lorebook ids, name): a match needs no read. */
  private loadedKey: string | undefined;

  constructor(
    private readonly opts: { repo: Repo; chat: ChatLLM; fallbackName: string; logger: Logger },
  ) {}

  /** A persona or lorebook was changed somewhere: read them again before the next turn. */
  invalidate(): void {
    this.loadedKey = undefined;
  }

  /** session_settings {user_name}: a bare persona of that name, at once. */
  speakAs(name: string): void {
    this.nameOnly = name;
    this.opts.chat.userName = name;
    this.opts.chat.persona = '';
    this.loadedKey = undefined;
  }

  /** A persona was chosen for the conversation: it replaces the session_settings name. */
  personaChosen(): void {
    this.nameOnly = undefined;
    this.loadedKey = undefined;
  }

  /**
   * Brings ChatLLM's persona and lorebooks up to date with `settings` and the lorebook names the
   * cast links (`worlds`). A failed read keeps what it had.
   */
  async prepare(settings: ContextSettings, worlds: readonly string[] = []): Promise<void> {
    const key = JSON.stringify([settings.persona_id, settings.lorebook_ids, this.nameOnly, worlds]);
    if (key === this.loadedKey) return;
    const { chat, repo } = this.opts;
    try {
      const persona = this.nameOnly === undefined ? await this.persona(settings.persona_id) : undefined;
      const lorebooks = await repo.lorebooksByIds(settings.lorebook_ids);
      const linked = await repo.lorebooksByNames(worlds);
      chat.userName = this.nameOnly ?? persona?.name ?? this.opts.fallbackName;
      chat.persona = persona?.description ?? '';
      chat.lorebooks = lorebooks.map((l) => l.book);
      // A linked book that is also attached is used once, as attached.
      chat.worlds = new Map(linked.filter((l) => !settings.lorebook_ids.includes(l.id)).map((l) => [l.name, l.book]));
      this.loadedKey = key;
    } catch (error) {
      this.opts.logger.warn({ err: error }, 'could not read the persona and lorebooks; the turn uses the ones it had');
    }
  }

  private async persona(id: string | null): Promise<Persona | undefined> {
    if (id !== null) {
      try {
        return await this.opts.repo.getPersona(id);
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error; // deleted since: the default stands in
      }
    }
    return this.opts.repo.defaultPersona();
  }
}
