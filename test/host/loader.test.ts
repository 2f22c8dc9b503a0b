// The addon loader (src/boundary/native.ts): a build from source first, then the prebuilt binary for
// this platform shipped in prebuilds/, and an error that says what it tried and what to do.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A copy of the package as installed: dist/ and package.json, no build/. */
function installed(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pinpool-loader-'));
  dirs.push(dir);
  cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
  cpSync(join(root, 'package.json'), join(dir, 'package.json'));
  return dir;
}

function load(dir: string) {
  const env = { ...process.env };
  delete env.PINPOOL_NATIVE_PATH;
  return spawnSync(
    process.execPath,
    [
      '-e',
      `const p = require(${JSON.stringify(join(dir, 'dist', 'src', 'index.js'))}); console.log(p.pool(p.pageable()).alloc(64).byteLength)`,
    ],
    { encoding: 'utf8', env },
  );
}

describe('the addon loader', () => {
  it('loads the prebuilt binary for this platform when there is no build from source', () => {
    const dir = installed();
    const prebuilt = join(dir, 'prebuilds', `${process.platform}-${process.arch}`);
    mkdirSync(prebuilt, { recursive: true });
    cpSync(join(root, 'build', 'Release', 'pinpool.node'), join(prebuilt, 'pinpool.node'));
    const r = load(dir);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('64');
  });

  it('without one, says what it tried and how to build from source', () => {
    const r = load(installed());
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(
      `pinpool: the native addon could not be loaded on ${process.platform}-${process.arch}`,
    );
    expect(r.stderr).toMatch(/build[/\\]Release[/\\]pinpool\.node: not there/);
    expect(r.stderr).toContain(
      `${join('prebuilds', `${process.platform}-${process.arch}`, 'pinpool.node')}: not there`,
    );
    expect(r.stderr).toContain('npx cmake-js compile');
  });
});
