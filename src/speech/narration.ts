// Narration: what of a message is spoken, and in whose voice. A message's sentences (as the
// sentence splitter cuts them) go through one Narration each, in order, and come out as spoken
// parts: dialogue ("quoted", “curly”, «guillemets», 「corner」) in the character's voice,
// narration (*actions* and unquoted text) spoken in the character's voice (`all`), not at all
// (`dialogue_only`) or in the narrator's (`narrated`). Code (``` fences, `inline`) and URLs are
// never spoken, in any mode; a markdown link speaks its label. Quotes and actions may span
// sentences, so the state lives for the message; a blank line (a new paragraph) ends both, so a
// stray mark cannot swallow the rest of a reply.
import type { NarrationMode } from '../protocol.ts';

export type PartVoice = 'character' | 'narrator';

/** NARRATION and NARRATOR_VOICE: for characters whose own setting is null. */
export interface NarrationDefaults {
  mode: NarrationMode;
  /** A stored voice's key; null = the engine's default voice. */
  narratorVoice: string | null;
}

/** A character's own settings (null = the default). */
export interface CharacterNarration {
  narration: NarrationMode | null;
  narrator_voice: string | null;
}

/** The mode and narrator voice a character's replies are spoken with. */
export function narrationOf(own: CharacterNarration | undefined, defaults: NarrationDefaults): NarrationDefaults {
  return { mode: own?.narration ?? defaults.mode, narratorVoice: own?.narrator_voice ?? defaults.narratorVoice };
}

/** A stretch of one sentence to speak: its text and, for the playout's record, where it lies in the sentence. */
export interface SpokenPart {
  text: string;
  voice: PartVoice;
  /** Offsets in the sentence: [start, end) covers the characters the part was made of. */
  start: number;
  end: number;
}

/** What each kind of text becomes in each mode: a voice, or null (not spoken). */
const VOICES: Record<NarrationMode, Record<'dialogue' | 'narration', PartVoice | null>> = {
  all: { dialogue: 'character', narration: 'character' },
  dialogue_only: { dialogue: 'character', narration: null },
  narrated: { dialogue: 'character', narration: 'narrator' },
};

