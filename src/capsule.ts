/**
 * One pinpool per process, however many copies npm installs (design decision 12; the capsule
 * of seed 000).
 *
 * The first copy to load publishes the process's registry natively
 * (native/capsule/registry.hpp): its version, this entry module's path and its C API. Every
 * later copy, older or newer, in any thread, finds that registry and hands out the first
 * copy's module instead of its own implementation (src/index.ts): one set of classes, one
 * controller and AsyncLocalStorage per thread, one set of native handlers, pools and
 * statistics. A copy whose exports the first copy lacks gets, for each of those, a stand-in
 * that throws `ERR_PINPOOL_VERSION` naming both versions.
 *
 * The registry is native, not a global of JavaScript, because it must reach every thread: a
 * worker that loads another copy first still finds the main thread's.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import type * as Api from './api.js';
import { ErrorCode, PinpoolError } from './errors.js';
import { binding, type NativeRegistry } from './native.js';

/** Which copy of pinpool this process runs (`info().registry`). */
export interface RegistryInfo {
  /** The copy that loaded first and published the registry: every copy runs its code. */
  publisher: { version: string; entry: string; addon: string };
  /** The copy whose `info()` was called. */
  thisCopy: { version: string; entry: string; addon: string; publisher: boolean };
  /** The registry's ABI version (include/pinpool.h, PINPOOL_ABI_VERSION of the publisher). */
  abiVersion: number;
  /** Why this copy could not use the publisher and runs on its own (its handlers, pools and
   * controller are then its own): the publisher's entry module would not load here. */
  joinError?: string;
  /** Why this copy's addon could not join the process's global scope (it then cannot see other
   * copies, and they cannot see it). */
  promoteError?: string;
}

let version: string | undefined;

/** This copy's package version ('unknown' for files copied without their package.json). */
export function packageVersion(): string {
  if (version !== undefined) return version;
  try {
    // dist/src/capsule.js and src/capsule.ts both sit two levels below the package root.
    const read = (JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: unknown }).version;
    version = typeof read === 'string' ? read : 'unknown';
  } catch {
    version = 'unknown'; // importing pinpool never throws for this
  }
  return version;
}

/** This copy's entry module, as a later copy will require it. */
const entry = path.join(__dirname, `index${path.extname(__filename)}`);

let published: NativeRegistry | undefined;
let joinError: string | undefined;
let chosen: typeof Api | undefined;

/**
 * The process's registry, as this copy sees it (a new object each call); publishes this copy's
 * when it is the first.
 */
export function registryInfo(): RegistryInfo {
  const r = (published ??= binding.publish(packageVersion(), entry));
  const info: RegistryInfo = {
    publisher: { version: r.version ?? 'unknown', entry: r.entry ?? '', addon: r.addon ?? '' },
    // Two copies may share one addon file (PINPOOL_NATIVE_PATH): the publisher is the one whose
    // entry module the registry names.
    thisCopy: { version: packageVersion(), entry, addon: r.ownAddon, publisher: r.self && r.entry === entry },
    abiVersion: r.abiVersion,
  };
  if (joinError !== undefined) info.joinError = joinError;
  if (r.promoteError !== undefined) info.promoteError = r.promoteError;
  return info;
}

/**
 * The module src/index.ts exports: this copy's implementation (./api.js) when this copy
 * published the registry, otherwise the publisher's entry module, with stand-ins for what it
 * lacks.
 */
export function implementation(): typeof Api {
  if (chosen !== undefined) return chosen;
  const r = registryInfo();
  if (r.thisCopy.publisher || r.publisher.entry === '') return (chosen = require('./api.js') as typeof Api);
  let theirs: Record<string, unknown>;
  try {
    theirs = require(r.publisher.entry) as Record<string, unknown>;
  } catch (err) {
    // Seen in info().registry: this copy then works alone rather than not at all.
    joinError = `${r.publisher.entry}: ${(err as Error).message.split('\n')[0]}`;
    return (chosen = require('./api.js') as typeof Api);
  }
  const info = (): Api.Info => ({ ...(theirs.info as () => Api.Info)(), version: packageVersion(), registry: registryInfo() });
  chosen = new Proxy(theirs, {
    get(target, name) {
      if (name === 'info') return info;
      if (typeof name === 'string' && !(name in target)) return missing(name, target, r);
      return Reflect.get(target, name) as unknown;
    },
  }) as unknown as typeof Api;
  return chosen;
}

/** The stand-in for an export the publisher lacks: any use throws ERR_PINPOOL_VERSION. */
function missing(name: string, theirs: Record<string, unknown>, r: RegistryInfo): unknown {
  // The publisher's class, so `instanceof PinpoolError` through this copy's exports holds.
  const ErrorClass = (theirs.PinpoolError ?? PinpoolError) as new (code: string, message: string) => Error;
  const fail = (): never => {
    throw new ErrorClass(
      ErrorCode.VERSION,
      `pinpool: ${name} is in pinpool ${r.thisCopy.version} (${r.thisCopy.entry}) but not in pinpool ` +
        `${r.publisher.version} (${r.publisher.entry}), the copy that loaded first in this process, ` +
        `whose code every copy uses. Load pinpool ${r.thisCopy.version} first, or let npm dedupe the two.`,
    );
  };
  return new Proxy(function unavailable() {}, {
    apply: fail,
    construct: fail,
    // Symbols (util.inspect's, Symbol.toPrimitive) read nothing: printing the stand-in is safe.
    get: (_target, key) => (typeof key === 'string' ? fail() : undefined),
  });
}
