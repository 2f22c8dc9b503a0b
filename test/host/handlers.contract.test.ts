import { fallback, limit, locked, pageable, pool } from 'pinpool';

import { handlerContract } from '../support/contract.js';

handlerContract('pageable', () => pageable());
handlerContract('locked', () => locked());
handlerContract('pool(locked)', () => pool(locked()));
handlerContract('pool(pageable) with slabViews', () => pool(pageable(), { slabViews: true }));
handlerContract('pool(pageable) with no cache', () => pool(pageable(), { maxCachedBytes: 0 }));
handlerContract('fallback(pool(locked), pageable) by size', () =>
  fallback(pool(locked()), pageable(), { maxBytes: 64 * 1024 }),
);
handlerContract('limit(pool(locked))', () => limit(pool(locked()), { maxBytes: 2 ** 40 }));
