// Speech input, when the server has it (STT_ENGINE=openai against the loopback transcription
// endpoint): a session starts listening and streams real speech (espeak, resampled to 16 kHz)
// in 20 ms frames at real-time pace, each utterance followed by silence. Measured: the last
// speech sample sent → stt_final received, and that less the trailing silence the server waits
// for (its default end silences, chosen by the transcript's ending as the server does) and the
// transcription server's own latency (what the server adds). Without speech input on the
// server, the figures are null and the note says why.
import { WebSocket } from 'ws';
import { loadConfig } from '../src/config.ts';
import { endSilenceFor } from '../src/transcribe/transcript.ts';
import type { EngineServer } from '../test/support/engine-server.ts';
import { Speaker, track } from '../test/support/speech-audio.ts';
import type { ServerProcess } from './server.ts';
import { summarize, type Summary } from './stats.ts';

/** The server's end silences (the bench leaves them at their defaults). */
const SILENCES = loadConfig({}).stt;

const UTTERANCES = ['Mira, what do you see out there?', 'Tell me about the engine room.', 'Harlan, does any of this add up?', 'Pip, can you build it?'];
const FRAME_MS = 20;
const SAMPLES_PER_FRAME = (16_000 * FRAME_MS) / 1000;

interface Frame {
  type: string;
  text?: string;
  data?: { code?: string; message?: string; state?: string };
}

export async function benchSpeechInput(o: { server: ServerProcess; engines: EngineServer; log: (line: string) => void; quick: boolean }): Promise<{
  end_of_speech_to_final_ms: Summary | null;
  overhead_ms: Summary | null;
  note: string | null;
}> {
  const none = (note: string) => ({ end_of_speech_to_final_ms: null, overhead_ms: null, note });
  const ws = new WebSocket(o.server.wsUrl, { perMessageDeflate: false });
  const frames: Array<{ at: bigint; frame: Frame }> = [];
  let wake: (() => void) | undefined;
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) return;
    frames.push({ at: process.hrtime.bigint(), frame: JSON.parse(data.toString('utf8')) as Frame });
    wake?.();
  });
  const waitFor = (find: (f: Frame) => boolean, from: number, timeoutMs: number) =>
    new Promise<{ at: bigint; frame: Frame } | undefined>((resolve) => {
      const check = () => {
        const hit = frames.slice(from).find((f) => find(f.frame));
        if (hit) {
          clearTimeout(timer);
          wake = undefined;
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        wake = undefined;
        resolve(undefined);
      }, timeoutMs);
      wake = check;
      check();
    });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let speaker: Speaker | undefined;
  try {
    if (!(await waitFor((f) => f.type === 'session', 0, 10_000))) return none('no session message');
    let from = frames.length;
    ws.send(JSON.stringify({ type: 'start_listening' }));
    const answer = await waitFor((f) => f.type === 'stt_state' || f.type === 'error', from, 5000);
    if (!answer) return none('start_listening got no answer (neither stt_state nor error) within 5 s');
    if (answer.frame.type === 'error') {
      return none(`speech input is not available on the server yet: start_listening answered ${answer.frame.data?.code ?? 'error'} with STT_ENGINE=openai`);
    }
    o.log('Speech input: measuring end of speech → stt_final …');
    speaker = await Speaker.start();
    const raw: number[] = [];
    const overhead: number[] = [];
    for (const text of o.quick ? UTTERANCES.slice(0, 1) : UTTERANCES) {
      const clip = await speaker.say(text);
      const audio = track({ silenceMs: 400 }, clip, { silenceMs: SILENCES.endSilenceLongMs + 900 });
      const speechEndSample = 400 * 16 + clip.pcm.length;
      from = frames.length;
      const requestsBefore = o.engines.transcription.requests.length;
      let endOfSpeechAt: bigint | undefined;
      const start = process.hrtime.bigint();
      for (let at = 0, i = 0; at < audio.pcm.length; at += SAMPLES_PER_FRAME, i++) {
        const due = start + BigInt(i * FRAME_MS * 1e6);
        const wait = Number(due - process.hrtime.bigint()) / 1e6;
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const piece = audio.pcm.subarray(at, Math.min(at + SAMPLES_PER_FRAME, audio.pcm.length));
        ws.send(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength), { binary: true });
        if (endOfSpeechAt === undefined && at + SAMPLES_PER_FRAME >= speechEndSample) endOfSpeechAt = process.hrtime.bigint();
        if (frames.slice(from).some((f) => f.frame.type === 'stt_final')) break;
      }
      const final = await waitFor((f) => f.type === 'stt_final', from, 10_000);
      if (!final || endOfSpeechAt === undefined) return none(`no stt_final for "${text}" within 10 s of its end`);
      const total = Number(final.at - endOfSpeechAt) / 1e6;
      // The transcription request answered last before the final transcript: its own latency.
      const request = o.engines.transcription.requests
        .slice(requestsBefore)
        .filter((r) => r.sent[0] !== undefined && (r.sent[0]?.at ?? 0n) <= final.at)
        .pop();
      const sttMs = request?.sent[0] ? Number(request.sent[0].at - request.receivedAt) / 1e6 : 0;
      raw.push(total);
      overhead.push(total - endSilenceFor(final.frame.text, SILENCES) - sttMs);
      // A reply may have started from the transcript: cut it so the next utterance starts clean.
      const before = frames.length;
      ws.send(JSON.stringify({ type: 'interrupt' }));
      await waitFor((f) => f.type === 'interrupt_ack', before, 5000);
    }
    return { end_of_speech_to_final_ms: summarize(raw, 1, 1), overhead_ms: summarize(overhead, 1, 1), note: null };
  } finally {
    await speaker?.close();
    ws.close();
  }
}
