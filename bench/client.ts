// A lean benchmark client: one WebSocket session that runs scripted turns and stamps every frame
// it receives with process.hrtime.bigint() the moment its handler runs (the same clock as the
// engine server's stamps). It keeps only what the analysis needs; unlike the test client it does
// not validate frames against the protocol schemas, which would cost the bench process time
// that then shows up as server overhead.
import { WebSocket } from 'ws';
import type { RecordedChatRequest, RecordedSpeechRequest } from '../test/support/engine-server.ts';
import type { TurnPlan } from './replies.ts';

export interface Stamp {
  at: bigint;
}
export interface TextStamp extends Stamp {
  text: string;
}
export interface FrameStamp extends Stamp {
  bytes: number;
  sentence: number;
}

export interface TurnRecord {
  plan: TurnPlan;
  sentAt: bigint;
  messageId?: string;
  text: TextStamp[];
  textStopAt?: bigint;
  frames: FrameStamp[];
  /** audio_stream_start's sample_rate (to know how long each frame plays). */
  sampleRate?: number;
  audioStopAt?: bigint;
  audioInterrupted?: boolean;
  interruptSentAt?: bigint;
  ackAt?: bigint;
  /** text_chunk, audio_chunk or binary frames of this message received after interrupt_ack. */
  afterAck: number;
  /** The engine server's records of this turn's requests (filled by its scripts). */
  chat?: RecordedChatRequest;
  speech: Array<RecordedSpeechRequest | undefined>;
  /** Set when the turn ended (completed, acknowledged, or failed). */
  endedAt?: bigint;
  failed?: string;
}

export const newTurn = (plan: TurnPlan): TurnRecord => ({ plan, sentAt: 0n, text: [], frames: [], afterAck: 0, speech: [] });

export interface ProblemSink {
  (problem: string): void;
}

interface ServerFrame {
  type: string;
  data?: Record<string, unknown>;
  error?: unknown;
  request_id?: string;
}

export class BenchClient {
  /** First names of the session's active characters. */
  names: string[] = [];
  /** The server process that took the session (X-Chorus-Pid of the upgrade; several under --workers). */
  pid: number | undefined;
  current: TurnRecord | undefined;
  private readonly byMessage = new Map<string, TurnRecord>();
  private audioTurn: TurnRecord | undefined;
  private audioSentence = 0;
  private wake: (() => void) | undefined;
  private closedByUs = false;

  private constructor(
    readonly ws: WebSocket,
    readonly index: number,
    private readonly problem: ProblemSink,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(process.hrtime.bigint(), data, isBinary));
    ws.on('error', (error) => this.problem(`session ${index}: socket error: ${error.message}`));
    ws.on('close', (code) => {
      if (!this.closedByUs) this.problem(`session ${index}: socket closed by the server (code ${code})`);
      this.wake?.();
    });
  }

  static connect(url: string, index: number, problem: ProblemSink, timeoutMs = 30_000): Promise<BenchClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const client = new BenchClient(ws, index, problem);
    ws.once('upgrade', (res) => (client.pid = Number(res.headers['x-chorus-pid']) || undefined));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`session ${index}: no session message after ${timeoutMs} ms`)), timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      ws.once('error', fail);
      client.wake = () => {
        if (client.names.length > 0 || ws.readyState !== WebSocket.OPEN) {
          clearTimeout(timer);
          ws.off('error', fail);
          client.wake = undefined;
          if (client.names.length > 0) resolve(client);
          else reject(new Error(`session ${index}: closed before the session message`));
        }
      };
    });
  }

  /** Sends the turn's user message; `waitFor` then tells when the turn is over. */
  startTurn(turn: TurnRecord): void {
    this.current = turn;
    turn.sentAt = process.hrtime.bigint();
    this.ws.send(JSON.stringify({ type: 'user_message', data: { text: turn.plan.text } }));
  }

  interrupt(turn: TurnRecord): void {
    turn.interruptSentAt = process.hrtime.bigint();
    this.ws.send(JSON.stringify({ type: 'interrupt' }));
  }

  /** Resolves true once `done()` holds, false on timeout or when the socket closes. */
  waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve(ok);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.wake = () => {
        if (done()) finish(true);
        else if (this.ws.readyState !== WebSocket.OPEN) finish(false);
      };
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  async close(): Promise<void> {
    this.closedByUs = true;
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((resolve) => this.ws.once('close', resolve));
    this.ws.close();
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 5000).unref());
    if ((await Promise.race([closed, timeout])) === 'timeout') this.ws.terminate();
  }

  private onMessage(at: bigint, data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      const turn = this.audioTurn;
      if (turn) {
        turn.frames.push({ at, bytes: data.length, sentence: this.audioSentence });
        if (turn.ackAt !== undefined) turn.afterAck++;
      }
      this.wake?.();
      return;
    }
    let frame: ServerFrame;
    try {
      frame = JSON.parse(data.toString('utf8')) as ServerFrame;
    } catch {
      this.problem(`session ${this.index}: a text frame that is not JSON`);
      return;
    }
    const d = frame.data ?? {};
    const id = typeof d.message_id === 'string' ? d.message_id : undefined;
    const turn = id === undefined ? undefined : this.byMessage.get(id);
    switch (frame.type) {
      case 'session': {
        const cast = Array.isArray(d.active_characters) ? (d.active_characters as Array<{ name?: unknown }>) : [];
        this.names = cast.map((c) => String(c.name ?? '').split(/\s+/)[0] ?? '').filter((n) => n !== '');
        if (this.names.length === 0) this.problem(`session ${this.index}: no active character`);
        break;
      }
      case 'text_stream_start':
        if (id !== undefined && this.current && this.current.messageId === undefined) {
          this.current.messageId = id;
          this.byMessage.set(id, this.current);
        } else this.problem(`session ${this.index}: unexpected text_stream_start (more than one character answered?)`);
        break;
      case 'text_chunk':
        if (!turn) break;
        if (turn.ackAt !== undefined) turn.afterAck++;
        if (d.is_final !== true) turn.text.push({ at, text: String(d.text ?? '') });
        break;
      case 'text_stream_stop':
        if (turn) turn.textStopAt = at;
        break;
      case 'audio_stream_start':
        if (turn && typeof d.sample_rate === 'number') turn.sampleRate = d.sample_rate;
        break;
      case 'audio_chunk':
        this.audioTurn = turn;
        this.audioSentence = typeof d.sentence_index === 'number' ? d.sentence_index : 0;
        if (turn?.ackAt !== undefined) turn.afterAck++;
        break;
      case 'audio_stream_stop':
        if (turn) {
          turn.audioStopAt = at;
          turn.audioInterrupted = d.interrupted === true;
        }
        break;
      case 'interrupt_ack':
        if (this.current) this.current.ackAt = at;
        break;
      case 'error':
        this.problem(`session ${this.index}: error ${String(d.code)}: ${String(d.message)}`);
        break;
      case 'db_error':
        this.problem(`session ${this.index}: db_error: ${String(frame.error)}`);
        break;
      default:
        break;
    }
    this.wake?.();
  }
}
