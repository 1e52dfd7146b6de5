/**
 * probe(): what hardware is here, through @deepwell/kernels-native. When its addon cannot load, or
 * there is no driver or GPU, the report says why and lists no GPUs (an honest empty list).
 */
import { cpus, totalmem } from 'node:os';
import * as kn from '@deepwell/kernels-native';
import type { NvmlStats, VendorLibraryReport } from '@deepwell/kernels-native';
import { featuresOf, kernelImageFor, peakRatesFor, type GpuFeatures, type PeakRates } from './features.js';

export interface GpuReport {
  index: number;
  name: string;
  /** e.g. '9.0' */
  computeCapability: string;
  major: number;
  minor: number;
  smCount: number;
  /** The board's memory as nvidia-smi reports it (NVML); CUDA's total where NVML is missing. */
  memoryBytes: number;
  /** What CUDA can allocate in all (cudaMemGetInfo's total: the board less what the driver keeps). */
  memoryCudaTotalBytes: number;
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
    const live = kn.nvmlStats(p.pciBusId);
    gpus.push({
      index: i,
      name: p.name,
      computeCapability: `${p.major}.${p.minor}`,
      major: p.major,
      minor: p.minor,
      smCount: p.multiProcessorCount,
      memoryBytes: live?.memoryTotalBytes ?? mem.total,
      memoryCudaTotalBytes: mem.total,
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
      live,
    });
  }
  return { host, native, cuda, gpus, libraries };
}
