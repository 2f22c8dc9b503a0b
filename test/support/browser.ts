/**
 * A headless Chromium for the browser tests (test/browser/), driven by playwright-core: the
 * system's browser (Debian's `chromium`; PINPOOL_CHROMIUM names another), never a downloaded one.
 * Where none is installed the suite is skipped, unless PINPOOL_REQUIRE_BROWSER=1 (CI) makes that a
 * failure.
 */
import { existsSync } from 'node:fs';

import { chromium, type Browser } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The browser binary to run, or undefined when there is none. */
export const chromiumPath: string | undefined =
  process.env.PINPOOL_CHROMIUM ?? CANDIDATES.find((p) => existsSync(p));

/** True when a missing browser must fail the suite rather than skip it. */
export const browserRequired = process.env.PINPOOL_REQUIRE_BROWSER === '1';

/** Why the suite cannot run, for the failure CI reports. */
export const noBrowser =
  'PINPOOL_REQUIRE_BROWSER=1 but no Chromium was found (apt-get install chromium, or set PINPOOL_CHROMIUM)';

/**
 * Starts the browser. As root (containers, CI) Chromium refuses to start inside its sandbox, so
 * it runs without one there; these tests load only the service's own page.
 */
export async function launchBrowser(): Promise<Browser> {
  if (chromiumPath === undefined) throw new Error(noBrowser);
  return chromium.launch({
    executablePath: chromiumPath,
    chromiumSandbox: process.getuid?.() !== 0,
    // Containers often give /dev/shm 64 MiB, too little for Chromium's shared memory.
    args: ['--disable-dev-shm-usage'],
  });
}
