// The addon's surface against its declaration: src/boundary/native.ts types NativeBinding in one
// interface per binding file (native/binding/module_exports.hpp), each with an object of its keys
// that the compiler holds to the interface; the addon lists each file's keys itself (a test
// build's testing.groups: native/binding/addon.cpp). A key added on one side only fails here.
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';

import {
  binding,
  bindingGroups,
  constants,
  testingKeys,
  type HandlerKind,
  type NativeBinding,
} from '../../dist/src/boundary/native.js';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  fallback,
  limit,
  locked,
  managed,
  mapFile,
  pageable,
  pinned,
  pool,
  shared,
  type Handler,
} from 'pinpool';

import { regionName, removeRegions } from '../support/shared-regions.js';
import { testing } from '../support/testing.js';

type Groups = typeof bindingGroups;
type GroupKeys = { [F in keyof Groups]: keyof Groups[F] }[keyof Groups];

const sorted = (keys: Iterable<string>) => [...keys].sort();

afterAll(removeRegions);

describe('the binding surface', () => {
  it('declares every key of NativeBinding in exactly one group', () => {
    expectTypeOf<GroupKeys | 'testing'>().toEqualTypeOf<keyof NativeBinding>();
    const all = Object.values(bindingGroups).flatMap((keys) => Object.keys(keys));
    expect(new Set(all).size).toBe(all.length);
  });

  it('has the groups, one per binding file, that native.ts declares', () => {
    expect(sorted(Object.keys(testing().groups))).toEqual(sorted(Object.keys(bindingGroups)));
  });

  for (const [file, declared] of Object.entries(bindingGroups)) {
    it(`${file} exports the keys its interface declares`, () => {
      expect(sorted(testing().groups[file] ?? []), file).toEqual(sorted(Object.keys(declared)));
    });
  }

  it('exports nothing outside the groups but the test hooks, and only functions', () => {
    const declared = Object.values(bindingGroups).flatMap((keys) => Object.keys(keys));
    expect(sorted(Object.keys(binding).filter((k) => k !== 'testing'))).toEqual(sorted(declared));
    for (const key of declared)
      expect(typeof (binding as unknown as Record<string, unknown>)[key], key).toBe('function');
  });

  it('has the test hooks testing declares, under testing only', () => {
    expect(sorted(Object.keys(testing()))).toEqual(sorted(Object.keys(testingKeys)));
    expect(Object.keys(binding)).not.toContain('fakeCuda');
    expect(Object.keys(binding)).not.toContain('deferred');
  });
});

describe('the tables native code owns', () => {
  it('names every handler kind, as HandlerKind declares them (checked at load too)', () => {
    const kinds: Record<HandlerKind, 'leaf' | 'adaptor'> = constants.kinds;
    expect(
      Object.entries(kinds)
        .filter(([, role]) => role === 'adaptor')
        .map(([k]) => k),
    ).toEqual(['pool', 'fallback', 'limit']);
    expect(Object.keys(kinds)).toHaveLength(9);
  });

  it('every kind it names makes a handler that reports that kind (each native class names its own)', () => {
    const file = join(tmpdir(), `pinpool-kinds-${String(process.pid)}.bin`);
    writeFileSync(file, Buffer.alloc(4096));
    // One way to make each kind; the compiler holds this to HandlerKind, the loop to the table.
    const make: Record<HandlerKind, () => Handler> = {
      pinned: () => pinned(),
      managed: () => managed(),
      locked: () => locked(),
      pageable: () => pageable(),
      file: () => mapFile(file).handler,
      shared: () => shared({ region: regionName('kinds'), bytes: 1 << 20 }),
      pool: () => pool(pageable()),
      fallback: () => fallback(pageable(), pageable()),
      limit: () => limit(pageable(), { maxBytes: 4096 }),
    };
    for (const kind of Object.keys(constants.kinds) as HandlerKind[]) {
      const h = make[kind]();
      expect(h.kind).toBe(kind);
      expect(binding.describe(h.handle as never)?.kind).toBe(kind);
    }
  });

  it('names the three copy directions, each its own number', () => {
    const d = constants.copyDirections;
    expect(sorted(Object.keys(d))).toEqual(['deviceToDevice', 'deviceToHost', 'hostToDevice']);
    expect(new Set(Object.values(d)).size).toBe(3);
  });
});
