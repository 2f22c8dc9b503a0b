// Runs in the fake-cuda project: PINPOOL_CUDA_LIBRARY points at the test double.
import { defaultHandler, fallback, managed, pageable, pinned, pool } from 'pinpool';

import { handlerContract } from '../support/contract.js';

handlerContract('pinned (test double)', () => pinned());
handlerContract('pinned write-combined, mapped (test double)', () =>
  pinned({ mapped: true, writeCombined: true }),
);
handlerContract('managed (test double)', () => managed());
handlerContract('pool(pinned) (test double)', () => pool(pinned()));
handlerContract('pool(managed) (test double)', () => pool(managed()));
handlerContract('fallback(pool(pinned), pageable) (test double)', () =>
  fallback(pool(pinned()), pageable()),
);
handlerContract('defaultHandler() (test double)', () => defaultHandler());
