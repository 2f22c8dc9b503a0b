import { defineConfig } from 'vitest/config';

// Tests exercise the built package (dist/ and the .node addon), exactly what users import:
// `npm test` builds first (pretest). dist/ is CommonJS and is handed to Node unchanged.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/gpu/**', 'node_modules/**'],
    pool: 'forks',
    isolate: true,
    execArgv: ['--expose-gc'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    server: { deps: { external: [/\/dist\//] } },
  },
});
