/** pinpool/server: the optional HTTP service and the fastify scope plugin. */
// First: says what to install when the service's optional dependencies are missing.
import './requires.js';
export { createServer } from './app.js';
export type { PinpoolServer, ServerOptions } from './app.js';
export { pinpoolScope } from './scope.js';
export type { ScopeEntry, ScopeSwitch } from './plugins/admin.js';
export type { PinpoolScopeOptions } from './scope.js';
export type {
  StatusHandler,
  StatusScope,
  StatusSnapshot,
  StatusSwitch,
} from './status/snapshot.js';
