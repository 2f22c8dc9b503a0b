// mapFile(): zero copy by default, a copy mode that survives the file changing, and errors that
// name the path and the OS reason.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  realpathSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  fallback,
  limit,
  mapFile,
  pageable,
  pool,
  replayTrace,
  type MapFileOptions,
} from 'pinpool';
import { errorOf } from '../support/expect-error.js';

const MiB = 2 ** 20;
const dir = mkdtempSync(join(tmpdir(), 'pinpool-map-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A sparse file of `bytes` bytes: holes, with `head` written at 0 and `tail` at its end. */
function sparseFile(name: string, bytes: number, head = 'head', tail = 'tail'): string {
  const file = join(dir, name);
  const fd = openSync(file, 'w');
  ftruncateSync(fd, bytes);
  writeSync(fd, head, 0);
  writeSync(fd, tail, bytes - tail.length);
  closeSync(fd);
  return file;
}

/**
 * The /proc/self/smaps entry of the mapping that holds `address`: its path, size and fields in
 * bytes ('Anonymous', 'Private_Dirty', 'Rss' ...). Its own pages only: a process-wide figure such
 * as RssAnon also counts whatever else allocates meanwhile (AddressSanitizer's runtime does).
 */
function mappingAt(address: bigint): { path: string; bytes: number; fields: Map<string, number> } {
  let found: { path: string; bytes: number; fields: Map<string, number> } | undefined;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+ *(.*)$/.exec(line);
    if (head !== null) {
      if (found !== undefined) break;
      const [start, end] = [BigInt(`0x${head[1]!}`), BigInt(`0x${head[2]!}`)];
      if (start <= address && address < end)
        found = { path: head[3] ?? '', bytes: Number(end - start), fields: new Map() };
      continue;
    }
    const field = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (found !== undefined && field !== null) found.fields.set(field[1]!, Number(field[2]) * 1024);
  }
  if (found === undefined)
    throw new Error(`no mapping in /proc/self/smaps holds 0x${address.toString(16)}`);
  return found;
}
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
const kib = (bytes: number) => `${bytes / 1024} KiB`;

describe('mapFile: zero copy', () => {
  it('maps a 256 MiB sparse file without anonymous memory; a write copies one page and stays private', () => {
    const bytes = 256 * MiB;
    const file = sparseFile('sparse.bin', bytes);
    const buf = mapFile(file);
    // The buffer lies in a mapping of the file itself, whose pages are the page cache's own
    // (reclaimable): none of them anonymous, as a copy's would be. (Private_Dirty is no measure:
    // it counts the page cache's pages of head and tail, dirty from the write that made the file.)
    const mapping = mappingAt(buf.address);
    const field = (name: string) => mappingAt(buf.address).fields.get(name);
    console.log(
      `mapFile of a ${bytes / MiB} MiB sparse file: ${mapping.path}, ${mib(mapping.bytes)}, Rss ${mib(field('Rss')!)}, Anonymous ${kib(field('Anonymous')!)}, Private_Dirty ${kib(field('Private_Dirty')!)}`,
    );
    expect(mapping.path).toBe(realpathSync(file));
    expect(mapping.bytes).toBeGreaterThanOrEqual(bytes);
    expect(field('Anonymous')).toBe(0);

    expect(buf.byteLength).toBe(bytes);
    const view = Buffer.from(buf.bytes.buffer, buf.bytes.byteOffset, buf.byteLength);
    expect(view.toString('latin1', 0, 4)).toBe('head');
    expect(view.toString('latin1', bytes - 4)).toBe('tail');
    expect(view.indexOf(1, 4)).toBe(-1); // the holes read as zeros

    view.write('HEAD', 0, 'latin1');
    view[bytes / 2] = 7;
    expect(view.toString('latin1', 0, 4)).toBe('HEAD');
    expect(view[bytes / 2]).toBe(7);
    // Each write copied the one page it touched (two pages, at most 64 KiB each), nothing more.
    console.log(
      `after two writes: Anonymous ${kib(field('Anonymous')!)}, Private_Dirty ${kib(field('Private_Dirty')!)}`,
    );
    expect(field('Anonymous')).toBeGreaterThan(0);
    expect(field('Anonymous')).toBeLessThanOrEqual(128 * 1024);
    buf.free();

    // The file never saw the writes.
    const fd = openSync(file, 'r');
    const head = Buffer.alloc(4);
    const middle = Buffer.alloc(1);
    readSync(fd, head, 0, 4, 0);
    readSync(fd, middle, 0, 1, bytes / 2);
    closeSync(fd);
    expect(head.toString('latin1')).toBe('head');
    expect(middle[0]).toBe(0);
  });
});

/** A file of `bytes` bytes of a byte pattern. */
function patternFile(name: string, bytes: number): [file: string, content: Buffer] {
  const content = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) content[i] = (i * 31 + 7) & 0xff;
  const file = join(dir, name);
  writeFileSync(file, content);
  return [file, content];
}

