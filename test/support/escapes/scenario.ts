// Runs one scenario of test/support/escapes/escape.cjs in a child process and returns what it printed.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';

export const hasTransfer =
  typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function';
export const nodeMajor = Number(process.versions.node.split('.')[0]);
export const SIZE = 64 * 1024;

export interface Outcome {
  received: number | null;
  intactBefore: boolean | null;
  mineIntact: boolean;
  orphanedBytes: number;
  orphanedBlocks: number;
  bytesInUse: number;
  reservedBytes: number;
}

export function scenario(
  leaf: string,
  how: string,
  options: Record<string, unknown> = {},
): Outcome {
  const r = spawnSync(
    process.execPath,
    [join(__dirname, 'escape.cjs'), leaf, how, JSON.stringify(options)],
    {
      encoding: 'utf8',
      env: process.env,
    },
  );
  expect(r.signal, `${leaf} ${how}: ${r.stderr}`).toBeNull();
  expect(r.status, `${leaf} ${how}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Outcome;
}
