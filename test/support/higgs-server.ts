// A loopback server speaking the Higgs Audio protocols Chorus uses, recording what it receives:
//   Higgs v3 (Boson's speech API)
//     POST /v1/voices          {ref_audio (base64), ref_text} → {voice: "voice_<sha256 of the audio>"}
//                              (at `voicesPath`: /v1/voices, /v1/audio/voices, or null for none)
//     POST /v1/audio/speech    {model, input, voice | ref_audio+ref_text, response_format: "pcm", stream}
//                              → raw PCM16 24 kHz; an unknown "voice_…" id → 404; voice together
//                              with ref_audio → 400 (they are mutually exclusive)
//   Higgs v2 (boson-ai's vLLM server)
//     POST /v1/audio/speech    presets, as above
//     POST /v1/chat/completions {messages, modalities: ["text","audio"], stream: true} → server-sent
//                              events whose chunks carry base64 PCM16 in choices[0].delta.audio.data
// Audio is a tone whose frequency says which voice spoke (toneFrequency), optionally paced in real time.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const HIGGS_TEST_RATE = 24_000;

export interface HiggsRecord {
  path: string;
  body: Record<string, unknown>;
  authorization: string | undefined;
  status?: number;
  /** The client went away before the answer was complete. */
  aborted: boolean;
  closed: boolean;
}

export interface HiggsServer {
  baseUrl: string;
  requests: HiggsRecord[];
  /** Registered custom voices: id → transcript. */
  voices: Map<string, string>;
  /** The server forgets its custom voices (a restart). */
  forget(): void;
  of(path: string): HiggsRecord[];
  close(): Promise<void>;
}

/** The tone a voice speaks with: by preset name, custom voice id, or reference clip (its base64). */
export function toneFrequency(key: string): number {
  const h = createHash('sha256').update(key).digest();
  return 200 + (h.readUInt16BE(0) % 400);
}

function tone(samples: number, frequency: number): Buffer {
  const pcm = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) pcm.writeInt16LE(Math.round(Math.sin((2 * Math.PI * frequency * i) / HIGGS_TEST_RATE) * 0.3 * 32767), i * 2);
  return pcm;
}

export async function startHiggsServer(opts: { msPerChar?: number; realtime?: boolean; voicesPath?: string | null } = {}): Promise<HiggsServer> {
  const voicesPath = opts.voicesPath === undefined ? '/v1/voices' : opts.voicesPath;
  const msPerChar = opts.msPerChar ?? 20;
  const requests: HiggsRecord[] = [];
  const voices = new Map<string, string>();

  async function stream(res: ServerResponse, record: HiggsRecord, pcm: Buffer, frame: (chunk: Buffer) => string | Buffer): Promise<void> {
    const chunkBytes = (HIGGS_TEST_RATE / 50) * 2; // 20 ms
    const start = performance.now();
    for (let offset = 0; offset < pcm.length && !record.aborted; offset += chunkBytes) {
      if (opts.realtime) {
        const due = start + (offset / 2 / HIGGS_TEST_RATE) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      res.write(frame(pcm.subarray(offset, offset + chunkBytes)));
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse, record: HiggsRecord): Promise<void> {
    const answer = (status: number, body: unknown) => {
      record.status = status;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const { body } = record;
    const samples = (text: unknown) => Math.max(1, Math.round(((String(text).length * msPerChar) / 1000) * HIGGS_TEST_RATE));
    if (record.path === voicesPath) {
      if (typeof body.ref_audio !== 'string' || typeof body.ref_text !== 'string' || body.ref_text === '') return answer(400, { error: 'ref_audio and ref_text are required' });
      const id = `voice_${createHash('sha256').update(Buffer.from(body.ref_audio, 'base64')).digest('hex')}`;
      voices.set(id, body.ref_text);
      return answer(200, { voice: id, ref_text: body.ref_text, description: null, created_at: new Date().toISOString() });
    }
    if (record.path === '/v1/audio/speech') {
      if (typeof body.input !== 'string' || body.input === '') return answer(400, { error: 'input is required' });
      if (body.response_format !== 'pcm') return answer(400, { error: 'this server speaks pcm only' });
      if (body.ref_audio !== undefined && body.voice !== undefined) return answer(400, { error: 'voice is mutually exclusive with ref_audio / ref_text' });
      const voice = typeof body.voice === 'string' ? body.voice : undefined;
      if (voice?.startsWith('voice_') && !voices.has(voice)) return answer(404, { error: `voice ${voice} not found` });
      const key = voice ?? (typeof body.ref_audio === 'string' ? body.ref_audio : 'default');
      record.status = 200;
      res.writeHead(200, { 'content-type': 'audio/pcm' });
      await stream(res, record, tone(samples(body.input), toneFrequency(key)), (c) => c);
      res.end();
      return;
    }
    if (record.path === '/v1/chat/completions') {
      const messages = Array.isArray(body.messages) ? (body.messages as Array<{ role: string; content: unknown }>) : [];
      const last = messages.at(-1);
      if (body.stream !== true || !Array.isArray(body.modalities) || !body.modalities.includes('audio') || last?.role !== 'user') return answer(400, { error: 'expected a streamed audio chat completion ending in a user turn' });
      const clip = messages.find((m) => m.role === 'assistant' && Array.isArray(m.content));
      const audio = clip ? (clip.content as Array<{ input_audio?: { data?: string } }>)[0]?.input_audio?.data : undefined;
      const system = messages.find((m) => m.role === 'system')?.content;
      const key = audio ?? String(system ?? 'default');
      record.status = 200;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const event = (delta: unknown) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta }] })}\n\n`;
      res.write(event({ role: 'assistant', content: '' }));
      await stream(res, record, tone(samples(last.content), toneFrequency(key)), (c) => event({ audio: { id: 'a', data: c.toString('base64') } }));
      res.end('data: [DONE]\n\n');
      return;
    }
    answer(404, { error: `no route ${record.path}` });
  }

  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>;
      } catch {
        // recorded as an empty body
      }
      const record: HiggsRecord = { path: (req.url ?? '').split('?')[0] ?? '', body, authorization: req.headers.authorization, aborted: false, closed: false };
      requests.push(record);
      res.on('close', () => {
        record.aborted = !res.writableFinished;
        record.closed = true;
      });
      handle(req, res, record).catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    voices,
    forget: () => voices.clear(),
    of: (path) => requests.filter((r) => r.path === path),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
