// Instruction counts of scoped allocation, for callgrind (noise-free where timing is not):
//   valgrind --tool=callgrind node bench/scoped-instructions.mjs <case> <n>
// with <case> one of direct, anon, named, run; subtract a run with n = 0 and divide by n.
// Every case does the same warm-up, so the difference is the n operations.
const [, , which = 'named', nArg = '1000000', dist = '../dist/src/index.js'] = process.argv;
const { alloc, controller, locked, pool } = /** @type {typeof import('pinpool')} */ (
  await import(dist)
);
const n = Number(nArg);
const h = pool(locked(), { name: 'instructions', slabViews: true });
controller.register('instructions', h);
controller.scope('instructions-scope', 'instructions');
let sink = 0;
const body = () => {
  sink++;
};
const loop = () => {
  for (let i = 0; i < n; i++) {
    const b = alloc(4096);
    sink += b.bytes.length;
    b.free();
  }
};
for (let i = 0; i < 20000; i++) {
  h.alloc(4096).free();
  controller.run(h, body);
  controller.run('instructions-scope', body);
}
if (which === 'direct') {
  for (let i = 0; i < n; i++) {
    const b = h.alloc(4096);
    sink += b.bytes.length;
    b.free();
  }
}
if (which === 'anon') controller.run(h, loop);
if (which === 'named') controller.run('instructions-scope', loop);
if (which === 'run') for (let i = 0; i < n; i++) controller.run(h, body);
if (sink < 0) console.log(sink);
