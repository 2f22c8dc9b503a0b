// The `pinpool` command as a user gets it: pinpool copied into a project's node_modules, run
// through node_modules/.bin. First with nothing else installed, where every command but `serve`
// works and `serve` says what to install; then with fastify and prom-client only (no
// fastify-plugin), where the service runs.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..', '..');
const version = (
  JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
).version;
// No NODE_PATH: it would add folders to look in, and this test is about what is not there.
const env: NodeJS.ProcessEnv = {
  ...process.env,
  PINPOOL_CUDA_LIBRARY: '',
  PINPOOL_ADMIN_TOKEN: '',
};
delete env.NODE_PATH;

/**
 * A project in a fresh temporary folder with pinpool installed as npm installs it: the package's
 * files copied (not linked: Node would follow a link back to this checkout's node_modules) and
 * its bin linked. `packages` are linked in beside it from this checkout's node_modules.
 */
function project(packages: readonly string[]): { dir: string; pkg: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pinpool-install-'));
  const pkg = join(dir, 'node_modules', 'pinpool');
  // The addon as this checkout has it: built (npm test builds first), else the prebuilt one.
  const addon = [
    'build/Release/pinpool.node',
    `prebuilds/${process.platform}-${process.arch}`,
  ].find((path) => existsSync(join(root, path)));
  const files = ['package.json', 'dist/src', 'dist/server', 'server/status/page'];
  for (const path of [...files, addon ?? 'no addon to copy'])
    cpSync(join(root, path), join(pkg, path), { recursive: true });
  mkdirSync(join(dir, 'node_modules', '.bin'));
  symlinkSync('../pinpool/dist/server/cli.js', join(dir, 'node_modules', '.bin', 'pinpool'));
  for (const name of packages)
    symlinkSync(join(root, 'node_modules', name), join(dir, 'node_modules', name), 'dir');
  return { dir, pkg };
}

/** Whether `name` resolves from pinpool's own files, as the CLI's require() would resolve it. */
function resolves(pkg: string, name: string): boolean {
  try {
    createRequire(join(pkg, 'dist', 'server', 'cli.js')).resolve(name);
    return true;
  } catch {
    return false;
  }
}

describe('pinpool alone', () => {
  let dir = '';
  let pkg = '';
  beforeAll(() => ({ dir, pkg } = project([])));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const pinpool = (...args: string[]) =>
    spawnSync(process.execPath, [join(dir, 'node_modules', '.bin', 'pinpool'), ...args], {
      cwd: dir,
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });

  it('is a project where the service packages cannot be found', () => {
    for (const name of ['fastify', 'prom-client', 'fastify-plugin'])
      expect(resolves(pkg, name), name).toBe(false);
    expect(resolves(pkg, 'pinpool')).toBe(true); // the package's own name, as a check of the check
    const check = spawnSync(process.execPath, ['-e', "require.resolve('fastify')"], {
      cwd: dir,
      env,
      encoding: 'utf8',
    });
    expect(check.status).not.toBe(0);
  });

  it('runs info, info --json and --version', () => {
    const text = pinpool('info');
    expect([text.status, text.stderr]).toEqual([0, '']);
    expect(text.stdout).toMatch(/^pinpool \d+\.\d+\.\d+ \(Node-API \d+/);
    const json = pinpool('info', '--json');
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ version, cuda: { available: false } });
    const v = pinpool('--version');
    expect([v.status, v.stdout, v.stderr]).toEqual([0, `${version}\n`, '']);
  });

  it("prints the global help, and each command's own", () => {
    const global = pinpool('--help');
    expect([global.status, global.stderr]).toEqual([0, '']);
    expect(global.stdout).toMatch(/^usage: pinpool <command>/);
    expect(global.stdout).toMatch(/^ {2}info /m);
    expect(global.stdout).toMatch(/^ {2}serve /m);
    for (const [command, flag] of [
      ['info', '--json'],
      ['serve', '--log-format'],
    ] as const) {
      for (const args of [
        [command, '--help'],
        [command, '-h'],
        ['help', command],
      ]) {
        const help = pinpool(...args);
        expect([help.status, help.stderr], args.join(' ')).toEqual([0, '']);
        expect(help.stdout, args.join(' ')).toMatch(new RegExp(`^usage: pinpool ${command} `));
        expect(help.stdout).toContain(flag);
        expect(help.stdout).not.toContain('commands:'); // not the global text
      }
    }
  });

  it('answers serve with one line naming what is missing and the command that installs it', () => {
    for (const args of [['serve'], ['serve', '--port', '0', '--demo']]) {
      const r = pinpool(...args);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        'pinpool: pinpool serve needs fastify and prom-client (not installed: fastify, prom-client); install them with: npm install fastify prom-client\n',
      );
    }
  });

  it('still answers bad command lines with the usage and status 2', () => {
    for (const args of [['nope'], ['info', '--port', '1'], ['serve', '--log-format', 'xml']]) {
      const r = pinpool(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^usage: pinpool /m);
    }
  });

  it('answers require("pinpool/server") with a PinpoolError naming the command', () => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        "try { require('pinpool/server') } catch (e) { console.log(e.code + ' ' + e.message) }",
      ],
      { cwd: dir, env, encoding: 'utf8' },
    );
    expect(r.stdout).toMatch(
      /^ERR_PINPOOL_UNAVAILABLE pinpool: the service .* needs fastify and prom-client \(not installed: fastify, prom-client\); install them with: npm install fastify prom-client\n$/,
    );
  });
});

describe('pinpool with fastify and prom-client, without fastify-plugin', () => {
  let dir = '';
  let pkg = '';
  beforeAll(() => ({ dir, pkg } = project(['fastify', 'prom-client'])));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is a project where fastify-plugin cannot be found', () => {
    expect(resolves(pkg, 'fastify')).toBe(true);
    expect(resolves(pkg, 'prom-client')).toBe(true);
    expect(resolves(pkg, 'fastify-plugin')).toBe(false);
  });

  it('serves /metrics', async () => {
    const child = spawn(
      process.execPath,
      [join(dir, 'node_modules', '.bin', 'pinpool'), 'serve', '--port', '0'],
      { cwd: dir, env },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    try {
      let url: string | undefined;
      while ((url = /open (http:\/\/\S+)\/metrics/.exec(out)?.[1]) === undefined) {
        if (child.exitCode !== null) throw new Error(`serve did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const res = await fetch(`${url}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('# TYPE pinpool_allocations_total counter');
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      expect(await exited).toEqual([0, null]);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it("runs pinpoolScope in a user's fastify app", () => {
    const script = `
      const Fastify = require('fastify');
      const { createController, pageable } = require('pinpool');
      const { pinpoolScope } = require('pinpool/server');
      (async () => {
        const controller = createController();
        controller.register('plain', pageable({ name: 'plain' }));
        const app = Fastify();
        await app.register(pinpoolScope, { controller });
        app.get('/', { config: { pinpool: 'plain' } }, async () => ({ current: controller.current().name }));
        const res = await app.inject({ method: 'GET', url: '/' });
        console.log(JSON.stringify({ body: res.json(), plugin: app.hasPlugin('pinpool-scope') }));
        await app.close();
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { cwd: dir, env, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ body: { current: 'plain' }, plugin: true });
  });
});
