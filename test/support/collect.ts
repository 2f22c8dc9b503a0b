// Garbage collection for tests (vitest runs them with --expose-gc): collections and the turns of
// the event loop in which FinalizationRegistry callbacks and Node-API finalizers then run.
import { setTimeout as sleep } from 'node:timers/promises';

const gc = (globalThis as { gc?: () => void }).gc!;

/** `rounds` collections, each followed by a short sleep and a turn of the event loop. */
export async function collected(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    gc();
    await sleep(5);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
