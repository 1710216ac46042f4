// Settings: the model and its sampling settings (`model_settings`, with the protocol's
// ranges) and the colour theme (who the user is, is the Personas panel's: personas.ts). What the user changes is
// remembered in localStorage and sent again on every connect, so a reconnect or a new visit
// talks with the same settings. Only changed values are stored: the rest follow the server.
import { h } from './dom.ts';
import { setFieldError } from './field-error.ts';
import { latency } from './latency.ts';
import { field, openPanel, type Panel, toast } from './ui.ts';
import type { ClientMessage, ModelSettings } from './types.ts';

type NumericKey = Exclude<keyof ModelSettings, 'model'>;
type Theme = 'auto' | 'dark' | 'light';

interface Saved {
  userName?: string;
  model?: Partial<ModelSettings>;
  theme?: Theme;
}

/** The sampling controls, with the ranges the server accepts (docs/protocol.md, model_settings). */
export const SAMPLING: Record<NumericKey, { label: string; min: number; max: number; step: number; hint: string }> = {
  temperature: { label: 'Temperature', min: 0, max: 2, step: 0.05, hint: 'Higher is more varied, lower more predictable.' },
  top_p: { label: 'Top P', min: 0, max: 1, step: 0.01, hint: 'Samples from the smallest set of tokens with this much probability.' },
  min_p: { label: 'Min P', min: 0, max: 1, step: 0.01, hint: 'Drops tokens less likely than this fraction of the best one.' },
  top_k: { label: 'Top K', min: 0, max: 200, step: 1, hint: 'Samples from the K most likely tokens (0 = off).' },
  frequency_penalty: { label: 'Frequency penalty', min: -2, max: 2, step: 0.05, hint: 'Discourages repeating the same words.' },
  presence_penalty: { label: 'Presence penalty', min: -2, max: 2, step: 0.05, hint: 'Encourages new topics.' },
  repetition_penalty: { label: 'Repetition penalty', min: 0, max: 2, step: 0.05, hint: '1 = off; above 1 discourages repetition.' },
};

/** A sampling value as typed: the value to use (clamped into range) and what to tell the user. */
export function checkSetting(key: NumericKey, raw: string): { value?: number; error?: string } {
  const spec = SAMPLING[key];
  const typed = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(typed)) return { error: `${spec.label} must be a number from ${spec.min} to ${spec.max}.` };
  const whole = key === 'top_k' ? Math.round(typed) : typed;
  const value = Math.min(spec.max, Math.max(spec.min, whole));
  if (value !== typed) return { value, error: `${spec.label} goes from ${spec.min} to ${spec.max}${key === 'top_k' ? ' in whole numbers' : ''}: set to ${value}.` };
  return { value };
}

const KEY = 'chorus.settings';
const CONVERSATION_KEY = 'chorus.conversation';

function load(): Saved {
  try {
    const value: unknown = JSON.parse(localStorage.getItem(KEY) ?? '{}');
    return typeof value === 'object' && value !== null ? (value as Saved) : {};
  } catch {
    return {};
  }
}

export function lastConversation(): string | null {
  return localStorage.getItem(CONVERSATION_KEY);
}
export function rememberConversation(id: string | null): void {
  if (id) localStorage.setItem(CONVERSATION_KEY, id);
  else localStorage.removeItem(CONVERSATION_KEY);
}

export class Settings {
  private saved: Saved = load();
  /** What the server last confirmed. */
  current: ModelSettings | undefined;
  /** The server's settings for a fresh connection, before ours were applied. */
  private defaults: ModelSettings | undefined;
  userName = 'User';
  private panel: { panel: Panel; refresh(): void } | undefined;
  private sendTimer: number | undefined;
  private pending: Partial<ModelSettings> = {};

  constructor(private readonly send: (message: ClientMessage) => boolean) {
    this.applyTheme();
    window.matchMedia?.('(prefers-color-scheme: dark)').addEventListener?.('change', () => this.applyTheme());
  }

  /** A new connection: remember the server's defaults, then send what the user chose. */
  onSession(defaults: ModelSettings, userName: string): void {
    this.defaults = defaults;
    this.current = defaults;
    this.userName = userName;
    const model = this.saved.model ?? {};
    if (Object.keys(model).length > 0) this.send({ type: 'model_settings', data: model });
    this.panel?.refresh();
  }

  onModelSettings(settings: ModelSettings): void {
    this.current = settings;
    this.panel?.refresh();
  }

