import { resolve } from 'node:path';
import { defineConfig } from 'vitest/config';

// Tests exercise the built package (dist/ and the .node addon), exactly what users import:
// `npm test` builds first (pretest). dist/ is CommonJS and is handed to Node unchanged.
// Two projects, one folder each: `host` (test/host/) sees no CUDA driver, like CI and most
// laptops; `browser` (test/browser/) drives the status page in a headless Chromium (skipped
// where none is installed, unless PINPOOL_REQUIRE_BROWSER=1); `fake-cuda` (test/fake-cuda/) loads the test double (test/doubles/fake-cuda) as the
// driver, so every CUDA code path runs without a GPU. test/gpu/ needs a real GPU (npm run
// test:gpu), test/native/ holds the C++ tests, test/support/ what the suites share.
// Each test file runs in its own process, so the driver is loaded fresh per file.
export default defineConfig({
  test: {
    pool: 'forks',
    isolate: true,
    execArgv: ['--expose-gc'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    server: { deps: { external: [/\/dist\//] } },
    projects: [
      {
        extends: true,
        test: {
          name: 'host',
          include: ['test/host/**/*.test.ts'],
          env: { PINPOOL_CUDA_LIBRARY: '' },
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          env: { PINPOOL_CUDA_LIBRARY: '' },
        },
      },
      {
        extends: true,
        test: {
          name: 'fake-cuda',
          include: ['test/fake-cuda/**/*.test.ts'],
          env: {
            PINPOOL_CUDA_LIBRARY: resolve(
              import.meta.dirname,
              'build/fake-cuda/libpinpool-fakecuda.so',
            ),
          },
        },
      },
    ],
  },
});
