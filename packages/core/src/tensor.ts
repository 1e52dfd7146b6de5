/**
 * Tensor: a shape, a dtype, a device and the storage that backs them. Storage is a DeviceBuffer
 * from the device's backend (host memory for 'cpu', device memory from kernels-native for 'cuda:N').
 *
 * Lifetimes are explicit: `dispose()` frees now, and `scope(fn)` disposes every tensor made inside
 * `fn` except what it returns or `keep()`s. A FinalizationRegistry frees what was forgotten, but
 * only as a backstop (counted in `leakStats()`): garbage collection does not see device memory
 * pressure, so relying on it runs GPUs out of memory.
 */
import { getBackend, parseDevice, type Backend, type Device, type DeviceBuffer } from './backend.js';
import { checkFunction, checkKeys, checkShape } from './check.js';
import './cpu-backend.js';
import { byteSize, dtypeInfo, hostLength, type DTypeName, type HostArray } from './dtype.js';
import { DeepwellError, describe, invalid } from './errors.js';

interface Held { backend: Backend; buffer: DeviceBuffer }
let leaked = 0;
const backstop = new FinalizationRegistry<Held>((held) => {
  leaked++;
  try {
    held.backend.free(held.buffer);
  } catch {
    // The backend may be gone at exit; nothing useful to do in a finalizer.
  }
});

/** Tensors freed by the garbage collector rather than by dispose(): each one is a leak to fix. */
export function leakStats(): { collectedWithoutDispose: number } {
  return { collectedWithoutDispose: leaked };
}

const scopes: Set<Tensor>[] = [];
/** Only Tensor.empty may construct: `new Tensor(...)` from JavaScript would wrap junk storage. */
const TOKEN = Symbol('Tensor.empty');
const F32_MAX = 3.4028234663852886e38;

export interface TensorOptions {
  device?: Device | string;
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DTypeName;
  readonly device: Device;
  #backend: Backend;
  #buffer: DeviceBuffer | null;

  private constructor(shape: readonly number[], dtype: DTypeName, device: Device, backend: Backend, buffer: DeviceBuffer, token?: symbol) {
    if (token !== TOKEN) invalid('Tensor.empty() or Tensor.from() (the constructor is private)', 'a new Tensor', 'a direct constructor call');
    this.shape = shape;
    this.dtype = dtype;
    this.device = device;
    this.#backend = backend;
    this.#buffer = buffer;
    backstop.register(this, { backend, buffer }, this);
    scopes.at(-1)?.add(this);
  }

  /** Uninitialised storage (CPU memory starts zeroed; device memory holds whatever was there). */
  static empty(shape: readonly number[], dtype: DTypeName, options: TensorOptions = {}): Tensor {
    const s = checkShape(shape);
    const d = dtypeInfo(dtype).name;
    const bytes = byteSize(d, numelOf(s));
    const device = deviceOf(options);
    const backend = getBackend(device);
    const buffer = backend.alloc(bytes);
    return new Tensor(s, d, device, backend, buffer, TOKEN);
  }

