/**
 * Argument validation, all in one place. The native binding re-checks only types; every value
 * rule and every "invalid argument" message lives here.
 */
import { ErrorCode, internalError, PinpoolError } from './errors.js';

/** Largest alignment accepted, in bytes (1 GiB). */
export const MAX_ALIGNMENT = 2 ** 30;

/**
 * Array.isArray, except that a revoked Proxy, which makes Array.isArray throw a TypeError, is
 * simply not an array.
 */
export function isArray(value: unknown): boolean {
  try {
    return Array.isArray(value);
  } catch {
    return false;
  }
}

/** True for anything that can carry a private field (an object or a function). */
export function isObject(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

/** The value as a message shows it. Runs none of its code: no getter, trap or toString. */
function describe(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (
    typeof value === 'number' ||
    typeof value === 'boolean' ||
    typeof value === 'symbol' ||
    value == null
  )
    return String(value);
  if (typeof value === 'function') return 'a function';
  return isArray(value) ? 'an array' : 'an object';
}

/** The one constructor of "invalid argument" errors: what, what was expected, what came. */
export function invalid(name: string, expected: string, actual: unknown): PinpoolError {
  return new PinpoolError(
    ErrorCode.INVALID_ARGUMENT,
    `pinpool: ${name} must be ${expected}, got ${describe(actual)}`,
  );
}

export function checkBytes(bytes: unknown, name = 'bytes'): number {
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) {
    throw invalid(name, 'a non-negative safe integer', bytes);
  }
  return bytes;
}

/** A byte bound that may also be Infinity ("no bound"). */
export function checkBound(bytes: unknown, name: string): number {
  if (bytes === Infinity) return bytes;
  return checkBytes(bytes, name);
}

export function checkAlignment(alignment: unknown): number {
  if (
    typeof alignment !== 'number' ||
    !Number.isSafeInteger(alignment) ||
    alignment < 1 ||
    alignment > MAX_ALIGNMENT ||
    (alignment & (alignment - 1)) !== 0
  ) {
    throw invalid('alignment', 'a power of two from 1 to 2**30', alignment);
  }
  return alignment;
}

export function checkDevice(device: unknown): number {
  if (typeof device !== 'number' || !Number.isInteger(device) || device < 0 || device > 1023) {
    throw invalid('device', 'a device index (an integer from 0)', device);
  }
  return device;
}

export function checkBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalid(name, 'a boolean', value);
  return value;
}

export function checkName(value: unknown, name = 'name'): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 128) {
    throw invalid(name, 'a non-empty string of at most 128 characters', value);
  }
  return value;
}

/**
 * Options objects: undefined means {}, anything but a plain object is an error. Returns a
 * snapshot: each own property is read once, here, before the caller does anything, so a
 * getter cannot change or free what a call is using halfway through (sharp's pattern).
 */
export function checkOptions<T extends object>(options: unknown, name: string): Partial<T> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || isArray(options)) {
    throw invalid(name, 'an options object', options);
  }
  return readValue(() => ({ ...(options as Partial<T>) }), name);
}

/**
 * The keys of an options type, each marked `true`: `{ name: true, maxBytes: true }` for
 * `{ name?: string; maxBytes?: number }`. A list the type checker holds to the interface, so a
 * key added to the type and not here (or here and not in the type) does not compile.
 */
export type OptionKeys<T> = { readonly [K in keyof Required<T>]: true };

/** The keys each public function's options accept, by the function's name as messages say it. */
const optionSets = new Map<string, readonly string[]>();

/**
 * The option sets declared with optionsOf(), by function name: what
 * test/fake-cuda/messages.test.ts checks every export against.
 */
export function declaredOptions(): ReadonlyMap<string, readonly string[]> {
  return optionSets;
}

/**
 * The reader of the options of the public function `fn` ('pool', 'controller.register'): as
 * checkOptions(), and a key `fn` does not know is ERR_PINPOOL_INVALID_ARGUMENT naming it, the
 * function and the key meant (or, when none is close, every key it knows). Declared once per
 * function, at load, so that the set of accepted keys is a value tests can enumerate.
 *
 * @example
 * const readLimitOptions = optionsOf<LimitOptions>('limit', { name: true, maxBytes: true });
 * const o = readLimitOptions(options); // { maxBytes: 1 } passes, { maxByte: 1 } throws
 */
export function optionsOf<T extends object>(
  fn: string,
  keys: OptionKeys<T>,
): (options: unknown) => Partial<T> {
  const known = Object.freeze(Object.keys(keys));
  if (optionSets.has(fn)) throw internalError(`the options of ${fn}() are declared twice`);
  optionSets.set(fn, known);
  return (options) => {
    const o = checkOptions<T>(options, `${fn} options`);
    // The snapshot's own string keys: what was given, and nothing its prototype says.
    for (const key of Object.keys(o)) if (!known.includes(key)) throw unknownOption(fn, key, known);
    return o;
  };
}

