/**
 * The service's own dependencies (fastify, fastify-plugin, prom-client) are optional peers of
 * pinpool: the allocator library installs without a web framework. Imported first by
 * pinpool/server and the CLI, this says what to install when one is missing, instead of a bare
 * "Cannot find module".
 */
import { createRequire } from 'node:module';

import { ErrorCode, PinpoolError } from '../src/boundary/errors.js';

const needed = ['fastify', 'fastify-plugin', 'prom-client'];
const resolve = createRequire(__filename).resolve;
const missing = needed.filter((name) => {
  try {
    resolve(name);
    return false;
  } catch {
    return true;
  }
});
if (missing.length > 0) {
  throw new PinpoolError(
    ErrorCode.UNAVAILABLE,
    `pinpool: the service (pinpool/server, pinpool serve) needs ${missing.join(', ')}: npm install ${needed.join(' ')}`,
  );
}
