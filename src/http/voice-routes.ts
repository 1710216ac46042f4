// POST /api/voices/{voice}/reference: a clone voice's reference clip and its transcript, as a
// multipart upload (a `file` part: WAV, MP3, Ogg Opus or FLAC; a `transcript` field). The clip is
// decoded, trimmed, checked and normalized (clip-decoder.ts), stored under DATA_DIR (clip-store.ts)
// and named in the voice's row, which becomes a clone voice; a bad clip is a 400 with the reason.
// Its own plugin scope, so the multipart parser exists on this route only.
import fastifyMultipart from '@fastify/multipart';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { runCrud } from '../db/handlers.ts';
import { NotFoundError, type Repo } from '../db/repo.ts';
import { describeZodError, voiceKeySchema, voiceReferenceSchema } from '../protocol.ts';
import { ClipError, prepareClip } from '../speech/clip-decoder.ts';
import type { ClipStore } from '../speech/clip-store.ts';

/** An upload of 30 s of 48 kHz stereo WAV fits; a larger one is refused. */
export const MAX_CLIP_BYTES = 12 * 1024 * 1024;
const REFERENCE_URL = '/api/voices/:voice/reference';
export const voiceRouteMethods = new Map<string, Array<'POST'>>([[REFERENCE_URL, ['POST']]]);

class UploadError extends Error {}

export const voiceRoutes: FastifyPluginAsync<{ repo: Repo; clips: ClipStore; sampleRate: number }> = async (app, { repo, clips, sampleRate }) => {
  await app.register(fastifyMultipart, { limits: { fileSize: MAX_CLIP_BYTES, files: 1, fields: 5, parts: 6 } });

  app.post(REFERENCE_URL, { bodyLimit: MAX_CLIP_BYTES + 64 * 1024 }, async (req, reply) => {
    const key = voiceKeySchema.safeParse(req.params);
    if (!key.success) return reply.code(400).send({ error: `Invalid reference clip request: ${describeZodError(key.error, 'voice')}` });
    try {
      await repo.getVoice(key.data.voice);
    } catch (error) {
      if (error instanceof NotFoundError) return reply.code(404).send({ error: error.message });
      throw error;
    }
    let upload: { file: Buffer; transcript: string };
    let clip: Awaited<ReturnType<typeof prepareClip>>;
    try {
      upload = await uploadOf(req);
      clip = await prepareClip(upload.file, sampleRate);
    } catch (error) {
      if (error instanceof ClipError || error instanceof UploadError) return reply.code(400).send({ error: `Cannot use the reference clip: ${error.message}.` });
      throw error;
    }
    const stored = await clips.save(clip.wav, upload.transcript);
    const result = await runCrud(repo, 'update_voice', { voice: key.data.voice, method: 'clone', ...stored });
    if (!result.ok) return reply.code(result.status).send({ error: result.error });
    return reply.code(200).send({ voice: result.data, clip: { seconds: Number(clip.seconds.toFixed(3)), sample_rate: sampleRate, format: clip.format } });
  });
};

/** The clip and the transcript of a multipart upload. */
async function uploadOf(req: FastifyRequest): Promise<{ file: Buffer; transcript: string }> {
  if (!req.isMultipart()) throw new UploadError('send multipart/form-data with a "file" part (the clip) and a "transcript" field');
  let file: Buffer | undefined;
  const fields: Record<string, string> = {};
  for await (const part of req.parts()) {
    if (part.type === 'file') {
      const bytes = await part.toBuffer();
      if (part.file.truncated) throw new UploadError(`the clip is larger than ${MAX_CLIP_BYTES / 1024 / 1024} MB`);
      if (part.fieldname !== 'file') throw new UploadError(`unexpected file part "${part.fieldname}" (the clip goes in "file")`);
      file = bytes;
    } else if (typeof part.value === 'string') {
      fields[part.fieldname] = part.value;
    }
  }
  if (!file || file.length === 0) throw new UploadError('no clip: the "file" part is missing or empty');
  const parsed = voiceReferenceSchema.safeParse(fields);
  if (!parsed.success) throw new UploadError(describeZodError(parsed.error));
  return { file, transcript: parsed.data.transcript };
}
