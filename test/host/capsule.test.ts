// One pinpool per process (src/process/capsule.ts, native/capsule/): copies of the package loaded in one
// process, in both orders, share one registry, one controller per thread, one set of handlers
// and statistics; a copy whose API the first copy lacks gets ERR_PINPOOL_VERSION.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as pinpool from 'pinpool';
import type { RegistryInfo } from 'pinpool';

import { checkout, makeCopies } from '../support/capsule/copies.cjs';

let root: string;
const copyOf = (name: string) => join(root, 'node_modules', name, 'node_modules', 'pinpool');

// Children run with this environment: no PINPOOL_NATIVE_PATH (each copy loads its own addon).
const env = { ...process.env };
delete env.PINPOOL_NATIVE_PATH;

/** What capsule/two-copies.cjs prints. */
interface TwoCopiesFacts {
  info: { first: { registry: RegistryInfo }; second: { registry: RegistryInfo; version: string } };
  same: unknown;
  scope: unknown;
  stats: unknown;
  metrics: unknown;
  worker: { registry: RegistryInfo; live: number };
  afterWorker: number;
}

/** What the 'newer than the registry' script prints. */
interface FutureCallOut {
  aHasIt: boolean;
  result?: unknown;
  error?: { code: unknown; message: string; isPinpoolError: boolean };
  readError?: unknown;
  works: number;
}

function node(args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: root, env, encoding: 'utf8' });
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'pinpool-copies-'));
  makeCopies(root, [
    { name: 'a', version: '0.1.0' },
    { name: 'b', version: '0.2.0' },
    { name: 'c', version: '0.3.0', extraExport: 'futureCall' },
  ]);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('two copies in one process', () => {
  for (const [first, second] of [
    ['a', 'b'],
    ['b', 'a'],
  ] as const) {
    it(`${first} (${first === 'a' ? 'older' : 'newer'}) loaded first: one registry, controller, set of handlers and metrics`, () => {
      const facts = JSON.parse(
        node([join(__dirname, '..', 'support', 'capsule', 'two-copies.cjs'), root, first, second]),
      ) as TwoCopiesFacts;
      const publisher = {
        version: first === 'a' ? '0.1.0' : '0.2.0',
        entry: join(copyOf(first), 'dist', 'src', 'index.js'),
        addon: join(copyOf(first), 'build', 'Release', 'pinpool.node'),
      };
      expect(facts.info.first.registry).toMatchObject({
        publisher,
        thisCopy: { ...publisher, publisher: true },
        abiVersion: 2,
      });
      expect(facts.info.second.registry.publisher).toEqual(publisher);
      expect(facts.info.second.registry.thisCopy).toMatchObject({
        version: second === 'a' ? '0.1.0' : '0.2.0',
        entry: join(copyOf(second), 'dist', 'src', 'index.js'),
        publisher: false,
      });
      expect(facts.info.second.version).toBe(second === 'a' ? '0.1.0' : '0.2.0');
      expect(facts.same).toEqual({
        Handler: true,
        controller: true,
        PinpoolError: true,
        alloc: true,
      });
      expect(facts.scope).toEqual({ handler: true, servedBy: 'shared-leaf', instance: true });
      expect(facts.stats).toEqual({ viaFirst: 3, isHandler: true });
      expect(facts.metrics).toEqual({
        first: { shared: 1, second: 1 },
        second: { shared: 1, second: 1 },
      });
      // The worker loaded only the second copy, and found the first copy's registry.
      expect(facts.worker.registry.publisher).toEqual(publisher);
      expect(facts.worker.registry.thisCopy.publisher).toBe(false);
      expect(facts.worker.live).toBe(2);
      expect(facts.afterWorker).toBe(3); // one free in the scope, two in the worker
    });
  }

  it('ESM named imports through a second copy find every export', () => {
    const script = join(root, 'esm.mjs');
    writeFileSync(
      script,
      `
      import * as a from 'a';
      import { pool, pageable, info, Handler, controller } from 'b';
      const h = pool(pageable());
      console.log(JSON.stringify({ same: controller === a.controller && h instanceof a.Handler && Handler === a.Handler, publisher: info().registry.publisher.version }));
    `,
    );
    expect(JSON.parse(node([script]))).toEqual({ same: true, publisher: '0.1.0' });
  });
});

describe('two copies that share one addon file (PINPOOL_NATIVE_PATH)', () => {
  it("are one pinpool too: the second hands out the first copy's module", () => {
    const out = execFileSync(
      process.execPath,
      [
        '-e',
        `
      const a = require(${JSON.stringify(join(root, 'node_modules', 'a'))});
      const b = require(${JSON.stringify(join(root, 'node_modules', 'b'))});
      console.log(JSON.stringify({ same: a.controller === b.controller && a.Handler === b.Handler, a: a.info().registry, b: b.info().registry }));`,
      ],
      {
        cwd: root,
        env: { ...env, PINPOOL_NATIVE_PATH: join(checkout, 'build', 'Release', 'pinpool.node') },
        encoding: 'utf8',
      },
    );
    const { same, a, b } = JSON.parse(out) as { same: boolean; a: RegistryInfo; b: RegistryInfo };
    expect(same).toBe(true);
    expect(a.thisCopy.publisher).toBe(true);
    expect(b.thisCopy.publisher).toBe(false);
    expect(b.publisher.entry).toBe(join(copyOf('a'), 'dist', 'src', 'index.js'));
    expect(b.thisCopy.addon).toBe(a.thisCopy.addon);
  });
});

