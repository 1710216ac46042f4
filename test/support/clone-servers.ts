// Loopback servers speaking two more OpenAI-compatible speech protocols that take a reference clip,
// as their documentation describes them, recording what they receive (docs/engines.md cites them):
//
//   vLLM-Omni (docs/serving/speech_api.md)
//     POST /v1/audio/speech   {input, voice?, response_format, speed?, task_type?, ref_audio?, ref_text?,
//                             stream_format?}. ref_audio must be an http(s) URL or a base64 data URL
//                             (plain base64 → 400); voice, without ref_audio, must be a preset (400 otherwise);
//                             stream_format "audio" streams raw PCM and needs response_format pcm|wav and
//                             speed 1.0 or none (400 otherwise); without it the answer is one whole WAV.
//     GET  /v1/audio/voices   {voices, uploaded_voices: []}
//   Chatterbox TTS API (travisvn/chatterbox-tts-api, docs/VOICE_LIBRARY_MANAGEMENT.md)
//     GET  /v1/voices/{name}        200 {voice} or 404
//     POST /v1/voices               multipart voice_name + voice_file → 201; 409 when the name exists
//     POST /v1/audio/speech/stream  {input, voice} → a WAV streamed as generated (header with an
//                                   open-ended size, then PCM16); an unknown voice silently speaks
//                                   the default one, as the real server does
//     POST /v1/audio/speech         the same, as one whole WAV (response_format is ignored)
// Both answer 24 kHz mono PCM16: a tone whose frequency says which voice spoke (toneFrequency: the
// preset's name, or the reference clip's bytes as base64).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { encodeWav } from './engine-server.ts';
import { HIGGS_TEST_RATE, toneFrequency } from './higgs-server.ts';

export interface CloneRecord {
  method: string;
  path: string;
  /** JSON body, or a multipart form's text fields. */
  body: Record<string, unknown>;
  /** A multipart form's file. */
  file?: { field: string; bytes: Buffer };
  status?: number;
}

export interface CloneServer {
  baseUrl: string;
  requests: CloneRecord[];
  of(method: string, path: string): CloneRecord[];
  /** Chatterbox: the voice library, name → the uploaded file. */
  library: Map<string, Buffer>;
  close(): Promise<void>;
}

const VLLM_PRESETS = ['vivian', 'ryan', 'aiden'];

function tone(text: string, key: string): Buffer {
  const samples = Math.max(1, Math.round(((text.length * 20) / 1000) * HIGGS_TEST_RATE));
  const pcm = Buffer.alloc(samples * 2);
  const frequency = toneFrequency(key);
  for (let i = 0; i < samples; i++) pcm.writeInt16LE(Math.round(Math.sin((2 * Math.PI * frequency * i) / HIGGS_TEST_RATE) * 0.3 * 32767), i * 2);
  return pcm;
}

/** A WAV header whose sizes say "until the stream ends", as Chatterbox's streaming endpoint writes it. */
function openWavHeader(): Buffer {
  const header = encodeWav(Buffer.alloc(0), HIGGS_TEST_RATE);
  header.writeUInt32LE(0x7fffffff - 36, 4);
  header.writeUInt32LE(0xffffffff, 40);
  return header;
}

/** Writes `pcm` in 20 ms pieces (a streamed answer). */
function streamPcm(res: ServerResponse, pcm: Buffer): void {
  const piece = (HIGGS_TEST_RATE / 50) * 2;
  for (let at = 0; at < pcm.length; at += piece) res.write(pcm.subarray(at, at + piece));
  res.end();
}

async function readBody(req: IncomingMessage): Promise<{ body: Record<string, unknown>; file?: CloneRecord['file'] }> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  const raw = Buffer.concat(parts);
  const type = req.headers['content-type'] ?? '';
  if (type.startsWith('multipart/form-data')) {
    const form = await new Request('http://clone-server.invalid/', { method: 'POST', headers: { 'content-type': type }, body: new Uint8Array(raw) }).formData();
    const body: Record<string, unknown> = {};
    let file: CloneRecord['file'];
    for (const [key, value] of form) {
      if (typeof value === 'string') body[key] = value;
      else file = { field: key, bytes: Buffer.from(await value.arrayBuffer()) };
    }
    return { body, ...(file ? { file } : {}) };
  }
  try {
    return { body: JSON.parse(raw.toString('utf8')) as Record<string, unknown> };
  } catch {
    return { body: {} };
  }
}

