// The README's Quick start example runs exactly as written.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';

it('the Quick start example runs as written and prints what its comments say', () => {
  const root = join(__dirname, '..');
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const example = /## Quick start[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(example).toBeDefined();
  const file = join(root, 'build', 'readme-example.js');
  writeFileSync(file, example!);
  const out = execFileSync(process.execPath, [file], { cwd: root, encoding: 'utf8', env: { ...process.env, PINPOOL_CUDA_LIBRARY: '' } });
  const lines = out.trim().split('\n');
  expect(lines[0]).toMatch(/libcuda/);
  expect(lines[1]).toMatch(/^(locked|pageable) 7$/);
  expect(lines[2]).toBe('0');
});
