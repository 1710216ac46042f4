// Endpointing, measured rather than guessed: on the bench's turns (real espeak speech with the
// pauses people make inside a turn — after "Well.", before "and the lights were out", after "Um"),
// run through the real Silero VAD with the server's own hysteresis, how often each end silence
// would cut the user off at a pause inside their turn, and how long it makes them wait after
// they have finished; and how often a pause of STT_PAUSE_MS starts a preemptive reply that the
// user then talks over (a wasted LLM request). The end silence that applies at a pause is the one
// the server would choose from the words said so far (src/transcribe/transcript.ts), taken here
// from the script, as if every transcript were exact.
//
//   npx tsx bench/endpointing.ts      prints the tables (also part of npm run bench)
//
// The turns and their pause lengths are a sample chosen to span ordinary hesitations (250–900 ms)
// and endings; the counts show where each setting trades cut-offs against waiting, not how often
// real users pause.
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../src/config.ts';
import { endSilenceFor } from '../src/transcribe/transcript.ts';
import { loadVad, VAD_WINDOW } from '../src/transcribe/vad.ts';
import { Speaker, track, type TrackPart } from '../test/support/speech-audio.ts';
import { summarize, type Summary } from './stats.ts';

/** A turn: spoken parts (text) and the pauses between them (ms). */
type Turn = Array<string | number>;

export const TURNS: Turn[] = [
  ['Mira, what do you see out there?'],
  ['Tell me about the engine room.'],
  ['Harlan, does any of this add up?'],
  ['Pip, can you build it by tomorrow?'],
  ['Well.', 450, 'I am not sure about that.'],
  ['Yes.', 600, 'Do it now.'],
  ['No.', 350, 'Wait.', 500, 'Let me think about it.'],
  ['The thing is', 500, 'nobody knows how it works.'],
  ['I went down to the lower deck', 700, 'and the lights were out.'],
  ['So I was thinking about the engine room and', 900, 'whether it still works.'],
  ['Um', 800, 'what was I saying?'],
  ['Can you', 400, 'tell me', 300, 'what happened to the crew?'],
  ['I think', 200, 'we should go now.'],
  ['Ada', 250, 'are you there?'],
  ['Right.', 300, 'So what now?'],
  ['Okay.', 400, 'Go ahead.'],
  ['And then', 600, 'we wait for the signal.'],
  ['Tell me more about Harlan'],
  ['Show me the way to the bridge'],
  ['I was wondering if maybe...'],
  ['Let me tell you about the stars and'],
];

const CANDIDATES = {
  short: [200, 300, 350, 400, 450, 500, 600],
  normal: [400, 600, 700, 800, 1000],
  long: [800, 1000, 1200, 1500, 2000],
} as const;
export type SilenceClass = keyof typeof CANDIDATES;
const PAUSE_CANDIDATES = [32, 64, 100, 160, 200, 250];
/** A wait after the end of a turn longer than this is heard as the system hesitating. */
export const TOO_LONG_MS = 700;

const WINDOW_MS = (VAD_WINDOW * 1000) / 16_000;
const LEAD_MS = 500;
const TAIL_MS = 3000;

export interface EndpointingRow {
  class: SilenceClass;
  silence_ms: number;
  /** Pauses inside turns where this silence applied, and how many it would have ended the turn at. */
  pauses: number;
  cut_offs: number;
  /** Turn ends where it applied, and the wait from the end of speech to the end of the turn. */
  ends: number;
  wait_ms: Summary;
  too_long: number;
}

export interface EndpointingFigures {
  turns: number;
  /** Pauses the VAD hears inside turns (≥ one window), and their lengths. */
  pause_ms: Summary;
  rows: EndpointingRow[];
  /** Per STT_PAUSE_MS: pauses inside turns that would start a preemptive reply the user then talks over, per turn. */
  preemptive: Array<{ pause_ms: number; wasted_per_turn: number }>;
}

/** A silence inside a turn as the VAD hears it: how long, and the class the words before it give. */
interface HeardPause {
  ms: number;
  class: SilenceClass;
}

/** What one turn looks like to the VAD: its inner pauses and its ending. */
interface HeardTurn {
  pauses: HeardPause[];
  endClass: SilenceClass;
  /** From the true end of speech to the end of the VAD's last speech window. */
  lagMs: number;
}

const classOf = (text: string | undefined): SilenceClass => {
  const key = endSilenceFor(text, { endSilenceMs: 1, endSilenceShortMs: 0, endSilenceLongMs: 2 });
  return (['short', 'normal', 'long'] as const)[key] ?? 'normal';
};

