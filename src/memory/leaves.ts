/**
 * Names and kinds of native handlers by id, for `buf.servedBy` and `buf.kind`. Ids are never
 * reused and names never change, so a cache that only grows is exact.
 */
import { binding } from '../boundary/native.js';

export interface LeafInfo {
  readonly name: string;
  readonly kind: string;
}

const known = new Map<number, LeafInfo>();
const foreign: LeafInfo = Object.freeze({ name: 'foreign', kind: 'foreign' });

export function leafOf(id: number): LeafInfo {
  let leaf = known.get(id);
  if (leaf === undefined) {
    const d = id > 0 ? binding.describe(id) : null;
    if (d === null) return foreign;
    leaf = Object.freeze({ name: d.name, kind: d.kind });
    known.set(id, leaf);
  }
  return leaf;
}
