// The project's vitest configuration (host and fake-cuda projects) plus a LeakSanitizer check at
// the end of every test file: `npm run test:asan` runs the native-facing suites with it.
import { resolve } from 'node:path';
import { mergeConfig } from 'vitest/config';

import base from '../../vitest.config.mts';

export default mergeConfig(base, {
  test: {
    setupFiles: [resolve(import.meta.dirname, 'leak-check.setup.ts')],
  },
});
