// POST /api/lorebooks/import: a SillyTavern world-info file or a character_book, as a JSON body
// (`?name=` names it) or a multipart upload of several (each named by its file name, unless the
// book has a name of its own). All or none are stored. Its own plugin scope, as the card routes
// are, so raw JSON and multipart bodies are read here only.
import fastifyMultipart from '@fastify/multipart';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { runLorebookImport } from '../db/handlers.ts';
import type { Repo } from '../db/repo.ts';
import { LorebookError, lorebookFromFile, MAX_LOREBOOK_BYTES, MAX_LOREBOOK_FILES } from '../lorebooks.ts';
import type { LorebookCreate } from '../protocol.ts';

const IMPORT_URL = '/api/lorebooks/import';
export const lorebookRouteMethods = new Map<string, Array<'GET' | 'POST'>>([[IMPORT_URL, ['POST']]]);

export const lorebookRoutes: FastifyPluginAsync<{ repo: Repo }> = async (app, { repo }) => {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: MAX_LOREBOOK_BYTES * 2 }, (_req, body, done) => done(null, body));
  await app.register(fastifyMultipart, { limits: { fileSize: MAX_LOREBOOK_BYTES, files: MAX_LOREBOOK_FILES, fields: 20, parts: MAX_LOREBOOK_FILES + 20 } });

  app.post(IMPORT_URL, { bodyLimit: MAX_LOREBOOK_BYTES * 2 }, async (req, reply) => {
    let inputs: LorebookCreate[];
    try {
      inputs = await lorebooksOf(req);
    } catch (error) {
      if (error instanceof LorebookError) return reply.code(400).send({ error: `Cannot import the lorebook: ${error.message}.` });
      throw error;
    }
    const result = await runLorebookImport(repo, inputs);
    if (!result.ok) {
      if (result.cause !== undefined) req.log.error({ err: result.cause, error_id: result.errorId, op: 'import_lorebooks' }, 'request failed');
      return reply.code(result.status).send({ error: result.error });
    }
    return reply.code(201).send({ lorebooks: result.data });
  });
};

async function lorebooksOf(req: FastifyRequest): Promise<LorebookCreate[]> {
  if (!req.isMultipart()) {
    const body = req.body;
    if (!Buffer.isBuffer(body) || body.length === 0) throw new LorebookError('the body is empty: send the lorebook as application/json or a multipart upload');
    const name = (req.query as Record<string, unknown>).name;
    return [lorebookFromFile(body, { given: typeof name === 'string' ? name : undefined })];
  }
  const books: LorebookCreate[] = [];
  try {
    for await (const part of req.parts()) {
      if (part.type !== 'file') continue;
      const file = part.filename || `file ${books.length + 1}`;
      let bytes: Buffer;
      try {
        bytes = await part.toBuffer();
      } catch {
        throw new LorebookError(`"${file}" is over the ${MAX_LOREBOOK_BYTES / (1024 * 1024)} MB limit or cut short`);
      }
      try {
        books.push(lorebookFromFile(bytes, { file }));
      } catch (error) {
        if (error instanceof LorebookError) throw new LorebookError(`"${file}": ${error.message}`);
        throw error;
      }
    }
  } catch (error) {
    if (error instanceof LorebookError) throw error;
    throw new LorebookError(`the multipart upload cannot be read (malformed, cut short, or over ${MAX_LOREBOOK_FILES} files)`);
  }
  if (books.length === 0) throw new LorebookError('the multipart upload has no file in it');
  return books;
}