  /**
   * A tensor holding a copy of `data`: its raw storage as that dtype's host array (Uint16Array bits
   * for f16/bf16, packed bytes for f4e2m1), or plain numbers for f32/i32.
   */
  static from(data: HostArray | readonly number[], shape: readonly number[], dtype: DTypeName = 'f32', options: TensorOptions = {}): Tensor {
    // Everything is checked before anything is allocated: sizes first, then the values.
    const s = checkShape(shape);
    const info = dtypeInfo(dtype);
    const want = hostLength(info.name, numelOf(s));
    const device = deviceOf(options);
    let src: ArrayBufferView;
    if (Array.isArray(data)) {
      if (info.name !== 'f32' && info.name !== 'i32') {
        throw new DeepwellError('INVALID_ARGUMENT', `Expected a ${info.hostArray.name} for ${dtype} data but received a plain array`);
      }
      if (data.length !== want) mismatch(want, data.length, s, dtype);
      checkPlainValues(data, info.name);
      src = new info.hostArray(want);
      (src as Float32Array).set(data as number[]);
    } else if (data instanceof info.hostArray) {
      if ((data as HostArray).length !== want) mismatch(want, (data as HostArray).length, s, dtype);
      src = data as ArrayBufferView;
    } else {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a ${info.hostArray.name} for ${dtype} data but received ${describe(data)}`);
    }
    const t = Tensor.empty(s, info.name, { device });
    t.#backend.write(t.buffer, src);
    return t;
  }

  get numel(): number {
    return numelOf(this.shape);
  }

  get bytes(): number {
    return byteSize(this.dtype, this.numel);
  }

  get disposed(): boolean {
    return this.#buffer === null;
  }

  /** The storage; a DISPOSED error after dispose(). */
  get buffer(): DeviceBuffer {
    if (!this.#buffer) {
      throw new DeepwellError('DISPOSED', `This ${this.dtype}[${this.shape.join(', ')}] tensor on ${this.device} was disposed`);
    }
    return this.#buffer;
  }

  get backend(): Backend {
    return this.#backend;
  }

  /** A host copy of the storage, as this dtype's host array. */
  toHost(): HostArray {
    const out = new (dtypeInfo(this.dtype).hostArray)(hostLength(this.dtype, this.numel));
    this.#backend.read(this.buffer, out);
    return out;
  }

  /** A copy on another device (always a new tensor, even on the same device). */
  to(device: Device | string): Tensor {
    const d = parseDevice(device);
    const out = Tensor.empty(this.shape, this.dtype, { device: d });
    if (d === this.device) out.#backend.copy(out.buffer, this.buffer, this.bytes);
    else out.#backend.write(out.buffer, this.toHost());
    return out;
  }

  /** Free the storage now. A second dispose() is a no-op; use afterwards is a DISPOSED error. */
  dispose(): void {
    const buffer = this.#buffer;
    if (!buffer) return;
    this.#buffer = null;
    backstop.unregister(this);
    for (const s of scopes) s.delete(this);
    this.#backend.free(buffer);
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(', ')}] on ${this.device}${this.disposed ? ', disposed' : ''})`;
  }
}

function deviceOf(options: unknown): Device {
  if (options === undefined) return 'cpu';
  checkKeys(options, ['device'], 'Tensor');
  const device = (options as TensorOptions).device;
  return parseDevice(device === undefined ? 'cpu' : device); // null is not a device
}

/**
 * Plain arrays hold numbers that must fit the dtype as they are: i32 data is integers in
 * [-2^31, 2^31) (never truncated or wrapped), f32 data numbers that float32 holds (NaN and ±Inf
 * included; a finite value beyond float32's range would silently become Infinity).
 */
function checkPlainValues(data: readonly unknown[], dtype: 'f32' | 'i32'): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (dtype === 'i32') {
      if (!(typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31)) invalid('an integer in [-2^31, 2^31 - 1]', `i32 data[${i}]`, v);
    } else if (typeof v !== 'number' || (Number.isFinite(v) && Math.abs(v) > F32_MAX && !Number.isFinite(Math.fround(v)))) {
      invalid('a number within float32\'s range (NaN and ±Infinity are float32 values)', `f32 data[${i}]`, v);
    }
  }
}

function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function mismatch(want: number, got: number, shape: readonly number[], dtype: string): never {
  throw new DeepwellError('SHAPE_MISMATCH', `Expected ${want} host elements for ${dtype}[${shape.join(', ')}] but received ${got}`, {
    details: { expected: want, received: got, shape },
  });
}

/**
 * Run `fn` and dispose every tensor it created, except those it returns (a tensor, an array of
 * them, or an object of them) and those passed to `keep()`. Scopes nest. `fn` must be synchronous:
 * tensors made after an `await` could not be told apart from those of other work.
 */
export function scope<T>(fn: () => T): T {
  checkFunction(fn, 'scope()');
  const made = new Set<Tensor>();
  scopes.push(made);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of made) t.dispose();
    throw e;
  }
  scopes.pop();
  const kept = new Set<Tensor>();
  if (result instanceof Tensor) kept.add(result);
  else if (result && typeof result === 'object') {
    if (typeof (result as { then?: unknown }).then === 'function') {
      for (const t of made) t.dispose();
      throw new DeepwellError('INVALID_ARGUMENT', 'Expected a synchronous function for scope() but received one that returned a Promise');
    }
    for (const v of Object.values(result)) if (v instanceof Tensor) kept.add(v);
  }
  for (const t of made) {
    if (kept.has(t)) scopes.at(-1)?.add(t); // survives into the enclosing scope
    else t.dispose();
  }
  return result;
}

/** Exempt a tensor from the scopes it is in; it is then disposed only by dispose(). */
export function keep<T extends Tensor>(tensor: T): T {
  if (!(tensor instanceof Tensor)) invalid('a Tensor', 'keep()', tensor);
  for (const s of scopes) s.delete(tensor);
  return tensor;
}