/** Opening quote → its closing one. A straight `"` closes itself; `'` is too often an apostrophe. */
const QUOTES = new Map([['"', '"'], ['“', '”'], ['«', '»'], ['「', '」'], ['『', '』'], ['„', '“']]);
/** Markdown link: the label is spoken, the brackets and target are not. */
const LINK = /\[([^\]\n]*)\]\(([^)\s]*)\)/g;
/** Bare URLs: a scheme or `www.` up to whitespace (or a mark that ends it in prose). */
const URL = /\b(?:[a-z][a-z0-9+.-]*:\/\/|www\.)[^\s<>"'`()[\]]*/gi;
const TRAILING_PUNCTUATION = /[.,;:!?]+$/;
const SPEAKABLE = /[\p{L}\p{N}]/u;

/** Character classes of one sentence: code and markup are dropped, the rest is dialogue or narration. */
type Kind = 'drop' | 'dialogue' | 'narration';

/** Per message: feed its sentences in order. */
export class Narration {
  private fence = false;
  private action = false;
  private quoteClose: string | null = null;
  /** Only whitespace since a line break: another one makes a blank line. */
  private afterNewline = false;

  constructor(private readonly mode: NarrationMode = 'all') {}

  /**
   * The spoken parts of the next sentence, in order. `before` is the text between the previous
   * sentence and this one (whitespace): a blank line there ends any open quote or action.
   */
  parts(sentence: string, before = ''): SpokenPart[] {
    for (const ch of before) this.whitespace(ch);
    const kinds = this.classify(sentence);
    return this.group(sentence, kinds);
  }

  /** Blank-line tracking; true if `ch` is whitespace. */
  private whitespace(ch: string): boolean {
    if (ch === '\n') {
      if (this.afterNewline) {
        this.action = false;
        this.quoteClose = null;
      }
      this.afterNewline = true;
      return true;
    }
    if (/\s/.test(ch)) return true;
    this.afterNewline = false;
    return false;
  }

  private classify(sentence: string): Kind[] {
    const kinds = new Array<Kind>(sentence.length).fill('narration');
    const dropped = droppedSpans(sentence);
    let inline = false; // `code` never spans sentences: an unclosed one ends with its sentence
    for (let i = 0; i < sentence.length; i++) {
      const ch = sentence[i] as string;
      if (this.whitespace(ch)) {
        kinds[i] = this.fence || inline ? 'drop' : this.quoteClose === null ? 'narration' : 'dialogue';
        continue;
      }
      if (sentence.startsWith('```', i)) {
        this.fence = !this.fence;
        kinds.fill('drop', i, i + 3);
        i += 2;
        continue;
      }
      if (this.fence) {
        kinds[i] = 'drop';
        continue;
      }
      if (ch === '`') {
        inline = !inline;
        kinds[i] = 'drop';
        continue;
      }
      if (inline || dropped[i]) {
        kinds[i] = 'drop';
        continue;
      }
      kinds[i] = this.mark(ch, sentence[i + 1]) ? 'drop' : this.quoteClose === null ? 'narration' : 'dialogue';
    }
    return kinds;
  }

  /** Tracks quotes and actions; true if `ch` is one of their marks (not spoken). */
  private mark(ch: string, next: string | undefined): boolean {
    if (this.quoteClose !== null) {
      if (ch === this.quoteClose) this.quoteClose = null;
      else return ch === '*' || ch === '_'; // *emphasis* inside dialogue stays dialogue
      return true;
    }
    if (ch === '*') {
      // `**bold**` is emphasis, not an action: both marks go, the state stays.
      if (next === '*') return true;
      this.action = !this.action;
      return true;
    }
    if (!this.action && QUOTES.has(ch)) {
      this.quoteClose = QUOTES.get(ch) ?? null;
      return true;
    }
    return ch === '_' || ch === '#';
  }

  /** Runs of one voice, with dropped characters inside a run kept out of its text. */
  private group(sentence: string, kinds: Kind[]): SpokenPart[] {
    const parts: SpokenPart[] = [];
    let current: { voice: PartVoice; start: number; end: number; text: string } | null = null;
    for (let i = 0; i < sentence.length; i++) {
      const kind = kinds[i] as Kind;
      if (kind === 'drop') {
        if (current) current.text += ' ';
        continue;
      }
      const voice = VOICES[this.mode][kind];
      if (voice === null) {
        if (current) parts.push(current); // not spoken: what follows is another part (merge() may rejoin it)
        current = null;
        continue;
      }
      const ch = sentence[i] as string;
      if (current && current.voice !== voice && SPEAKABLE.test(ch)) {
        parts.push(current);
        current = null;
      }
      if (!current) {
        if (/\s/.test(ch)) continue;
        current = { voice, start: i, end: i + 1, text: '' };
      }
      current.text += ch;
      if (!/\s/.test(ch)) current.end = i + 1;
    }
    if (current) parts.push(current);
    return merge(parts.map((p) => ({ ...p, text: p.text.replace(/\s+/g, ' ').replace(/ ([.,;:!?…])/g, '$1').trim() })).filter((p) => SPEAKABLE.test(p.text)));
  }
}

/** Parts of one voice next to each other (once what lay between was not spoken) become one. */
function merge(parts: SpokenPart[]): SpokenPart[] {
  const out: SpokenPart[] = [];
  for (const part of parts) {
    const last = out.at(-1);
    if (last && last.voice === part.voice) out[out.length - 1] = { ...last, text: `${last.text} ${part.text}`, end: part.end };
    else out.push(part);
  }
  return out;
}

/** Per character of `sentence`: true where it is a URL, or a link's brackets and target. */
function droppedSpans(sentence: string): boolean[] {
  const dropped = new Array<boolean>(sentence.length).fill(false);
  for (const m of sentence.matchAll(LINK)) {
    const at = m.index;
    const label = m[1] as string;
    dropped[at] = true;
    dropped.fill(true, at + 1 + label.length, at + m[0].length);
  }
  for (const m of sentence.matchAll(URL)) {
    const url = m[0].replace(TRAILING_PUNCTUATION, '');
    dropped.fill(true, m.index, m.index + url.length);
  }
  return dropped;
}
