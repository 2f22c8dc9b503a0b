// Suite 5: metrics. A scrape with 16 handlers registered; and alloc+free throughput with a
// scrape every 10 ms against none (each batch yields to the event loop so scrapes happen).
import { setImmediate as yieldToLoop } from 'node:timers/promises';

import { collectMetrics, createController, pageable, pool } from 'pinpool';
import { measure, quick, report } from './lib.mjs';

const BATCH = 1000;

export async function run() {
  const c = createController();
  for (let i = 0; i < 16; i++)
    c.register(`h${i}`, pool(pageable({ name: `leaf${i}` }), { name: `pool${i}` }));
  const registry = collectMetrics({ controller: c });
  for (const name of c.names()) c.get(name).alloc(1000).free();
  const scrapeRows = await measure(
    { 'scrape, 16 handlers': async () => void (await registry.metrics()) },
    { batch: 1 },
  );

  // Throughput with a scrape every 10 ms against none, in interleaved rounds of the same loop
  // (alloc+free batches that yield to the event loop, so timers run), the ratio per round.
  const h = c.get('h0');
  let sink = 0;
  let scrapes = 0;
  const round = async (ms, scraping) => {
    const timer = scraping
      ? setInterval(() => void registry.metrics().then(() => scrapes++), 10)
      : undefined;
    const start = performance.now();
    let ops = 0;
    while (performance.now() - start < ms) {
      for (let i = 0; i < BATCH; i++) {
        const b = h.alloc(4096);
        sink += b.bytes.length;
        b.free();
      }
      ops += BATCH;
      await yieldToLoop();
    }
    const seconds = (performance.now() - start) / 1000;
    clearInterval(timer);
    return ops / seconds;
  };
  await round(200, false);
  const ratios = [];
  const none = [];
  const scraping = [];
  for (let r = 0; r < (quick ? 1 : 7); r++) {
    const plain = await round(quick ? 300 : 1500, false);
    const scraped = await round(quick ? 300 : 1500, true);
    none.push(plain);
    scraping.push(scraped);
    ratios.push(scraped / plain);
  }
  if (sink < 0) console.log(sink);
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    `scrapes during the scraping rounds: ${scrapes}; ratio per round: ${ratios.map((x) => x.toFixed(3)).join(' ')}`,
  );
  const scrapeMs = scrapeRows[0].medianNs / 1e6;
  const row = (name, xs) => ({
    case: name,
    opsPerSec: median(xs),
    medianNs: 1e9 / median(xs),
    p99Ns: NaN,
    samples: xs.length,
  });
  return report(
    'metrics',
    [
      ...scrapeRows,
      row('alloc+free, no scrapes', none),
      row('alloc+free, scrape every 10 ms', scraping),
    ],
    [
      { label: 'scrape median, ms', value: scrapeMs, max: 0.5 },
      { label: 'scrape mean, ms', value: 1000 / scrapeRows[0].opsPerSec, max: 0.5 },
      {
        label: 'throughput with scrapes / without (median of rounds)',
        value: median(ratios),
        min: 0.95,
      },
    ],
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
