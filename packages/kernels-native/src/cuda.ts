/**
 * The CUDA runtime as Deepwell uses it: whether CUDA is usable and why not, a Backend per device
 * (device memory from the native caching allocator), streams, events, CUDA graphs and pinned host
 * memory. Arguments are checked here before they cross into native code; native code checks them
 * again, so a mistake is a DeepwellError on either side, never a crash.
 */
import {
  DeepwellError,
  checkFunction,
  checkInteger,
  checkRange,
  invalid,
  describe,
  registerBackend,
  type Backend,
  type Device,
  type DeviceBuffer,
  type MemoryStats,
} from '@deepwell/core';
import { loadNative, nativeLoadError, tryLoadNative } from './loader.js';
import type { GraphNodeKinds, NativeDeviceProperties, NativeMemoryStats } from './abi-types.js';
import type { NativeAddon } from './native.js';

export interface CudaStatus {
  /** The native addon loaded. */
  loaded: boolean;
  /** CUDA can run work here: the addon loaded, a driver answered and at least one GPU is visible. */
  available: boolean;
  /** Why CUDA is not available, in words. */
  reason?: string;
  deviceCount: number;
  /** e.g. 13000 for CUDA 13.0; 0 when there is no driver. */
  driverVersion: number;
  runtimeVersion: number;
  /** What the addon was compiled for, e.g. 'sm_90a,sm_100f,compute_90 (PTX)'. */
  cudaArchs?: string;
}

let status: CudaStatus | null = null;

/** Asked of the driver once per process: the devices and driver do not change while it runs. */
export function cudaStatus(): CudaStatus {
  status ??= queryStatus();
  return status;
}

function queryStatus(): CudaStatus {
  const addon = tryLoadNative();
  if (!addon) {
    return { loaded: false, available: false, reason: nativeLoadError()!.message.split('\n')[0], deviceCount: 0, driverVersion: 0, runtimeVersion: 0 };
  }
  const s = addon.status();
  // With no driver at all the runtime reports "CUDA driver version is insufficient for CUDA runtime
  // version" (cudaErrorInsufficientDriver), which reads as if a driver were there: say what it means,
  // once. With a driver that is too old, say which versions and what to do.
  const version = (v: number) => `${Math.floor(v / 1000)}.${(v % 1000) / 10}`;
  if (!s.available && s.driverVersion === 0) s.reason = 'no NVIDIA driver is installed (libcuda.so.1 could not be loaded)';
  else if (!s.available && s.cudaError === 'cudaErrorInsufficientDriver') {
    s.reason = `the NVIDIA driver supports CUDA ${version(s.driverVersion)}, older than the CUDA ${version(s.runtimeVersion)} this addon was built with: update the driver`;
  }
  return { loaded: true, ...s, cudaArchs: addon.build.cudaArchs };
}

export function isCudaAvailable(): boolean {
  return cudaStatus().available;
}

const native: () => NativeAddon = loadNative;

function checkDevice(device: number, what = 'device index'): number {
  const { deviceCount: count, reason } = cudaStatus();
  if (count === 0) throw new DeepwellError('CUDA_UNAVAILABLE', `CUDA is not available: ${reason ?? 'no GPU'}`);
  return checkInteger(device, what, 0, count - 1);
}

export function deviceProperties(device = 0): NativeDeviceProperties {
  return native().deviceProperties(checkDevice(device));
}

export function memGetInfo(device = 0): { free: number; total: number } {
  return native().memGetInfo(checkDevice(device));
}

/** Device memory handed out by a CudaBackend. `ptr` is the device address, for native entry points. */
export class CudaBuffer implements DeviceBuffer {
  readonly device: Device;
  readonly bytes: number;
  readonly index: number;
  #ptr: number;
  /** @internal */
  constructor(index: number, ptr: number, bytes: number) {
    checkInteger(index, 'CudaBuffer device index', 0, 63);
    checkInteger(ptr, 'CudaBuffer pointer');
    checkInteger(bytes, 'CudaBuffer bytes');
    this.index = index;
    this.device = `cuda:${index}`;
    this.#ptr = ptr;
    this.bytes = bytes;
  }
  get ptr(): number {
    if (this.#ptr === 0) throw new DeepwellError('DISPOSED', `This ${this.bytes}-byte buffer on ${this.device} was freed`);
    return this.#ptr;
  }
  get freed(): boolean {
    return this.#ptr === 0;
  }
  /** @internal */
  take(): number {
    const p = this.#ptr;
    this.#ptr = 0;
    return p;
  }
}

export interface CudaMemoryStats extends MemoryStats {
  /** Bytes callers asked for (inUse counts whole cached blocks). */
  requested: number;
  cachedBlocks: number;
  /** Real cudaMalloc / cudaFree calls: constant while a workload runs from the cache. */
  deviceMallocs: number;
  deviceFrees: number;
  cacheHits: number;
}

const MAX_ALLOC = 2 ** 46;

export class CudaBackend implements Backend {
  readonly device: Device;
  readonly index: number;
  #n: NativeAddon;

