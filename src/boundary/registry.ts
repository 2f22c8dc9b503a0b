/**
 * The process's registry (native/capsule/registry.hpp), as this copy of pinpool sees it, and this
 * copy's package version. Read by info() and by the capsule (src/process/capsule.ts); it imports
 * nothing above the boundary, so info() and the capsule need not import each other.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

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

// dist/src/boundary/ and src/boundary/ both sit three levels below the package root.
const root = path.resolve(__dirname, '..', '..', '..');

let version: string | undefined;

/** This copy's package version ('unknown' for files copied without their package.json). */
export function packageVersion(): string {
  if (version !== undefined) return version;
  try {
    const read = (
      JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version?: unknown }
    ).version;
    version = typeof read === 'string' ? read : 'unknown';
  } catch {
    version = 'unknown'; // importing pinpool never throws for this
  }
  return version;
}

/** This copy's entry module (src/index.ts), as a later copy will require it. */
export const entry = path.join(__dirname, '..', `index${path.extname(__filename)}`);

let published: NativeRegistry | undefined;
let joinError: string | undefined;

/** Records why this copy could not use the publisher's module (the capsule calls it once). */
export function noteJoinError(error: string): void {
  joinError = error;
}

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
    thisCopy: {
      version: packageVersion(),
      entry,
      addon: r.ownAddon,
      publisher: r.self && r.entry === entry,
    },
    abiVersion: r.abiVersion,
  };
  if (joinError !== undefined) info.joinError = joinError;
  if (r.promoteError !== undefined) info.promoteError = r.promoteError;
  return info;
}
