// Worker and process lifecycle: nothing a thread holds is lost when it ends.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { attach, locked, pageable, pool, type Handler, type HandlerToken } from 'pinpool';

import { collected } from '../support/collect.js';

const script = join(__dirname, '..', 'support', 'workers', 'hold-worker.cjs');

async function settled(h: Handler, bytes: number): Promise<void> {
  for (let i = 0; i < 100 && h.stats().bytesInUse !== bytes; i++) await sleep(10);
}

describe('worker lifecycle', () => {
  it('buffers alive when a worker exits go back to their handler', async () => {
    const h = pool(locked());
    const w = new Worker(script, { workerData: { token: h.share(), count: 20, exit: true } });
    const exited = once(w, 'exit'); // before the message: both may come in one go
    const [msg] = (await once(w, 'message')) as [{ kept: number }];
    expect(msg.kept).toBe(20);
    await exited;
    await settled(h, 0);
    expect(h.stats().bytesInUse).toBe(0);
    expect(h.stats().buffersInUse).toBe(0);
    expect(h.stats().gcReleased).toBe(20);
  });

  it('buffers alive when a worker is terminated go back to their handler', async () => {
    const h = pool(locked());
    const w = new Worker(script, { workerData: { token: h.share(), count: 5, exit: false } });
    await once(w, 'message');
    expect(h.stats().buffersInUse).toBe(5);
    await w.terminate();
    await settled(h, 0);
    expect(h.stats().buffersInUse).toBe(0);
  });

  it('a handler made in a worker keeps working here after that worker exited', async () => {
    const h = pool(locked());
    const w = new Worker(script, {
      workerData: { token: h.share(), count: 1, exit: false, makeOwn: true },
    });
    const [msg] = (await once(w, 'message')) as [{ own: HandlerToken }];
    const own = attach(msg.own);
    await w.terminate();
    const b = own.alloc(4096);
    b.bytes.fill(1);
    b.free();
    expect(own.name).toBe('worker-own-pool');
    await settled(own, 0);
    expect(own.stats().bytesInUse).toBe(0); // the worker's own live buffer came back too
  });
});

describe('process exit', () => {
  it('exits cleanly with live buffers, slab views and GPU-less handlers around', () => {
    const entry = JSON.stringify(join(__dirname, '..', '..', 'dist', 'src', 'index.js'));
    const script = `
      const p = require(${entry});
      const keep = [p.pool(p.locked()).alloc(1 << 20), p.pool(p.pageable(), { slabViews: true }).alloc(100), p.defaultHandler().alloc(10)];
      setImmediate(() => { globalThis.keep = keep; console.log('bye'); });
    `;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(out.trim()).toBe('bye');
  });
});

describe('handlers JavaScript let go of', () => {
  it('a dropped pool gives its memory back to its leaf: no per-thread cache keeps it alive', async () => {
    const leaf = pageable();
    (() => {
      for (const options of [{}, { slabViews: true }, { threadCacheBytes: 0 }]) {
        const p = pool(leaf, options);
        p.alloc(4096).free();
        p.alloc(1 << 20).free();
      }
    })();
    for (let i = 0; i < 20 && leaf.stats().bytesInUse !== 0; i++) await collected();
    expect(leaf.stats().bytesInUse).toBe(0);
    expect(leaf.stats().buffersInUse).toBe(0);
  });
});
