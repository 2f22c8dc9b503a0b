/**
 * What fastify-plugin's `fp()` does for our two root-level plugins, without the dependency.
 * `register()` gives a plugin its own encapsulation context; a plugin marked skip-override runs
 * in its parent's instead, so its hooks cover the parent's routes too. Fastify documents both
 * properties (docs/Reference/Plugins.md, "Handle the scope": `Symbol.for('skip-override')`;
 * docs/Reference/Server.md, "pluginName": `Symbol.for('fastify.display-name')`). The metadata
 * under `Symbol.for('plugin-meta')` is what fp() sets too: fastify reads its `name` for
 * `hasPlugin()` and its `fastify` range for a version check at register time.
 */
import type { FastifyPluginAsync, FastifyPluginOptions } from 'fastify';

/** The fastify major these plugins are written and tested for. */
const FASTIFY_RANGE = '5.x';

/**
 * Marks `plugin` to run in the context that registers it, under `name`. Returns the same function.
 *
 * @example
 * export default unencapsulated(hostAllowlist, 'pinpool-host-allowlist');
 */
export function unencapsulated<Options extends FastifyPluginOptions>(
  plugin: FastifyPluginAsync<Options>,
  name: string,
): FastifyPluginAsync<Options> {
  return Object.assign(plugin, {
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: name,
    [Symbol.for('plugin-meta')]: { name, fastify: FASTIFY_RANGE },
  });
}