  onUserName(name: string): void {
    this.userName = name;
    this.panel?.refresh();
  }

  open(): void {
    if (this.panel) return;
    const panel = openPanel('Settings', 'settings-panel', () => (this.panel = undefined));

    const modelInput = h('input', { type: 'text', class: 'input', name: 'model', spellcheck: false, maxLength: 200 });
    modelInput.addEventListener('change', () => {
      const model = modelInput.value.trim();
      if (model !== '') this.change({ model });
    });

    const sliders = (Object.keys(SAMPLING) as NumericKey[]).map((key) => {
      const spec = SAMPLING[key];
      const range = h('input', { type: 'range', min: String(spec.min), max: String(spec.max), step: String(spec.step), name: key, class: 'range', attrs: { 'aria-label': `${spec.label} slider` } });
      const number = h('input', { type: 'number', min: String(spec.min), max: String(spec.max), step: String(spec.step), class: 'input input-num', name: `${key}_value`, attrs: { 'aria-label': spec.label } });
      // One value, one validation for both controls: a number out of range is clamped into it
      // (both then show the clamped value, with a note next to the field); what is not a number
      // is refused and both go back to the value in use.
      const commit = (raw: string) => {
        const checked = checkSetting(key, raw);
        const shown = checked.value ?? this.current?.[key] ?? spec.min;
        range.value = number.value = String(shown);
        setFieldError([number, range], checked.error ?? null);
        if (checked.value !== undefined) this.change({ [key]: checked.value });
      };
      range.addEventListener('input', () => commit(range.value));
      number.addEventListener('change', () => commit(number.value));
      const row = h('div', { class: 'slider-row' }, range, number);
      return { key, range, number, el: field(spec.label, row, spec.hint) };
    });

    const themeSelect = h(
      'select',
      { class: 'input', name: 'theme' },
      h('option', { value: 'auto' }, 'Follow the system'),
      h('option', { value: 'dark' }, 'Dark'),
      h('option', { value: 'light' }, 'Light'),
    );
    themeSelect.addEventListener('change', () => {
      this.saved.theme = themeSelect.value as Theme;
      this.store();
      this.applyTheme();
    });

    const reset = h('button', { type: 'button', class: 'btn' }, 'Reset sampling to server defaults');
    reset.onclick = () => {
      delete this.saved.model;
      this.store();
      if (this.defaults) this.send({ type: 'model_settings', data: this.defaults });
    };

    const refresh = () => {
      const s = this.current;
      if (s && document.activeElement !== modelInput) modelInput.value = s.model;
      for (const slider of sliders) {
        if (!s || document.activeElement === slider.number || document.activeElement === slider.range) continue;
        slider.range.value = slider.number.value = String(s[slider.key]);
      }
      themeSelect.value = this.saved.theme ?? 'auto';
    };

    panel.body.append(
      h('section', { class: 'form-section' }, h('h3', null, 'You'), h('p', { class: 'field-hint' }, `The characters call you ${this.userName}. Who you are (name, description) is set under Personas.`), field('Theme', themeSelect), latency.toggle()),
      h('section', { class: 'form-section' }, h('h3', null, 'Model'), field('Model', modelInput, 'The language model to talk with, by its name on the server, e.g. meta-llama/llama-3.1-8b-instruct.'), h('div', { class: 'sliders' }, sliders.map((s) => s.el)), reset),
    );
    this.panel = { panel, refresh };
    refresh();
  }

  private change(patch: Partial<ModelSettings>): void {
    this.saved.model = { ...this.saved.model, ...patch };
    this.store();
    // Dragging a slider sends one message per pause, not one per pixel.
    this.pending = { ...this.pending, ...patch };
    window.clearTimeout(this.sendTimer);
    this.sendTimer = window.setTimeout(() => {
      const data = this.pending;
      this.pending = {};
      this.send({ type: 'model_settings', data });
    }, 150);
  }

  private store(): void {
    try {
      localStorage.setItem(KEY, JSON.stringify(this.saved));
    } catch {
      toast('Settings could not be saved in this browser (storage is full or disabled).', 'error');
    }
  }

  private applyTheme(): void {
    const theme = this.saved.theme ?? 'auto';
    const dark = theme === 'dark' || (theme === 'auto' && (window.matchMedia?.('(prefers-color-scheme: dark)').matches ?? true));
    document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  }
}
