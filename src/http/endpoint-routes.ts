// REST for the connection panel (docs/api.md, "Endpoint settings"): read the LLM / TTS / STT
// endpoints (keys masked), save or forget one (applied at once), list an endpoint's models and
// test it with a real request. Behind the access hook like every /api route: with AUTH_TOKEN set
// only an authenticated client reaches them.
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Config } from '../config.ts';
import { type EndpointSettings } from '../endpoints/endpoint-settings.ts';
import { listModels, ProbeError, testEndpoint } from '../endpoints/endpoint-probe.ts';
import { describeZodError, endpointDraftSchema, type EndpointKind, endpointKinds, endpointSettingsBodySchema } from '../protocol.ts';

const KINDS: ReadonlySet<string> = new Set(endpointKinds);

export const endpointRouteMethods = new Map<string, Array<'GET' | 'PUT' | 'POST' | 'DELETE'>>([
  ['/api/endpoints', ['GET']],
  ['/api/endpoints/:kind', ['PUT', 'DELETE']],
  ['/api/endpoints/:kind/models', ['GET', 'POST']],
  ['/api/endpoints/:kind/test', ['POST']],
]);

export const endpointRoutes: FastifyPluginAsync<{ endpoints: EndpointSettings; config: Config }> = async (app, { endpoints, config }) => {
  /** The :kind parameter, or a 404 naming the kinds there are. */
  const kindOf = (params: unknown, reply: FastifyReply): EndpointKind | undefined => {
    const kind = (params as { kind?: string }).kind ?? '';
    if (KINDS.has(kind)) return kind as EndpointKind;
    void reply.code(404).send({ error: `There is no endpoint "${kind.slice(0, 40)}": it is one of ${endpointKinds.join(', ')}.` });
    return undefined;
  };
  const draftOf = (body: unknown, reply: FastifyReply) => {
    const parsed = endpointDraftSchema.safeParse(body ?? {});
    if (parsed.success) return parsed.data;
    void reply.code(400).send({ error: `Invalid endpoint settings: ${describeZodError(parsed.error, 'body')}` });
    return undefined;
  };

  app.get('/api/endpoints', async () => endpoints.view());

  app.put('/api/endpoints/:kind', async (req, reply) => {
    const kind = kindOf(req.params, reply);
    if (!kind) return reply;
    const parsed = endpointSettingsBodySchema.safeParse(req.body);
    if (!parsed.success) return reply.code(400).send({ error: `Invalid endpoint settings: ${describeZodError(parsed.error, 'body')}` });
    await endpoints.save(kind, parsed.data);
    if (kind === 'llm') await endpoints.checkLlm(); // the answer says at once whether the new LLM is there
    return endpoints.view();
  });

  app.delete('/api/endpoints/:kind', async (req, reply) => {
    const kind = kindOf(req.params, reply);
    if (!kind) return reply;
    await endpoints.reset(kind);
    if (kind === 'llm') await endpoints.checkLlm();
    return endpoints.view();
  });

  const models = async (kind: EndpointKind, body: unknown, reply: FastifyReply) => {
    const draft = draftOf(body, reply);
    if (!draft) return reply;
    try {
      return { models: await listModels(endpoints.draft(kind, draft)) };
    } catch (error) {
      if (error instanceof ProbeError) return reply.code(502).send({ error: error.message });
      throw error;
    }
  };
  app.get('/api/endpoints/:kind/models', async (req, reply) => {
    const kind = kindOf(req.params, reply);
    return kind ? models(kind, {}, reply) : reply;
  });
  app.post('/api/endpoints/:kind/models', async (req, reply) => {
    const kind = kindOf(req.params, reply);
    return kind ? models(kind, req.body, reply) : reply;
  });

  app.post('/api/endpoints/:kind/test', async (req, reply) => {
    const kind = kindOf(req.params, reply);
    if (!kind) return reply;
    const draft = draftOf(req.body, reply);
    if (!draft) return reply;
    return testEndpoint(kind, endpoints.draft(kind, draft), config);
  });
};
