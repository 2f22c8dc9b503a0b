// mapFile(): zero copy by default, a copy mode that survives the file changing, and errors that
// name the path and the OS reason.
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mapFile } from 'pinpool';

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

/** A line of /proc/self/status in bytes: 'RssAnon' (anonymous resident memory), 'RssFile' ... */
function status(field: string): number {
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  return Number(kib) * 1024;
}
const rssAnon = () => status('RssAnon');
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

describe('mapFile: zero copy', () => {
  it('maps a 256 MiB sparse file without anonymous memory; a write copies one page and stays private', () => {
    const bytes = 256 * MiB;
    const file = sparseFile('sparse.bin', bytes);
    globalThis.gc?.();
    const before = rssAnon();
    const fileBefore = status('RssFile');
    const buf = mapFile(file);
    const after = rssAnon();
    // RssFile grows: the pages are populated, as the page cache's own (shared, reclaimable).
    console.log(`mapFile of a ${bytes / MiB} MiB sparse file: RssAnon ${mib(before)} -> ${mib(after)}, RssFile ${mib(fileBefore)} -> ${mib(status('RssFile'))}`);
    expect(after - before).toBeLessThan(16 * MiB);

    expect(buf.byteLength).toBe(bytes);
    const view = Buffer.from(buf.bytes.buffer, buf.bytes.byteOffset, buf.byteLength);
    expect(view.toString('latin1', 0, 4)).toBe('head');
    expect(view.toString('latin1', bytes - 4)).toBe('tail');
    expect(view.indexOf(1, 4)).toBe(-1); // the holes read as zeros

    view.write('HEAD', 0, 'latin1');
    view[bytes / 2] = 7;
    expect(view.toString('latin1', 0, 4)).toBe('HEAD');
    expect(view[bytes / 2]).toBe(7);
    expect(rssAnon() - before).toBeLessThan(16 * MiB);
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
