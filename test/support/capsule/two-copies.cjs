// Loads two copies of pinpool (test/support/capsule/copies.cjs) in one process, `first` then `second`,
// uses them together and prints what it saw as JSON. Run by test/host/capsule.test.ts:
//   node two-copies.cjs <root> <first> <second>
const { join } = require('node:path');
const { Worker } = require('node:worker_threads');

const [root, firstName, secondName] = process.argv.slice(2);
/** @type {(name: string) => typeof import('pinpool')} */
const load = (name) => require(join(root, 'node_modules', name));

async function main() {
  const first = load(firstName);
  const second = load(secondName);
  const facts = {};
  facts.info = { first: first.info(), second: second.info() };
  facts.same = {
    Handler: first.Handler === second.Handler,
    controller: first.controller === second.controller,
    PinpoolError: first.PinpoolError === second.PinpoolError,
    alloc: first.alloc === second.alloc,
  };

  // A scope entered through one copy holds for alloc() through the other.
  const shared = first.pool(first.pageable({ name: 'shared-leaf' }), { name: 'shared-pool' });
  first.controller.register('shared', shared);
  facts.scope = await first.controller.run('shared', async () => {
    await new Promise((resolve) => setImmediate(resolve));
    const buf = second.alloc(1000);
    const seen = {
      handler: buf.handler === shared,
      servedBy: buf.servedBy,
      instance: buf instanceof first.HostBuffer,
    };
    buf.free();
    return seen;
  });

  // A handler made through the second copy: one set of statistics, seen through either.
  const other = second.pool(second.pageable(), { name: 'second-pool' });
  second.controller.register('second', other);
  const held = [other.alloc(100), other.alloc(200), other.alloc(300)];
  facts.stats = { viaFirst: other.stats().buffersInUse, isHandler: other instanceof first.Handler };
  held.forEach((b) => b.free());

  // collectMetrics through either copy reports each handler once.
  const count = (text, handler) =>
    text.split('\n').filter((l) => l.startsWith(`pinpool_allocations_total{handler="${handler}"`))
      .length;
  const viaFirst = await first.collectMetrics().metrics();
  const viaSecond = await second.collectMetrics().metrics();
  facts.metrics = {
    first: { shared: count(viaFirst, 'shared-pool'), second: count(viaFirst, 'second-pool') },
    second: { shared: count(viaSecond, 'shared-pool'), second: count(viaSecond, 'second-pool') },
  };

  // A worker that loads only the second copy joins the first copy's registry: it attaches a
  // handler shared from here and allocates from it; the statistics are this thread's too.
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const p = require(workerData.path);
     const h = p.attach(workerData.token);
     const bufs = [h.alloc(64), h.alloc(64)];
     parentPort.postMessage({ registry: p.info().registry, version: p.info().version, live: h.stats().buffersInUse });
     bufs.forEach((b) => b.free());`,
    {
      eval: true,
      workerData: { path: join(root, 'node_modules', secondName), token: shared.share() },
    },
  );
  // Listened for from the start: on Node 26 the worker's 'exit' can come before the code after
  // its message runs, and a promise nobody settles lets the process end with nothing printed.
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  facts.worker = await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await exited;
  facts.afterWorker = shared.stats().frees;
  process.stdout.write(JSON.stringify(facts));
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
