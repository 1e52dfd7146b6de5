/**
 * The Backend interface: memory and copies, nothing about ops. Kernels find their device memory
 * through the buffers a backend hands out. Backends are found by device string ('cpu', 'cuda:0');
 * the table lives on globalThis so that the ESM and CJS copies of core share one.
 */
import { DeepwellError, describe, invalid } from './errors.js';

export type Device = 'cpu' | `cuda:${number}`;

export function parseDevice(value: unknown): Device {
  if (value === 'cpu') return 'cpu';
  if (typeof value === 'string' && /^cuda:(0|[1-9]\d{0,3})$/.test(value)) return value as Device;
  if (value === 'cuda') return 'cuda:0';
  throw new DeepwellError('INVALID_ARGUMENT', `Expected 'cpu', 'cuda' or 'cuda:N' for device but received ${describe(value)}`);
}

/** Memory a backend handed out. Opaque to everyone but that backend. */
export interface DeviceBuffer {
  readonly device: Device;
  readonly bytes: number;
}

export interface MemoryStats {
  /** Bytes in live allocations. */
  inUse: number;
  /** Bytes held from the device (in use plus cached for reuse). */
  reserved: number;
  /** Highest `inUse` since the last reset. */
  peak: number;
  /** Live allocations. */
  allocations: number;
}

export interface Backend {
  readonly device: Device;
  alloc(bytes: number): DeviceBuffer;
  free(buffer: DeviceBuffer): void;
  /** Host → device: copies all of `src` into `dst` at `dstOffset` bytes. */
  write(dst: DeviceBuffer, src: ArrayBufferView, dstOffset?: number): void;
  /** Device → host: fills all of `dst` from `src` at `srcOffset` bytes. */
  read(src: DeviceBuffer, dst: ArrayBufferView, srcOffset?: number): void;
  /** Device → device within this backend. */
  copy(dst: DeviceBuffer, src: DeviceBuffer, bytes: number, dstOffset?: number, srcOffset?: number): void;
  synchronize(): void;
  memoryStats(): MemoryStats;
}

const TABLE = Symbol.for('deepwell.backends');
type Table = Map<Device, Backend>;
const table: Table = ((globalThis as Record<symbol, unknown>)[TABLE] as Table | undefined) ?? new Map();
(globalThis as Record<symbol, unknown>)[TABLE] = table;

const METHODS = ['alloc', 'free', 'write', 'read', 'copy', 'synchronize', 'memoryStats'] as const;

/** Register (or replace) the backend of a device; an object without the Backend methods is refused. */
export function registerBackend(backend: Backend): void {
  if (typeof backend !== 'object' || backend === null) invalid('a Backend object ({ device, alloc, free, write, read, copy, synchronize, memoryStats })', 'registerBackend', backend);
  const device = parseDevice(backend.device);
  const missing = METHODS.find((m) => typeof backend[m] !== 'function');
  if (missing) invalid(`a Backend with a ${missing}() method`, `the backend of ${device}`, backend[missing]);
  table.set(device, backend);
}

export function unregisterBackend(device: Device): boolean {
  return table.delete(parseDevice(device));
}

export function getBackend(device: Device | string): Backend {
  const d = parseDevice(device);
  const found = table.get(d);
  if (found) return found;
  throw new DeepwellError(
    'NO_BACKEND',
    `No backend is registered for device '${d}'` +
      (d.startsWith('cuda') ? ": import @deepwell/kernels-native and call registerCudaBackends() on a machine with a GPU" : ''),
    { details: { device: d, registered: [...table.keys()] } },
  );
}

export function hasBackend(device: Device | string): boolean {
  return table.has(parseDevice(device));
}

export function listBackends(): Device[] {
  return [...table.keys()];
}

/** Check an offset/length pair against a buffer: the message names what overflowed. */
export function checkRange(what: string, bufferBytes: number, offset: number, bytes: number): void {
  if (typeof what !== 'string') invalid('a string', "checkRange's what", what);
  for (const [v, name] of [[bufferBytes, 'buffer size'], [offset, 'offset'], [bytes, 'byte count']] as const) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a non-negative integer for ${what} ${name} but received ${describe(v)}`);
    }
  }
  if (offset + bytes > bufferBytes) {
    throw new DeepwellError(
      'SHAPE_MISMATCH',
      `Expected at most ${bufferBytes - Math.min(offset, bufferBytes)} bytes for ${what} at offset ${offset} but received ${bytes}`,
      { details: { bufferBytes, offset, bytes } },
    );
  }
}
