// The shared leaf across processes (issue 24): node:cluster workers allocating from one region and
// handing blocks to each other, workers SIGKILLed in the middle of it, and who may open a region
// or adopt its blocks. The workers are test/support/workers/shared-cluster-worker.cjs.
import { spawnSync } from 'node:child_process';
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adopt, shared, sharedRegion, type SharedBufferToken } from 'pinpool';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';

import { expectCode } from '../support/expect-error.js';
import { regionName, removeRegions } from '../support/shared-regions.js';

const WORKER = join(__dirname, '..', 'support', 'workers', 'shared-cluster-worker.cjs');
const ROOT = join(__dirname, '..', '..');

interface Report {
  counts: {
    allocs: number;
    frees: number;
    given: number;
    adopted: number;
    refused: number;
    outOfMemory: number;
    bad: number;
    /** Its own operations (allocations, frees and gives; adoptions come on top). */
    ops: number;
  };
  slowest: number;
  stats: {
    bytesInUse: number;
    buffersInUse: number;
    allocations: number;
    frees: number;
    invalidFrees: number;
  };
}
type Message =
  | { ready: true }
  | { done: true }
  | { stopped: true }
  | { give: SharedBufferToken; seed: number }
  | { report: Report }
  | { metrics: MetricObjectWithValues<MetricValue<string>>[] };

afterAll(removeRegions);

function fork(role: string, region: string, secret: string, seed: number, ops = 0): Worker {
  cluster.setupPrimary({ exec: WORKER, execArgv: [], silent: false });
  return cluster.fork({
    PINPOOL_TEST_ROLE: role,
    PINPOOL_TEST_REGION: region,
    PINPOOL_TEST_SECRET: secret,
    PINPOOL_TEST_SEED: String(seed),
    PINPOOL_TEST_OPS: String(ops),
  });
}

/** Resolves with the worker's first message that `pick` accepts. */
function next<T>(w: Worker, pick: (m: Message) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Message) => {
      const v = pick(m);
      if (v === undefined) return;
      w.off('message', onMessage);
      w.off('exit', onExit);
      resolve(v);
    };
    const onExit = (code: number) => reject(new Error(`worker exited (${code}) first`));
    w.on('message', onMessage);
    w.once('exit', onExit);
  });
}

const ready = (w: Worker) => next(w, (m) => ('ready' in m ? true : undefined));
const report = (w: Worker) => next(w, (m) => ('report' in m ? m.report : undefined));

