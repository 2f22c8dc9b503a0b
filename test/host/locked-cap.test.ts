/**
 * The page-lock cap (docs/decisions/0015-page-lock-cap.md): locked() never commits more than the host can hold.
 * Above its cap an allocation is refused at once, coded, with nothing mapped or locked.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { info, locked } from 'pinpool';

import { expectCode } from '../support/expect-error.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('locked({ maxBytes })', () => {
  it('rejects a maxBytes that is not a byte count', () => {
    for (const bad of [-1, 1.5, NaN, '1', null, 2 ** 53]) {
      const err = expectCode(
        () => locked({ maxBytes: bad as number }),
        'ERR_PINPOOL_INVALID_ARGUMENT',
      );
      expect(err.message).toContain('maxBytes');
    }
  });

  it('refuses a request over its cap with reason mlock, naming the bytes and the cap; statistics unchanged', () => {
    const h = locked({ maxBytes: 1 * MiB });
    const before = h.stats();
    const err = expectCode(() => h.alloc(2 * MiB), 'ERR_PINPOOL_OUT_OF_MEMORY');
    expect(err.reason).toBe('mlock');
    expect(err.message).toContain(String(2 * MiB));
    expect(err.message).toContain(String(1 * MiB));
    expect(err.message).toContain('option');
    expect(err).toMatchObject({ bytes: 2 * MiB, capBytes: 1 * MiB });
    const after = h.stats();
    expect([after.bytesInUse, after.bytesPeak, after.allocatedBytes]).toEqual([
      before.bytesInUse,
      before.bytesPeak,
      before.allocatedBytes,
    ]);
    expect([after.buffersInUse, after.buffersPeak, after.allocations]).toEqual([
      before.buffersInUse,
      before.buffersPeak,
      before.allocations,
    ]);
    expect(after.failures).toEqual({ mlock: 1 });
    expect(after.capBytes).toBe(1 * MiB);
  });

  it('counts every live block against the cap, and a free makes room again', () => {
    const h = locked({ maxBytes: 1 * MiB });
    const a = h.alloc(512 * KiB);
    const b = h.alloc(512 * KiB);
    // Each request alone fits; together with the live blocks it does not.
    const err = expectCode(() => h.alloc(4 * KiB), 'ERR_PINPOOL_OUT_OF_MEMORY');
    expect(err.reason).toBe('mlock');
    a.free();
    const c = h.alloc(512 * KiB);
    expect(c.servedBy).toBe(h.name);
    b.free();
    c.free();
    expect(h.stats().bytesInUse).toBe(0);
  });
});

describe('info().lockedCap', () => {
  it('says what caps a locked leaf by default, and where that came from', () => {
    const { lockedCap, hostLockCap } = info();
    expect(['rlimit', 'cgroup', 'meminfo']).toContain(lockedCap.source);
    expect(['cgroup', 'meminfo']).toContain(hostLockCap.source);
    expect(lockedCap.bytes).toBeGreaterThan(0);
    expect(lockedCap.bytes).toBeLessThanOrEqual(hostLockCap.bytes);
    expect(hostLockCap.bytes).toBeLessThan(os.totalmem());
    expect(locked().stats().capBytes).toBe(lockedCap.bytes);
  });
});

// What docs/decisions/0015-page-lock-cap.md must show: as root (CAP_IPC_LOCK, so RLIMIT_MEMLOCK does not apply), asking for
// twice the machine gets the coded refusal with nothing resident or locked. It runs in a child
// whose address space is capped below the request (ulimit -v), so that a build without the cap
// fails (mmap refused, reason 'mmap') instead of locking the machine's memory.
describe('asking for twice the machine (child process, address space capped)', () => {
  const root = join(__dirname, '..', '..');
  const asKiB = Math.floor((1.5 * os.totalmem()) / 1024);
  const script = (body: string) => `
    const p = require(${JSON.stringify(join(root, 'dist/src/index.js'))});
    const fs = require('fs');
    const kib = (key) => Number(new RegExp('^' + key + ':\\\\s*(\\\\d+) kB', 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
    const bytes = 2 * require('os').totalmem();
    const h = ${body};
    h.alloc(4096).free(); // warm: the first call loads what it needs
    const before = { rss: kib('VmRSS'), lck: kib('VmLck') };
    const start = process.hrtime.bigint();
    let e;
    try { h.alloc(bytes).free(); } catch (err) { e = err; }
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    const after = { rss: kib('VmRSS'), lck: kib('VmLck') };
    const lockedFailures = h.upstreams.length === 2 ? h.upstreams[1].upstreams[0].stats().failures : null;
    console.log(JSON.stringify({ code: e && e.code, reason: e && e.reason, message: e && e.message, lockedFailures, before, after, ms }));`;
  /** What the script prints. */
  interface Refusal {
    code?: string;
    reason?: string;
    message?: string;
    lockedFailures: unknown;
    before: { rss: number; lck: number };
    after: { rss: number; lck: number };
    ms: number;
  }
  const run = (body: string) =>
    JSON.parse(
      execFileSync(
        '/bin/sh',
        ['-c', `ulimit -v ${asKiB} && exec "$0" -e "$1"`, process.execPath, script(body)],
        { encoding: 'utf8' },
      ),
    ) as Refusal;
  const privileged = info().memlockPrivileged;

  it.runIf(privileged)(
    'locked(): ERR_PINPOOL_OUT_OF_MEMORY, reason mlock, nothing resident or locked',
    () => {
      const r = run('p.locked()');
      console.log(
        `locked().alloc(2 * totalmem) refused in ${r.ms.toFixed(3)} ms: ${String(r.message)}`,
      );
      expect(r.code).toBe('ERR_PINPOOL_OUT_OF_MEMORY');
      expect(r.reason).toBe('mlock');
      expect(r.after.lck).toBe(r.before.lck);
      // Resident memory may move by a few pages for the error object; a touched request would be
      // gigabytes.
      expect(Math.abs(r.after.rss - r.before.rss)).toBeLessThan(16 * 1024);
    },
  );

  it.runIf(privileged)('defaultHandler(): the coded refusal, nothing resident or locked', () => {
    const r = run('p.defaultHandler()');
    console.log(
      `defaultHandler().alloc(2 * totalmem) refused in ${r.ms.toFixed(3)} ms: ${String(r.message)}`,
    );
    // pinned is unavailable here, locked refuses at its cap; pageable's malloc of twice the
    // machine is refused too (the address space is capped below it).
    expect(r.code).toBe('ERR_PINPOOL_OUT_OF_MEMORY');
    expect(r.lockedFailures).toEqual({ mlock: 1 }); // locked-pool refused at the cap, then pageable
    expect(r.after.lck).toBe(r.before.lck);
    expect(Math.abs(r.after.rss - r.before.rss)).toBeLessThan(16 * 1024);
  });
});
