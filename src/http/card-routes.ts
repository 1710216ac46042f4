// The character card routes: POST /api/characters/import (a PNG, a JSON file, or a multipart
// upload of several), GET /api/characters/{id}/export, and GET /api/characters/{id}/image (the
// picture a card brought, which the character's image_url points at). Registered as their own
// (encapsulated) plugin, so the PNG and multipart body parsers exist on the import route only:
// every other route keeps answering 415 to anything but JSON. The access hook (registered on the
// root before this) covers them like any other route.
import fastifyMultipart from '@fastify/multipart';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { CardError, cardFromFile, characterCard, characterPng, isPng, MAX_CARD_BYTES, MAX_CARD_FILES } from '../cards.ts';
import { runImport } from '../db/handlers.ts';
import { type CharacterImport, NotFoundError, type Repo, slugify, type StoredCard } from '../db/repo.ts';
import { cardExportQuerySchema, characterIdSchema, describeZodError } from '../protocol.ts';

/** Bodies up to twice the card limit are read and refused with the card's size; larger ones fastify refuses (413). */
const BODY_LIMIT = 2 * MAX_CARD_BYTES;
/** All the files of one multipart upload together (each is held in memory until all are read). */
const MAX_UPLOAD_BYTES = 4 * MAX_CARD_BYTES;
const IMPORT_URL = '/api/characters/import';
const EXPORT_URL = '/api/characters/:id/export';
const IMAGE_URL = '/api/characters/:id/image';
/** The methods each card URL answers (app.ts answers the others with 405). */
export const cardRouteMethods = new Map<string, Array<'GET' | 'POST'>>([
  [IMPORT_URL, ['POST']],
  [EXPORT_URL, ['GET']],
  [IMAGE_URL, ['GET']],
]);
/** The picture URL carries its version (`?v=`): a browser may keep it as long as it likes. */
const PICTURE_CACHE = 'private, max-age=31536000, immutable';

export const cardRoutes: FastifyPluginAsync<{ repo: Repo }> = async (app, { repo }) => {
  // The card bytes are read as they are (JSON too, in this scope); the route checks the card and
  // refuses it with its reason.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(['image/png', 'application/json'], { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_req, body, done) => done(null, body));
  await app.register(fastifyMultipart, {
    limits: { fileSize: MAX_CARD_BYTES, files: MAX_CARD_FILES, fields: 20, parts: MAX_CARD_FILES + 20 },
  });
  // A body over the limit is a card too large, said as such (the root handler would answer 413).
  app.setErrorHandler((error, _req, reply) => {
    if (!isFastifyError(error, 'FST_ERR_CTP_BODY_TOO_LARGE')) throw error; // the root error handler
    return reply.code(400).send({ error: `Cannot import the card: the upload is over ${mb(BODY_LIMIT)}; a card may be up to ${mb(MAX_CARD_BYTES)}.` });
  });

  app.post(IMPORT_URL, { bodyLimit: BODY_LIMIT }, async (req, reply) => {
    let inputs: CharacterImport[];
    try {
      inputs = await cardsOf(req);
    } catch (error) {
      if (error instanceof CardError) return reply.code(400).send({ error: `Cannot import the card: ${error.message}.` });
      throw error;
    }
    const result = await runImport(repo, inputs);
    if (!result.ok) {
      if (result.cause !== undefined) req.log.error({ err: result.cause, error_id: result.errorId, op: 'import_characters' }, 'request failed');
      return reply.code(result.status).send({ error: result.error });
    }
    return reply.code(201).send({ characters: result.data });
  });

  app.get(EXPORT_URL, async (req, reply) => {
    const id = characterIdSchema.safeParse(req.params);
    const query = cardExportQuerySchema.safeParse(req.query);
    if (!id.success) return reply.code(400).send({ error: `Invalid export request: ${describeZodError(id.error, 'id')}` });
    if (!query.success) return reply.code(400).send({ error: `Invalid export request: ${describeZodError(query.error, 'query')}` });
    let stored: StoredCard;
    try {
      stored = await repo.getCharacterCard(id.data.id);
    } catch (error) {
      if (error instanceof NotFoundError) return reply.code(404).send({ error: error.message });
      throw error; // the root error handler: a 500 with an error id
    }
    const { format, spec } = query.data;
    const filename = `${slugify(stored.character.name)}.${format}`;
    reply.header('content-disposition', `attachment; filename="${filename}"`);
    if (format === 'json') return reply.type('application/json; charset=utf-8').send(characterCard(stored, spec));
    return reply.type('image/png').send(characterPng(stored, spec));
  });

  app.get(IMAGE_URL, async (req, reply) => {
    const id = characterIdSchema.safeParse(req.params);
    if (!id.success) return reply.code(400).send({ error: `Invalid picture request: ${describeZodError(id.error, 'id')}` });
    let picture: Awaited<ReturnType<Repo['getCharacterPicture']>>;
    try {
      picture = await repo.getCharacterPicture(id.data.id);
    } catch (error) {
      if (error instanceof NotFoundError) return reply.code(404).send({ error: error.message });
      throw error;
    }
    const etag = `"${picture.etag}"`;
    reply.header('etag', etag).header('cache-control', PICTURE_CACHE).header('x-content-type-options', 'nosniff');
    if (req.headers['if-none-match'] === etag) return reply.code(304).send();
    return reply.type(picture.content_type).send(picture.bytes);
  });
};