describe('a publisher whose module cannot be loaded', () => {
  it('leaves a later copy working on its own, and info() says why', () => {
    // The first copy's entry module vanishes after it loaded (a broken install); a worker that
    // loads the second copy cannot load the first's module and runs its own.
    const entry = join(copyOf('a'), 'dist', 'src', 'index.js');
    const out = node([
      '-e',
      `
      const fs = require('node:fs');
      const { Worker } = require('node:worker_threads');
      require(${JSON.stringify(join(root, 'node_modules', 'a'))});
      fs.renameSync(${JSON.stringify(entry)}, ${JSON.stringify(`${entry}.gone`)});
      const w = new Worker(\`
        const p = require(${JSON.stringify(join(root, 'node_modules', 'b'))});
        require('node:worker_threads').parentPort.postMessage({ registry: p.info().registry, bytes: p.pool(p.pageable()).alloc(10).byteLength });\`, { eval: true });
      w.once('message', (m) => { fs.renameSync(${JSON.stringify(`${entry}.gone`)}, ${JSON.stringify(entry)}); console.log(JSON.stringify(m)); });
      w.once('error', (e) => { fs.renameSync(${JSON.stringify(`${entry}.gone`)}, ${JSON.stringify(entry)}); throw e; });`,
    ]);
    const { registry, bytes } = JSON.parse(out) as { registry: RegistryInfo; bytes: number };
    expect(bytes).toBe(10);
    expect(registry.publisher.version).toBe('0.1.0');
    expect(registry.thisCopy).toMatchObject({ version: '0.2.0', publisher: false });
    expect(registry.joinError).toMatch(/^\/.*index\.js: Cannot find module/);
  });
});

describe('a copy newer than the registry', () => {
  const script = (first: string, second: string) => `
    const { join } = require('node:path');
    const first = require(join(${JSON.stringify(root)}, 'node_modules', ${JSON.stringify(first)}));
    const second = require(join(${JSON.stringify(root)}, 'node_modules', ${JSON.stringify(second)}));
    const c = ${first === 'c' ? 'first' : 'second'}, a = ${first === 'a' ? 'first' : 'second'};
    const out = { aHasIt: 'futureCall' in a };
    try { out.result = c.futureCall(); } catch (err) {
      out.error = { code: err.code, message: err.message, isPinpoolError: err instanceof a.PinpoolError };
    }
    try { c.futureCall.length; } catch (err) { out.readError = err.code; }
    // What both have works, through either copy.
    out.works = c.pool(c.pageable()).alloc(10).byteLength + a.pool(a.pageable()).alloc(20).byteLength;
    console.log(JSON.stringify(out));`;

  it('fails a call the older publisher lacks with ERR_PINPOOL_VERSION naming both versions; the rest works', () => {
    const out = JSON.parse(node(['-e', script('a', 'c')])) as FutureCallOut;
    expect(out.aHasIt).toBe(false);
    expect(out.result).toBeUndefined();
    expect(out.error?.code).toBe('ERR_PINPOOL_VERSION');
    expect(out.error?.isPinpoolError).toBe(true);
    expect(out.error?.message).toContain('futureCall is in pinpool 0.3.0');
    expect(out.error?.message).toContain('not in pinpool 0.1.0');
    expect(out.readError).toBe('ERR_PINPOOL_VERSION');
    expect(out.works).toBe(30);
  });

  it('loaded first, the newer copy publishes and its call works; the older copy uses it', () => {
    const out = JSON.parse(node(['-e', script('c', 'a')])) as FutureCallOut;
    // require() of the older copy is the publisher's module itself, so it has the newer call too
    // (ESM named imports of the older copy list only its own names: they are read from its files).
    expect(out).toEqual({ aHasIt: true, result: 'futureCall of 0.3.0', works: 30 });
  });
});

describe('the entry module and the addon', () => {
  it('the entry module exports, to require and to ESM named imports, exactly the names of api.ts', () => {
    const load = createRequire(__filename);
    const api = Object.keys(load(join(checkout, 'dist', 'src', 'api.js')) as object).sort();
    const index = join(checkout, 'dist', 'src', 'index.js');
    expect(Object.keys(load(index) as object).sort()).toEqual(api);
    // Node finds ESM names by reading the file (cjs-module-lexer), not by running it. Every
    // CommonJS namespace also has 'default', '__esModule' here, and 'module.exports' on Node 23+.
    const esm = node([
      '--input-type=module',
      '-e',
      `import * as ns from ${JSON.stringify(index)}; console.log(JSON.stringify(Object.keys(ns)))`,
    ]);
    expect(
      (JSON.parse(esm) as string[])
        .filter((k) => !['default', '__esModule', 'module.exports'].includes(k))
        .sort(),
    ).toEqual(api);
  });

  it('this checkout published the registry of the test process', () => {
    const { registry } = pinpool.info();
    expect(registry.thisCopy.publisher).toBe(true);
    expect(registry.publisher.entry).toBe(join(checkout, 'dist', 'src', 'index.js'));
    expect(registry.promoteError).toBeUndefined();
  });

  it('the addon exports Node-API entry points and the capsule only: a promoted copy interposes on nothing', () => {
    const names = execFileSync(
      'nm',
      ['-D', '--defined-only', join(checkout, 'build', 'Release', 'pinpool.node')],
      { encoding: 'utf8' },
    )
      .trim()
      .split('\n')
      .map((line) => line.split(' ').pop());
    expect(names.sort()).toEqual([
      'napi_register_module_v1',
      'node_api_module_get_api_version_v1',
      'pinpool_capsule_publish',
    ]);
  });
});