describe('a shared region across node:cluster workers', () => {
  it('4 workers, 100,000 operations: every pattern intact, statistics exact, the region empty', async () => {
    const region = regionName();
    const h = shared({ region, bytes: 64 << 20 });
    const { secret } = sharedRegion(h);
    const workers = [1, 2, 3, 4].map((seed) => fork('ring', region, secret, seed, 25_000));
    await Promise.all(workers.map(ready));
    // Each worker's blocks go to the next: the primary relays tokens (in order, per worker).
    let done = 0;
    let relayed = 0;
    const reports = workers.map(report);
    workers.forEach((w, i) => {
      w.on('message', (m: Message) => {
        if ('give' in m) {
          relayed++;
          workers[(i + 1) % workers.length]!.send({ take: m.give, seed: m.seed });
        } else if ('done' in m && ++done === workers.length) {
          // Every give was relayed before its worker's done, so before this finish.
          for (const v of workers) v.send({ finish: true });
        }
      });
      w.send({ start: true });
    });
    const all = await Promise.all(reports);
    await Promise.all(workers.filter((w) => !w.isDead()).map((w) => once(w, 'exit')));

    let own = 0;
    let given = 0;
    let adopted = 0;
    for (const r of all) {
      expect(r.counts.bad).toBe(0);
      expect(r.counts.refused).toBe(0);
      own += r.counts.ops;
      given += r.counts.given;
      adopted += r.counts.adopted;
      // Exact: an adopted block counts as an allocation where it arrives, a given one leaves as
      // a free would (without counting as one).
      expect(r.stats).toEqual({
        bytesInUse: 0,
        buffersInUse: 0,
        allocations: r.counts.allocs + r.counts.adopted,
        frees: r.counts.frees,
        invalidFrees: 0,
      });
    }
    expect(given).toBe(relayed);
    expect(adopted).toBe(given);
    expect(given).toBeGreaterThan(1000);
    expect(own).toBe(100_000);
    const s = sharedRegion(h).stats;
    expect(s).toMatchObject({
      bytesInUse: 0,
      blocksInUse: 0,
      blocksInFlight: 0,
      recoveredBlocks: 0,
      processes: 1,
    });
    h.trim();
  }, 240_000);

  it('50 workers SIGKILLed mid-work: their blocks come back, the survivor is untouched', async () => {
    const region = regionName();
    const h = shared({ region, bytes: 48 << 20 });
    const { secret } = sharedRegion(h);
    const survivor = fork('survivor', region, secret, 1000);
    await ready(survivor);
    const survivorReport = report(survivor);
    let victim: Worker | undefined;
    // Tokens the survivor gave that went to a victim: the victim may die before adopting them,
    // and a block in flight belongs to its giver until someone adopts it, so the survivor takes
    // back what a dead victim never adopted (refused, if the victim had: then it was recovered).
    let sentToVictim: { take: SharedBufferToken; seed: number }[] = [];
    const back = (msg: { take: SharedBufferToken; seed: number }) => survivor.send(msg);
    survivor.on('message', (m: Message) => {
      if (!('give' in m)) return;
      const msg = { take: m.give, seed: m.seed };
      if (!victim?.isConnected()) return back(msg);
      sentToVictim.push(msg);
      // Killed meanwhile: its channel is closed, and the token goes back with the others.
      victim.send(msg, () => undefined);
    });
    survivor.send({ start: true });
    let seed = 7;
    for (let k = 0; k < 50; k++) {
      const v = fork('victim', region, secret, 2000 + k);
      victim = v;
      v.on('message', (m: Message) => {
        if ('give' in m) back({ take: m.give, seed: m.seed });
      });
      await ready(v);
      const exited = once(v, 'exit');
      v.send({ start: true });
      // A random moment in its work: 0 to 40 ms of allocations, frees and hand-offs.
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      await new Promise((resolve) => setTimeout(resolve, seed % 41));
      v.process.kill('SIGKILL');
      await exited;
      for (const msg of sentToVictim) back(msg);
      sentToVictim = [];
    }
    victim = undefined;
    // Stopped first: its gives until then are relayed back to it before finish.
    const stopped = next(survivor, (m) => ('stopped' in m ? true : undefined));
    survivor.send({ stop: true });
    await stopped;
    survivor.send({ finish: true });
    const r = await survivorReport;
    if (!survivor.isDead()) await once(survivor, 'exit');
    expect(r.counts.bad).toBe(0);
    expect(r.stats).toMatchObject({ bytesInUse: 0, buffersInUse: 0, invalidFrees: 0 });
    const s = sharedRegion(h).stats;
    // Everything the victims held or gave and nobody adopted came back.
    expect(s).toMatchObject({ bytesInUse: 0, blocksInUse: 0, blocksInFlight: 0, processes: 1 });
    expect(s.recoveredBlocks).toBeGreaterThan(0);
    // Reported, not asserted (these machines are shared and noisy): the issue asks for under
    // 100 ms.
    console.log(
      `# shared kill test: 50 victims, ${s.recoveredBlocks} blocks recovered, ${s.repairs} repairs ` +
        `of a change cut short; survivor: ${r.counts.ops} ` +
        `operations, ${r.counts.adopted} adopted, ${r.counts.refused} tokens whose giver died; ` +
        `slowest operation ${r.slowest.toFixed(1)} ms`,
    );
  }, 240_000);
});

