// Patterns for the stress test: every block gets bytes derived from its id when it is
// allocated, and they are checked when it is freed (mimalloc's test-stress model).
//
// What is checked:
// - Blocks up to FULL_CHECK_BYTES: every byte. The block is filled with an 8-byte pattern
//   derived from the id (Buffer.fill, memset speed); the check compares the first 8 bytes
//   with the pattern and the block with itself shifted by 8 bytes (one memcmp). Both equal
//   means every byte is the pattern, so the whole block is verified at memcmp speed.
// - Larger blocks: the first and last EDGE bytes as above, plus a 4-byte word derived from the
//   id and the address at every address that is a multiple of the stride (4 KiB, or 64 KiB in
//   blocks over 4 MiB). Positions follow the absolute address, not the offset in the block, so
//   two blocks that overlap by a stride or more both write some same position, and the one
//   written first finds the other's word there; smaller overlaps show at the edges.
//   Writing every byte of 64 MiB blocks thousands of times would not fit CI's two minutes, and
//   touching every page of them costs a page fault each time a pool takes fresh memory.
'use strict';

// At least 64 KiB: small blocks are checked in full. PINPOOL_STRESS_FULL_CHECK_BYTES raises it.
const FULL_CHECK_BYTES = Math.max(
  64 * 1024,
  Number(process.env.PINPOOL_STRESS_FULL_CHECK_BYTES) || 1 << 20,
);
const EDGE = 4096; // bytes checked in full at each end of a large block
const STRIDE = 4096; // one word per page of a large block ...
const LARGE_STRIDE = 64 * 1024; // ... or per 64 KiB in a block over LARGE_BYTES
const LARGE_BYTES = 4 * 1024 * 1024;

/** 32-bit mix (murmur3's finalizer): nearby ids give unrelated patterns. */
function mix32(x) {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** The 8-byte pattern of block `id`, written into `out` (a reused 8-byte Buffer). */
function patternOf(id, out) {
  out.writeUInt32LE(mix32(id), 0);
  out.writeUInt32LE(mix32(id ^ 0x5bd1e995), 4);
  return out;
}

function viewOf(bytes) {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** True when every byte of `b` is the 8-byte pattern `p` repeated. */
function periodicMatches(b, p) {
  const n = b.length;
  const head = n < 8 ? n : 8;
  if (b.compare(p, 0, head, 0, head) !== 0) return false;
  return n <= 8 || b.compare(b, 8, n, 0, n - 8) === 0;
}

/** First offset in `b` that differs from the pattern `p` (for the failure message). */
function firstPeriodicMismatch(b, p) {
  for (let i = 0; i < b.length; i++) if (b[i] !== p[i & 7]) return i;
  return -1;
}

/** Word at absolute address `a` of block `id`. */
function wordOf(id, a) {
  return mix32(id ^ Math.imul(Math.floor(a / STRIDE), 0x9e3779b1));
}

function strideOf(n) {
  return n > LARGE_BYTES ? LARGE_STRIDE : STRIDE;
}

/** Offset of the first stride position in a block at `address`. */
function firstStride(address, stride) {
  return (stride - (address % stride)) % stride;
}

const scratch = Buffer.alloc(8);

/**
 * Writes the pattern of block `id` into `bytes` (the block's Uint8Array); `address` (a number)
 * is the block's host address, used for the stride positions of large blocks.
 */
function fill(bytes, id, address) {
  const p = patternOf(id, scratch);
  const b = viewOf(bytes);
  const n = b.length;
  if (n <= FULL_CHECK_BYTES) {
    if (n > 0) b.fill(p);
    return;
  }
  b.fill(p, 0, EDGE);
  b.fill(p, n - EDGE, n); // the tail's pattern starts at its own first byte
  const dv = new DataView(bytes.buffer, bytes.byteOffset, n);
  const stride = strideOf(n);
  // Stride words stay clear of the edges so that they never overwrite each other.
  for (let at = firstStride(address, stride); at + 4 <= n - EDGE; at += stride) {
    if (at >= EDGE) dv.setUint32(at, wordOf(id, address + at), true);
  }
}

/**
 * Checks block `id`; returns null when intact, else a description of the first difference.
 */
function check(bytes, id, address) {
  const p = patternOf(id, scratch);
  const b = viewOf(bytes);
  const n = b.length;
  if (n <= FULL_CHECK_BYTES) {
    if (periodicMatches(b, p)) return null;
    return `byte ${firstPeriodicMismatch(b, p)} of ${n} differs from the pattern of block ${id}`;
  }
  const head = b.subarray(0, EDGE);
  if (!periodicMatches(head, p))
    return `head byte ${firstPeriodicMismatch(head, p)} of ${n} differs (block ${id})`;
  const tail = b.subarray(n - EDGE, n);
  if (!periodicMatches(tail, p))
    return `tail byte ${n - EDGE + firstPeriodicMismatch(tail, p)} of ${n} differs (block ${id})`;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, n);
  const stride = strideOf(n);
  for (let at = firstStride(address, stride); at + 4 <= n - EDGE; at += stride) {
    if (at >= EDGE && dv.getUint32(at, true) !== wordOf(id, address + at)) {
      return `stride word at byte ${at} of ${n} differs (block ${id})`;
    }
  }
  return null;
}

module.exports = { fill, check, mix32, FULL_CHECK_BYTES, STRIDE };
