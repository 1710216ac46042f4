// Voice to voice: the end of the user's speech in the audio a client streams → the first audio
// frame of the reply at that client, with the loopback engines at fixed latencies (transcription
// 100 ms, LLM first token 200 ms, speech first byte 150 ms), for utterances that end a sentence
// and utterances that trail off ("… and"), streamed at real-time pace (20 ms frames, as a
// microphone) and as a burst (the whole clip at once, so the end of turn is decided as fast as
// the server reads the audio). One session, one utterance at a time: every engine request of a
// window belongs to its utterance, so the breakdown is exact.
//
// The transcription server answers like a streaming recognizer: the words of the part of the
// utterance the audio it gets covers (so a mid-sentence pause yields a partial transcript, and
// a preemptive reply started on it is cancelled when the user goes on), the whole text once the
// audio covers all the speech.
//
// Per utterance, on the bench's one clock (engine-server stamps and client arrivals):
//   voice_to_voice   last speech sample sent → first binary frame of the reply received
//   endpointing      last speech sample sent → the final transcription request received (the end silence, VAD lag)
//   stt              final transcription request → its answer
//   llm_first_token, first_fragment (first token → the token completing the first fragment), tts_first_byte
//   llm_lead         the reply's LLM request received − the final transcription answered (< 0: it started before: preemptive)
//   engine_path      the engine-bound critical path: endpointing + stt + llm + fragment + tts in turn; for a
//                    confirmed preemptive reply the longer of (endpointing + stt) and (pause + closing stt + llm +
//                    fragment + tts), the two running side by side
//   server_overhead  voice_to_voice − engine_path
// and per run the LLM requests that were not the reply (wasted on a cancelled preemptive start).
import { WebSocket } from 'ws';
import { SentenceSplitter } from '../src/llm/sentences.ts';
import type { EngineServer, RecordedChatRequest, RecordedTranscriptionRequest } from '../test/support/engine-server.ts';
import { tokenize } from '../test/support/engine-server.ts';
import { Speaker, type SpeechClip, track } from '../test/support/speech-audio.ts';
import type { ServerProcess } from './server.ts';
import { metricValue, ms, summarize, type Summary } from './stats.ts';

export const VOICE_LATENCIES = { stt_ms: 100, llm_first_token_ms: 200, llm_token_ms: 20, tts_first_byte_ms: 150 };

const KINDS = {
  sentence: ['Mira, what do you see out there?', 'Pip, tell me about the engine room.', 'Harlan, does any of this add up?', 'Pip, can you build it?'],
  trailing: ['Mira, I was thinking about the engine room and...', 'Harlan, tell me about the lower deck, because...'],
} as const;
export type UtteranceKind = keyof typeof KINDS;
export type Pacing = 'realtime' | 'burst';

const REPLY = 'Out there? Mostly stars, and the long dark between them.';
const LEAD_MS = 400;
const TAIL_MS = 1800; // more than the long end silence, so every kind of turn ends inside its clip
const FRAME_MS = 20;
const SAMPLES_PER_FRAME = (16_000 * FRAME_MS) / 1000;
/** What the server keeps before speech starts (STT_PRE_ROLL_MS, default). */
const PRE_ROLL_MS = 300;

export interface VoiceRun {
  pacing: Pacing;
  kind: UtteranceKind;
  utterances: number;
  voice_to_voice_ms: Summary;
  endpointing_ms: Summary;
  stt_ms: Summary;
  llm_first_token_ms: Summary;
  first_fragment_ms: Summary;
  tts_first_byte_ms: Summary;
  llm_lead_ms: Summary;
  engine_path_ms: Summary;
  server_overhead_ms: Summary;
  /** Utterances whose reply was started before the end of the turn and confirmed. */
  preemptive: number;
  /** LLM requests that were not the reply, per utterance. */
  wasted_llm_requests_per_utterance: number;
  /** Each utterance's figures (ms), in order. */
  samples: Sample[];
}

export interface VoiceFigures {
  latencies: typeof VOICE_LATENCIES;
  runs: VoiceRun[];
  /** chorus_preemptive_turns_total over the step (the server's own count). */
  preemptive: { started: number; committed: number; cancelled: number } | null;
  problems: string[];
  note: string | null;
}

interface Stamped {
  at: bigint;
  frame: { type: string; text?: string; data?: { message_id?: string } } | 'binary';
}

/** Words of `text` the audio has covered so far, as a streaming recognizer would give them. */
function partial(text: string, speechMs: number, wavMs: number): string {
  const covered = (wavMs - PRE_ROLL_MS) / speechMs;
  if (covered >= 0.97) return text;
  const words = text.split(/\s+/);
  return words.slice(0, Math.max(0, Math.round(covered * words.length))).join(' ').replace(/[.,?!…]+$/, '');
}

