// The delivery style fields of the voice and character editors: Higgs v3's sentence-level tags
// (docs.boson.ai "Tags"): an emotion, a style (singing, shouting, whispering) and prosody (a speed,
// a pitch, an expressiveness). Each choice left blank sets nothing (in a character: its voice's
// applies). The lists are typed against the server's schema: a tag missing here fails the build.
import { h } from './dom.ts';
import type { StyleProsody, VoiceStyle } from './types.ts';
import { field } from './ui.ts';

type Emotion = NonNullable<VoiceStyle['emotion']>;
type Style = NonNullable<VoiceStyle['style']>;

const EMOTIONS = Object.keys({
  affection: 1, amusement: 1, anger: 1, arousal: 1, awe: 1, bitterness: 1, confusion: 1, contemplation: 1, contentment: 1, determination: 1, disgust: 1,
  elation: 1, enthusiasm: 1, fear: 1, helplessness: 1, longing: 1, pride: 1, relief: 1, sadness: 1, shame: 1, surprise: 1,
} satisfies Record<Emotion, 1>) as Emotion[];
const STYLES = Object.keys({ singing: 1, shouting: 1, whispering: 1 } satisfies Record<Style, 1>) as Style[];
const PROSODY_LABELS = new Map<StyleProsody, string>(
  Object.entries({
    speed_very_slow: 'very slow', speed_slow: 'slow', speed_fast: 'fast', speed_very_fast: 'very fast',
    pitch_low: 'low', pitch_high: 'high', expressive_low: 'flat', expressive_high: 'very expressive',
  } satisfies Record<StyleProsody, string>) as Array<[StyleProsody, string]>,
);
/** The prosody groups, each one select (the server takes at most one tag of each). */
const GROUPS: ReadonlyArray<{ name: string; label: string; prefix: string }> = [
  { name: 'style_speed', label: 'Speed', prefix: 'speed_' },
  { name: 'style_pitch', label: 'Pitch', prefix: 'pitch_' },
  { name: 'style_expressiveness', label: 'Expressiveness', prefix: 'expressive_' },
];

const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** The fields, and the style they hold (null when nothing is chosen). `blank` names what an empty choice means. */
export function styleFields(initial: VoiceStyle | null, blank: string): { el: HTMLElement; value(): VoiceStyle | null } {
  const select = (name: string, options: ReadonlyArray<[string, string]>, value: string | null | undefined) => {
    const el = h('select', { class: 'input', name }, h('option', { value: '' }, blank), options.map(([v, label]) => h('option', { value: v }, label)));
    el.value = value ?? '';
    return el;
  };
  const emotion = select('style_emotion', EMOTIONS.map((e) => [e, capital(e)]), initial?.emotion);
  const style = select('style_style', STYLES.map((s) => [s, capital(s)]), initial?.style);
  const prosody = GROUPS.map((g) => {
    const tags = [...PROSODY_LABELS].filter(([tag]) => tag.startsWith(g.prefix));
    return { ...g, el: select(g.name, tags.map(([tag, label]) => [tag, capital(label)]), initial?.prosody?.find((t) => t.startsWith(g.prefix))) };
  });
  const el = h(
    'fieldset',
    { class: 'style-fields' },
    h('legend', null, 'Delivery (Higgs v3)'),
    h('p', { class: 'field-hint' }, 'Spoken as emotion, style and prosody tags before each sentence on the Higgs v3 engine; other engines ignore them.'),
    h('div', { class: 'field-pair' }, field('Emotion', emotion), field('Style', style)),
    h('div', { class: 'field-row' }, prosody.map((p) => field(p.label, p.el))),
  );
  const value = (): VoiceStyle | null => {
    const tags = prosody.map((p) => p.el.value).filter((v): v is StyleProsody => v !== '');
    if (!emotion.value && !style.value && tags.length === 0) return null;
    return { emotion: (emotion.value || null) as Emotion | null, style: (style.value || null) as Style | null, prosody: tags };
  };
  return { el, value };
}
