/**
 * Registering memory that exists already: page-locking it in place (cuMemHostRegister).
 */
import { types } from 'node:util';
import { markAsUntransferable } from 'node:worker_threads';

import { ErrorCode, PinpoolError } from '../boundary/errors.js';
import { binding, constants, type NativeRegistration } from '../boundary/native.js';
import {
  builtinGetter,
  checkBoolean,
  checkDevice,
  invalid,
  isObject,
  optionsOf,
  requiredGetter,
} from '../boundary/validate.js';

import { hostLength, type PageableMemory } from './copy.js';

const constructing = Symbol('pinpool.register');

/** How register() page-locks memory. */
export interface RegisterOptions {
  /** Device whose context registers it. Default 0. */
  device?: number;
  /** Registered for every CUDA context, not only the device's. Default true. */
  portable?: boolean;
  /** Also mapped into the device's address space. Default false. */
  mapped?: boolean;
}

const readRegisterOptions = optionsOf<RegisterOptions>('register', {
  device: true,
  portable: true,
  mapped: true,
});
const arrayBufferLength = requiredGetter(ArrayBuffer.prototype, 'byteLength');

const registrations = new FinalizationRegistry<{
  registration: NativeRegistration;
  memory: PageableMemory;
}>((r) => {
  // The held value keeps the memory alive until it is unregistered.
  setImmediate(() => {
    try {
      binding.hostUnregister(r.registration);
    } catch {
      // Collected: nobody is left to tell; the memory (held until now) goes with it.
    }
    // `r`, and so r.memory, stays reachable until this callback has run.
  }).unref();
});

/** Memory page-locked in place by register(); `unregister()` ends it. */
export class Registration {
  readonly #registration: NativeRegistration;
  readonly #memory: PageableMemory;
  readonly byteLength: number;
  #registered = true;

  /** @internal Use register(). */
  constructor(
    key: symbol,
    registration: NativeRegistration,
    byteLength: number,
    memory: PageableMemory,
  ) {
    if (key !== constructing) throw invalid('Registration', 'made by register()', undefined);
    this.#registration = registration;
    this.byteLength = byteLength;
    this.#memory = memory;
    registrations.register(this, { registration, memory }, this);
  }

