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
