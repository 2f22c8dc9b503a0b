/**
 * Tracing on node:diagnostics_channel. Messages are built only while a channel has a
 * subscriber, so the allocation path pays one property read when nobody listens.
 *
 * - `pinpool:alloc`    { handler, bytes, alignment, address, servedBy }
 * - `pinpool:free`     { handler, bytes, alignment, address, byGc }
 * - `pinpool:fallback` { handler, from, to, reason, bytes }
 *
 * `handler` is the name of the handler called; `address` is a bigint, as `HostBuffer.address`.
 */
import * as diagnostics_channel from 'node:diagnostics_channel';

/**
 * The message published on `pinpool:alloc` for each block a handler hands out; recordTrace() reads
 * it.
 */
export interface AllocMessage {
  handler: string;
  bytes: number;
  alignment: number;
  address: bigint;
  servedBy: string;
}

/**
 * The message published on `pinpool:free` for each block freed, by free() or by the GC;
 * recordTrace() reads it.
 */
export interface FreeMessage {
  handler: string;
  bytes: number;
  alignment: number;
  address: bigint;
  byGc: boolean;
}

/**
 * The message published on `pinpool:fallback` each time a fallback() adaptor sends a request
 * from its primary to its secondary, with the reason.
 */
export interface FallbackMessage {
  handler: string;
  from: string;
  to: string;
  reason: string;
  bytes: number;
}

export const allocChannel = diagnostics_channel.channel('pinpool:alloc');
export const freeChannel = diagnostics_channel.channel('pinpool:free');
export const fallbackChannel = diagnostics_channel.channel('pinpool:fallback');
