// Preloaded (NODE_OPTIONS=--require) into every Node process of `npm run test:asan`.
// Vitest stops a test fork with SIGTERM, and a process killed by a signal never reaches exit(),
// where LeakSanitizer runs its check: without this, no test file's leaks would ever be looked
// at. A fork (a process with an IPC channel) exits normally on SIGTERM instead.
'use strict';
if (typeof process.send === 'function') process.on('SIGTERM', () => process.exit(143));
