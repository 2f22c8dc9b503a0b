// The fuzzer over the whole public surface, without CUDA (docs/decisions/0010-one-typed-boundary.md): see test/support/fuzzer.ts. A
// failure names the seed; rerun it with PINPOOL_FUZZ_SEED=<seed> npx vitest run test/host/fuzz.test.ts.
import { expect, it } from 'vitest';

import { hostOps } from '../support/fuzz-calls.js';
import { Fuzzer, fuzzCases, fuzzSeed, summary } from '../support/fuzzer.js';

const CASES = fuzzCases(5000);

it(`${CASES} cases of hostile calls: each succeeds or throws a PinpoolError, and a failure changes no statistics`, async () => {
  const f = new Fuzzer(fuzzSeed());
  const started = performance.now();
  await f.run(hostOps, CASES);
  await f.finish();
  console.log(summary(f, 'host', (performance.now() - started) / 1000));
  expect(f.failures, `seed ${f.seed}: rerun with PINPOOL_FUZZ_SEED=${f.seed}`).toEqual([]);
});
