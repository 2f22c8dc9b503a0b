// GPU benchmark: host-to-device and device-to-host bandwidth from a pool buffer, a raw
// cuMemHostAlloc buffer, a registered Buffer and a pageable Buffer, 64 MiB to 1 GiB; and pool
// growth time, cuMemHostAlloc against registration, at 256 MiB. Runs with plain node and the
// built output only (no node_modules): `node bench/gpu.mjs [--json] [--quick]`.
// Without a GPU it says why and exits 0.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { copy, deviceAlloc, info, pinned, pool, register } = require('pinpool');

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const MiB = 2 ** 20;
const sizes = quick ? [64 * MiB] : [64 * MiB, 256 * MiB, 1024 * MiB];
const repeats = quick ? 3 : 7;

const cuda = info().cuda;
if (!cuda.available) {
  const out = { skipped: true, reason: cuda.reason };
  console.log(json ? JSON.stringify(out) : `GPU benchmark skipped: ${cuda.reason}`);
  process.exit(0);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function bandwidth(dev, host, direction) {
  const once = () => (direction === 'H2D' ? copy(dev, host) : copy(host, dev));
  await once(); // warm up: first-touch, TLB, driver staging buffers
  const seconds = [];
  for (let i = 0; i < repeats; i++) {
    const t = process.hrtime.bigint();
    await once();
    seconds.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  return host.byteLength / median(seconds) / 1e9; // GB/s
}

function growth(make, size) {
  const seconds = [];
  for (let i = 0; i < (quick ? 2 : 5); i++) {
    const h = pool(make());
    const t = process.hrtime.bigint();
    const b = h.alloc(size);
    seconds.push(Number(process.hrtime.bigint() - t) / 1e9);
    b.free();
    h.trim();
  }
  return median(seconds);
}

/** @type {Record<string, string | number>[]} */
const rows = [];
for (const size of sizes) {
  const dev = deviceAlloc(size);
  const poolHandler = pool(pinned());
  const poolBuf = poolHandler.alloc(size);
  const raw = pinned().alloc(size);
  // A SharedArrayBuffer's Buffer registers on every Node (22 refuses a plain ArrayBuffer's);
  // copy() hands it to the driver in place.
  const registeredMemory = Buffer.from(new SharedArrayBuffer(size));
  const registration = register(registeredMemory);
  const pageable = Buffer.alloc(size);
  const sources = { pool: poolBuf, cuMemHostAlloc: raw, registered: registeredMemory, pageable };
  for (const direction of ['H2D', 'D2H']) {
    const row = { size: `${size / MiB} MiB`, direction };
    for (const [name, host] of Object.entries(sources))
      row[name] = await bandwidth(dev, host, direction);
    row['pool / cuMemHostAlloc'] = row.pool / row.cuMemHostAlloc;
    row['pool / pageable'] = row.pool / row.pageable;
    rows.push(row);
  }
  registration.unregister();
  for (const b of [poolBuf, raw, dev]) b.free();
  poolHandler.trim();
}

const growthSize = 256 * MiB;
const growthRow = {
  size: `${growthSize / MiB} MiB`,
  cuMemHostAlloc_s: growth(() => pinned(), growthSize),
  register_s: growth(() => pinned({ strategy: 'register' }), growthSize),
};
growthRow['alloc / register'] = growthRow.cuMemHostAlloc_s / growthRow.register_s;

const device = cuda.devices[0];
const result = {
  device: device.name,
  driverVersion: cuda.driverVersion,
  node: process.version,
  date: new Date().toISOString(),
  bandwidthGBps: rows,
  poolGrowth: growthRow,
};
if (json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`GPU: ${device.name}, driver ${cuda.driverVersion}, Node ${process.version}`);
  console.table(
    rows.map((r) =>
      Object.fromEntries(
        Object.entries(r).map(([k, v]) => [k, typeof v === 'number' ? Number(v.toFixed(2)) : v]),
      ),
    ),
  );
  console.table([growthRow]);
}