describe('metrics of a region under node:cluster', () => {
  it("AggregatorRegistry shows the region's counts once, and sums what each worker holds", async () => {
    const region = regionName();
    const h = shared({ region, bytes: 8 << 20 });
    const { secret } = sharedRegion(h);
    const workers = [1, 2].map((seed) => fork('metrics', region, secret, seed));
    await Promise.all(workers.map(ready));
    const scraped = workers.map((w) => next(w, (m) => ('metrics' in m ? m.metrics : undefined)));
    for (const w of workers) w.send({ start: true });
    const merged = AggregatorRegistry.aggregate(await Promise.all(scraped));
    const text = await merged.metrics();
    const series = (name: string) =>
      Number(new RegExp(`^pinpool_${name}\\{region="${region}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
    // Each worker holds 1 + 2 units (1,000 and 70,000 bytes), and the region has 128 units.
    const unit = 64 << 10;
    expect(series('shared_region_bytes')).toBe(8 << 20);
    expect(series('shared_region_bytes_in_use')).toBe(6 * unit);
    expect(series('shared_region_blocks_in_use')).toBe(4);
    expect(series('shared_region_processes')).toBe(3);
    expect(series('shared_region_bytes_here')).toBe(6 * unit);
    expect(series('shared_region_blocks_here')).toBe(4);
    const reports = workers.map(report);
    for (const w of workers) w.send({ finish: true });
    for (const r of await Promise.all(reports)) expect(r.counts.bad).toBe(0);
    await Promise.all(workers.filter((w) => !w.isDead()).map((w) => once(w, 'exit')));
    expect(sharedRegion(h).stats).toMatchObject({ bytesInUse: 0, processes: 1 });
  });
});

describe('who may open a region or adopt its blocks', () => {
  /** Runs `code` (ESM, pinpool imported as `p`) in a new Node process, as `uid` if given. */
  function run(code: string, env: Record<string, string>, uid?: number) {
    return spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `import * as p from 'pinpool'; ${code}`],
      {
        cwd: ROOT,
        env: { ...process.env, ...env },
        encoding: 'utf8',
        ...(uid === undefined ? {} : { uid, gid: uid }),
      },
    );
  }
  const tryCode = (code: string) =>
    `try { ${code}; console.log('OPENED'); } catch (e) { console.log(e.code, e.message); }`;

  it('a process without the secret can neither open the region nor adopt its tokens', () => {
    const region = regionName();
    const h = shared({ region, bytes: 1 << 20 });
    const { secret } = sharedRegion(h);
    const b = h.alloc(1000);
    const token = b.transfer() as SharedBufferToken;
    const before = sharedRegion(h).stats;
    const wrong = secret.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const env = {
      REGION: region,
      WRONG: wrong,
      TOKEN: JSON.stringify({ ...token, secret: wrong }),
    };
    const r = run(
      tryCode(`p.shared({ region: process.env.REGION, secret: process.env.WRONG })`) +
        tryCode(`p.adopt(JSON.parse(process.env.TOKEN))`),
      env,
    );
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines)
      expect(line).toMatch(/^ERR_PINPOOL_INVALID_ARGUMENT .*not this secret/);
    // Here too, and a token with the right secret but a guessed nonce adopts nothing.
    expectCode(() => shared({ region, secret: wrong }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => adopt({ ...token, secret: wrong }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => adopt({ ...token, nonce: '0123456789abcdef' }), 'ERR_PINPOOL_RELEASED');
    expect(sharedRegion(h).stats).toEqual(before);
    adopt(token).free();
  });

  it.runIf(process.getuid?.() === 0)(
    'another user cannot open it, even with the secret (the file is owner-only)',
    () => {
      const region = regionName();
      const h = shared({ region, bytes: 1 << 20 });
      const { secret } = sharedRegion(h);
      const token = h.alloc(64).transfer();
      const r = run(
        tryCode(`p.shared({ region: process.env.REGION, secret: process.env.SECRET })`) +
          tryCode(`p.adopt(JSON.parse(process.env.TOKEN))`),
        { REGION: region, SECRET: secret, TOKEN: JSON.stringify(token) },
        65534, // nobody
      );
      expect(r.error).toBeUndefined();
      const lines = r.stdout.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(2);
      for (const line of lines) expect(line).toMatch(/^ERR_PINPOOL_INVALID_ARGUMENT /);
      adopt(token).free();
    },
  );

  it('the region goes with the last process, and a killed one leaves a name the next can take', () => {
    const region = regionName();
    const file = `/dev/shm/pinpool-${region}`;
    // Exits normally, holding a block: nobody else has the region open, so its name goes.
    let r = run(
      `const h = p.shared({ region: process.env.REGION, bytes: 1 << 20 }); h.alloc(10);`,
      {
        REGION: region,
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(file)).toBe(false);
    // Killed: the name stays, but no process has it open, so creating it again takes it over.
    r = run(
      `p.shared({ region: process.env.REGION, bytes: 1 << 20 }).alloc(10); process.kill(process.pid, 'SIGKILL');`,
      { REGION: region },
    );
    expect(r.signal).toBe('SIGKILL');
    expect(existsSync(file)).toBe(true);
    const h = shared({ region, bytes: 2 << 20 });
    expect(sharedRegion(h).stats).toMatchObject({ bytes: 2 << 20, bytesInUse: 0, processes: 1 });
  });
});
