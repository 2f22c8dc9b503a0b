// Load on the service: autocannon, 50 connections for 10 s against /metrics with 16 handlers
// registered (and the demo workload moving them). Reports errors, latency percentiles and the
// event-loop lag of the serving process, measured with perf_hooks.monitorEventLoopDelay.
// `node bench/service-load.mjs [--quick]`
import { monitorEventLoopDelay } from 'node:perf_hooks';

import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';

import { controller, pageable, pool } from 'pinpool';
import { createServer } from 'pinpool/server';
import { quick } from './lib.mjs';

for (let i = 0; i < 16; i++)
  controller.register(
    `load${i}`,
    pool(pageable({ name: `load-leaf${i}` }), { name: `load-pool${i}` }),
    { replace: true },
  );
const server = createServer({ controller, port: 0 });
const url = await server.listen();
const timer = setInterval(() => {
  for (const name of controller.names()) controller.get(name).alloc(4096).free();
}, 5);
const lag = monitorEventLoopDelay({ resolution: 5 });
lag.enable();
// autocannon runs in a process of its own, so its work does not count as the server's lag.
const cli = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
const { stdout } = await promisify(execFile)(
  process.execPath,
  [
    cli,
    '--json',
    '-c',
    '50',
    '-d',
    quick ? '3' : '10',
    '-H',
    `host=${new URL(url).host}`,
    `${url}/metrics`,
  ],
  { maxBuffer: 1 << 24 },
);
const result = JSON.parse(stdout);
lag.disable();
clearInterval(timer);
await server.close();
const summary = {
  requests: result.requests.total,
  errors: result.errors + result.timeouts + (result.non2xx ?? 0),
  'req/s': Math.round(result.requests.average),
  'latency p50 ms': result.latency.p50,
  'latency p99 ms': result.latency.p99,
  'event-loop lag p99 ms': Number((lag.percentile(99) / 1e6).toFixed(1)),
  'event-loop lag max ms': Number((lag.max / 1e6).toFixed(1)),
};
console.log('\n## service under load: 50 connections, /metrics, 16 handlers');
console.table([summary]);
const pass = summary.errors === 0 && summary['event-loop lag p99 ms'] <= 50;
console.table([
  {
    target: 'errors',
    measured: summary.errors,
    want: '= 0',
    result: summary.errors === 0 ? 'PASS' : 'MISS',
  },
  {
    target: 'event-loop lag p99, ms',
    measured: summary['event-loop lag p99 ms'],
    want: '<= 50',
    result: summary['event-loop lag p99 ms'] <= 50 ? 'PASS' : 'MISS',
  },
]);
process.exitCode = pass ? 0 : 1;
