/**
 * pinpool's entry module. Every copy of pinpool in a process exports the same objects: those
 * of the copy that loaded first (src/process/capsule.ts). This file holds no list of names: the
 * exports are src/api.ts's, and so are the types (package.json "types" names dist/src/api.d.ts;
 * scripts that require('pinpool') get them from there).
 */
import type * as Api from './api.js';
import { implementation } from './process/capsule.js';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when this copy's implementation is the one used
module.exports = implementation((): typeof Api => require('./api.js') as typeof Api);

// Node finds a CommonJS module's names for ESM named imports by reading it, not running it
// (cjs-module-lexer), and the last assignment to module.exports wins: this line, which never
// runs, tells it that the names are api.js's.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- read by cjs-module-lexer, never run
if ((0 as number) === 1) module.exports = require('./api.js') as unknown;
