// The two plugins that must cover their parent's routes (pinpoolScope, the host allowlist) do so
// without fastify-plugin: server/unencapsulated.ts sets the properties fastify documents.
import Fastify, { type FastifyPluginAsync } from 'fastify';
import { describe, expect, it } from 'vitest';
import { pinpoolScope } from 'pinpool/server';

// Not public API: the built file, as the service loads it.
import { unencapsulated } from '../../../dist/server/unencapsulated.js';

/** A plugin that tags every response of the context it runs in. */
const tagger = (): FastifyPluginAsync =>
  async function tag(fastify) {
    fastify.addHook('onSend', async (_request, reply) => {
      reply.header('x-tagged', 'yes');
    });
  };

async function tagged(plugin: FastifyPluginAsync): Promise<string | undefined> {
  const app = Fastify();
  await app.register(plugin);
  app.get('/', async () => ({ ok: true }));
  const res = await app.inject({ method: 'GET', url: '/' });
  await app.close();
  return res.headers['x-tagged'] as string | undefined;
}

describe('unencapsulated', () => {
  it("runs a plugin in its parent's context: its hooks cover routes registered beside it", async () => {
    expect(await tagged(tagger())).toBeUndefined(); // registered as is, it is encapsulated
    expect(await tagged(unencapsulated(tagger(), 'tagger'))).toBe('yes');
  });

  it('names the plugin for hasPlugin(), with the fastify range fp() records', async () => {
    const app = Fastify();
    await app.register(unencapsulated(tagger(), 'tagger'));
    expect(app.hasPlugin('tagger')).toBe(true);
    await app.close();
    const meta = (pinpoolScope as unknown as Record<symbol, unknown>)[Symbol.for('plugin-meta')];
    expect(meta).toEqual({ name: 'pinpool-scope', fastify: '5.x' });
    const scoped = Fastify();
    await scoped.register(pinpoolScope);
    expect(scoped.hasPlugin('pinpool-scope')).toBe(true);
    await scoped.close();
  });
});
