/**
 * What `console.log()` and `util.inspect()` show of pinpool's objects: the fields a person
 * wants (a buffer's size, kind, handler and address; a handler's chain and bytes), read from
 * JavaScript only, so that looking at an object allocates nothing and changes no statistics.
 */
import type { InspectOptionsStylized, inspect as nodeInspect } from 'node:util';

/** The key util.inspect() looks for, as Node registers it (no import of node:util at run time). */
export const inspectSymbol: unique symbol = Symbol.for('nodejs.util.inspect.custom');

/** What util.inspect() passes to an `[inspectSymbol]` method. */
export type InspectArguments = [
  depth: number,
  options: InspectOptionsStylized,
  inspect: typeof nodeInspect,
];

/**
 * `Name { field: value, ... }`, as util.inspect() shows a class instance, with `fields` as its
 * properties: `depth` and the caller's options are kept (colors, nesting), `[Name]` past the
 * depth. `fields` is a function so that whatever it throws (a receiver that is no instance, a
 * native call that fails) becomes `Name {}` instead of an exception out of console.log().
 */
export function inspectAs(
  name: string,
  fields: () => object,
  [depth, options, inspect]: InspectArguments,
): string {
  try {
    if (depth < 0) return options.stylize(`[${name}]`, 'special');
    return `${name} ${inspect(fields(), { ...options, depth })}`;
  } catch {
    return `${name} {}`;
  }
}

/** An address as people write one: '0x7f3a5c000000'. */
export function hexAddress(address: number | bigint): string {
  return `0x${address.toString(16)}`;
}
