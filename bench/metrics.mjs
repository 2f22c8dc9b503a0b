// Suite 5: metrics. A scrape with 16 handlers registered; and alloc+free throughput with a
// scrape every 10 ms against none (each batch yields to the event loop so scrapes happen).
import { setImmediate as yieldToLoop } from 'node:timers/promises';

import { collectMetrics, createController, pageable, pool } from '../dist/src/index.js';
import { measure, quick, report } from './lib.mjs';

const BATCH = 1000;

export async function run() {
  const c = createController();
  for (let i = 0; i < 16; i++) c.register(`h${i}`, pool(pageable({ name: `leaf${i}` }), { name: `pool${i}` }));
  const registry = collectMetrics({ controller: c });
  for (const name of c.names()) c.get(name).alloc(1000).free();
  const scrapeRows = await measure({ 'scrape, 16 handlers': async () => void (await registry.metrics()) }, { batch: 1 });

  const h = c.get('h0');
  let sink = 0;
  const work = async () => {
    for (let i = 0; i < BATCH; i++) {
      const b = h.alloc(4096);
      sink += b.bytes.length;
      b.free();
    }
    await yieldToLoop();
  };
  let scrapes = 0;
  let timer;
  const runs = { none: [], scraping: [] };
  for (let round = 0; round < (quick ? 1 : 3); round++) {
    runs.none.push(...(await measure({ 'alloc+free, no scrapes': work }, { batch: BATCH })));
    timer = setInterval(() => void registry.metrics().then(() => scrapes++), 10);
    runs.scraping.push(...(await measure({ 'alloc+free, scrape every 10 ms': work }, { batch: BATCH })));
    clearInterval(timer);
  }
  if (sink < 0) console.log(sink);
  const mean = (rows) => ({ ...rows[0], opsPerSec: rows.reduce((s, r) => s + r.opsPerSec, 0) / rows.length, medianNs: rows.reduce((s, r) => s + r.medianNs, 0) / rows.length, p99Ns: Math.max(...rows.map((r) => r.p99Ns)), samples: rows.reduce((s, r) => s + r.samples, 0) });
  const none = mean(runs.none);
  const scraping = mean(runs.scraping);
  console.log(`scrapes during the scraping runs: ${scrapes}`);
  const scrapeMs = scrapeRows[0].medianNs / 1e6;
  return report('metrics', [...scrapeRows, none, scraping], [
    { label: 'scrape median, ms', value: scrapeMs, max: 2 },
    { label: 'throughput with scrapes / without', value: scraping.opsPerSec / none.opsPerSec, min: 0.95 },
  ]);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
