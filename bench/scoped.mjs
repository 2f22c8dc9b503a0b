// Suite 3: scoped allocation. alloc() inside controller.run(h, ...) against h.alloc() directly
// (a slabViews pool, so that the scope lookup is not hidden, and a pool of own ArrayBuffers),
// what the lookup (AsyncLocalStorage.getStore()) costs by itself, and controller.run() itself
// against a bare AsyncLocalStorage.run(). A named scope (controller.scope) also counts each
// buffer in its scope's series until it is freed: its own rows show what that adds.
import { AsyncLocalStorage } from 'node:async_hooks';

import { alloc, controller, locked, pool } from 'pinpool';
import { measure, paired, ratio, report } from './lib.mjs';

const BATCH = 1000;

export async function run() {
  const h = pool(locked(), { name: 'scoped-bench', slabViews: true });
  const hd = pool(locked(), { name: 'scoped-bench-buffers' });
  controller.register('scoped-bench', h, { replace: true });
  controller.register('scoped-bench-buffers', hd, { replace: true });
  const scopeNames = controller.scopes().map((s) => s.name);
  if (!scopeNames.includes('bench-scope')) controller.scope('bench-scope', 'scoped-bench');
  if (!scopeNames.includes('bench-scope-buffers'))
    controller.scope('bench-scope-buffers', 'scoped-bench-buffers');
  const als = new AsyncLocalStorage();
  let sink = 0;
  const direct = () => {
    for (let i = 0; i < BATCH; i++) {
      const b = h.alloc(4096);
      sink += b.bytes.length;
      b.free();
    }
  };
  const scoped = () => {
    for (let i = 0; i < BATCH; i++) {
      const b = alloc(4096);
      sink += b.bytes.length;
      b.free();
    }
  };
  const directBuffers = () => {
    for (let i = 0; i < BATCH; i++) {
      const b = hd.alloc(4096);
      sink += b.bytes.length;
      b.free();
    }
  };
  const body = () => {
    sink++;
  };
  // What the scope lookup itself costs: AsyncLocalStorage.getStore() inside a run().
  const lookups = () => {
    for (let i = 0; i < BATCH; i++) if (als.getStore() === undefined) sink++;
  };
  const rows = await measure(
    {
      'h.alloc() directly': direct,
      'alloc() inside controller.run(h)': () => controller.run(h, scoped),
      'alloc() inside controller.run(scope -> h)': () => controller.run('bench-scope', scoped),
      'hd.alloc() directly (own ArrayBuffers)': directBuffers,
      'alloc() inside controller.run(hd) (own ArrayBuffers)': () => controller.run(hd, scoped),
      'alloc() inside controller.run(scope -> hd) (own ArrayBuffers)': () =>
        controller.run('bench-scope-buffers', scoped),
      'AsyncLocalStorage getStore() inside run()': () => als.run(h, lookups),
      'controller.run(h, fn)': () => {
        for (let i = 0; i < BATCH; i++) controller.run(h, body);
      },
      'AsyncLocalStorage.run(h, fn)': () => {
        for (let i = 0; i < BATCH; i++) als.run(h, body);
      },
    },
    { batch: BATCH },
  );
  // The counting itself is a few nanoseconds: measured paired, round by round, against the same
  // loop in an anonymous scope over the same handler (and against h.alloc() directly).
  const rounds = (fn) => () => {
    for (let i = 0; i < 20; i++) fn();
  };
  const anonymous = rounds(() => controller.run(h, scoped));
  const named = rounds(() => controller.run('bench-scope', scoped));
  const countingCost = paired(anonymous, named);
  const namedVsDirect = paired(rounds(direct), named);
  const anonymousVsDirect = paired(rounds(direct), anonymous);
  if (sink < 0) console.log(sink);
  return report('scoped allocation', rows, [
    {
      label: 'slowdown of alloc() in a scope vs h.alloc() (slabViews)',
      value: ratio(rows, 'h.alloc() directly', 'alloc() inside controller.run(h)'),
      max: 1.05,
    },
    {
      label: 'slowdown of alloc() in a scope vs hd.alloc() (own ArrayBuffers)',
      value: ratio(
        rows,
        'hd.alloc() directly (own ArrayBuffers)',
        'alloc() inside controller.run(hd) (own ArrayBuffers)',
      ),
      max: 1.05,
    },
    {
      label: 'slowdown of alloc() in a named scope vs h.alloc() (slabViews)',
      value: ratio(rows, 'h.alloc() directly', 'alloc() inside controller.run(scope -> h)'),
      max: 1.05,
    },
    {
      label: 'slowdown of alloc() in a named scope vs hd.alloc() (own ArrayBuffers)',
      value: ratio(
        rows,
        'hd.alloc() directly (own ArrayBuffers)',
        'alloc() inside controller.run(scope -> hd) (own ArrayBuffers)',
      ),
      max: 1.05,
    },
    {
      label: 'per-scope counting: time in a named scope / in an anonymous one (paired, slabViews)',
      value: countingCost,
      max: 1.05,
    },
    {
      label: 'time of alloc() in a named scope / h.alloc() (paired, slabViews)',
      value: namedVsDirect,
      max: 1.05,
    },
    {
      label: 'time of alloc() in an anonymous scope / h.alloc() (paired, slabViews)',
      value: anonymousVsDirect,
      max: 1.05,
    },
    {
      label: 'controller.run time / AsyncLocalStorage.run time',
      value: ratio(rows, 'AsyncLocalStorage.run(h, fn)', 'controller.run(h, fn)'),
      max: 1.2,
    },
  ]);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
