// The operator-facing server, on its own port so pods (DNATed to the front door) never reach it:
// /metrics (prom-client), /healthz (the process answers), /readyz (upstream session works AND identity
// is synced; the DaemonSet's readiness and the node-boot guard depend on it).
import fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { NO_SCHEMAS } from './no-schemas.js';

export interface MetricsAppDeps {
  readonly registry: Registry;
  /** Resolves to the reasons the agent is not ready; empty when ready. */
  readonly notReady: () => Promise<string[]>;
}

export function buildMetricsApp(deps: MetricsAppDeps): FastifyInstance {
  const app = fastify({ logger: false, requestTimeout: 10_000, schemaController: NO_SCHEMAS });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', deps.registry.contentType);
    return deps.registry.metrics();
  });
  app.get('/healthz', async (_req, reply) => reply.type('text/plain').send('ok\n'));
  app.get('/readyz', async (_req, reply) => {
    const reasons = await deps.notReady();
    reply.type('text/plain');
    if (reasons.length === 0) return reply.send('ready\n');
    return reply.code(503).send(`not ready: ${reasons.join(', ')}\n`);
  });
  return app;
}