  /** The registered memory, as given to register(). */
  get memory(): PageableMemory {
    if (!Registration.#owns(this)) throw invalid('this', 'a Registration', this);
    return this.#memory;
  }
  get registered(): boolean {
    if (!Registration.#owns(this)) throw invalid('this', 'a Registration', this);
    return this.#registered;
  }

  /** Ends the registration (cuMemHostUnregister). A second call is ERR_PINPOOL_DOUBLE_FREE. */
  unregister(): void {
    if (!Registration.#owns(this)) throw invalid('this', 'a Registration', this);
    if (!this.#registered)
      throw new PinpoolError(ErrorCode.DOUBLE_FREE, 'pinpool: already unregistered');
    this.#registered = false;
    registrations.unregister(this);
    binding.hostUnregister(this.#registration);
  }

  [Symbol.dispose](): void {
    if (!Registration.#owns(this)) throw invalid('this', 'a Registration', this);
    if (this.#registered) this.unregister();
  }

  /** A brand check that a primitive `this` cannot make throw, and no getter or trap runs. */
  static #owns(value: unknown): value is Registration {
    return isObject(value) && #registered in value;
  }
}

const typedArrayBuffer = requiredGetter(
  Object.getPrototypeOf(Uint8Array.prototype) as object,
  'buffer',
);
const dataViewBuffer = requiredGetter(DataView.prototype, 'buffer');
const resizable = builtinGetter(ArrayBuffer.prototype, 'resizable');

/** The ArrayBuffer or SharedArrayBuffer under `memory`, read with the built-in getters. */
function bufferOf(memory: PageableMemory): ArrayBufferLike {
  if (types.isTypedArray(memory)) return typedArrayBuffer.call(memory) as ArrayBufferLike;
  if (types.isDataView(memory)) return dataViewBuffer.call(memory) as ArrayBufferLike;
  return memory as ArrayBufferLike;
}

let marksHold: boolean | undefined;
/**
 * Whether markAsUntransferable() keeps an ArrayBuffer from being detached, by transfer() and by
 * a transfer list alike: Node 24 and later (both throw), and Node 20 (no transfer(); a transfer
 * list copies a marked buffer), not Node 22, whose transfer() ignores the mark. Asked of the
 * runtime once, not of its version.
 */
function marksKeepBuffers(): boolean {
  if (marksHold !== undefined) return marksHold;
  const probe = new ArrayBuffer(1);
  markAsUntransferable(probe);
  const detaches = (f: () => unknown) => {
    try {
      f();
    } catch {
      // refused: the buffer stays
    }
    return arrayBufferLength.call(probe) === 0;
  };
  const transfer = (ArrayBuffer.prototype as { transfer?: (this: ArrayBuffer) => ArrayBuffer })
    .transfer;
  marksHold =
    !(transfer !== undefined && detaches(() => transfer.call(probe))) &&
    !detaches(() => structuredClone(probe, { transfer: [probe] }));
  return marksHold;
}

/**
 * Page-locks memory that exists already (a Buffer read from a file, say) with
 * cuMemHostRegister, so copies of it run at pinned speed: `copy()` hands the driver any view
 * that lies wholly inside the registered memory in place, from any thread, instead of staging
 * it, and so do another library's copies and a mapped registration's kernels. Keep the
 * Registration: it keeps the memory alive, and `unregister()` ends the lock (for copies still
 * reading or writing it in place, the driver's unregister waits until the last is done; copies
 * queued after it stage the memory again). Registering a pinpool buffer's memory leases it: the
 * block is not reused until the registration ends.
 *
 * Other memory must be memory pinpool can keep alive until unregister(): the driver keeps
 * using it, so a buffer detached meanwhile (transfer(), a transfer list), and then freed, would
 * leave the driver with memory that is someone else's. So it must be a SharedArrayBuffer's (or
 * a view of one), which nothing can detach, or a fixed-length ArrayBuffer's where Node lets
 * pinpool keep it from being detached (Node 20, and 24 and later; not 22): register() marks it
 * untransferable (markAsUntransferable), for good, since Node cannot unmark it. Anything else
 * (a resizable ArrayBuffer, an ArrayBuffer on Node 22) is ERR_PINPOOL_INVALID_ARGUMENT, and
 * nothing is registered.
 *
 * @example
 * const weights = readFileSync('model.bin');
 * using reg = register(weights);
 * await copy(dev, weights);
 */
export function register(memory: PageableMemory, options?: RegisterOptions): Registration {
  const o = readRegisterOptions(options);
  const device = o.device === undefined ? 0 : checkDevice(o.device);
  const portable = o.portable === undefined ? true : checkBoolean(o.portable, 'portable');
  const mapped = o.mapped === undefined ? false : checkBoolean(o.mapped, 'mapped');
  if (!types.isArrayBufferView(memory) && !types.isArrayBuffer(memory))
    throw invalid('memory', 'a typed array, a Buffer or an ArrayBuffer', memory);
  if (hostLength({ memory }) === 0) throw invalid('memory', 'at least one byte long', 0);
  const flags =
    (portable ? constants.registerFlags.portable : 0) |
    (mapped ? constants.registerFlags.mapped : 0);
  const buffer = bufferOf(memory);
  const shared = types.isSharedArrayBuffer(buffer);
  const growing = !shared && resizable?.call(buffer) === true;
  const registered = binding.hostRegister(
    device,
    memory,
    flags,
    shared || (!growing && marksKeepBuffers()),
  );
  if (registered === null) {
    const why = growing
      ? 'a resizable ArrayBuffer (resize() can take its pages away)'
      : `an ArrayBuffer, which Node ${process.versions.node} cannot keep from being detached (its transfer() ignores markAsUntransferable)`;
    throw invalid(
      'memory',
      'memory pinpool can keep alive while registered: pinpool memory, a SharedArrayBuffer or a view of one, or (on Node 20, 24 and later) a fixed-length ArrayBuffer',
      why,
    );
  }
  const { registration, bytes: byteLength, leased } = registered;
  // Not pinpool's and detachable: from now on nothing can detach it, so it lives while the
  // Registration (which holds it) does. pinpool's own buffers are leased instead: they must
  // stay transferable for free() to take them back.
  if (!leased && !shared) markAsUntransferable(buffer);
  return new Registration(constructing, registration, byteLength, memory);
}
