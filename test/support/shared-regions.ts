// Names of shared regions for tests, and their clean-up. A region's name goes when the last
// process that has it open closes it or exits, but the test runner may kill its processes, so
// each test file removes the names it made (`removeRegions()` in afterAll).
import { readdirSync, rmSync } from 'node:fs';

let made = 0;

/** A region name no other test process uses: `<what>-<pid>-<n>`. */
export function regionName(what = 'test'): string {
  return `${what}-${process.pid}-${++made}`;
}

/** Removes every region name this process made (open ones stay mapped where they are). */
export function removeRegions(): void {
  for (const f of readdirSync('/dev/shm'))
    if (f.startsWith('pinpool-') && f.includes(`-${process.pid}-`))
      rmSync(`/dev/shm/${f}`, { force: true });
}
