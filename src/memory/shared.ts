/**
 * The shared leaf: one region of page-locked memory that the processes of a host allocate from
 * and hand blocks across, zero copy (native/handlers/shared/). Its state lives in the region, so
 * a process killed at any moment loses nothing: the others take back its blocks.
 */
import { Handler, wrapperOf } from './handler.js';
import { internalError } from '../boundary/errors.js';
import { binding } from '../boundary/native.js';
import { REGION, SECRET } from './shared-tokens.js';
import {
  checkBoolean,
  checkBound,
  checkBytes,
  checkDevice,
  checkName,
  invalid,
  optionsOf,
} from '../boundary/validate.js';

/** Options of the shared() leaf: the region to create (`bytes`) or to open (`secret`). */
export interface SharedOptions {
  /**
   * The region's name on this host (letters, digits, '-', '_' and '.', at most 100): the file
   * /dev/shm/pinpool-REGION, owner-only. Required.
   */
  region: string;
  /**
   * Create the region with this many bytes (whole 64 KiB units): the host's budget of pinned
   * memory for every process that opens it. Give this or `secret`, not both.
   */
  bytes?: number;
  /** Open the existing region: its secret (`sharedRegion(h).secret` where it was created). */
  secret?: string;
  /** Device whose context registers the region with CUDA. Default 0. */
  device?: number;
  /**
   * Page-lock the region in this process: cuMemHostRegister (portable) where a CUDA driver is
   * present, else mlock, within `info().lockedCap`. When that fails, alloc() fails with
   * ERR_PINPOOL_OUT_OF_MEMORY (reason 'mlock') or the driver's error, so a fallback moves on;
   * blocks can still be adopted. false: leave it pageable. Default true.
   */
  pageLock?: boolean;
  /** The handler's name. Default `shared-REGION`. */
  name?: string;
  /**
   * Bytes of freed blocks each thread keeps for its own next allocations of the same size, as a
   * pool's thread cache does (a hit makes no call into native code); they stay this process's
   * in the region meanwhile, and `trim()` gives them back. 0 turns the cache off. Default a
   * sixteenth of the region, at most 16 MiB.
   */
  threadCacheBytes?: number;
}

/** What `sharedRegion()` says of a region, as this process sees it. */
export interface SharedRegionInfo {
  readonly region: string;
  /** 32 hexadecimal digits: what another process of this user needs to open the region. */
  readonly secret: string;
  /** Its data, in bytes. */
  readonly bytes: number;
  /** How this process page-locked it: 'cuda', 'mlock', 'off' (pageLock false) or 'none' (refused). */
  readonly pageLocked: 'cuda' | 'mlock' | 'off' | 'none';
  /** Read from the region now: every process's counts, and this one's. */
  readonly stats: SharedRegionStats;
}

/** A region's statistics: whole 64 KiB units, across every process that has it open. */
export interface SharedRegionStats {
  readonly bytes: number;
  /** In blocks owned by a process or in flight between two. */
  readonly bytesInUse: number;
  readonly blocksInUse: number;
  /** Given by `transfer()`, not yet adopted. */
  readonly blocksInFlight: number;
  /** Taken back from processes that died, ever. */
  readonly recoveredBlocks: number;
  readonly recoveredBytes: number;
  /** Times a process found the region's lock held by one that died in the middle of a change. */
  readonly repairs: number;
  /** Processes that have it open now. */
  readonly processes: number;
  /** Of bytesInUse, in blocks this process owns. */
  readonly bytesHere: number;
  readonly blocksHere: number;
  /** Blocks this process gave, not yet adopted. */
  readonly givenHere: number;
}

const readSharedOptions = optionsOf<SharedOptions>('shared', {
  region: true,
  bytes: true,
  secret: true,
  device: true,
  pageLock: true,
  name: true,
  threadCacheBytes: true,
});

function checkRegion(value: unknown): string {
  if (typeof value !== 'string' || !REGION.test(value))
    throw invalid(
      'region',
      "a name of letters, digits, '-', '_' and '.' (not first), at most 100",
      value,
    );
  return value;
}

function checkSecret(value: unknown): string {
  if (typeof value !== 'string' || !SECRET.test(value))
    throw invalid('secret', 'a region secret (32 hexadecimal digits)', value);
  return value;
}

/**
 * A region of page-locked memory shared by the processes of this host: `{ region, bytes }`
 * creates it, `{ region, secret }` opens it (in any process of the same user). Any process
 * allocates from it and frees what it owns; `buf.transfer()` hands a block to whichever process
 * adopts the token, zero copy. A process that dies, SIGKILL included, loses its blocks to the
 * others; the region goes away when the last process closes it. Blocks are whole 64 KiB units,
 * page-aligned. Creating a region whose name exists throws, unless every process that had it
 * is gone.
 *
 * @example
 * const h = shared({ region: 'loader', bytes: 1 << 30 });
 * worker.send(sharedRegion(h).secret); // the worker: shared({ region: 'loader', secret })
 */
export function shared(options: SharedOptions): Handler {
  const o = readSharedOptions(options);
  const region = checkRegion(o.region);
  if ((o.bytes === undefined) === (o.secret === undefined))
    throw invalid('options', 'either bytes (to create the region) or secret (to open it)', options);
  const native: Record<string, unknown> = {
    name: o.name === undefined ? `shared-${region}` : checkName(o.name),
    region,
    device: o.device === undefined ? 0 : checkDevice(o.device),
    pageLock: o.pageLock === undefined ? true : checkBoolean(o.pageLock, 'pageLock'),
  };
  if (o.bytes !== undefined) {
    native.bytes = checkBytes(o.bytes);
    if (native.bytes === 0) throw invalid('bytes', 'at least 1', o.bytes);
  } else {
    native.secret = checkSecret(o.secret);
  }
  const cacheBytes =
    o.threadCacheBytes === undefined
      ? undefined
      : checkBound(o.threadCacheBytes, 'threadCacheBytes');
  // A region this process has open already comes back as the same native handler.
  const handle = binding.createHandler('shared', native);
  const d = binding.describe(handle);
  if (d === null) throw internalError('createHandler gave a handle that is no native handler');
  const regionBytes = binding.region(handle)?.bytes ?? 0;
  return wrapperOf(handle, d.id, false, cacheBytes ?? Math.min(16 * 2 ** 20, regionBytes / 16));
}

/** The region of a shared() handler, with its statistics read now. */
export function sharedRegion(handler: Handler): SharedRegionInfo {
  if (!Handler.is(handler)) throw invalid('handler', 'a pinpool handler', handler);
  const r = binding.region(handler.handle);
  if (r === null) throw invalid('handler', 'a shared() handler', handler.name);
  return Object.freeze({ ...r, stats: Object.freeze(r.stats) });
}
