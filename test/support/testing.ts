/** The addon's test hooks (`binding.testing`), which only a test build has (PINPOOL_TESTING). */
import { binding, type TestingHooks } from '../../dist/src/boundary/native.js';

/** The test hooks; throws, saying how to get them, when the addon was built without them. */
export function testing(): TestingHooks {
  if (binding.testing === undefined) {
    throw new Error(
      'pinpool: this addon was built without its test hooks (PINPOOL_TESTING); build it with `npm run build`',
    );
  }
  return binding.testing;
}