/** Letters only, lower case: `max_cached_bytes`, `MaxCachedBytes` and `maxCachedBytes` are one. */
function folded(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, '');
}

/**
 * The optimal string alignment distance (Damerau-Levenshtein without moves across a change):
 * insertions, deletions, substitutions and swaps of neighbours each count one.
 */
export function editDistance(a: string, b: string): number {
  // Cell (i, j): the distance between a's first i and b's first j characters.
  const width = b.length + 1;
  const cells = new Array<number>((a.length + 1) * width).fill(0);
  const at = (i: number, j: number): number => cells[i * width + j] ?? 0;
  for (let i = 0; i <= a.length; i++) {
    for (let j = 0; j <= b.length; j++) {
      let d: number;
      if (i === 0 || j === 0) d = i + j;
      else {
        const cost = a[i - 1] === b[j - 1] ? 0 : 1;
        d = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
        if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
          d = Math.min(d, at(i - 2, j - 2) + 1);
      }
      cells[i * width + j] = d;
    }
  }
  return at(a.length, b.length);
}

/**
 * Of `candidates`, the one `key` most likely misspells: the nearest, when it is near enough (one
 * edit per four letters, at least one; case, `-` and `_` ignored), else undefined.
 */
export function closest(key: string, candidates: readonly string[]): string | undefined {
  const typed = folded(key);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const meant = folded(candidate);
    const d = editDistance(typed, meant);
    if (d <= Math.max(1, Math.floor(meant.length / 4)) && d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** A key as a message quotes it: short, and no character that could garble a log line. */
function quoteKey(key: string): string {
  const shown = key.length > 64 ? `${key.slice(0, 64)}...` : key;
  return /^[\w$.-]*$/.test(shown) ? `'${shown}'` : JSON.stringify(shown);
}

/**
 * The error for `key`, which `fn`'s options (`known`) lack: "did you mean" its nearest key, or
 * the key of another function it was meant for (alloc()'s `alignment` given to pool()), or the
 * list of what `fn` accepts.
 */
function unknownOption(fn: string, key: string, known: readonly string[]): PinpoolError {
  const head = `pinpool: ${fn}() has no option ${quoteKey(key)}`;
  const meant = closest(key, known);
  if (meant !== undefined)
    return new PinpoolError(ErrorCode.INVALID_ARGUMENT, `${head}; did you mean '${meant}'?`);
  const accepted =
    known.length === 0 ? `${fn}() takes no options` : `its options are ${known.join(', ')}`;
  for (const [other, keys] of optionSets) {
    const elsewhere = other === fn ? undefined : closest(key, keys);
    if (elsewhere !== undefined)
      return new PinpoolError(
        ErrorCode.INVALID_ARGUMENT,
        `${head}; '${elsewhere}' is an option of ${other}(), not ${fn}(): ${accepted}`,
      );
  }
  return new PinpoolError(ErrorCode.INVALID_ARGUMENT, `${head}; ${accepted}`);
}

/**
 * Runs `read`, which reads a caller's value (its getters and Proxy traps may run): whatever
 * it throws becomes ERR_PINPOOL_INVALID_ARGUMENT, "<name> could not be read".
 */
export function readValue<T>(read: () => T, name: string): T {
  try {
    return read();
  } catch (err) {
    let why: string;
    try {
      // What was thrown is the caller's too: reading its message may throw again.
      const message: unknown = err instanceof Error ? err.message : err; // a getter may give any value
      why = String(message);
    } catch {
      why = 'it threw';
    }
    throw new PinpoolError(
      ErrorCode.INVALID_ARGUMENT,
      `pinpool: ${name} could not be read: ${why}`,
    );
  }
}

/**
 * The built-in getter `name` of `proto` as it was when pinpool loaded, to read a value with it
 * (`getter.call(value)`) so that no subclass's getter or Proxy trap runs; undefined where this
 * Node has none.
 */
export function builtinGetter(
  proto: object,
  name: string,
): ((this: unknown) => unknown) | undefined {
  const descriptor: { get?: (this: unknown) => unknown } | undefined =
    Object.getOwnPropertyDescriptor(proto, name);
  return descriptor?.get;
}

/** As builtinGetter(), for a getter every supported Node has. */
export function requiredGetter(proto: object, name: string): (this: unknown) => unknown {
  const get = builtinGetter(proto, name);
  if (get === undefined) throw internalError(`no built-in getter ${name} in this Node`);
  return get;
}
