// Runs in every test fork of `npm run test:asan` (setupFiles in scripts/asan/vitest.config.mts):
// once the file's tests and hooks are done, collects garbage so that buffers dropped without
// free() go back through the GC backstop, then asks LeakSanitizer what nothing can reach any
// more (scripts/asan/lsan-check.c says why this replaces the check at exit). A leak fails the
// file; LeakSanitizer's report, with the allocation's stack, is in the output above the failure.
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { relative } from 'node:path';
import { afterAll, expect } from 'vitest';

const path = process.env.PINPOOL_LSAN_CHECK;
const lsan = path ? (createRequire(__filename)(path) as { leakCheck(): number }) : undefined;
const gc = (globalThis as { gc?: () => void }).gc;

afterAll(async () => {
  if (!lsan) return;
  // Finalizers run after a collection, on later turns of the event loop; the backstop's own
  // frees can drop the last reference to a handler, which the next round then collects.
  for (let round = 0; round < 4; round++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  // Straight to fd 2, where LeakSanitizer writes too, so that its report follows this line.
  const file = relative(process.cwd(), expect.getState().testPath ?? '?');
  writeSync(2, `[asan] LeakSanitizer check after ${file} (pid ${process.pid})\n`);
  const leaks = lsan.leakCheck();
  if (leaks !== 0) {
    throw new Error(
      leaks < 0
        ? 'LeakSanitizer is not in this process (libasan must be preloaded)'
        : 'LeakSanitizer found leaks: its report, with the stack of each allocation, is printed above',
    );
  }
}, 120_000);
