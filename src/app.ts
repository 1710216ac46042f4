// The HTTP server: the web client at /, the WebSocket at /ws (one WebSocketRouter per
// connection), the REST API under /api (a route table over the same CRUD operations as the
// WebSocket), and /healthz.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import type { Database } from './db/client.ts';
import { MAX_CARD_BYTES } from './cards.ts';
import { accessControl } from './http/access.ts';
import { cardRouteMethods, cardRoutes } from './http/card-routes.ts';
import { lorebookRouteMethods, lorebookRoutes } from './http/lorebook-routes.ts';
import { transcriptionRouteMethods, transcriptionRoutes } from './http/transcription-routes.ts';
import { voiceRouteMethods, voiceRoutes } from './http/voice-routes.ts';
import { endpointRouteMethods, endpointRoutes } from './http/endpoint-routes.ts';
import { EndpointSettings } from './endpoints/endpoint-settings.ts';
import { SecretBox } from './endpoints/secret-box.ts';
import type { ClipStore } from './speech/clip-store.ts';
import { type CrudType, crudChanges, runCrud } from './db/handlers.ts';
import type { Repo } from './db/repo.ts';
import type { Voice } from './protocol.ts';
import type { Llm } from './llm/chat.ts';
import { renderMetrics } from './metrics.ts';
import type { MessageSpool } from './session/message-spool.ts';
import { Heartbeat } from './session/heartbeat.ts';
import { type SessionDeps, WebSocketRouter } from './session/router.ts';
import { SessionLimit } from './session/session-limit.ts';
import { SlowClientGuard } from './session/slow-client.ts';
import { TtsRegistry } from './speech/registry.ts';
import { isJsonObject as isObject, parseJson } from './util/json.ts';

export interface AppDeps {
  config: Config;
  database: Database;
  repo: Repo;
  llm: Llm;
  logger: Logger;
  tts: SessionDeps['tts'];
  stt: SessionDeps['stt'];
  /** The open sessions, kept by the caller (metrics, tests). */
  sessions?: Set<WebSocketRouter>;
  /** DATA_DIR's spool and dead-letter files (main.ts); without it refused messages are only logged. */
  spool?: MessageSpool;
  /** Where reference clips are stored (DATA_DIR/voices); without it no clip can be uploaded. */
  clips?: ClipStore | undefined;
}

type Parts = { params: Record<string, string>; query: Record<string, string | undefined>; body: unknown };
interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  url: string;
  op: CrudType | ((parts: Parts) => CrudType);
  payload: (parts: Parts) => unknown;
  created?: boolean;
}

const body = (parts: Parts) => (isObject(parts.body) ? parts.body : {});
/** Query strings carry text; the CRUD schemas want numbers for paging. */
const paging = (q: Parts['query']) => ({
  ...(q.limit !== undefined ? { limit: Number(q.limit) } : {}),
  ...(q.offset !== undefined ? { offset: Number(q.offset) } : {}),
});

