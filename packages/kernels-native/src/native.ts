/**
 * The raw native addon: its functions exactly as native/ exports them, and the wrapper that turns
 * every native failure into a DeepwellError thrown from the JS caller's stack.
 */
import { DeepwellError, type DeepwellErrorCode } from '@deepwell/core';

export interface NativeStatus {
  available: boolean;
  deviceCount: number;
  driverVersion: number;
  runtimeVersion: number;
  reason?: string;
  cudaError?: string;
}

export interface NativeDeviceProperties {
  index: number;
  name: string;
  major: number;
  minor: number;
  multiProcessorCount: number;
  totalGlobalMem: number;
  l2CacheSize: number;
  sharedMemPerBlockOptin: number;
  sharedMemPerMultiprocessor: number;
  regsPerMultiprocessor: number;
  maxThreadsPerMultiProcessor: number;
  warpSize: number;
  memoryBusWidth: number;
  clockRateKHz: number;
  memoryClockRateKHz: number;
  eccEnabled: boolean;
  pciBusId: string;
  uuid: string;
}

export interface NativeMemoryStats {
  inUse: number;
  reserved: number;
  peak: number;
  allocations: number;
  requested: number;
  cachedBlocks: number;
  deviceMallocs: number;
  deviceFrees: number;
  cacheHits: number;
}

export interface NativeLibraryResult {
  kind: string;
  path: string | null;
  version: string | null;
  tried: { candidate: string; error: string }[];
}

export interface NvmlStats {
  smClockMHz: number | null;
  memClockMHz: number | null;
  maxSmClockMHz: number | null;
  maxMemClockMHz: number | null;
  powerW: number | null;
  powerLimitW: number | null;
  temperatureC: number | null;
  gpuUtilization: number | null;
  memoryUtilization: number | null;
  /** The board's memory, as nvidia-smi reports it. */
  memoryTotalBytes: number | null;
  memoryUsedBytes: number | null;
}

export interface NativeAddon {
  build: { cudaArchs: string; cudartVersion: number; napiVersion: number };
  status(): NativeStatus;
  deviceProperties(device: number): NativeDeviceProperties;
  memGetInfo(device: number): { free: number; total: number };
  nop(): void;
  alloc(device: number, bytes: number): number;
  free(ptr: number): void;
  emptyCache(device: number): void;
  memoryStats(device: number): NativeMemoryStats;
  resetPeak(device: number): void;
  hostAlloc(bytes: number): ArrayBuffer;
  hostFree(buffer: ArrayBuffer): void;
  copyHtoD(ptr: number, offset: number, src: ArrayBufferView): void;
  copyDtoH(dst: ArrayBufferView, ptr: number, offset: number): void;
  copyDtoD(dst: number, dstOffset: number, src: number, srcOffset: number, bytes: number, stream: number): void;
  copyHtoDAsync(ptr: number, offset: number, src: ArrayBufferView, stream: number): void;
  copyDtoHAsync(dst: ArrayBufferView, ptr: number, offset: number, stream: number): void;
  memsetAsync(ptr: number, offset: number, value: number, bytes: number, stream: number): void;
  lookup(ptr: number): { device: number; bytes: number; capacity: number } | null;
  streamCreate(device: number): number;
  streamDestroy(stream: number): void;
  streamSynchronize(stream: number): void;
  streamQuery(stream: number): boolean;
  streamWaitEvent(stream: number, event: number): void;
  deviceSynchronize(device: number): void;
  eventCreate(device: number, timing: boolean): number;
  eventDestroy(event: number): void;
  eventRecord(event: number, stream: number): void;
  eventSynchronize(event: number): void;
  eventElapsed(start: number, end: number): number;
  captureBegin(stream: number): void;
  captureEnd(stream: number): { graph: number; nodes: number };
  graphLaunch(graph: number, stream: number): void;
  graphDestroy(graph: number): void;
  fillHash(ptr: number, offset: number, n: number, seed: number, stream: number): void;
  addU32(ptr: number, offset: number, n: number, value: number, stream: number): void;
  openLibrary(kind: 'cublasLt' | 'nccl' | 'nvml', candidates: string[]): NativeLibraryResult;
  nvmlDeviceStats(pciBusId: string): NvmlStats;
}

const CODES = new Set<DeepwellErrorCode>([
  'INVALID_ARGUMENT', 'INVALID_DTYPE', 'SHAPE_MISMATCH', 'DOUBLE_FREE', 'OUT_OF_MEMORY', 'CUDA_UNAVAILABLE', 'CUDA_ERROR', 'LIBRARY_UNAVAILABLE',
]);

/** A native failure as a DeepwellError; anything unexpected becomes INTERNAL with the original as cause. */
export function fromNative(e: unknown): DeepwellError {
  if (DeepwellError.is(e)) return e;
  const err = e as { code?: string; message?: string; cudaError?: string; cudaErrorCode?: number };
  const code = CODES.has(err?.code as DeepwellErrorCode) ? (err.code as DeepwellErrorCode) : 'INTERNAL';
  const details: Record<string, unknown> = {};
  if (err?.cudaError) details.cudaError = err.cudaError;
  if (err?.cudaErrorCode !== undefined) details.cudaErrorCode = err.cudaErrorCode;
  return new DeepwellError(code, err?.message ?? String(e), { cause: e, details });
}

/** Every function of the addon, wrapped so a native failure is thrown as a DeepwellError here. */
export function wrapAddon(raw: NativeAddon): NativeAddon {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'function') {
      out[k] = v;
      continue;
    }
    const f = v as (...a: unknown[]) => unknown;
    out[k] = (...a: unknown[]) => {
      try {
        return f(...a);
      } catch (e) {
        throw fromNative(e);
      }
    };
  }
  // nop stays raw: it exists to measure the bare cost of a call.
  out.nop = raw.nop;
  return out as unknown as NativeAddon;
}