export async function benchVoice(o: { server: ServerProcess; engines: EngineServer; utterances: number; log: (line: string) => void }): Promise<VoiceFigures> {
  const problems: string[] = [];
  const none = (note: string): VoiceFigures => ({ latencies: VOICE_LATENCIES, runs: [], preemptive: null, problems, note });
  const { engines } = o;
  const ws = new WebSocket(o.server.wsUrl, { perMessageDeflate: false });
  const frames: Stamped[] = [];
  let wake: (() => void) | undefined;
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    frames.push({ at: process.hrtime.bigint(), frame: isBinary ? 'binary' : (JSON.parse(data.toString('utf8')) as Stamped['frame']) });
    wake?.();
  });
  const waitFor = (find: (f: Stamped) => boolean, from: number, timeoutMs: number) =>
    new Promise<Stamped | undefined>((resolve) => {
      const check = () => {
        const hit = frames.slice(from).find(find);
        if (!hit) return;
        clearTimeout(timer);
        wake = undefined;
        resolve(hit);
      };
      const timer = setTimeout(() => {
        wake = undefined;
        resolve(undefined);
      }, timeoutMs);
      wake = check;
      check();
    });
  const typed = (type: string) => (f: Stamped) => f.frame !== 'binary' && f.frame.type === type;
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const speaker = await Speaker.start();
  // The utterance being spoken: the transcription server answers from it.
  let current: { text: string; speechMs: number } | undefined;
  engines.transcription.script((r) => ({ text: current && r.wav ? partial(current.text, current.speechMs, r.wav.durationMs) : '', delayMs: VOICE_LATENCIES.stt_ms }));
  engines.chat.script(() => ({ tokens: tokenize(REPLY), firstTokenDelayMs: VOICE_LATENCIES.llm_first_token_ms, tokenDelayMs: VOICE_LATENCIES.llm_token_ms }));
  engines.speech.script(() => ({ firstByteDelayMs: VOICE_LATENCIES.tts_first_byte_ms }));
  try {
    if (!(await waitFor(typed('session'), 0, 10_000))) return none('no session message');
    ws.send(JSON.stringify({ type: 'start_listening' }));
    const answer = await waitFor((f) => typed('stt_state')(f) || typed('error')(f), 0, 5000);
    if (!answer || answer.frame === 'binary' || answer.frame.type === 'error') return none('speech input is not available on the server (start_listening got no stt_state)');
    const before = await o.server.scrape();
    const runs: VoiceRun[] = [];
    for (const pacing of ['realtime', 'burst'] as const) {
      for (const kind of ['sentence', 'trailing'] as const) {
        o.log(`Voice to voice: ${kind} utterances, ${pacing} …`);
        const samples: Sample[] = [];
        for (let i = 0; i < o.utterances; i++) {
          const text = KINDS[kind][i % KINDS[kind].length] as string;
          const clip = await speaker.say(text.replace(/\.\.\.$/, ''));
          current = { text, speechMs: (clip.pcm.length / 16_000) * 1000 };
          const sample = await utterance(clip, pacing);
          if (typeof sample === 'string') problems.push(`${pacing} ${kind} "${text}": ${sample}`);
          else samples.push(sample);
        }
        runs.push(summarizeRun(pacing, kind, samples));
      }
    }
    const after = await o.server.scrape();
    const count = (outcome: string) => (metricValue(after, 'chorus_preemptive_turns_total', { outcome }) ?? 0) - (metricValue(before, 'chorus_preemptive_turns_total', { outcome }) ?? 0);
    const preemptive = metricValue(after, 'chorus_preemptive_turns_total', { outcome: 'started' }) === undefined ? null : { started: count('started'), committed: count('committed'), cancelled: count('cancelled') };
    return { latencies: VOICE_LATENCIES, runs, preemptive, problems, note: null };
  } finally {
    engines.transcription.script();
    engines.chat.script();
    engines.speech.script();
    await speaker.close();
    ws.close();
  }

  /** Speaks one utterance; its figures, or what went wrong. */
  async function utterance(clip: SpeechClip, pacing: Pacing): Promise<Sample | string> {
    const audio = track({ silenceMs: LEAD_MS }, clip, { silenceMs: TAIL_MS });
    const speechEnd = (LEAD_MS * 16_000) / 1000 + clip.pcm.length;
    const from = frames.length;
    const counts = { transcription: engines.transcription.requests.length, chat: engines.chat.requests.length, speech: engines.speech.requests.length };
    let t0: bigint | undefined;
    const start = process.hrtime.bigint();
    const streaming = (async () => {
      for (let at = 0, i = 0; at < audio.pcm.length; at += SAMPLES_PER_FRAME, i++) {
        if (pacing === 'realtime') {
          const wait = Number(start + BigInt(i * FRAME_MS * 1e6) - process.hrtime.bigint()) / 1e6;
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        const piece = audio.pcm.subarray(at, Math.min(at + SAMPLES_PER_FRAME, audio.pcm.length));
        ws.send(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength), { binary: true });
        if (t0 === undefined && at + SAMPLES_PER_FRAME >= speechEnd) t0 = process.hrtime.bigint();
      }
    })();
    const final = await waitFor(typed('stt_final'), from, 15_000);
    const first = final && (await waitFor((f) => f.frame === 'binary', frames.indexOf(final), 10_000));
    await streaming;
    // Cut the reply and wait for the acknowledgement, so the next utterance starts clean.
    const cutFrom = frames.length;
    ws.send(JSON.stringify({ type: 'interrupt' }));
    await waitFor(typed('interrupt_ack'), cutFrom, 5000);
    if (!final || !first || t0 === undefined) return `no ${final ? 'reply audio' : 'stt_final'} within the timeout`;

    const window = frames.slice(from, frames.indexOf(first));
    const count = (type: string) => window.filter(typed(type)).length;
    if (count('user_message_accepted') !== 1 || count('text_stream_start') !== 1 || count('stt_final') !== 1) {
      return `expected one stt_final, user_message_accepted and text_stream_start before the first frame, got ${count('stt_final')}, ${count('user_message_accepted')}, ${count('text_stream_start')}`;
    }
    if (frames.indexOf(window.find(typed('user_message_accepted')) as Stamped) < frames.indexOf(final)) return 'the turn reached the client before stt_final';

    const transcriptions = engines.transcription.requests.slice(counts.transcription).filter((r) => r.sent[0] !== undefined && r.sent[0].at <= final.at);
    const finalRequest = transcriptions.at(-1);
    const chats = engines.chat.requests.slice(counts.chat);
    if (!finalRequest || chats.length === 0) return 'no final transcription or LLM request recorded';
    const finalAnswered = (finalRequest.sent[0] as { at: bigint }).at;
    // The reply: the first LLM request after the final, else (confirmed preemptive) the last one before it.
    const reply = chats.find((c) => c.receivedAt >= finalAnswered) ?? chats.filter((c) => c.receivedAt < finalAnswered).at(-1);
    const firstToken = reply?.sent[0];
    if (!reply || !firstToken) return 'the reply\'s LLM request answered nothing';
    const speech = engines.speech.requests.slice(counts.speech).find((r) => r.receivedAt >= firstToken.at && r.sent[0] !== undefined);
    if (!speech) return 'no speech request for the reply';
    const preemptive = reply.receivedAt < finalAnswered;
    const closing = preemptive ? transcriptionBefore(transcriptions, reply) : undefined;
    const fragment = fragmentToken(reply);
    const s: Sample = {
      voiceToVoice: ms(t0, first.at),
      endpointing: ms(t0, finalRequest.receivedAt),
      stt: ms(finalRequest.receivedAt, finalAnswered),
      llm: ms(reply.receivedAt, firstToken.at),
      fragment: ms(firstToken.at, fragment),
      tts: ms(speech.receivedAt, (speech.sent[0] as { at: bigint }).at),
      lead: ms(finalAnswered, reply.receivedAt),
      preemptive,
      wasted: chats.length - 1,
      enginePath: 0,
    };
    const generation = s.llm + s.fragment + s.tts;
    const confirm = s.endpointing + s.stt;
    s.enginePath = closing ? Math.max(confirm, ms(t0, closing.receivedAt) + ms(closing.receivedAt, (closing.sent[0] as { at: bigint }).at) + generation) : confirm + generation;
    return s;
  }
}

