// The escape fuzzer (docs/decisions/0014-no-arraybuffer-outlives-its-block.md): ArrayBuffers leaving their thread in every state they can be in,
// threads ending at random points, thread caches of every size and trims from another thread.
// See test/support/escapes/fuzz-escapes.cjs. Each run of cases is a process of its own, so a use after
// free fails the test rather than the runner. A failure names the seed: rerun it with
// PINPOOL_FUZZ_SEED=<seed> npx vitest run test/host/fuzz-escapes.test.ts (PINPOOL_ESCAPE_CASES=<n> for more).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

import { fuzzSeed } from '../support/fuzzer.js';

const PER_PROCESS = 6;
// Its own knob: a case here is a process of workers, not one call (PINPOOL_FUZZ_CASES, which
// test:asan sets to 5000 for the call fuzzers, would mean hours).
const asked = Number(process.env.PINPOOL_ESCAPE_CASES);
const CASES = Number.isSafeInteger(asked) && asked > 0 ? asked : 24;
const RUNS = Math.ceil(CASES / PER_PROCESS);

it(`${RUNS * PER_PROCESS} cases of buffers escaping threads that end: no block reused or unmapped under a live ArrayBuffer`, () => {
  const base = fuzzSeed();
  const totals = {
    orphanedBlocks: 0,
    trims: 0,
    posted: {} as Record<string, number>,
    ends: {} as Record<string, number>,
  };
  for (let run = 0; run < RUNS; run++) {
    const seed = base * 1000 + run;
    const r = spawnSync(
      process.execPath,
      [
        join(__dirname, '..', 'support', 'escapes', 'fuzz-escapes.cjs'),
        String(seed),
        String(PER_PROCESS),
      ],
      { encoding: 'utf8' },
    );
    const where = `seed ${seed} (rerun: node test/support/escapes/fuzz-escapes.cjs ${seed} ${PER_PROCESS})`;
    expect(r.signal, `${where}: ${r.stderr}`).toBeNull();
    expect(r.status, `${where}: ${r.stdout} ${r.stderr}`).toBe(0);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      errors: unknown[];
      orphanedBlocks: number;
      trims: number;
      posted: Record<string, number>;
      ends: Record<string, number>;
    };
    expect(report.errors, where).toEqual([]);
    totals.orphanedBlocks += report.orphanedBlocks;
    totals.trims += report.trims;
    for (const [k, v] of Object.entries(report.posted))
      totals.posted[k] = (totals.posted[k] ?? 0) + v;
    for (const [k, v] of Object.entries(report.ends)) totals.ends[k] = (totals.ends[k] ?? 0) + v;
  }
  console.log(`fuzz-escapes: seed ${base}, ${RUNS * PER_PROCESS} cases; ${JSON.stringify(totals)}`);
  // The draw reached every state and every way a thread ends.
  const moves = typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function';
  // Under AddressSanitizer on Node 20 slab views are not posted (test/support/escapes/fuzz-escapes.cjs).
  const slabs = moves || !(process.env.LD_PRELOAD ?? '').includes('libasan');
  for (const state of [
    'live',
    'cached',
    'freed',
    ...(slabs ? ['slab'] : []),
    ...(moves ? ['quarantined'] : []),
  ])
    expect(
      Object.keys(totals.posted).some((k) => k.startsWith(state)),
      state,
    ).toBe(true);
  for (const end of ['natural', 'exit', 'terminate'])
    expect(totals.ends[end], end).toBeGreaterThan(0);
});
