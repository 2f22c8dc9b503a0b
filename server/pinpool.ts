/**
 * pinpool as the service uses it: the process's copy (src/index.ts, which is the first copy to
 * load when npm installed several), typed by src/api.ts.
 */
import type * as Api from '../src/api.js';

export type * from '../src/api.js';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- src/index.ts assigns module.exports (the copy the capsule chose), which an import would not type
export const pinpool = require('../src/index.js') as typeof Api;
