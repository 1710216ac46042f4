// Listening controls (docs/client.md, "Listening"): speech on/off, mute, volume, playback speed,
// auto-play, and which microphone to use (navigator.mediaDevices.enumerateDevices; the chosen
// deviceId goes into getUserMedia), with the microphone's input level while it is on. Kept in
// localStorage, so they hold across visits. Without speech input on the server the microphone
// part says so in a person's words, and the mic button is hidden (main.ts).
import { h, icon, replace } from './dom.ts';
import { field, openPanel, type Panel } from './ui.ts';

export interface ListeningPrefs {
  /** Replies are spoken (off: text only, their audio is dropped). */
  speech: boolean;
  muted: boolean;
  /** 0–1. */
  volume: number;
  /** Playback speed, 0.5–2. */
  rate: number;
  /** A reply's audio plays as it comes (off: it waits for Play). */
  autoplay: boolean;
  /** A MediaDeviceInfo.deviceId; null: the browser's default microphone. */
  micDeviceId: string | null;
}

const KEY = 'chorus.listening';
export const RATES = [0.75, 1, 1.25, 1.5, 2] as const;
const DEFAULTS: ListeningPrefs = { speech: true, muted: false, volume: 1, rate: 1, autoplay: true, micDeviceId: null };

/** Each stored field checked on its own: a bad or missing one falls back to its default. */
const CHECKS: { [K in keyof ListeningPrefs]: (v: unknown) => v is ListeningPrefs[K] } = {
  speech: (v): v is boolean => typeof v === 'boolean',
  muted: (v): v is boolean => typeof v === 'boolean',
  autoplay: (v): v is boolean => typeof v === 'boolean',
  volume: (v): v is number => typeof v === 'number' && v >= 0 && v <= 1,
  rate: (v): v is number => typeof v === 'number' && (RATES as readonly number[]).includes(v),
  micDeviceId: (v): v is string | null => v === null || (typeof v === 'string' && v.length < 500),
};

export function loadListening(): ListeningPrefs {
  let stored: unknown;
  try {
    stored = JSON.parse(localStorage.getItem(KEY) ?? '{}');
  } catch {
    stored = {};
  }
  const out: ListeningPrefs = { ...DEFAULTS };
  if (typeof stored !== 'object' || stored === null) return out;
  for (const key of Object.keys(CHECKS) as Array<keyof ListeningPrefs>) {
    const value: unknown = Object.hasOwn(stored, key) ? (stored as Record<string, unknown>)[key] : undefined;
    if (CHECKS[key](value)) (out as unknown as Record<string, unknown>)[key] = value;
  }
  return out;
}

export interface ListeningHost {
  /** The prefs changed (already stored): apply them to the player and microphone. */
  changed(prefs: ListeningPrefs): void;
  /** Whether the server takes speech input (the microphone section is shown only then). */
  speechInput(): boolean;
  /** Whether the microphone is on now (the level meter runs only then). */
  micOn(): boolean;
}

