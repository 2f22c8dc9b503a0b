/**
 * GET /metrics: pinpool's metrics in the Prometheus text format, or in OpenMetrics when the
 * Accept header prefers it (Prometheus itself asks for OpenMetrics first). Each format has its
 * own registry because prom-client fixes the format per registry; both read the same native
 * statistics at scrape time.
 */
import type { FastifyPluginAsync } from 'fastify';
import { Registry, type OpenMetricsContentType } from 'prom-client';

import { collectMetrics, type Controller } from '../../src/index.js';

export interface MetricsRoutesOptions {
  controller: Controller;
}

/** The q-value the Accept header gives a media type (0 when it does not name it). */
function quality(accept: string, type: string): number {
  let best = 0;
  for (const part of accept.split(',')) {
    const [media, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (media !== type) continue;
    const q = params.find((p) => p.startsWith('q='));
    best = Math.max(best, q === undefined ? 1 : Number(q.slice(2)) || 0);
  }
  return best;
}

/** True when the client asks for OpenMetrics at least as much as for plain text. */
export function prefersOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const openMetrics = quality(accept, 'application/openmetrics-text');
  return openMetrics > 0 && openMetrics >= quality(accept, 'text/plain');
}

const metricsRoutes: FastifyPluginAsync<MetricsRoutesOptions> = async (fastify, { controller }) => {
  const text = collectMetrics({ controller, registry: new Registry() });
  const openMetrics = new Registry<OpenMetricsContentType>();
  openMetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  collectMetrics({ controller, registry: openMetrics });

  fastify.get('/metrics', async (request, reply) => {
    const registry = prefersOpenMetrics(request.headers.accept) ? openMetrics : text;
    const body = await registry.metrics();
    return reply.header('cache-control', 'no-store').type(registry.contentType).send(body);
  });
};

export default metricsRoutes;
