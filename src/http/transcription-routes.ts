// POST /api/transcriptions: the text of an uploaded recording (multipart, an `audio` part in any
// format a reference clip may be: WAV, MP3, Ogg Opus, FLAC, WebM/Opus), by the server's speech
// input engine (STT_ENGINE): what the voice editor pre-fills a clip's transcript with. The audio
// is decoded in-process, mixed to mono and resampled to 16 kHz, as live speech input is. Without a
// speech input engine it is a 503 saying how to configure one. Its own plugin scope (multipart).
import fastifyMultipart from '@fastify/multipart';
import type { FastifyPluginAsync } from 'fastify';
import { INPUT_SAMPLE_RATE } from '../protocol.ts';
import { ClipError, decodeAudio } from '../speech/clip-decoder.ts';
import { resampleAll, toPcm16 } from '../speech/resampler.ts';
import type { SttEngine } from '../transcribe/engine.ts';
import { SPEECH_INPUT_NOT_CONFIGURED } from '../transcribe/stt.ts';
import { MAX_CLIP_BYTES, multipartOf, UploadError } from './voice-routes.ts';

const TRANSCRIPTIONS_URL = '/api/transcriptions';
export const transcriptionRouteMethods = new Map<string, Array<'POST'>>([[TRANSCRIPTIONS_URL, ['POST']]]);

/** Longer recordings are refused: this is for reference clips (3–30 s), not for whole files. */
export const MAX_TRANSCRIPTION_SECONDS = 120;

export const transcriptionRoutes: FastifyPluginAsync<{ stt: SttEngine | undefined }> = async (app, { stt }) => {
  await app.register(fastifyMultipart, { limits: { fileSize: MAX_CLIP_BYTES, files: 1, fields: 2, parts: 3 } });

  app.post(TRANSCRIPTIONS_URL, { bodyLimit: MAX_CLIP_BYTES + 64 * 1024 }, async (req, reply) => {
    if (!stt) return reply.code(503).send({ error: SPEECH_INPUT_NOT_CONFIGURED.replace('Until then, send text with user_message.', 'Until then, type the transcript.'), code: 'stt_not_configured' });
    let pcm: Buffer;
    try {
      const { file } = await multipartOf(req, 'audio', 'recording');
      const audio = await decodeAudio(file);
      const seconds = audio.samples.length / audio.sampleRate;
      if (seconds > MAX_TRANSCRIPTION_SECONDS) throw new ClipError(`the recording is ${seconds.toFixed(0)} s long; at most ${MAX_TRANSCRIPTION_SECONDS} s is transcribed`);
      pcm = toPcm16(await resampleAll(audio.samples, audio.sampleRate, INPUT_SAMPLE_RATE));
    } catch (error) {
      if (error instanceof ClipError || error instanceof UploadError) return reply.code(400).send({ error: `Cannot transcribe the recording: ${error.message}.` });
      throw error;
    }
    // A client that goes away before the answer stops the transcription.
    const gone = new AbortController();
    reply.raw.once('close', () => reply.raw.writableFinished || gone.abort(new Error('the client went away')));
    try {
      return reply.send({ text: (await stt.transcribe(pcm, gone.signal)).trim() });
    } catch (error) {
      if (gone.signal.aborted) return reply;
      req.log.warn({ err: error }, 'transcription failed');
      return reply.code(502).send({ error: `The speech input engine could not transcribe the recording (${error instanceof Error ? error.message : String(error)}).`, code: 'stt_error' });
    }
  });
};
