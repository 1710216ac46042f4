// A clone voice's reference clip over REST:
//   POST /api/voices/{voice}/reference        multipart: a `file` part (WAV, MP3, Ogg Opus, FLAC or
//                                             WebM/Opus) and a `transcript` field. The clip is decoded,
//                                             trimmed, checked and normalized to mono at its voice's
//                                             engine's rate (clip-decoder.ts), stored under DATA_DIR
//                                             (clip-store.ts) and named in the voice's row, which
//                                             becomes a clone voice; a bad clip is a 400 with the reason.
//   GET  /api/voices/{voice}/reference        the stored clip's transcript, length and rate
//   GET  /api/voices/{voice}/reference/audio  the stored clip itself (audio/wav)
// Its own plugin scope, so the multipart parser exists on these routes only.
import fastifyMultipart from '@fastify/multipart';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { runCrud } from '../db/handlers.ts';
import { NotFoundError, type Repo } from '../db/repo.ts';
import { describeZodError, type TtsEngineName, type Voice, voiceKeySchema, voiceReferenceSchema } from '../protocol.ts';
import { ClipError, prepareClip } from '../speech/clip-decoder.ts';
import type { ClipStore } from '../speech/clip-store.ts';

/** An upload of 30 s of 48 kHz stereo WAV fits; a larger one is refused. */
export const MAX_CLIP_BYTES = 12 * 1024 * 1024;
const REFERENCE_URL = '/api/voices/:voice/reference';
const REFERENCE_AUDIO_URL = '/api/voices/:voice/reference/audio';
export const voiceRouteMethods = new Map<string, Array<'GET' | 'POST'>>([
  [REFERENCE_URL, ['GET', 'POST']],
  [REFERENCE_AUDIO_URL, ['GET']],
]);

export class UploadError extends Error {}

export interface VoiceRouteOptions {
  repo: Repo;
  clips: ClipStore;
  /** The rate a clip is stored at: its voice's engine's (null: the default engine's). */
  clipRate: (engine: TtsEngineName | null) => number;
}

export const voiceRoutes: FastifyPluginAsync<VoiceRouteOptions> = async (app, { repo, clips, clipRate }) => {
  await app.register(fastifyMultipart, { limits: { fileSize: MAX_CLIP_BYTES, files: 1, fields: 5, parts: 6 } });

  app.post(REFERENCE_URL, { bodyLimit: MAX_CLIP_BYTES + 64 * 1024 }, async (req, reply) => {
    const voice = await voiceOf(req, reply, repo);
    if (!voice) return reply;
    const rate = clipRate(voice.engine);
    let upload: { file: Buffer; transcript: string };
    let clip: Awaited<ReturnType<typeof prepareClip>>;
    try {
      upload = await uploadOf(req);
      clip = await prepareClip(upload.file, rate);
    } catch (error) {
      if (error instanceof ClipError || error instanceof UploadError) return reply.code(400).send({ error: `Cannot use the reference clip: ${error.message}.` });
      throw error;
    }
    const stored = await clips.save(clip.wav, upload.transcript);
    try {
      // The voice change sweeps the clip it replaces (src/app.ts); this one is kept until its row names it.
      const result = await runCrud(repo, 'update_voice', { voice: voice.voice, method: 'clone', ...stored });
      if (!result.ok) return reply.code(result.status).send({ error: result.error });
      return reply.code(200).send({ voice: result.data, clip: { seconds: Number(clip.seconds.toFixed(3)), sample_rate: rate, format: clip.format } });
    } finally {
      clips.release(stored);
    }
  });

  app.get(REFERENCE_URL, async (req, reply) => {
    const voice = await voiceOf(req, reply, repo);
    if (!voice) return reply;
    if (!voice.audio_path || !voice.text_path) return reply.code(404).send({ error: `The voice "${voice.voice}" has no reference clip.` });
    return reply.send(await clips.describe(voice.audio_path, voice.text_path));
  });

  app.get(REFERENCE_AUDIO_URL, async (req, reply) => {
    const voice = await voiceOf(req, reply, repo);
    if (!voice) return reply;
    if (!voice.audio_path || !voice.text_path) return reply.code(404).send({ error: `The voice "${voice.voice}" has no reference clip.` });
    const clip = await clips.load(voice.audio_path, voice.text_path);
    return reply.type('audio/wav').header('cache-control', 'no-store').send(clip.wav);
  });
};

/** The voice the URL names, or undefined with the 400/404 already answered. */
async function voiceOf(req: FastifyRequest, reply: FastifyReply, repo: Repo): Promise<Voice | undefined> {
  const key = voiceKeySchema.safeParse(req.params);
  if (!key.success) {
    reply.code(400).send({ error: `Invalid reference clip request: ${describeZodError(key.error, 'voice')}` });
    return undefined;
  }
  try {
    return await repo.getVoice(key.data.voice);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    reply.code(404).send({ error: error.message });
    return undefined;
  }
}

/** The one file part of a multipart upload (named `field`) and its text fields. */
export async function multipartOf(req: FastifyRequest, field: string, what: string): Promise<{ file: Buffer; fields: Record<string, string> }> {
  if (!req.isMultipart()) throw new UploadError(`send multipart/form-data with a "${field}" part (${what})`);
  let file: Buffer | undefined;
  const fields: Record<string, string> = {};
  for await (const part of req.parts()) {
    if (part.type === 'file') {
      const bytes = await part.toBuffer();
      if (part.file.truncated) throw new UploadError(`the ${what} is larger than ${MAX_CLIP_BYTES / 1024 / 1024} MB`);
      if (part.fieldname !== field) throw new UploadError(`unexpected file part "${part.fieldname}" (the ${what} goes in "${field}")`);
      file = bytes;
    } else if (typeof part.value === 'string') {
      fields[part.fieldname] = part.value;
    }
  }
  if (!file || file.length === 0) throw new UploadError(`no ${what}: the "${field}" part is missing or empty`);
  return { file, fields };
}

/** The clip and the transcript of a reference upload. */
async function uploadOf(req: FastifyRequest): Promise<{ file: Buffer; transcript: string }> {
  const { file, fields } = await multipartOf(req, 'file', 'clip');
  const parsed = voiceReferenceSchema.safeParse(fields);
  if (!parsed.success) throw new UploadError(describeZodError(parsed.error));
  return { file, transcript: parsed.data.transcript };
}