  constructor(index = 0) {
    this.index = checkDevice(index);
    this.device = `cuda:${this.index}`;
    this.#n = native();
  }

  alloc(bytes: number): CudaBuffer {
    checkInteger(bytes, 'allocation size', 0, MAX_ALLOC);
    return new CudaBuffer(this.index, this.#n.alloc(this.index, bytes), bytes);
  }

  free(buffer: DeviceBuffer): void {
    const b = this.#own(buffer);
    if (b.freed) throw new DeepwellError('DOUBLE_FREE', `This ${b.bytes}-byte buffer on ${b.device} was already freed`);
    this.#n.free(b.take());
  }

  write(dst: DeviceBuffer, src: ArrayBufferView, dstOffset = 0): void {
    const b = this.#own(dst);
    checkView(src, 'write source');
    checkRange('write', b.bytes, dstOffset, src.byteLength);
    this.#n.copyHtoD(b.ptr, dstOffset, src);
  }

  read(src: DeviceBuffer, dst: ArrayBufferView, srcOffset = 0): void {
    const b = this.#own(src);
    checkView(dst, 'read destination');
    checkRange('read', b.bytes, srcOffset, dst.byteLength);
    this.#n.copyDtoH(dst, b.ptr, srcOffset);
  }

  copy(dst: DeviceBuffer, src: DeviceBuffer, bytes: number, dstOffset = 0, srcOffset = 0, stream?: Stream): void {
    const d = this.#own(dst);
    const s = this.#own(src);
    checkRange('copy source', s.bytes, srcOffset, bytes);
    checkRange('copy destination', d.bytes, dstOffset, bytes);
    this.#n.copyDtoD(d.ptr, dstOffset, s.ptr, srcOffset, bytes, stream?.handle ?? 0);
  }

  /** Fill bytes with a value (0..255) on a stream; asynchronous. */
  memset(dst: DeviceBuffer, value: number, bytes = dst.bytes, offset = 0, stream?: Stream): void {
    const d = this.#own(dst);
    checkInteger(value, 'memset byte value', 0, 255);
    checkRange('memset', d.bytes, offset, bytes);
    this.#n.memsetAsync(d.ptr, offset, value, bytes, stream?.handle ?? 0);
  }

  synchronize(): void {
    this.#n.deviceSynchronize(this.index);
  }

  memoryStats(): CudaMemoryStats {
    return this.#n.memoryStats(this.index) as NativeMemoryStats;
  }

  resetPeak(): void {
    this.#n.resetPeak(this.index);
  }

  /** Return cached blocks to the driver (what is in use stays). */
  emptyCache(): void {
    this.#n.emptyCache(this.index);
  }

  #own(buffer: DeviceBuffer): CudaBuffer {
    if (buffer instanceof CudaBuffer && buffer.index === this.index) return buffer;
    throw new DeepwellError('DEVICE_MISMATCH', `Expected a buffer on ${this.device} but received ${describe(buffer)} on ${describe(buffer?.device)}`);
  }
}

function checkView(view: unknown, what: string): void {
  if (!ArrayBuffer.isView(view)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a typed array or DataView for ${what} but received ${describe(view)}`);
}

// One backend per GPU per process, shared by the ESM and CJS copies of this package.
const BACKENDS = Symbol.for('deepwell.cudaBackends');
const backends: Map<number, CudaBackend> = ((globalThis as Record<symbol, unknown>)[BACKENDS] as Map<number, CudaBackend> | undefined) ?? new Map();
(globalThis as Record<symbol, unknown>)[BACKENDS] = backends;

/** The backend of one GPU (created once). */
export function cudaBackend(index = 0): CudaBackend {
  checkDevice(index);
  let b = backends.get(index);
  if (!b) backends.set(index, (b = new CudaBackend(index)));
  return b;
}

/**
 * Register a backend for every visible GPU with @deepwell/core, so `Tensor.empty(shape, dtype,
 * { device: 'cuda:0' })` works. Returns the devices registered: none when CUDA is unavailable.
 */
export function registerCudaBackends(): Device[] {
  const { available, deviceCount } = cudaStatus();
  if (!available) return [];
  const out: Device[] = [];
  for (let i = 0; i < deviceCount; i++) {
    registerBackend(cudaBackend(i));
    out.push(`cuda:${i}`);
  }
  return out;
}

/** A CUDA stream on one device. Work on one stream runs in order. */
export class Stream {
  readonly device: number;
  #h: number;
  constructor(device = 0) {
    this.device = checkDevice(device);
    this.#h = native().streamCreate(this.device);
  }
  /** @internal */
  get handle(): number {
    if (this.#h === 0) throw new DeepwellError('DISPOSED', 'This stream was destroyed');
    return this.#h;
  }
  synchronize(): void {
    native().streamSynchronize(this.handle);
  }
  /** True when all work queued so far has finished. */
  query(): boolean {
    return native().streamQuery(this.handle);
  }
  wait(event: Event): void {
    native().streamWaitEvent(this.handle, event.handle);
  }
  dispose(): void {
    if (this.#h === 0) return;
    const h = this.#h;
    this.#h = 0;
    native().streamDestroy(h);
  }
}

/** A CUDA event: a point in a stream to wait on or to time from. */
export class Event {
  #h: number;
  constructor(device = 0, options: { timing?: boolean } = {}) {
    this.#h = native().eventCreate(checkDevice(device), options.timing ?? true);
  }
  /** @internal */
  get handle(): number {
    if (this.#h === 0) throw new DeepwellError('DISPOSED', 'This event was destroyed');
    return this.#h;
  }
  record(stream?: Stream): this {
    native().eventRecord(this.handle, stream?.handle ?? 0);
    return this;
  }
  synchronize(): void {
    native().eventSynchronize(this.handle);
  }
  /** Milliseconds from `start` to this event; both recorded and finished. */
  elapsedSince(start: Event): number {
    return native().eventElapsed(start.handle, this.handle);
  }
  dispose(): void {
    if (this.#h === 0) return;
    const h = this.#h;
    this.#h = 0;
    native().eventDestroy(h);
  }
}

/** An instantiated CUDA graph: the work captured once, replayed by launch(). */
export class Graph {
  readonly nodes: number;
  /** The nodes by kind: kernels, copies, memsets, other. */
  readonly kinds: GraphNodeKinds;
  #h: number;
  private constructor(handle: number, nodes: number, kinds: GraphNodeKinds) {
    this.#h = handle;
    this.nodes = nodes;
    this.kinds = kinds;
  }

  /**
   * Capture the device work that `fn` queues on `stream` (a created stream; the default stream
   * cannot be captured). Nothing runs during capture. If `fn` throws, capture is ended and the
   * error rethrown.
   */
  static capture(stream: Stream, fn: () => void): Graph {
    if (!(stream instanceof Stream)) invalid('a Stream', 'Graph.capture stream', stream);
    checkFunction(fn, 'Graph.capture fn');
    const n = native();
    n.captureBegin(stream.handle);
    try {
      fn();
    } catch (e) {
      try {
        n.graphDestroy(n.captureEnd(stream.handle).graph);
      } catch {
        // capture was already invalidated by the failure; the original error matters more
      }
      throw e;
    }
    const { graph, nodes, kinds } = n.captureEnd(stream.handle);
    return new Graph(graph, nodes, kinds);
  }

  launch(stream: Stream): void {
    if (this.#h === 0) throw new DeepwellError('DISPOSED', 'This graph was destroyed');
    native().graphLaunch(this.#h, stream.handle);
  }

  dispose(): void {
    if (this.#h === 0) return;
    const h = this.#h;
    this.#h = 0;
    native().graphDestroy(h);
  }
}

/** Page-locked host memory, the only kind async copies accept. */
export class PinnedBuffer {
  #buf: ArrayBuffer | null;
  constructor(bytes: number) {
    checkInteger(bytes, 'pinned buffer size', 1, 2 ** 40);
    if (!isCudaAvailable()) throw new DeepwellError('CUDA_UNAVAILABLE', `CUDA is not available: ${cudaStatus().reason}`);
    this.#buf = native().hostAlloc(bytes);
  }
  get buffer(): ArrayBuffer {
    if (!this.#buf) throw new DeepwellError('DISPOSED', 'This pinned buffer was freed');
    return this.#buf;
  }
  get bytes(): number {
    return this.#buf?.byteLength ?? 0;
  }
  /** Asynchronous host→device copy of `bytes` bytes from `offset` of this buffer. */
  copyTo(dst: CudaBuffer, stream: Stream, options: { bytes?: number; offset?: number; dstOffset?: number } = {}): void {
    const { offset = 0, dstOffset = 0 } = options;
    const bytes = options.bytes ?? this.bytes - offset;
    checkRange('pinned copy source', this.bytes, offset, bytes);
    checkRange('pinned copy destination', dst.bytes, dstOffset, bytes);
    native().copyHtoDAsync(dst.ptr, dstOffset, new Uint8Array(this.buffer, offset, bytes), stream.handle);
  }
  /** Asynchronous device→host copy into this buffer. */
  copyFrom(src: CudaBuffer, stream: Stream, options: { bytes?: number; offset?: number; srcOffset?: number } = {}): void {
    const { offset = 0, srcOffset = 0 } = options;
    const bytes = options.bytes ?? this.bytes - offset;
    checkRange('pinned copy destination', this.bytes, offset, bytes);
    checkRange('pinned copy source', src.bytes, srcOffset, bytes);
    native().copyDtoHAsync(new Uint8Array(this.buffer, offset, bytes), src.ptr, srcOffset, stream.handle);
  }
  dispose(): void {
    if (!this.#buf) return;
    const b = this.#buf;
    this.#buf = null;
    native().hostFree(b);
  }
}
