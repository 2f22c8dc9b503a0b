// The native test programs, run as part of `npm test`: the core's own tests (test/native, built
// without Node) and the CUDA test double's self-test (test/doubles/fake-cuda). It builds nothing:
// `npm run pretest` builds them into build/native-tests/ and build/fake-cuda/. Each program
// counts its checks and exits non-zero when one failed, so a failed check fails its case here.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const build = join(__dirname, '..', '..', 'build');
const fakeCuda = join(build, 'fake-cuda', 'libpinpool-fakecuda.so');

// Runs a program and expects exit status 0; its output is the failure message otherwise.
function expectPasses(program: string, args: string[] = []): void {
  expect(existsSync(program), `${program} is missing: build it first (npm run pretest)`).toBe(true);
  // Without PINPOOL_CUDA_LIBRARY, as under ctest: the programs then load the test double for the
  // CUDA leaves' cases (this project's environment sets it empty, which would skip them).
  const env = { ...process.env };
  delete env.PINPOOL_CUDA_LIBRARY;
  const run = spawnSync(program, args, { env, encoding: 'utf8', timeout: 120_000 });
  // Null, whatever the types say, when the program could not be started (run.error).
  const stdout = run.stdout as string | null;
  const stderr = run.stderr as string | null;
  const output = `${stdout ?? ''}${stderr ?? ''}`.slice(-8000);
  expect(run.error, `${program} did not run: ${run.error?.message ?? ''}`).toBeUndefined();
  expect({ status: run.status, signal: run.signal }, output).toEqual({ status: 0, signal: null });
}

describe('native test programs', () => {
  for (const name of ['native-tests', 'abi-misuse', 'abi-stress', 'capsule-api', 'shared-region']) {
    it(`pinpool-${name} passes`, () => {
      expectPasses(join(build, 'native-tests', `pinpool-${name}`));
    });
  }

  it('the fake CUDA driver passes its self-test', () => {
    expectPasses(join(build, 'fake-cuda', 'fakecuda-selftest'), [fakeCuda]);
  });
});
