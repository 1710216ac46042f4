// Who may reach the server (docs/security.md). One onRequest hook, which runs before
// @fastify/websocket upgrades a socket, checks in turn:
//   Host   — a name this server answers to (DNS rebinding: an attacker's name pointed at 127.0.0.1);
//   Origin — a browser page of the server's own origin or ALLOWED_ORIGINS, on /ws always (a
//            WebSocket has no CORS) and on state-changing methods elsewhere;
//   token  — AUTH_TOKEN, when set, as `Authorization: Bearer`, the login cookie, or `?token=`
//            on the /ws upgrade.
// POST /api/login {token} sets the cookie a browser then sends by itself (also on the same-origin
// upgrade); GET /api/session tells a client whether it is in.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.ts';
import { loginSchema } from '../protocol.ts';
import { hostAllowed, hostnameOf, normalOrigin } from './hosts.ts';

export const COOKIE_NAME = 'chorus_session';
/** Browsers cap cookie lifetimes at 400 days; the token is asked for again after that. */
const COOKIE_MAX_AGE_S = 400 * 24 * 3600;

interface Rule {
  host: boolean;
  token: boolean;
  origin: 'always' | 'state-changing';
}

/** Routes (by their pattern) that need less than everything; all others need it all. */
const FULL: Rule = { host: true, token: true, origin: 'state-changing' };
const WEB_CLIENT: Rule = { host: true, token: false, origin: 'state-changing' }; // the page asks for the token
const RULES = new Map<string, Rule>([
  ['/healthz', { host: false, token: false, origin: 'state-changing' }], // for load balancers; reveals no data
  ['/api/login', { host: true, token: false, origin: 'state-changing' }],
  ['/api/logout', { host: true, token: false, origin: 'state-changing' }],
  ['/ws', { host: true, token: true, origin: 'always' }],
  ['/', WEB_CLIENT],
  ['/*', WEB_CLIENT],
]);

/** Enough for a person mistyping; far too few to guess a token. */
const LOGIN_ATTEMPTS_PER_MINUTE = 10;

/** Methods a cross-origin page must not use on its own; the others only read. */
const READ_ONLY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);


/**
 * The access hook and the login routes. Register it before any other route; fastify-plugin
 * lifts the hook out of the plugin's scope so it covers the whole server.
 */
const plugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const { access } = config;
  await app.register(fastifyCookie);
  // Login attempts per client address: a token cannot be guessed by trying (global: false, so
  // only the routes that ask for it are limited).
  await app.register(fastifyRateLimit, { global: false });
  const secret = access.authToken === undefined ? undefined : { token: access.authToken, cookie: sessionCookieValue(access.authToken) };

  app.addHook('onRequest', async (req, reply) => {
    const rule = RULES.get(req.routeOptions.url ?? '') ?? FULL;
    const refusal =
      (rule.host ? hostRefusal(req, config) : undefined) ??
      (rule.origin === 'always' || !READ_ONLY_METHODS.has(req.method) ? originRefusal(req, access.allowedOrigins) : undefined);
    if (refusal) return reply.code(403).send({ error: refusal });
    if (rule.token && secret && !authenticated(req, secret.token, secret.cookie)) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="Chorus"')
        .send({ error: 'This server needs its access token (AUTH_TOKEN): send Authorization: Bearer <token>, or log in with POST /api/login {"token": …}.' });
    }
    return undefined;
  });

  const loginLimit = { rateLimit: { max: LOGIN_ATTEMPTS_PER_MINUTE, timeWindow: 60_000 } };
  app.post('/api/login', { config: loginLimit }, async (req, reply) => {
    const parsed = loginSchema.safeParse(req.body);
    if (!parsed.success) return reply.code(400).send({ error: 'Send the access token as JSON: {"token": "…"}.' });
    if (!secret) return { auth_required: false };
    if (!safeEqual(parsed.data.token, secret.token)) return reply.code(401).send({ error: 'Wrong token.' });
    reply.setCookie(COOKIE_NAME, secret.cookie, { httpOnly: true, sameSite: 'strict', path: '/', secure: isHttps(req), maxAge: COOKIE_MAX_AGE_S });
    return { auth_required: true };
  });
  app.post('/api/logout', async (req, reply) => {
    reply.clearCookie(COOKIE_NAME, { httpOnly: true, sameSite: 'strict', path: '/', secure: isHttps(req) });
    return reply.code(204).send();
  });
  // Behind the token check like every other route: 200 means "in", 401 means "log in".
  app.get('/api/session', async () => ({ auth_required: secret !== undefined }));
};
export const accessControl = fp(plugin, { name: 'chorus-access' });

function hostRefusal(req: FastifyRequest, config: Config): string | undefined {
  const hostname = hostnameOf(req.headers.host);
  if (hostname === undefined) return 'The request has no valid Host header.';
  if (hostAllowed(hostname, config.host, config.access.allowedHosts)) return undefined;
  return `Host "${hostname}" is not one this server answers to (protection against DNS rebinding): add it to ALLOWED_HOSTS.`;
}

/** Requests without Origin come from non-browser clients (the token still applies to them). */
function originRefusal(req: FastifyRequest, allowedOrigins: readonly string[]): string | undefined {
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  const normal = normalOrigin(origin);
  if (normal !== undefined && (allowedOrigins.includes(normal) || ownOrigins(req).includes(normal))) return undefined;
  return `Pages of origin ${JSON.stringify(origin)} may not use this server: add the origin to ALLOWED_ORIGINS to let them.`;
}

/** The origin the page was loaded from when it is this server's: the Host, over the request's scheme or the proxy's. */
function ownOrigins(req: FastifyRequest): string[] {
  const schemes = new Set([req.protocol, forwardedProto(req)].filter((s): s is string => s === 'http' || s === 'https'));
  return [...schemes].flatMap((scheme) => normalOrigin(`${scheme}://${req.headers.host ?? ''}`) ?? []);
}

/** The scheme the client used, as a TLS-terminating proxy reports it (first hop). */
function forwardedProto(req: FastifyRequest): string | undefined {
  const header = req.headers['x-forwarded-proto'];
  return (Array.isArray(header) ? header[0] : header)?.split(',')[0]?.trim().toLowerCase();
}

const isHttps = (req: FastifyRequest) => req.protocol === 'https' || forwardedProto(req) === 'https';

function authenticated(req: FastifyRequest, token: string, cookieValue: string): boolean {
  const bearer = /^Bearer +(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
  if (bearer !== undefined) return safeEqual(bearer, token);
  const cookie = req.cookies[COOKIE_NAME];
  if (cookie !== undefined && safeEqual(cookie, cookieValue)) return true;
  // Browsers cannot set headers on a WebSocket; the query is accepted on the upgrade only.
  const query = req.routeOptions.url === '/ws' ? (req.query as Record<string, unknown>).token : undefined;
  return typeof query === 'string' && safeEqual(query, token);
}

/** The cookie holds a value derived from the token, not the token itself. */
function sessionCookieValue(token: string): string {
  return createHmac('sha256', token).update('chorus login cookie v1').digest('base64url');
}

/** Constant time whatever the lengths: the digests are always 32 bytes. */
function safeEqual(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}