export async function benchEndpointing(): Promise<EndpointingFigures> {
  const config = loadConfig({}).stt;
  const vad = await loadVad();
  const speaker = await Speaker.start();
  const heard: HeardTurn[] = [];
  try {
    for (const turn of TURNS) {
      const parts: TrackPart[] = [{ silenceMs: LEAD_MS }];
      for (const part of turn) parts.push(typeof part === 'number' ? { silenceMs: part } : await speaker.say(part.replace(/\.\.\.$/, '')));
      parts.push({ silenceMs: TAIL_MS });
      const t = track(...parts);
      const texts = turn.filter((p): p is string => typeof p === 'string');
      // The speech state of every window, with the server's hysteresis.
      const stream = vad.createStream();
      const speaking: boolean[] = [];
      let on = false;
      for (let at = 0; at + VAD_WINDOW <= t.pcm.length; at += VAD_WINDOW) {
        const window = stream.window;
        for (let i = 0; i < VAD_WINDOW; i++) window[i] = (t.pcm[at + i] as number) / 32768;
        const prob = await stream.process();
        on = prob >= config.vadThreshold || (on && prob >= config.vadNegThreshold);
        speaking.push(on);
      }
      heard.push(hearTurn(speaking, t.speech, texts));
    }
  } finally {
    await speaker.close();
  }
  return figures(heard);
}

/** The silent runs between the first and last speech windows, each classed by the words spoken before it. */
function hearTurn(speaking: boolean[], speech: Array<{ startMs: number; endMs: number }>, texts: string[]): HeardTurn {
  const first = speaking.indexOf(true);
  const last = speaking.lastIndexOf(true);
  const pauses: HeardPause[] = [];
  for (let w = first; w <= last; ) {
    if (speaking[w]) {
      w++;
      continue;
    }
    let end = w;
    while (!speaking[end]) end++;
    const atMs = w * WINDOW_MS;
    // The words said before it: every part whose speech ended by then.
    const said = texts.filter((_, i) => (speech[i]?.endMs ?? Infinity) <= atMs + WINDOW_MS).join(' ');
    pauses.push({ ms: (end - w) * WINDOW_MS, class: classOf(said === '' ? undefined : said) });
    w = end;
  }
  const trueEnd = speech.at(-1)?.endMs ?? 0;
  return { pauses, endClass: classOf(texts.join(' ')), lagMs: (last + 1) * WINDOW_MS - trueEnd };
}

function figures(turns: HeardTurn[]): EndpointingFigures {
  const rows: EndpointingRow[] = [];
  for (const cls of ['short', 'normal', 'long'] as const) {
    for (const silence of CANDIDATES[cls]) {
      const pauses = turns.flatMap((t) => t.pauses.filter((p) => p.class === cls));
      // The segmenter ends a turn at the first window where the silence reaches the setting.
      const waits = turns.filter((t) => t.endClass === cls).map((t) => t.lagMs + Math.ceil(silence / WINDOW_MS) * WINDOW_MS);
      rows.push({
        class: cls,
        silence_ms: silence,
        pauses: pauses.length,
        cut_offs: pauses.filter((p) => p.ms >= silence).length,
        ends: waits.length,
        wait_ms: summarize(waits, 1, 0),
        too_long: waits.filter((w) => w > TOO_LONG_MS).length,
      });
    }
  }
  const all = turns.flatMap((t) => t.pauses);
  const preemptive = PAUSE_CANDIDATES.map((pause) => ({
    pause_ms: pause,
    wasted_per_turn: Math.round((all.filter((p) => p.ms >= pause).length / turns.length) * 100) / 100,
  }));
  return { turns: turns.length, pause_ms: summarize(all.map((p) => p.ms), 1, 0), rows, preemptive };
}

/** The tables, in markdown or plain text. */
export function endpointingText(f: EndpointingFigures): string {
  const lines = [
    `${f.turns} turns; pauses inside them as the VAD hears them: n ${f.pause_ms.n}, p50 ${f.pause_ms.p50} ms, max ${f.pause_ms.max} ms.`,
    '',
    '| silence | ms | pauses it applied at | cut the user off | turn ends it applied at | wait after speech p50 / max ms | waits > 700 ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...f.rows.map((r) => `| ${r.class} | ${r.silence_ms} | ${r.pauses} | ${r.cut_offs} | ${r.ends} | ${r.wait_ms.p50 ?? '–'} / ${r.wait_ms.max ?? '–'} | ${r.too_long} |`),
    '',
    '| STT_PAUSE_MS | preemptive starts the user talks over, per turn |',
    '| ---: | ---: |',
    ...f.preemptive.map((p) => `| ${p.pause_ms} | ${p.wasted_per_turn} |`),
  ];
  return lines.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  benchEndpointing().then(
    (f) => console.log(endpointingText(f)),
    (error: unknown) => {
      console.error(error);
      process.exit(2);
    },
  );
}