export class ListeningControls {
  prefs = loadListening();
  /** The button in the top bar that opens the controls. */
  readonly button: HTMLButtonElement;
  private panel: Panel | undefined;
  private readonly meter = h('span', { class: 'level-meter', attrs: { role: 'meter', 'aria-label': 'Microphone level', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0' } }, h('i'));

  constructor(private readonly host: ListeningHost) {
    this.button = h('button', { type: 'button', class: 'icon-btn listening-btn', title: 'Listening', attrs: { 'aria-label': 'Listening controls' }, onclick: () => this.open() }, icon('speaker'));
    this.renderButton();
  }

  /** The microphone's level (0–1) while it is on. */
  level(level: number): void {
    const percent = Math.round(Math.min(1, level) * 100);
    this.meter.style.setProperty('--level', String(percent / 100));
    this.meter.setAttribute('aria-valuenow', String(percent));
  }

  update(patch: Partial<ListeningPrefs>): void {
    this.prefs = { ...this.prefs, ...patch };
    try {
      localStorage.setItem(KEY, JSON.stringify(this.prefs));
    } catch {
      // private mode or full storage: the change still applies to this visit
    }
    this.renderButton();
    this.host.changed(this.prefs);
  }

  private renderButton(): void {
    const silent = !this.prefs.speech || this.prefs.muted;
    this.button.classList.toggle('is-muted', silent);
    this.button.title = !this.prefs.speech ? 'Listening: speech is off' : this.prefs.muted ? 'Listening: muted' : 'Listening';
  }

  open(): void {
    if (this.panel) return;
    this.panel = openPanel('Listening', 'listening-panel', () => (this.panel = undefined));
    const p = this.prefs;
    const check = (name: string, checked: boolean, label: string, on: (v: boolean) => void) => {
      const input = h('input', { type: 'checkbox', name, checked });
      input.addEventListener('change', () => on(input.checked));
      return h('label', { class: 'check' }, input, ` ${label}`);
    };
    const volume = h('input', { type: 'range', name: 'volume', min: '0', max: '100', step: '5', value: String(Math.round(p.volume * 100)), attrs: { 'aria-label': 'Volume' } });
    const volumeText = h('output', { class: 'range-value' }, `${volume.value}%`);
    volume.addEventListener('input', () => {
      volumeText.textContent = `${volume.value}%`;
      this.update({ volume: Number(volume.value) / 100 });
    });
    const rate = h('select', { class: 'input', name: 'rate' }, RATES.map((r) => h('option', { value: String(r), selected: r === p.rate }, r === 1 ? 'Normal (1×)' : `${r}×`)));
    rate.addEventListener('change', () => this.update({ rate: Number(rate.value) }));
    replace(
      this.panel.body,
      h(
        'section',
        { class: 'form-section' },
        h('h3', null, 'Replies'),
        check('speech', p.speech, 'Speak replies aloud', (speech) => this.update({ speech })),
        check('muted', p.muted, 'Mute', (muted) => this.update({ muted })),
        check('autoplay', p.autoplay, 'Play replies as they arrive (off: press Play to hear each one)', (autoplay) => this.update({ autoplay })),
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Volume'), h('span', { class: 'range-row' }, volume, volumeText)),
        field('Playback speed', rate, 'Faster speech also sounds higher.'),
      ),
      this.micSection(),
    );
  }

  private micSection(): HTMLElement {
    const section = h('section', { class: 'form-section mic-section' }, h('h3', null, 'Microphone'));
    if (!this.host.speechInput()) {
      section.append(h('p', { class: 'mic-unavailable' }, 'Talking by voice is not available on this server yet, so there is no microphone to choose. You can type your messages; whoever runs the server can turn speech input on in Connection.'));
      return section;
    }
    const select = h('select', { class: 'input', name: 'mic' }, h('option', { value: '' }, 'The browser’s default'));
    select.addEventListener('change', () => this.update({ micDeviceId: select.value || null }));
    section.append(field('Microphone', select, 'Names appear once the browser has been allowed to use the microphone.'), h('div', { class: 'field' }, h('span', { class: 'field-label' }, 'Input level'), this.meter, h('span', { class: 'field-hint meter-hint' }, this.host.micOn() ? '' : 'Turn the microphone on to see its level.')));
    void listMicrophones().then((devices) => {
      select.append(...devices.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === this.prefs.micDeviceId }, d.label || `Microphone ${i + 1}`)));
    });
    return section;
  }
}

/** The audio inputs the browser offers (without labels until permission is given). */
async function listMicrophones(): Promise<MediaDeviceInfo[]> {
  if (!navigator.mediaDevices?.enumerateDevices) return [];
  try {
    return (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audioinput' && d.deviceId !== '' && d.deviceId !== 'default');
  } catch {
    return [];
  }
}
