/**
 * The Float64Arrays native code shares with JavaScript (the scratch array alloc() and adopt()
 * report into, a thread cache's record), typed by the cells they hold. A typed array's element
 * reads as `number | undefined` (noUncheckedIndexedAccess); a `Cells` array read at a `Cell`
 * reads as a number. The index is checked against native code's layout once, when the layout
 * is read, and the array's length once, when the array comes from native code: no read on a hot
 * path needs a check or a `!`.
 */
import { internalError } from './errors.js';
import { binding, constants } from './native.js';

/** An index of a named cell: native records name at most eight (hot_path.hpp, thread_caches.hpp). */
export type Cell = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** A shared Float64Array that holds every cell `cell()` names. */
export type Cells = Float64Array & Record<Cell, number>;

/** `index`, from native code's layout, as a Cell: one of a record's first `length` cells. */
export function cell(index: number, length: number): Cell {
  if (!(Number.isInteger(index) && index >= 0 && index < 8 && index < length)) {
    throw internalError(`cell ${index} is not among the ${length} named cells of a shared record`);
  }
  return index as Cell;
}

/** `array` as Cells, once it is known to hold the first `length` cells (the named ones). */
export function cells(array: Float64Array, length: number): Cells {
  if (array.length < length) {
    throw internalError(
      `a shared record of ${array.length} cells, fewer than its ${length} named ones`,
    );
  }
  return array as Cells;
}

const scratchArray = binding.scratch();
/** This thread's scratch array: alloc() and adopt() report the block they made into it. */
export const scratch = cells(scratchArray, scratchArray.length);
const { slots } = constants;
/** Where each report sits in the scratch array (constants.slots). */
export const ADDRESS = cell(slots.address, scratch.length);
export const SERVED_BY = cell(slots.servedBy, scratch.length);
export const CLASS_BYTES = cell(slots.classBytes, scratch.length);
export const LIVE_SLOT = cell(slots.liveSlot, scratch.length);
export const SLAB_ADDRESS = cell(slots.slab, scratch.length);
export const SLAB_BYTES = cell(slots.slabBytes, scratch.length);
export const ROUTE = cell(slots.route, scratch.length);
