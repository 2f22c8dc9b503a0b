/**
 * GET /metrics: pinpool's metrics in the Prometheus text format, or in OpenMetrics when the
 * Accept header prefers it (Prometheus itself asks for OpenMetrics first). Each format has its
 * own registry because prom-client fixes the format per registry; both read the same native
 * statistics at scrape time.
 */
import type { FastifyPluginAsync } from 'fastify';
import { Registry, type OpenMetricsContentType } from 'prom-client';

import { pinpool, type Controller } from '../pinpool.js';

const { collectMetrics } = pinpool;

/** How long a rendered /metrics body is served again, in milliseconds. */
const REUSE_MS = 100;

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

  // A body rendered less than REUSE_MS ago is served again: a scrape costs milliseconds of the
  // event loop, so fifty clients scraping at once must not cost fifty scrapes. Prometheus
  // scrapes every few seconds; a tenth of a second of staleness is invisible to it.
  const rendered = new Map<
    Registry | Registry<OpenMetricsContentType>,
    { at: number; body: Promise<string> }
  >();
  const render = (registry: Registry | Registry<OpenMetricsContentType>): Promise<string> => {
    const now = performance.now();
    const last = rendered.get(registry);
    if (last !== undefined && now - last.at < REUSE_MS) return last.body;
    const body = registry.metrics();
    rendered.set(registry, { at: now, body });
    body.catch(() => rendered.delete(registry));
    return body;
  };

  fastify.get('/metrics', async (request, reply) => {
    const registry = prefersOpenMetrics(request.headers.accept) ? openMetrics : text;
    const body = await render(registry);
    return reply.header('cache-control', 'no-store').type(registry.contentType).send(body);
  });
};

export default metricsRoutes;