describe('mapFile: truncation', () => {
  it('the default mapping: reading a page the file lost kills the process with SIGBUS', () => {
    const [file] = patternFile('truncated.bin', 1 * MiB);
    const index = join(__dirname, '..', '..', 'dist', 'src', 'index.js');
    const script = `
      const { truncateSync } = require('node:fs');
      const buf = require(${JSON.stringify(index)}).mapFile(${JSON.stringify(file)});
      console.log('before', buf.bytes[65536]);
      truncateSync(${JSON.stringify(file)}, 4096);
      console.log('first page', buf.bytes[0]);
      console.log('lost page', buf.bytes[65536]);
    `;
    const r = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      env: { ...process.env, PINPOOL_CUDA_LIBRARY: '' },
    });
    expect(r.stdout).toBe(`before ${(65536 * 31 + 7) & 0xff}\nfirst page 7\n`);
    // Under AddressSanitizer (npm run test:asan preloads it) its handler reports the SIGBUS.
    if (process.env.LD_PRELOAD?.includes('libasan'))
      expect(r.stderr).toMatch(/AddressSanitizer: BUS/);
    else expect(r.signal).toBe('SIGBUS');
  });

  it('copy mode: the bytes are ours, so a file truncated after mapFile reads in full', () => {
    const [file, content] = patternFile('copied.bin', 1 * MiB);
    using buf = mapFile(file, { copy: true });
    truncateSync(file, 0);
    expect(Buffer.from(buf.bytes).equals(content)).toBe(true);
    expect(['pinned', 'locked', 'pageable']).toContain(buf.kind); // the default chain
  });
});