/** REST under /api: each route names the CRUD operation it runs and how its payload is built. */
export const restRoutes: Route[] = [
  {
    method: 'GET',
    url: '/api/characters',
    op: ({ query }) => (query.q !== undefined ? 'search_characters' : query.active === 'true' ? 'get_active_characters' : 'get_characters'),
    payload: ({ query }) => ({ query: query.q }),
  },
  { method: 'GET', url: '/api/characters/:id', op: 'get_character', payload: ({ params }) => ({ id: params.id }) },
  { method: 'POST', url: '/api/characters', op: 'create_character', payload: body, created: true },
  { method: 'PATCH', url: '/api/characters/:id', op: 'update_character', payload: (x) => ({ ...body(x), id: x.params.id }) },
  { method: 'DELETE', url: '/api/characters/:id', op: 'delete_character', payload: ({ params }) => ({ id: params.id }) },

  { method: 'GET', url: '/api/voices', op: 'get_voices', payload: () => ({}) },
  { method: 'GET', url: '/api/voices/:voice', op: 'get_voice', payload: ({ params }) => ({ voice: params.voice }) },
  { method: 'POST', url: '/api/voices', op: 'create_voice', payload: body, created: true },
  { method: 'PATCH', url: '/api/voices/:voice', op: 'update_voice', payload: (x) => ({ ...body(x), voice: x.params.voice }) },
  { method: 'DELETE', url: '/api/voices/:voice', op: 'delete_voice', payload: ({ params }) => ({ voice: params.voice }) },

  { method: 'GET', url: '/api/conversations', op: 'get_conversations', payload: ({ query }) => paging(query) },
  { method: 'GET', url: '/api/conversations/:id', op: 'get_conversation', payload: ({ params }) => ({ conversation_id: params.id }) },
  { method: 'POST', url: '/api/conversations', op: 'create_conversation', payload: body, created: true },
  { method: 'PATCH', url: '/api/conversations/:id', op: 'update_conversation', payload: (x) => ({ ...body(x), conversation_id: x.params.id }) },
  { method: 'DELETE', url: '/api/conversations/:id', op: 'delete_conversation', payload: ({ params }) => ({ conversation_id: params.id }) },

  { method: 'GET', url: '/api/conversations/:id/messages', op: 'get_messages', payload: ({ params, query }) => ({ conversation_id: params.id, ...paging(query) }) },
  { method: 'POST', url: '/api/conversations/:id/messages', op: 'create_message', payload: (x) => ({ ...body(x), conversation_id: x.params.id }), created: true },
  { method: 'PATCH', url: '/api/messages/:id', op: 'update_message', payload: (x) => ({ ...body(x), message_id: x.params.id }) },
  { method: 'DELETE', url: '/api/messages/:id', op: 'delete_message', payload: ({ params }) => ({ message_id: params.id }) },

  { method: 'GET', url: '/api/personas', op: 'get_personas', payload: () => ({}) },
  { method: 'GET', url: '/api/personas/:id', op: 'get_persona', payload: ({ params }) => ({ id: params.id }) },
  { method: 'POST', url: '/api/personas', op: 'create_persona', payload: body, created: true },
  { method: 'PATCH', url: '/api/personas/:id', op: 'update_persona', payload: (x) => ({ ...body(x), id: x.params.id }) },
  { method: 'DELETE', url: '/api/personas/:id', op: 'delete_persona', payload: ({ params }) => ({ id: params.id }) },

  { method: 'GET', url: '/api/lorebooks', op: 'get_lorebooks', payload: () => ({}) },
  { method: 'GET', url: '/api/lorebooks/:id', op: 'get_lorebook', payload: ({ params }) => ({ id: params.id }) },
  { method: 'POST', url: '/api/lorebooks', op: 'create_lorebook', payload: body, created: true },
  { method: 'PATCH', url: '/api/lorebooks/:id', op: 'update_lorebook', payload: (x) => ({ ...body(x), id: x.params.id }) },
  { method: 'DELETE', url: '/api/lorebooks/:id', op: 'delete_lorebook', payload: ({ params }) => ({ id: params.id }) },
];

const PLACEHOLDER = `<!doctype html><meta charset="utf-8"><title>Chorus</title>
<h1>Chorus</h1><p>The server is running. The web client has not been built; connect a client to <code>/ws</code>
or use the REST API under <code>/api</code>.</p>`;

export async function buildApp(deps: AppDeps) {
  const { config } = deps;
  const app = Fastify({ loggerInstance: deps.logger, bodyLimit: config.maxMessageBytes, logController: new LogController({ disableRequestLogging: true }) });
  // JSON is the only body the API reads: any other content type is 415, not silently ignored
  // (fastify would otherwise read text/plain as a string and the route would see no fields).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody);
  app.setErrorHandler(errorReply);
  // ws closes a connection whose frame is over maxPayload; frames up to 4× our own limit are
  // read and answered with a clear error instead.
  await app.register(fastifyWebsocket, { options: { maxPayload: config.maxMessageBytes * 4 } });
  await app.register(accessControl, { config }); // Host, Origin and AUTH_TOKEN checks, before any route

  app.get('/healthz', async () => ({ status: 'ok', database: deps.database.kind, tts: deps.tts?.engine.name ?? 'none' }));
  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await renderMetrics();
    return reply.type(contentType).send(body);
  });
  app.get('/api/voices/engines', async () => engineVoices(deps.tts));
  // The connection panel's endpoints: saved ones replace the environment's in the live engines
  // (deps.llm in place, deps.tts's openai engine, deps.stt for sessions opened from now on).
  const endpoints = new EndpointSettings({ database: deps.database, config, box: new SecretBox(config.secretsKey, config.dataDir), llm: deps.llm, tts: deps.tts, sttHost: deps, logger: deps.logger });
  // A database that cannot be read now must not keep the server down: the environment's endpoints serve meanwhile.
  await endpoints.load().catch((err: unknown) => deps.logger.error({ err }, 'reading the saved endpoint settings failed; using the environment\'s'));
  // Every open session learns at once (the first screen, the mic button follow it).
  const unwatch = endpoints.onChange((data) => {
    for (const session of deps.sessions ?? []) session.capabilitiesChanged(data);
  });
  app.addHook('onClose', async () => unwatch());
  const bounds = connectionBounds(config.limits);
  app.addHook('onClose', async () => bounds.stop());
  app.get('/ws', { websocket: true }, (socket, req) => openSession(socket, req.socket, deps, bounds, greetsOnStart(req.query), () => endpoints.capabilities()));
  for (const route of restRoutes) {
    app.route({ method: route.method, url: route.url, handler: (req, reply) => rest(route, req, reply, deps) });
  }
  await app.register(cardRoutes, { repo: deps.repo }); // its own scope: PNG and multipart bodies there only
  await app.register(lorebookRoutes, { repo: deps.repo }); // likewise: raw JSON and multipart
  await app.register(transcriptionRoutes, { stt: deps.stt?.engine }); // likewise: multipart
  await app.register(endpointRoutes, { endpoints, config });
  if (deps.clips) {
    await app.register(voiceRoutes, { repo: deps.repo, clips: deps.clips, clipRate: (engine) => clipRate(deps.tts, engine, config.tts.outputSampleRate) });
    const clipSync = keepClipsInSync(deps.clips, deps.repo, deps.logger);
    app.addHook('onReady', clipSync.sweep); // start-up: what a crash or an older version left behind
    app.addHook('onClose', async () => clipSync.stop());
  }
  for (const [url, allowed] of [...methodsByUrl(restRoutes), ...cardRouteMethods, ...lorebookRouteMethods, ...transcriptionRouteMethods, ...endpointRouteMethods, ...(deps.clips ? voiceRouteMethods : [])]) {
    const others = REST_METHODS.filter((m) => !allowed.includes(m));
    app.route({ method: others, url, handler: (req, reply) => methodNotAllowed(req, reply, allowed) });
  }

  const webDir = resolve(config.webDir);
  if (existsSync(webDir)) await app.register(fastifyStatic, { root: webDir });
  else app.get('/', (_req, reply) => reply.type('text/html').send(PLACEHOLDER));
  return app;
}

