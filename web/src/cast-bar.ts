// The cast bar: the open conversation's cast and its rules for who speaks. The bar in the top
// bar shows the cast; clicking it opens the cast panel under it: each member with a mute switch,
// a talkativeness slider (the character's own, saved over REST), a "talk now" button
// (trigger_character) and a remove button; a picker to add a character; the reply strategy, the
// self-responses and auto-mode switches and the auto-mode delay. Every change to the
// conversation is one update_conversation of the fields changed; what is shown is what the
// server says (session, conversation_loaded, conversation_updated, active_characters_data).
import { api } from './api.ts';
import { avatar, h, replace } from './dom.ts';
import type { Store } from './store.ts';
import type { CastSettings, ClientMessage, Conversation, ReplyStrategy } from './types.ts';
import { describeError, toast } from './ui.ts';

const STRATEGIES: Array<{ value: ReplyStrategy; label: string; hint: string }> = [
  { value: 'natural', label: 'Natural', hint: 'The named answer, then others by talkativeness' },
  { value: 'list', label: 'Everyone', hint: 'Every member, in cast order' },
  { value: 'manual', label: 'Only the named', hint: 'Nobody named, nobody answers' },
  { value: 'pooled', label: 'One at a time', hint: 'One who has not spoken since you did' },
];

export interface CastBarLink {
  /** The open conversation (the session's own before its first message). */
  conversationId: () => string | null;
  send: (message: ClientMessage) => void;
}

export class CastBar {
  /** The bar in the top bar: the cast at a glance; opens the panel. */
  readonly button = h('button', { type: 'button', class: 'cast-bar', title: 'The cast of this conversation', attrs: { 'aria-expanded': 'false', 'aria-controls': 'cast-panel' } });
  readonly panel = h('section', { class: 'cast-panel', id: 'cast-panel', hidden: true, attrs: { 'aria-label': 'Cast' } });
  private settings: CastSettings | undefined;
  private readonly strategy = h('select', { class: 'cast-strategy', attrs: { 'aria-label': 'Who answers' } }, STRATEGIES.map((s) => h('option', { value: s.value, title: s.hint }, s.label)));
  private readonly selfResponses = h('input', { type: 'checkbox', class: 'switch cast-self', attrs: { 'aria-label': 'Characters may answer themselves' } });
  private readonly autoMode = h('input', { type: 'checkbox', class: 'switch cast-auto', attrs: { 'aria-label': 'Auto-mode' } });
  private readonly delay = h('input', { type: 'number', class: 'cast-delay', min: '0', max: '600', step: '0.5', attrs: { 'aria-label': 'Auto-mode delay in seconds' } });
  private readonly members = h('ul', { class: 'cast-members' });
  private readonly addSelect = h('select', { class: 'cast-add-select', attrs: { 'aria-label': 'Character to add' } });
  private readonly addButton = h('button', { type: 'button', class: 'btn cast-add-btn' }, 'Add');

  constructor(
    private readonly store: Store,
    private readonly link: CastBarLink,
  ) {
    this.button.onclick = () => this.toggle();
    this.strategy.onchange = () => this.update({ reply_strategy: this.strategy.value as ReplyStrategy });
    this.selfResponses.onchange = () => this.update({ allow_self_responses: this.selfResponses.checked });
    this.autoMode.onchange = () => this.update({ auto_mode: this.autoMode.checked });
    this.delay.onchange = () => {
      const seconds = Number(this.delay.value);
      if (Number.isFinite(seconds) && seconds >= 0 && seconds <= 600) this.update({ auto_mode_delay_ms: Math.round(seconds * 1000) });
    };
    this.addButton.onclick = () => {
      if (this.addSelect.value && this.settings) this.update({ active_characters: [...this.settings.active_characters, this.addSelect.value] });
    };
    replace(
      this.panel,
      h(
        'div',
        { class: 'cast-rules' },
        h('label', { class: 'cast-rule' }, h('span', null, 'Who answers'), this.strategy),
        h('label', { class: 'cast-rule' }, this.selfResponses, h('span', null, 'Self-responses')),
        h('label', { class: 'cast-rule' }, this.autoMode, h('span', null, 'Auto-mode')),
        h('label', { class: 'cast-rule' }, h('span', null, 'after'), this.delay, h('span', null, 's')),
      ),
      this.members,
      h('div', { class: 'cast-add' }, this.addSelect, this.addButton),
    );
    store.subscribe(() => this.render());
    this.render();
  }

