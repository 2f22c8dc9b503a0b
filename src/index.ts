/**
 * pinpool's entry module. Every copy of pinpool in a process exports the same objects: those
 * of the copy that loaded first (src/process/capsule.ts). This file holds no list of names: the
 * exports are src/api.ts's, and so are the types (package.json "types" names dist/src/api.d.ts).
 */
import type * as Api from './api.js';
import { implementation } from './process/capsule.js';

module.exports = implementation((): typeof Api => require('./api.js') as typeof Api);

// Node finds a CommonJS module's names for ESM named imports by reading it, not running it
// (cjs-module-lexer). This line never runs; it tells the reader that the names are api.js's.
if ((0 as number) === 1) module.exports = require('./api.js');
