/** What this process can do: version, Node-API level, CUDA and the memlock limit. */
import { readFileSync } from 'node:fs';

import { packageVersion, registryInfo, type RegistryInfo } from '../boundary/registry.js';
import { binding } from '../boundary/native.js';

export type { RegistryInfo } from '../boundary/registry.js';

/** One CUDA device as info() lists it in `cuda.devices`. */
export interface CudaDevice {
  index: number;
  name: string;
  /** Device memory, in bytes. */
  totalBytes: number;
  /** The device's PCI bus id ("0000:3B:00.0"), where the driver gives it. */
  pciBusId?: string;
  /**
   * The NUMA node the device sits on (sysfs), -1 when unknown: where `pinned({ device })` puts
   * its pages by default on a machine with several nodes.
   */
  numaNode: number;
  /** The device can allocate managed memory here (CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY). */
  managedMemory: boolean;
  /**
   * The host may touch managed memory while the device works (CONCURRENT_MANAGED_ACCESS: Linux
   * on x86-64 and Grace, not Windows or WSL). `managed()` serves only devices with both.
   */
  concurrentManagedAccess: boolean;
}

/** A cap on page-locked memory, and what set it. */
export interface LockCap {
  /** In bytes; Infinity when nothing could be read (no cap). */
  bytes: number;
  /**
   * 'rlimit': RLIMIT_MEMLOCK, which the kernel applies (no CAP_IPC_LOCK). 'cgroup' or
   * 'meminfo': half of the cgroup's memory limit or of the machine's MemAvailable, whichever
   * is less, read once per process. 'none': nothing could be read.
   */
  source: 'rlimit' | 'cgroup' | 'meminfo' | 'none';
}

/** What info() returns: the versions, CUDA and its devices, and the caps on page-locked memory. */
export interface Info {
  /** The version of the copy of pinpool `info` was called through. */
  version: string;
  napiVersion: number;
  /** Version of the handler C ABI (include/pinpool.h). */
  abiVersion: number;
  cuda: {
    available: boolean;
    /** Why CUDA is unavailable, in words a person can act on. */
    reason?: string;
    /** Driver version as CUDA numbers it, e.g. 12080 for 12.8. */
    driverVersion?: number;
    devices: CudaDevice[];
  };
  /**
   * RLIMIT_MEMLOCK in bytes (Infinity when unlimited): how much the locked leaf may page-lock, unless
   * `memlockPrivileged`.
   */
  memlockLimitBytes: number;
  /** The process has CAP_IPC_LOCK (root has it): it may page-lock past the memlock limit. */
  memlockPrivileged: boolean;
  /**
   * What every page-locking leaf of this process (pinned, locked) holds at most together: half
   * of what the cgroup and the machine allow. Past it, alloc fails at once with
   * ERR_PINPOOL_OUT_OF_MEMORY, reason 'mlock'.
   */
  hostLockCap: LockCap;
  /**
   * The cap of a locked() leaf without maxBytes: hostLockCap, or RLIMIT_MEMLOCK when the kernel
   * applies it and it is less. A leaf's own cap, maxBytes included, is its `stats().capBytes`.
   */
  lockedCap: LockCap;
  /** Which copy of pinpool this process runs: the first to load publishes the registry and
   * every other copy uses it (src/process/capsule.ts). */
  registry: RegistryInfo;
}

function memlockLimit(): number {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const line = limits.split('\n').find((l) => l.startsWith('Max locked memory'));
    const soft = line?.split(/\s{2,}/)[1];
    if (soft === undefined) return NaN;
    return soft === 'unlimited' ? Infinity : Number(soft);
  } catch {
    return NaN;
  }
}

const CAP_IPC_LOCK = 14n;

function ipcLockCapability(): boolean {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    return hex !== undefined && ((BigInt(`0x${hex}`) >> CAP_IPC_LOCK) & 1n) === 1n;
  } catch {
    return false;
  }
}

/**
 * Reports what pinpool found on this host. Never throws for lack of CUDA.
 *
 * @example
 * if (!info().cuda.available) console.log(info().cuda.reason);
 */
export function info(): Info {
  const n = binding.info();
  const cuda: Info['cuda'] = { available: n.cuda.available, devices: n.cuda.devices };
  if (n.cuda.reason !== undefined) cuda.reason = n.cuda.reason;
  if (n.cuda.driverVersion !== undefined) cuda.driverVersion = n.cuda.driverVersion;
  return {
    version: packageVersion(),
    napiVersion: n.napiVersion,
    abiVersion: n.abiVersion,
    cuda,
    memlockLimitBytes: memlockLimit(),
    memlockPrivileged: ipcLockCapability(),
    hostLockCap: { ...n.hostLockCap },
    lockedCap: { ...n.lockedCap },
    registry: registryInfo(),
  };
}
