// Turns the stamps of one step (client frames, engine server tokens, chunks and requests, all on
// one monotonic clock) into the latency figures of the benchmark.
import type { TurnRecord } from './client.ts';
import { ms, profile, summarize, type Summary } from './stats.ts';

export interface LatencyFigures {
  text_overhead_ms: Summary;
  sentence_overhead_ms: Summary;
  audio_overhead_ms: Summary;
  first_audio_ms: Summary;
  ideal_first_audio_ms: Summary;
  first_audio_ratio: Summary;
  interrupt_ack_ms: Summary;
  frames_after_interrupt: { total: number; max: number; interrupts: number; sessions: number };
  /** Engine requests of a cancelled message that reached the engine server after interrupt_ack (sent before the server handled the interrupt, closed since). */
  late_upstream_requests: number;
  upstream_close_ms: Summary;
  /** Extras, not targets: user_message sent → the LLM server receives the request; every PCM chunk → its frame; LLM / speech request closed after an interrupt; silence between sentences. */
  llm_request_ms: Summary;
  audio_chunk_overhead_ms: Summary;
  llm_close_ms: Summary;
  speech_close_ms: Summary;
  sentence_gap_ms: Summary;
}

export interface StepAnalysis {
  figures: LatencyFigures;
  turns: number;
  completed: number;
  interrupts: number;
  /** Problems found in the records (a request never closed, text that does not match what was sent, …). */
  problems: string[];
  /** Percentile profiles for the chart. */
  profiles: Record<string, Array<{ p: number; value: number }>>;
}