  /** The conversation's fields as the server has them (session, conversation_loaded, conversation_updated). */
  take(settings: CastSettings | Conversation): void {
    const { active_characters, reply_strategy, allow_self_responses, muted, auto_mode, auto_mode_delay_ms } = settings;
    this.settings = { ...this.settings, ...settings, active_characters, reply_strategy, allow_self_responses, muted, auto_mode, auto_mode_delay_ms };
    this.render();
  }

  private toggle(): void {
    this.panel.hidden = !this.panel.hidden;
    this.button.setAttribute('aria-expanded', String(!this.panel.hidden));
  }

  private update(fields: Partial<Pick<CastSettings, 'active_characters' | 'reply_strategy' | 'allow_self_responses' | 'muted' | 'auto_mode' | 'auto_mode_delay_ms'>>): void {
    const conversationId = this.link.conversationId();
    if (!conversationId) return;
    this.link.send({ type: 'update_conversation', data: { conversation_id: conversationId, ...fields } });
  }

  private render(): void {
    const cast = this.store.activeCharacters;
    replace(
      this.button,
      h('span', { class: 'cast-avatars' }, cast.slice(0, 5).map((c) => avatar(c.name, c.image_url, 'sm'))),
      h('span', { class: 'cast-names' }, cast.length === 0 ? 'No characters in this conversation' : cast.map((c) => c.name.split(/\s+/)[0]).join(', ')),
    );
    const s = this.settings;
    if (!s) return;
    this.strategy.value = s.reply_strategy;
    this.selfResponses.checked = s.allow_self_responses;
    this.autoMode.checked = s.auto_mode;
    if (document.activeElement !== this.delay) this.delay.value = String(s.auto_mode_delay_ms / 1000);
    replace(this.members, cast.length === 0 ? h('li', { class: 'record-empty' }, 'Nobody yet: add a character below.') : cast.map((c) => this.member(c.id)));
    const outside = this.store.characters.filter((c) => !s.active_characters.includes(c.id));
    replace(this.addSelect, outside.length === 0 ? h('option', { value: '' }, 'Everyone is in the cast') : outside.map((c) => h('option', { value: c.id }, c.name)));
    this.addSelect.disabled = this.addButton.disabled = outside.length === 0;
  }

  private member(id: string): HTMLElement {
    const s = this.settings as CastSettings;
    const c = this.store.character(id);
    if (!c) return h('li');
    const muted = s.muted.includes(id);
    const talk = h('input', { type: 'range', class: 'cast-talk', min: '0', max: '1', step: '0.05', value: String(c.talkativeness), attrs: { 'aria-label': `${c.name} talkativeness` } });
    const shown = h('span', { class: 'cast-talk-value' }, `${Math.round(c.talkativeness * 100)}%`);
    talk.oninput = () => (shown.textContent = `${Math.round(Number(talk.value) * 100)}%`);
    talk.onchange = () => {
      api
        .updateCharacter(id, { talkativeness: Number(talk.value) })
        .then(() => this.store.reloadCharacters())
        .catch((e: unknown) => toast(describeError(e), 'error', 'Could not change the character'));
    };
    const muteButton = h('button', { type: 'button', class: `btn cast-mute${muted ? ' is-on' : ''}`, attrs: { 'aria-pressed': String(muted), 'aria-label': `Mute ${c.name}` } }, muted ? 'Muted' : 'Mute');
    muteButton.onclick = () => this.update({ muted: muted ? s.muted.filter((m) => m !== id) : [...s.muted, id] });
    const talkNow = h('button', { type: 'button', class: 'btn cast-talk-now', attrs: { 'aria-label': `${c.name}, talk now` } }, 'Talk now');
    talkNow.onclick = () => this.link.send({ type: 'trigger_character', data: { character_id: id } });
    const remove = h('button', { type: 'button', class: 'btn cast-remove', attrs: { 'aria-label': `Remove ${c.name} from the cast` } }, 'Remove');
    remove.onclick = () => this.update({ active_characters: s.active_characters.filter((m) => m !== id) });
    return h(
      'li',
      { class: `cast-member${muted ? ' is-muted' : ''}`, data: { characterId: id } },
      avatar(c.name, c.image_url, 'sm'),
      h('span', { class: 'cast-member-name' }, c.name),
      h('label', { class: 'cast-talk-label', title: 'How readily this character speaks up unaddressed' }, talk, shown),
      muteButton,
      talkNow,
      remove,
    );
  }
}