describe('mapFile: copy mode', () => {
  it('reads into a block from the handler given, which accounts for it', () => {
    const [file, content] = patternFile('handler.bin', 100_000);
    const handler = pageable();
    const buf = mapFile(file, { copy: true, handler });
    expect(buf.servedBy).toBe('pageable');
    expect(buf.byteLength).toBe(content.length);
    expect(Buffer.from(buf.bytes).equals(content)).toBe(true);
    expect(handler.stats().bytesInUse).toBe(content.length);
    buf.bytes[0] = 0xee; // ours: the file is unchanged
    expect(readFileSync(file)[0]).toBe(content[0]);
    buf.free();
    expect(handler.stats().bytesInUse).toBe(0);
  });

  it('reads a file of 2 GiB or more (fs.readSync takes at most 2^31-1 bytes a call)', () => {
    const bytes = 2 ** 31 + 4096 + 5;
    const file = join(dir, 'over-2gib.bin');
    const fd = openSync(file, 'w');
    ftruncateSync(fd, bytes); // sparse: no disk used
    const marks = [0, 2 ** 31 - 1, 2 ** 31, bytes - 1];
    marks.forEach((offset, i) => writeSync(fd, Buffer.of(0xa0 + i), 0, 1, offset));
    closeSync(fd);
    const buf = mapFile(file, { copy: true, handler: pageable() });
    try {
      expect(buf.byteLength).toBe(bytes);
      marks.forEach((offset, i) => expect(buf.bytes[offset], `byte ${offset}`).toBe(0xa0 + i));
      expect(buf.bytes[2 ** 31 + 1]).toBe(0);
    } finally {
      buf.free(); // over 2 GiB: give it back at once
      rmSync(file);
    }
    // Reading 2 GiB takes 10 s on a quiet 2-core machine and 19 s under ASan: a wide margin.
  }, 300_000);

  it('an empty file is an empty buffer', () => {
    writeFileSync(join(dir, 'empty.bin'), '');
    using buf = mapFile(join(dir, 'empty.bin'), { copy: true, handler: pageable() });
    expect(buf.byteLength).toBe(0);
  });

  it('bad options', () => {
    const file = sparseFile('options.bin', 4096);
    const bad: unknown[] = [
      null,
      7,
      { copy: 1 },
      { writable: 'yes' },
      { handler: pageable() },
      { copy: true, handler: {} },
      { copy: true, writable: true },
      { copy: true, register: true },
    ];
    for (const options of bad) {
      expect(
        errorOf(() => mapFile(file, options as MapFileOptions)).code,
        JSON.stringify(options),
      ).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    }
    for (const path of [undefined, '', 7])
      expect(errorOf(() => mapFile(path as string)).code).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
  });
});
describe('mapFile: errors name the path and the OS reason', () => {
  it('a missing file', () => {
    const file = join(dir, 'missing.bin');
    const err = errorOf(() => mapFile(file));
    expect(err.code).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    expect(err.message).toBe(`pinpool: cannot map ${file}: no such file or directory (ENOENT)`);
  });

  it('a directory and a FIFO are not regular files (and opening the FIFO does not block)', () => {
    const err = errorOf(() => mapFile(dir));
    expect(err.code).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    expect(err.message).toBe(`pinpool: cannot map ${dir}: it is a directory, not a regular file`);
    const fifo = join(dir, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    for (const options of [{}, { copy: true }]) {
      const e = errorOf(() => mapFile(fifo, options));
      expect(e.code).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
      expect(e.message).toBe(`pinpool: cannot map ${fifo}: it is a FIFO, not a regular file`);
    }
  });

  it('a file the OS will not open (writable, a running executable: ETXTBSY even for root)', () => {
    const err = errorOf(() => mapFile(process.execPath, { writable: true }));
    expect(err.code).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    expect(err.message).toBe(
      `pinpool: cannot map ${process.execPath}: text file is busy (ETXTBSY)`,
    );
  });

  it.skipIf(process.getuid?.() === 0)(
    'a file without read permission (not as root: root reads anything)',
    () => {
      const file = join(dir, 'secret.bin');
      writeFileSync(file, 'secret');
      chmodSync(file, 0);
      const err = errorOf(() => mapFile(file));
      expect(err.code).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
      expect(err.message).toBe(`pinpool: cannot map ${file}: permission denied (EACCES)`);
    },
  );

  it('a /proc file (size 0 in stat, but not empty) is refused; copy mode reads it', () => {
    const err = errorOf(() => mapFile('/proc/self/status'));
    expect(err.code).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    expect(err.message).toMatch(
      /^pinpool: cannot map \/proc\/self\/status: .*size 0.*\{ copy: true \}/,
    );
    using copied = mapFile('/proc/self/status', { copy: true });
    expect(Buffer.from(copied.bytes).toString()).toMatch(/^Name:/);
  });

  it('a /sys file (its file system cannot map files) is refused; copy mode reads it', () => {
    const file = '/sys/kernel/mm/transparent_hugepage/enabled';
    if (!existsSync(file)) return;
    const err = errorOf(() => mapFile(file));
    expect(err.code).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    expect(err.message).toMatch(/^pinpool: cannot map \/sys\/.*\{ copy: true \}/);
    using copied = mapFile(file, { copy: true });
    expect(Buffer.from(copied.bytes).toString()).toBe(readFileSync(file, 'utf8'));
  });

  it('the handler of a mapped buffer maps once: another alloc is refused and counted nowhere (found by the fuzzer)', () => {
    const file = sparseFile('once.bin', 4096);
    using buf = mapFile(file);
    const handler = buf.handler;
    const before = handler.stats();
    for (const bytes of [4096, 64]) {
      const err = errorOf(() => handler.alloc(bytes));
      expect(err.code).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
      expect(err.message).toMatch(/maps its file once/);
    }
    expect(handler.stats()).toEqual(before);
    expect(Buffer.from(buf.bytes.subarray(0, 4)).toString()).toBe('head');
  });

  it('nor can it be an upstream or replay a trace, which would reach it natively (found by the fuzzer)', () => {
    using buf = mapFile(sparseFile('upstream.bin', 4096));
    const handler = buf.handler;
    const before = handler.stats();
    for (const make of [
      () => pool(handler),
      () => fallback(handler, pageable()),
      () => fallback(pageable(), handler),
      () => limit(handler, { maxBytes: 1 << 20 }),
    ]) {
      expect(errorOf(make).code).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    }
    expect(
      errorOf(() => replayTrace([{ op: 'alloc', id: 1, bytes: 64, alignment: 64 }], handler)).code,
    ).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    expect(handler.stats()).toEqual(before);
  });

  it('a rejected copy changes no statistics of its handler', () => {
    const handler = pageable();
    const before = handler.stats();
    for (const file of [join(dir, 'missing.bin'), dir])
      errorOf(() => mapFile(file, { copy: true, handler }));
    expect(handler.stats()).toEqual(before);
  });
});
