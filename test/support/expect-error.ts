/** What the test files expect of a failure: a PinpoolError, with a stable code. */
import { expect } from 'vitest';
import { PinpoolError } from 'pinpool';

/** The PinpoolError a call throws (fails the test if it returns or throws anything else). */
export function errorOf(fn: () => unknown): PinpoolError {
  try {
    fn();
  } catch (err) {
    expect(err, String(err)).toBeInstanceOf(PinpoolError);
    return err as PinpoolError;
  }
  throw new Error('expected a PinpoolError, but the call returned');
}

/** Expects `fn` to throw a PinpoolError with `code`; returns it. */
export function expectCode(fn: () => unknown, code: string): PinpoolError {
  const err = errorOf(fn);
  expect(err.code, String(err)).toBe(code);
  return err;
}

/** Expects `work` (a Promise, or a call that throws or returns one) to fail with `code`. */
export async function expectRejection(
  work: Promise<unknown> | (() => unknown),
  code: string,
): Promise<PinpoolError> {
  let caught: unknown;
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (err) {
    caught = err;
  }
  expect(caught, 'it should fail').toBeInstanceOf(PinpoolError);
  expect((caught as PinpoolError).code, String(caught)).toBe(code);
  return caught as PinpoolError;
}
