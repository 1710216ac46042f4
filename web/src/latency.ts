// The optional latency readout (a setting, off by default, kept in localStorage): for the last
// message the user sent, how long until the first text of a reply arrived and until its first
// audio frame arrived, measured on the page from the send (performance.now()). Shown in the
// status line as "first text 420 ms · first audio 910 ms".
import { h } from './dom.ts';

const KEY = 'chorus.latency';

export class LatencyReadout {
  readonly el = h('span', { class: 'latency', hidden: true, attrs: { 'aria-label': 'Reply latency' } });
  private sentAt: number | undefined;
  private firstText: number | undefined;
  private firstAudio: number | undefined;

  constructor() {
    this.render();
  }

  get enabled(): boolean {
    return localStorage.getItem(KEY) === 'on';
  }

  set enabled(on: boolean) {
    if (on) localStorage.setItem(KEY, 'on');
    else localStorage.removeItem(KEY);
    this.render();
  }

  /** The user sent a message: timing starts again. */
  sent(): void {
    this.sentAt = performance.now();
    this.firstText = this.firstAudio = undefined;
    this.render();
  }

  text(): void {
    if (this.sentAt === undefined || this.firstText !== undefined) return;
    this.firstText = performance.now() - this.sentAt;
    this.render();
  }

  audio(): void {
    if (this.sentAt === undefined || this.firstAudio !== undefined) return;
    this.firstAudio = performance.now() - this.sentAt;
    this.render();
  }

  /** The switch for the Settings panel. */
  toggle(): HTMLLabelElement {
    const box = h('input', { type: 'checkbox', name: 'show_latency', checked: this.enabled });
    box.addEventListener('change', () => (this.enabled = box.checked));
    return h('label', { class: 'check' }, box, h('span', null, 'Show how long the last reply took to start (first text, first audio)'));
  }

  private render(): void {
    this.el.hidden = !this.enabled || this.sentAt === undefined;
    const ms = (v: number | undefined) => (v === undefined ? '…' : `${Math.round(v)} ms`);
    this.el.textContent = `first text ${ms(this.firstText)} · first audio ${ms(this.firstAudio)}`;
  }
}

export const latency = new LatencyReadout();