export function analyzeStep(turns: readonly TurnRecord[], sessions: number): StepAnalysis {
  const text: number[] = [];
  const sentence: number[] = [];
  const audio: number[] = [];
  const audioChunk: number[] = [];
  const llmRequest: number[] = [];
  const firstAudio: number[] = [];
  const ideal: number[] = [];
  const ratio: number[] = [];
  const ack: number[] = [];
  const upstream: number[] = [];
  const llmClose: number[] = [];
  const speechClose: number[] = [];
  const gaps: number[] = [];
  const problems: string[] = [];
  let afterAckTotal = 0;
  let lateRequests = 0;
  let afterAckMax = 0;
  let interrupts = 0;
  let completed = 0;

  for (const turn of turns) {
    const { plan, chat } = turn;
    const where = `turn ${plan.tag} (session ${plan.session})`;
    if (!turn.failed) completed++;
    const tokens = chat?.sent.filter((s) => s.text !== undefined) ?? [];
    if (chat) llmRequest.push(ms(turn.sentAt, chat.receivedAt));

    // text_overhead: the token that completed each text_chunk → the chunk received.
    if (chat && turn.text.length > 0) {
      const raw = tokens.map((t) => t.text).join('');
      const shown = turn.text.map((t) => t.text).join('');
      if (!raw.startsWith(shown)) problems.push(`${where}: the text received is not what the LLM sent`);
      else {
        let ti = 0;
        let rawEnd = tokens[0]?.text?.length ?? 0;
        let shownEnd = 0;
        for (const chunk of turn.text) {
          shownEnd += chunk.text.length;
          while (rawEnd < shownEnd && ti + 1 < tokens.length) rawEnd += tokens[++ti]?.text?.length ?? 0;
          const token = tokens[ti];
          if (token) text.push(ms(token.at, chunk.at));
        }
      }
    }

    // sentence_overhead: the token completing the first fragment → the speech server receives it.
    const completing = tokens[plan.firstFragmentToken];
    const firstSpeech = turn.speech[0];
    if (completing && firstSpeech) sentence.push(ms(completing.at, firstSpeech.receivedAt));

    // audio_overhead: the speech server's first PCM byte → the client's first binary frame.
    const firstFrame = turn.frames[0];
    const firstPcm = firstSpeech?.sent[0];
    if (firstFrame && firstPcm && firstFrame.sentence === 0) audio.push(ms(firstPcm.at, firstFrame.at));

    // Every PCM chunk → the frame that completes its bytes, sentence by sentence.
    turn.speech.forEach((request, s) => {
      if (!request) return;
      const chunks = request.sent;
      const frames = turn.frames.filter((f) => f.sentence === s);
      let ci = 0;
      let pcmEnd = chunks[0]?.bytes ?? 0;
      let frameEnd = 0;
      for (const frame of frames) {
        frameEnd += frame.bytes;
        while (pcmEnd < frameEnd && ci + 1 < chunks.length) pcmEnd += chunks[++ci]?.bytes ?? 0;
        const chunk = chunks[ci];
        if (chunk) audioChunk.push(ms(chunk.at, frame.at));
      }
    });

    // first_audio and its ideal: what the engines themselves took on the path to the first sound,
    // as the engine server stamped it (time to first token, the tokens until the first fragment
    // is complete, the TTS time to first byte). Their scripted values (300 ms, 20–30 ms a token,
    // 150 ms) are what they aim at; timers fire a little late, and that is not the server's doing.
    const firstToken = tokens[0];
    if (firstFrame && chat && firstToken && completing && firstSpeech && firstPcm) {
      const first = ms(turn.sentAt, firstFrame.at);
      const best = ms(chat.receivedAt, firstToken.at) + ms(firstToken.at, completing.at) + ms(firstSpeech.receivedAt, firstPcm.at);
      firstAudio.push(first);
      ideal.push(best);
      ratio.push(first / best);
    }

    // Silence between consecutive sentences of a reply that was not interrupted.
    if (!plan.interrupt && !turn.failed) gaps.push(...sentenceGaps(turn));

    // Interrupts.
    const sentAt = turn.interruptSentAt;
    if (plan.interrupt && sentAt !== undefined) {
      interrupts++;
      if (turn.ackAt !== undefined) ack.push(ms(sentAt, turn.ackAt));
      afterAckTotal += turn.afterAck;
      afterAckMax = Math.max(afterAckMax, turn.afterAck);
      if (turn.afterAck > 0) problems.push(`${where}: ${turn.afterAck} frame(s) of the cancelled message after interrupt_ack`);
      // The requests the interrupt must close: those open when it was sent, and any the server
      // sent for the cancelled message afterwards (one can still be on its way when the server
      // handles the interrupt: it must be closed at once, and must never be answered).
      const ackAt = turn.ackAt;
      const open = <R extends { receivedAt: bigint; closedAt?: bigint; endpoint: string; sent: unknown[] }>(r: R | undefined): r is R => {
        if (r === undefined || (r.closedAt !== undefined && r.closedAt <= sentAt)) return false;
        if (ackAt !== undefined && r.receivedAt > ackAt) {
          lateRequests++;
          if (r.sent.length > 0) problems.push(`${where}: a ${r.endpoint} request for the cancelled message arrived after interrupt_ack and was answered`);
        }
        return true;
      };
      let closedBy: bigint | undefined;
      let unclosed = false;
      if (open(chat)) {
        if (chat.closedAt === undefined) unclosed = true;
        else {
          llmClose.push(ms(sentAt, chat.closedAt));
          closedBy = chat.closedAt;
        }
      }
      for (const request of turn.speech) {
        if (!open(request)) continue;
        if (request.closedAt === undefined) unclosed = true;
        else {
          speechClose.push(ms(sentAt, request.closedAt));
          if (closedBy === undefined || request.closedAt > closedBy) closedBy = request.closedAt;
        }
      }
      if (unclosed) problems.push(`${where}: an engine request of the cancelled message was never closed`);
      else if (closedBy !== undefined) upstream.push(ms(sentAt, closedBy));
    }
  }

  const figures: LatencyFigures = {
    text_overhead_ms: summarize(text, sessions),
    sentence_overhead_ms: summarize(sentence, sessions),
    audio_overhead_ms: summarize(audio, sessions),
    first_audio_ms: summarize(firstAudio, sessions, 1),
    ideal_first_audio_ms: summarize(ideal, sessions, 1),
    first_audio_ratio: summarize(ratio, sessions, 4),
    interrupt_ack_ms: summarize(ack, sessions),
    frames_after_interrupt: { total: afterAckTotal, max: afterAckMax, interrupts, sessions },
    late_upstream_requests: lateRequests,
    upstream_close_ms: summarize(upstream, sessions),
    llm_request_ms: summarize(llmRequest, sessions),
    audio_chunk_overhead_ms: summarize(audioChunk, sessions),
    llm_close_ms: summarize(llmClose, sessions),
    speech_close_ms: summarize(speechClose, sessions),
    sentence_gap_ms: summarize(gaps, sessions, 1),
  };
  return {
    figures,
    turns: turns.length,
    completed,
    interrupts,
    problems,
    profiles: {
      llm_request_ms: profile(llmRequest),
      text_overhead_ms: profile(text),
      sentence_overhead_ms: profile(sentence),
      audio_overhead_ms: profile(audio),
      interrupt_ack_ms: profile(ack),
      upstream_close_ms: profile(upstream),
      first_audio_ms: profile(firstAudio),
      ideal_first_audio_ms: profile(ideal),
    },
  };
}

/**
 * The silence the listener hears before each sentence after the first: the client plays frames
 * back to back from the first one's arrival, so a sentence's first frame that arrives after the
 * audio before it has played out leaves that long a pause; one that arrives earlier, none.
 * (Arrival gaps alone would count the audio streamer's pacing as silence: a paced frame arrives
 * ~one frame's duration after the one before it, while the client still has AUDIO_LEAD_MS to play.)
 */
function sentenceGaps(turn: TurnRecord): number[] {
  const rate = turn.sampleRate;
  if (!rate) return [];
  const gaps: number[] = [];
  let playedTo: bigint | undefined; // when the audio received so far will have played out
  let sentence = -1;
  for (const frame of turn.frames) {
    if (frame.sentence !== sentence && playedTo !== undefined && frame.sentence > 0) gaps.push(Math.max(0, ms(playedTo, frame.at)));
    sentence = frame.sentence;
    const start = playedTo === undefined || frame.at > playedTo ? frame.at : playedTo;
    playedTo = start + BigInt(Math.round((frame.bytes / 2 / rate) * 1e9));
  }
  return gaps;
}
