/**
 * The types of the native ABI that the generated signatures (abi.gen.ts) name: device memory as a
 * kernel argument, and what the runtime entry points return.
 */

/** Device memory as an entry point takes it: a live allocation's base, a byte offset into it, and
 * the bytes the value spans (the native side checks the range it touches against the allocation). */
export interface DevArg {
  base: number;
  offset: number;
  bytes: number;
}

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

/** A captured CUDA graph's nodes by kind (captureEnd). */
export interface GraphNodeKinds {
  kernel: number;
  memcpy: number;
  memset: number;
  other: number;
  /** Of the kernels, the memsets captured and replaced by a kernel node (runtime/graph_memset.cu). */
  memsetAsKernel: number;
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