async function serve(handle: (record: CloneRecord, res: ServerResponse, answer: (status: number, body: unknown) => void) => void, extra: Partial<CloneServer> = {}): Promise<CloneServer> {
  const requests: CloneRecord[] = [];
  const server = createServer((req, res) => {
    void readBody(req).then(({ body, file }) => {
      const record: CloneRecord = { method: req.method ?? '', path: (req.url ?? '').split('?')[0] ?? '', body, ...(file ? { file } : {}) };
      requests.push(record);
      const answer = (status: number, json: unknown) => {
        record.status = status;
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
      };
      handle(record, res, answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    of: (method, path) => requests.filter((r) => r.method === method && r.path === path),
    library: new Map(),
    ...extra,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function startVllmOmniServer(): Promise<CloneServer> {
  return serve((record, res, answer) => {
    const { body } = record;
    if (record.method === 'GET' && record.path === '/v1/audio/voices') return answer(200, { voices: VLLM_PRESETS, uploaded_voices: [] });
    if (record.method !== 'POST' || record.path !== '/v1/audio/speech') return answer(404, { error: { message: 'Not Found', code: 404 } });
    const bad = (message: string) => answer(400, { error: { message, type: 'BadRequestError', param: null, code: 400 } });
    if (typeof body.input !== 'string' || body.input.trim() === '') return bad('Input text cannot be empty');
    let key: string;
    if (body.ref_audio !== undefined) {
      const match = /^data:audio\/[a-z0-9.+-]+;base64,(.+)$/i.exec(String(body.ref_audio));
      if (!match && !/^https?:\/\//.test(String(body.ref_audio))) return bad('ref_audio must be an http(s) URL, a base64 data URL or a file:// URI');
      key = match?.[1] ?? String(body.ref_audio);
      if (body.task_type !== undefined && body.task_type !== 'Base') return bad(`task_type ${String(body.task_type)} does not take ref_audio`);
    } else {
      if (body.task_type === 'Base') return bad('task_type Base needs ref_audio or an uploaded voice');
      const voice = body.voice === undefined ? 'vivian' : String(body.voice);
      if (!VLLM_PRESETS.includes(voice)) return bad(`Unsupported speaker: ${voice}`);
      key = voice;
    }
    const pcm = tone(body.input, key);
    if (body.stream_format === 'audio') {
      if (body.response_format !== 'pcm' && body.response_format !== 'wav') return bad('streaming needs response_format pcm or wav');
      if (body.speed !== undefined && body.speed !== 1) return bad('speed must be 1.0 when streaming');
      record.status = 200;
      res.writeHead(200, { 'content-type': 'audio/pcm' });
      return streamPcm(res, pcm);
    }
    record.status = 200;
    res.writeHead(200, { 'content-type': 'audio/wav' }).end(encodeWav(pcm, HIGGS_TEST_RATE));
  });
}

export async function startChatterboxServer(): Promise<CloneServer> {
  const library = new Map<string, Buffer>();
  return serve(
    (record, res, answer) => {
      const { body } = record;
      const named = /^\/v1\/voices\/([^/]+)$/.exec(record.path);
      if (record.method === 'GET' && named) {
        const name = decodeURIComponent(named[1] ?? '');
        return library.has(name) ? answer(200, { voice: { name, filename: `${name}.wav` } }) : answer(404, { error: { message: `Voice '${name}' not found` } });
      }
      if (record.method === 'POST' && record.path === '/v1/voices') {
        const name = typeof body.voice_name === 'string' ? body.voice_name : '';
        if (!name || record.file?.field !== 'voice_file') return answer(400, { error: { message: 'voice_name and voice_file are required' } });
        if (record.file.bytes.toString('latin1', 0, 4) !== 'RIFF') return answer(400, { error: { message: 'unsupported audio file' } });
        if (library.has(name)) return answer(409, { error: { message: `Voice '${name}' already exists` } });
        library.set(name, record.file.bytes);
        return answer(201, { message: `Voice '${name}' uploaded successfully`, voice: { name } });
      }
      if (record.method === 'POST' && (record.path === '/v1/audio/speech/stream' || record.path === '/v1/audio/speech')) {
        if (typeof body.input !== 'string' || body.input.trim() === '') return answer(422, { detail: 'Input text cannot be empty' });
        const voice = typeof body.voice === 'string' ? library.get(body.voice) : undefined;
        const pcm = tone(body.input, voice ? voice.toString('base64') : 'default'); // unknown: the default voice, silently
        record.status = 200;
        res.writeHead(200, { 'content-type': 'audio/wav' });
        if (record.path === '/v1/audio/speech') return void res.end(encodeWav(pcm, HIGGS_TEST_RATE));
        res.write(openWavHeader());
        return streamPcm(res, pcm);
      }
      answer(404, { detail: 'Not Found' });
    },
    { library },
  );
}
