// `window.__chorus`: live counters the components update as they work, for tests and for
// anyone poking at the page from the console. Nothing reads them back.
import type { ConnectionState } from './connection.ts';

export interface ChorusDebug {
  playback: {
    /** PCM frames scheduled on the AudioContext clock. */
    scheduledFrames: number;
    /** Seconds of audio those frames hold. */
    scheduledSeconds: number;
    /** Every distinct sample rate announced by an audio_stream_start that was played, in order. */
    sampleRates: number[];
    /** Frames scheduled per message_id. */
    framesByMessage: Record<string, number>;
    /** Frames thrown away: of a cancelled message, or with no header before them. */
    discardedFrames: number;
    /** AudioBufferSourceNodes scheduled and not yet ended or stopped. */
    activeSources: number;
    /** Times playback was stopped (interrupt). */
    stops: number;
    /** Times playback was paused (audio_paused) and resumed (audio_resumed). */
    pauses: number;
    resumes: number;
    /** message_ids whose audio was cancelled (the last 200). */
    cancelled: string[];
    /** message_ids in the order their first frame went on the clock. */
    order: string[];
    /** Gaps inside a message (a frame that could not start where the previous one ended). */
    underruns: number;
    /** The last 2000 frames put on the clock: [message_id, scheduled at, start, end], context seconds. */
    timeline: Array<[string, number, number, number]>;
  };
  mic: {
    on: boolean;
    framesSent: number;
    bytesSent: number;
    /** Byte size of the most recent frames sent (up to 50). */
    frameBytes: number[];
    /** The AudioContext rate the worklet resamples from. */
    contextRate: number;
    /** Id of the capture track (it survives reconnects). */
    trackId: string;
    level: number;
  };
  connection: {
    state: ConnectionState['kind'];
    /** Every state in order, e.g. connecting, connected, reconnecting, connecting, connected. */
    history: string[];
    /** `session` messages received (one per successful connection). */
    sessions: number;
    conversationId: string | null;
    /** Types of the client → server messages sent, in order (up to 200). */
    sent: string[];
    /** The language model's state from the server's capabilities (unknown until told). */
    llm?: string;
  };
  /** The listening controls as applied (web/src/listening.ts). */
  listening?: { speech: boolean; muted: boolean; volume: number; rate: number; autoplay: boolean; micDeviceId: string | null };
}

export const debug: ChorusDebug = {
  playback: { scheduledFrames: 0, scheduledSeconds: 0, sampleRates: [], framesByMessage: {}, discardedFrames: 0, activeSources: 0, stops: 0, pauses: 0, resumes: 0, cancelled: [], order: [], underruns: 0, timeline: [] },
  mic: { on: false, framesSent: 0, bytesSent: 0, frameBytes: [], contextRate: 0, trackId: '', level: 0 },
  connection: { state: 'connecting', history: [], sessions: 0, conversationId: null, sent: [] },
};

declare global {
  interface Window {
    __chorus: ChorusDebug;
  }
}
window.__chorus = debug;

export function remember<T>(list: T[], value: T, max: number): void {
  list.push(value);
  if (list.length > max) list.splice(0, list.length - max);
}
