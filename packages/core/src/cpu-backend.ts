/** The CPU backend: buffers are plain host memory. The reference backend every package can use. */
import { checkRange, hasBackend, registerBackend, type Backend, type DeviceBuffer, type MemoryStats } from './backend.js';
import { DeepwellError, describe } from './errors.js';

const MAX_CPU_ALLOC = 2 ** 33; // 8 GiB: past this a typed array either fails or thrashes.

function checkBytes(bytes: unknown): number {
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_CPU_ALLOC) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected an integer in [0, ${MAX_CPU_ALLOC}] for allocation size but received ${describe(bytes)}`);
  }
  return bytes;
}

export class CpuBuffer implements DeviceBuffer {
  readonly device = 'cpu' as const;
  #data: Uint8Array | null;
  constructor(bytes: number) {
    checkBytes(bytes);
    try {
      this.#data = new Uint8Array(bytes);
    } catch (cause) {
      throw new DeepwellError('OUT_OF_MEMORY', `Could not allocate ${bytes} bytes of host memory`, { cause });
    }
  }
  get bytes(): number {
    return this.#data?.byteLength ?? 0;
  }
  /** The bytes themselves; throws after free(). */
  get data(): Uint8Array {
    if (!this.#data) throw new DeepwellError('DISPOSED', 'This CPU buffer was freed');
    return this.#data;
  }
  /** @internal */
  release(): boolean {
    const had = this.#data !== null;
    this.#data = null;
    return had;
  }
}

export class CpuBackend implements Backend {
  readonly device = 'cpu' as const;
  #stats: MemoryStats = { inUse: 0, reserved: 0, peak: 0, allocations: 0 };
  /** The buffers this backend handed out: only those are counted, and only those can be freed here. */
  #mine = new WeakSet<CpuBuffer>();

  alloc(bytes: number): CpuBuffer {
    const buf = new CpuBuffer(checkBytes(bytes));
    this.#mine.add(buf);
    const s = this.#stats;
    s.inUse += bytes;
    s.reserved = s.inUse;
    s.allocations++;
    s.peak = Math.max(s.peak, s.inUse);
    return buf;
  }

  free(buffer: DeviceBuffer): void {
    const buf = asCpu(buffer);
    if (!this.#mine.has(buf)) throw new DeepwellError('DEVICE_MISMATCH', 'Expected a buffer this CPU backend allocated for free() but received one it did not hand out');
    const bytes = buf.bytes;
    if (!buf.release()) throw new DeepwellError('DOUBLE_FREE', 'This CPU buffer was already freed');
    this.#stats.inUse -= bytes;
    this.#stats.reserved = this.#stats.inUse;
    this.#stats.allocations--;
  }

  write(dst: DeviceBuffer, src: ArrayBufferView, dstOffset = 0): void {
    const d = asCpu(dst).data;
    checkView(src, 'write source');
    checkRange('write', d.byteLength, dstOffset, src.byteLength);
    d.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), dstOffset);
  }

  read(src: DeviceBuffer, dst: ArrayBufferView, srcOffset = 0): void {
    const s = asCpu(src).data;
    checkView(dst, 'read destination');
    checkRange('read', s.byteLength, srcOffset, dst.byteLength);
    new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(s.subarray(srcOffset, srcOffset + dst.byteLength));
  }

  copy(dst: DeviceBuffer, src: DeviceBuffer, bytes: number, dstOffset = 0, srcOffset = 0): void {
    const d = asCpu(dst).data;
    const s = asCpu(src).data;
    checkRange('copy source', s.byteLength, srcOffset, bytes);
    checkRange('copy destination', d.byteLength, dstOffset, bytes);
    d.set(s.subarray(srcOffset, srcOffset + bytes), dstOffset);
  }

  synchronize(): void {}

  memoryStats(): MemoryStats {
    return { ...this.#stats };
  }

  resetPeak(): void {
    this.#stats.peak = this.#stats.inUse;
  }
}

function asCpu(buffer: DeviceBuffer): CpuBuffer {
  if (buffer instanceof CpuBuffer) return buffer;
  throw new DeepwellError('DEVICE_MISMATCH', `Expected a CPU buffer for the CPU backend but received ${describe(buffer)} on ${describe(buffer?.device)}`);
}

function checkView(view: unknown, what: string): void {
  if (!ArrayBuffer.isView(view)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a typed array or DataView for ${what} but received ${describe(view)}`);
}

export const cpuBackend = new CpuBackend();
// One CPU backend per process, even when both the ESM and CJS copies of core are loaded.
if (!hasBackend('cpu')) registerBackend(cpuBackend);
