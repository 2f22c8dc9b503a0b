/**
 * One pinpool per process, however many copies npm installs (docs/decisions/0012-one-pinpool-per-process.md; the capsule
 * of docs/decisions/seed-000-capsule.md).
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
import { ErrorCode, PinpoolError } from '../boundary/errors.js';
import {
  noteJoinError,
  packageVersion,
  registryInfo,
  type RegistryInfo,
} from '../boundary/registry.js';

let chosen: object | undefined;

/**
 * The module src/index.ts exports: this copy's implementation (`own()`, src/api.ts) when this
 * copy published the registry, otherwise the publisher's entry module, with stand-ins for what
 * it lacks. `own` is called only when this copy's implementation is the one used, so a copy that
 * joins another never loads its own.
 */
export function implementation<Api extends { info(): object }>(own: () => Api): Api {
  if (chosen !== undefined) return chosen as Api;
  const r = registryInfo();
  if (r.thisCopy.publisher || r.publisher.entry === '') return (chosen = own());
  let theirs: Record<string, unknown>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the publisher's entry module, known by its path only at run time
    theirs = require(r.publisher.entry) as Record<string, unknown>;
  } catch (err) {
    // Seen in info().registry: this copy then works alone rather than not at all.
    // split() gives at least one string: `?? ''` is for the type only.
    noteJoinError(`${r.publisher.entry}: ${(err as Error).message.split('\n')[0] ?? ''}`);
    return (chosen = own());
  }
  const info = (): object => ({
    ...(theirs.info as () => object)(),
    version: packageVersion(),
    registry: registryInfo(),
  });
  chosen = new Proxy(theirs, {
    get(target, name) {
      if (name === 'info') return info;
      if (typeof name === 'string' && !(name in target)) return missing(name, target, r);
      return Reflect.get(target, name) as unknown;
    },
  });
  return chosen as Api;
}

/** The stand-in for an export the publisher lacks: any use throws ERR_PINPOOL_VERSION. */
function missing(name: string, theirs: Record<string, unknown>, r: RegistryInfo): unknown {
  // The publisher's class, so `instanceof PinpoolError` through this copy's exports holds.
  const ErrorClass = (theirs.PinpoolError ?? PinpoolError) as new (
    code: string,
    message: string,
  ) => Error;
  const fail = (): never => {
    throw new ErrorClass(
      ErrorCode.VERSION,
      `pinpool: ${name} is in pinpool ${r.thisCopy.version} (${r.thisCopy.entry}) but not in pinpool ` +
        `${r.publisher.version} (${r.publisher.entry}), the copy that loaded first in this process, ` +
        `whose code every copy uses. Load pinpool ${r.thisCopy.version} first, or let npm dedupe the two.`,
    );
  };
  return new Proxy(
    function unavailable() {
      // Never runs: the target of the traps, a function so that calls and `new` reach them.
    },
    {
      apply: fail,
      construct: fail,
      // Symbols (util.inspect's, Symbol.toPrimitive) read nothing: printing the stand-in is safe.
      get: (_target, key) => (typeof key === 'string' ? fail() : undefined),
    },
  );
}
