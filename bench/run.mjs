// `npm run bench [-- --quick]`: runs every suite in bench/ and writes bench/results/latest.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

import { quick } from './lib.mjs';

const suites = [
  'alloc-small.mjs',
  'calls.mjs',
  'alloc-large.mjs',
  'scoped.mjs',
  'fallback.mjs',
  'metrics.mjs',
  'threads.mjs',
  'fragmentation.mjs',
  'capsule.mjs',
  'growth.mjs',
  'shared.mjs',
];
const results = [];
for (const file of suites) {
  const suite = await import(join(import.meta.dirname, file));
  const ran = await suite.run(); // one report, or several
  results.push(...(Array.isArray(ran) ? ran : [ran]));
}
const machine = {
  nproc: cpus().length,
  cpu: cpus()[0]?.model,
  node: process.version,
  date: new Date().toISOString(),
  quick,
};
mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
writeFileSync(
  join(import.meta.dirname, 'results', 'latest.json'),
  JSON.stringify({ machine, results }, null, 2),
);
console.log(
  `\nwrote bench/results/latest.json (${machine.cpu}, ${machine.nproc} cores, Node ${machine.node})`,
);
