/**
 * probe(): what hardware is here. Uses @deepwell/kernels-native when it is installed and loads;
 * without it, or without a GPU, the report says so and lists no GPUs (an honest empty list).
 */
import { createRequire } from 'node:module';
import { cpus, totalmem } from 'node:os';
import { featuresOf, kernelImageFor, peakRatesFor, type GpuFeatures, type PeakRates } from './features.js';

type KernelsNative = typeof import('@deepwell/kernels-native');
type VendorLibraryReport = import('@deepwell/kernels-native').VendorLibraryReport;
type NvmlStats = import('@deepwell/kernels-native').NvmlStats;

const require = createRequire(import.meta.url);
let nativeModule: KernelsNative | null | undefined;
let nativeImportError: string | null = null;

/** @deepwell/kernels-native when installed, else null (and why, in `probe().native.error`). */
export function kernelsNative(): KernelsNative | null {
  if (nativeModule === undefined) {
    try {
      nativeModule = require('@deepwell/kernels-native') as KernelsNative;
    } catch (e) {
      nativeModule = null;
      nativeImportError = `@deepwell/kernels-native is not installed (${(e as Error).message.split('\n')[0]})`;
    }
  }
  return nativeModule;
}

export interface GpuReport {
  index: number;
  name: string;
  /** e.g. '9.0' */
  computeCapability: string;
  major: number;
  minor: number;
  smCount: number;
  memoryBytes: number;
  memoryFreeBytes: number;
  l2CacheBytes: number;
  sharedMemoryPerBlockBytes: number;
  /** Maximum clocks the CUDA runtime reports. */
  smClockMHz: number;
  memoryClockMHz: number;
  memoryBusWidthBits: number;
  /** 2 × memory clock × bus width: the theoretical DRAM bandwidth. */
  memoryBandwidthGBps: number;
  eccEnabled: boolean;
  pciBusId: string;
  uuid: string;
  features: GpuFeatures;
  /** Which code in the native addon runs on this GPU. */
  kernelImage: string;
  /** Datasheet rates when this GPU is known by name, else null. */
  peak: PeakRates | null;
  /** Live readings through NVML (clocks, power, utilisation); null without NVML. */
  live: NvmlStats | null;
}

export interface ProbeReport {
  host: { platform: string; arch: string; node: string; cpuModel: string; cpuCount: number; memoryBytes: number };
  native: { loaded: boolean; path: string | null; cudaArchs: string | null; error: string | null };
  cuda: { available: boolean; reason: string | null; driverVersion: string | null; runtimeVersion: string | null; deviceCount: number };
  gpus: GpuReport[];
  libraries: VendorLibraryReport[];
}

/** 13000 -> '13.0' */
function cudaVersion(v: number): string | null {
  return v > 0 ? `${Math.floor(v / 1000)}.${(v % 1000) / 10}` : null;
}

export function probe(): ProbeReport {
  const cpu = cpus();
  const host = {
    platform: process.platform,
    arch: process.arch,
    node: process.version,
    cpuModel: cpu[0]?.model ?? 'unknown',
    cpuCount: cpu.length,
    memoryBytes: totalmem(),
  };
  const kn = kernelsNative();
  if (!kn) {
    return {
      host,
      native: { loaded: false, path: null, cudaArchs: null, error: nativeImportError },
      cuda: { available: false, reason: nativeImportError, driverVersion: null, runtimeVersion: null, deviceCount: 0 },
      gpus: [],
      libraries: [],
    };
  }
  const status = kn.cudaStatus();
  const native = {
    loaded: status.loaded,
    path: kn.nativePath(),
    cudaArchs: status.cudaArchs ?? null,
    error: kn.nativeLoadError()?.message ?? null,
  };
  const cuda = {
    available: status.available,
    reason: status.reason ?? null,
    driverVersion: cudaVersion(status.driverVersion),
    runtimeVersion: cudaVersion(status.runtimeVersion),
    deviceCount: status.deviceCount,
  };
  const libraries = status.loaded ? kn.findVendorLibraries() : [];
  const gpus: GpuReport[] = [];
  for (let i = 0; status.available && i < status.deviceCount; i++) {
    const p = kn.deviceProperties(i);
    const mem = kn.memGetInfo(i);
    gpus.push({
      index: i,
      name: p.name,
      computeCapability: `${p.major}.${p.minor}`,
      major: p.major,
      minor: p.minor,
      smCount: p.multiProcessorCount,
      memoryBytes: mem.total,
      memoryFreeBytes: mem.free,
      l2CacheBytes: p.l2CacheSize,
      sharedMemoryPerBlockBytes: p.sharedMemPerBlockOptin,
      smClockMHz: Math.round(p.clockRateKHz / 1000),
      memoryClockMHz: Math.round(p.memoryClockRateKHz / 1000),
      memoryBusWidthBits: p.memoryBusWidth,
      memoryBandwidthGBps: Math.round((2 * p.memoryClockRateKHz * 1e3 * (p.memoryBusWidth / 8)) / 1e9),
      eccEnabled: p.eccEnabled,
      pciBusId: p.pciBusId,
      uuid: p.uuid,
      features: featuresOf(p.major, p.minor),
      kernelImage: kernelImageFor(p.major, p.minor, status.cudaArchs ?? ''),
      peak: peakRatesFor(p.name),
      live: kn.nvmlStats(p.pciBusId),
    });
  }
  return { host, native, cuda, gpus, libraries };
}