/** JSON bodies, where an empty body (a DELETE sent with a JSON content type) is no body. */
function parseJsonBody(_req: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void {
  const text = body.toString();
  if (text.trim() === '') return done(null, undefined);
  try {
    done(null, parseJson(text));
  } catch (error) {
    done(Object.assign(new Error(`Body is not valid JSON: ${(error as Error).message}`), { statusCode: 400 }));
  }
}

/** What bounds every connection: MAX_SESSIONS, the heartbeat, the slow-client check. */
function connectionBounds(limits: Config['limits']) {
  const heartbeat = new Heartbeat(limits.pingIntervalMs);
  const slowClients = new SlowClientGuard(limits.slowClientTimeoutMs);
  return {
    sessions: new SessionLimit(limits.maxSessions),
    heartbeat,
    slowClients,
    stop: () => {
      heartbeat.stop();
      slowClients.stop();
    },
  };
}
type ConnectionBounds = ReturnType<typeof connectionBounds>;

/** `/ws?greetings=off`: a client that will resume a conversation does not want its new one greeted first. */
const greetsOnStart = (query: unknown) => !(isObject(query) && Object.hasOwn(query, 'greetings') && query.greetings === 'off');

function openSession(socket: import('ws').WebSocket, tcp: import('node:net').Socket, deps: AppDeps, bounds: ConnectionBounds, greetOnStart: boolean, capabilities: SessionDeps['capabilities']): void {
  if (!bounds.sessions.admit(socket)) return;
  const router = new WebSocketRouter(socket, {
    repo: deps.repo,
    llm: deps.llm,
    userName: deps.config.userName,
    replySeed: deps.config.replySeed,
    maxMessageBytes: deps.config.maxMessageBytes,
    greetOnStart,
    tts: deps.tts,
    narration: deps.config.narration,
    stt: deps.stt,
    logger: deps.logger,
    spool: deps.spool,
    rateLimits: deps.config.limits.rate,
    capabilities,
  }, tcp);
  bounds.heartbeat.watch(socket);
  bounds.slowClients.watch(router.writer);
  // Frames that arrive while the session starts are held, so none is lost or reordered.
  const early: Array<[Buffer, boolean]> = [];
  let started = false;
  socket.on('message', (data: Buffer, isBinary: boolean) => (started ? router.handleFrame(data, isBinary) : early.push([data, isBinary])));
  deps.sessions?.add(router);
  socket.on('close', () => {
    bounds.slowClients.unwatch(router.writer);
    deps.sessions?.delete(router);
    void router.close();
  });
  router
    .start()
    .then(() => {
      started = true;
      for (const [data, isBinary] of early.splice(0)) router.handleFrame(data, isBinary);
    })
    .catch((error) => {
      deps.logger.error({ err: error }, 'session failed to start');
      socket.close(1011, 'session failed to start');
    });
}

/** A clip is stored at the rate of the engine that will speak it (the default engine for a voice naming none or an unconfigured one). */
function clipRate(tts: SessionDeps['tts'], engine: Voice['engine'], fallback: number): number {
  if (!tts) return fallback;
  const registry = tts.engine instanceof TtsRegistry ? tts.engine : undefined;
  const speaking = (engine && registry?.get(engine)) || registry?.get(registry.name) || tts.engine;
  return speaking.sampleRate;
}

/**
 * Reference clip files live as long as a voice names them: swept at start-up and after every
 * voice change (a voice deleted or given a new clip); stop() ends the watching.
 */
function keepClipsInSync(clips: ClipStore, repo: Repo, logger: Logger) {
  const sweep = () => clips.sweep(() => repo.listVoices()).catch((err: unknown) => logger.warn({ err }, 'sweeping reference clips failed'));
  const onChange = () => void sweep();
  crudChanges.on('characters', onChange); // voice updates and deletes are character changes too
  return { sweep, stop: () => void crudChanges.off('characters', onChange) };
}

/** The active TTS engine and the voice ids it offers, for a client's voice editor. */
async function engineVoices(tts: SessionDeps['tts']) {
  if (!tts) return { engines: [] };
  // Every configured engine (a registry), the default first; a lone engine (tests) as it is.
  const engines = tts.engine instanceof TtsRegistry ? tts.engine.list() : [tts.engine];
  return {
    output_sample_rate: tts.engine.sampleRate,
    engines: await Promise.all(
      engines.map(async (engine) => ({
        engine: engine.name,
        default: engine.name === tts.engine.name,
        sample_rate: engine.sampleRate,
        default_voice: engine.defaultVoice.engineVoice,
        methods: engine.methods ?? ['preset'],
        voices: await engine.listVoices(),
        ...(engine.describeVoices ? { voice_labels: await engine.describeVoices() } : {}),
      })),
    ),
  };
}

const REST_METHODS = ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'] as const;

/** Each REST path and the methods it answers; the others get 405 with an Allow header. */
function methodsByUrl(routes: readonly Route[]): Map<string, Route['method'][]> {
  const byUrl = new Map<string, Route['method'][]>();
  for (const route of routes) byUrl.set(route.url, [...(byUrl.get(route.url) ?? []), route.method]);
  return byUrl;
}

function methodNotAllowed(req: FastifyRequest, reply: FastifyReply, allowed: readonly string[]) {
  const allow = allowed.includes('GET') ? [...allowed, 'HEAD'] : allowed;
  return reply
    .code(405)
    .header('allow', allow.join(', '))
    .send({ error: `${req.method} is not allowed on ${req.routeOptions.url ?? req.url}; use ${allow.join(', ')}.` });
}

/**
 * Errors fastify raises itself (bad JSON, an unsupported content type, a body over the limit)
 * keep their 4xx status and reason; anything else is a 500 that names an error id, with the
 * details in the log only.
 */
function errorReply(error: Error & { statusCode?: number }, req: FastifyRequest, reply: FastifyReply) {
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return reply.code(status).send({ error: clientReason(error, status, req) });
  const errorId = randomUUID().slice(0, 8);
  req.log.error({ err: error, error_id: errorId, url: req.routeOptions.url }, 'request failed');
  return reply.code(500).send({ error: `The request failed on the server (error id ${errorId}).` });
}

/** fastify's own 4xx messages, said for a person. */
function clientReason(error: Error & { code?: string }, status: number, req: FastifyRequest): string {
  if (status === 415 && cardRouteMethods.has(req.routeOptions.url ?? '')) {
    return `Unsupported content type: send the card as image/png, application/json or multipart/form-data.`;
  }
  if (status === 415) return `Unsupported content type: send the body as application/json.`;
  if (status === 413 && cardRouteMethods.has(req.routeOptions.url ?? '')) return `The upload is far over the card size limit (${MAX_CARD_BYTES / (1024 * 1024)} MB).`;
  if (status === 413) return `The body is over the size limit (MAX_MESSAGE_BYTES).`;
  return error.message;
}

async function rest(route: Route, req: FastifyRequest, reply: FastifyReply, deps: AppDeps): Promise<unknown> {
  const parts: Parts = {
    params: req.params as Record<string, string>,
    query: req.query as Record<string, string | undefined>,
    body: req.body,
  };
  const op = typeof route.op === 'function' ? route.op(parts) : route.op;
  const result = await runCrud(deps.repo, op, route.payload(parts));
  if (!result.ok) {
    if (result.cause !== undefined) req.log.error({ err: result.cause, error_id: result.errorId, op }, 'request failed');
    return reply.code(result.status).send({ error: result.error });
  }
  return reply.code(route.created ? 201 : 200).send(result.data);
}