export interface Sample {
  voiceToVoice: number;
  endpointing: number;
  stt: number;
  llm: number;
  fragment: number;
  tts: number;
  lead: number;
  enginePath: number;
  preemptive: boolean;
  wasted: number;
}

/** The transcription answered last before the LLM request was received: what started it. */
function transcriptionBefore(requests: RecordedTranscriptionRequest[], chat: RecordedChatRequest): RecordedTranscriptionRequest | undefined {
  return requests.filter((r) => (r.sent[0]?.at ?? Infinity) <= chat.receivedAt).at(-1);
}

/** When the token completing the reply's first fragment (the server's own splitter) was sent. */
function fragmentToken(reply: RecordedChatRequest): bigint {
  const splitter = new SentenceSplitter();
  const tokens = reply.sent.filter((t) => t.text !== undefined);
  for (const token of tokens) if (splitter.push(token.text ?? '').length > 0) return token.at;
  return (tokens.at(-1) ?? reply.sent[0] ?? { at: reply.receivedAt }).at;
}

function summarizeRun(pacing: Pacing, kind: UtteranceKind, samples: Sample[]): VoiceRun {
  const of = (key: keyof Sample) => summarize(samples.map((s) => Number(s[key])), 1, 1);
  return {
    pacing,
    kind,
    utterances: samples.length,
    voice_to_voice_ms: of('voiceToVoice'),
    endpointing_ms: of('endpointing'),
    stt_ms: of('stt'),
    llm_first_token_ms: of('llm'),
    first_fragment_ms: of('fragment'),
    tts_first_byte_ms: of('tts'),
    llm_lead_ms: of('lead'),
    engine_path_ms: of('enginePath'),
    server_overhead_ms: summarize(samples.map((s) => s.voiceToVoice - s.enginePath), 1, 1),
    preemptive: samples.filter((s) => s.preemptive).length,
    wasted_llm_requests_per_utterance: samples.length === 0 ? 0 : Math.round((samples.reduce((n, s) => n + s.wasted, 0) / samples.length) * 100) / 100,
    samples: samples.map((s) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, typeof v === 'number' ? Math.round(v * 10) / 10 : v])) as unknown as Sample),
  };
}
