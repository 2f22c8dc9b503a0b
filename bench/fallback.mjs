// Suite 4: a fallback chain of three where the first two are unavailable (pinned and managed
// with no CUDA driver, as on these machines), against the third handler directly.
import { fallback, info, managed, pageable, pinned, pool } from 'pinpool';
import { measure, ratio, report } from './lib.mjs';

const BATCH = 1000;

export async function run() {
  if (info().cuda.available)
    console.log(
      'note: CUDA is available, so the first two links serve and this suite measures no fallback',
    );
  const leaf = pool(pageable(), { name: 'third' });
  const chain = fallback(pinned(), fallback(managed(), leaf, { name: 'second' }), {
    name: 'first',
  });
  let sink = 0;
  const loop = (h) => () => {
    for (let i = 0; i < BATCH; i++) {
      const b = h.alloc(4096);
      sink += b.bytes.length;
      b.free();
    }
  };
  const rows = await measure(
    { 'chain of three, two unavailable': loop(chain), 'third handler directly': loop(leaf) },
    { batch: BATCH },
  );
  if (sink < 0) console.log(sink);
  const fallbacks =
    chain.stats().fallbacks.unavailable + chain.upstreams[1].stats().fallbacks.unavailable;
  const allocations = chain.stats().allocations;
  console.log(
    `fallbacks counted: ${fallbacks} for ${allocations} allocations (two per allocation expected: ${fallbacks === 2 * allocations ? 'yes' : 'NO'})`,
  );
  return report('fallback chain', rows, [
    {
      label: 'chain time / direct time',
      value: ratio(rows, 'third handler directly', 'chain of three, two unavailable'),
      max: 1.2,
    },
    {
      label: 'fallbacks counted / (2 x allocations)',
      value: fallbacks / (2 * allocations),
      min: 1,
      max: 1,
    },
  ]);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