const mb = (bytes: number) => `${Math.round(bytes / (1024 * 1024))} MB`;

/** The cards a request carries: its PNG or JSON body, or each file of a multipart upload. */
async function cardsOf(req: FastifyRequest): Promise<CharacterImport[]> {
  if (req.isMultipart()) return multipartCards(req);
  const body = req.body;
  if (!Buffer.isBuffer(body) || body.length === 0) {
    throw new CardError('the body is empty: send a PNG card (image/png), a JSON card (application/json) or a multipart upload');
  }
  const declaredPng = req.headers['content-type']?.toLowerCase().startsWith('image/png') ?? false;
  return [cardFromFile(body, declaredPng || isPng(body) ? 'png' : 'json')];
}

async function multipartCards(req: FastifyRequest): Promise<CharacterImport[]> {
  const cards: CharacterImport[] = [];
  let total = 0;
  try {
    for await (const part of req.parts()) {
      if (part.type !== 'file') continue; // form fields carry no card
      const name = part.filename || `file ${cards.length + 1}`;
      let bytes: Buffer;
      try {
        bytes = await part.toBuffer();
      } catch (error) {
        if (isFastifyError(error, 'FST_REQ_FILE_TOO_LARGE')) throw new CardError(`"${name}" is over the ${MAX_CARD_BYTES / (1024 * 1024)} MB card limit`);
        throw error;
      }
      total += bytes.length;
      if (total > MAX_UPLOAD_BYTES) throw new CardError(`the upload is over ${MAX_UPLOAD_BYTES / (1024 * 1024)} MB in all: send fewer cards at once`);
      const kind = isPng(bytes) || part.mimetype === 'image/png' || /\.png$/i.test(name) ? 'png' : 'json';
      try {
        cards.push(cardFromFile(bytes, kind));
      } catch (error) {
        if (error instanceof CardError) throw new CardError(`"${name}": ${error.message}`);
        throw error;
      }
    }
  } catch (error) {
    if (error instanceof CardError) throw error;
    if (isFastifyError(error, 'FST_FILES_LIMIT') || isFastifyError(error, 'FST_PARTS_LIMIT')) {
      throw new CardError(`the upload has too many parts: at most ${MAX_CARD_FILES} cards at once`);
    }
    throw new CardError('the multipart upload cannot be read (it is malformed or cut short)');
  }
  if (cards.length === 0) throw new CardError('the multipart upload has no file in it: send each card as a file (e.g. in a field named "file")');
  return cards;
}

const isFastifyError = (error: unknown, code: string) => typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
