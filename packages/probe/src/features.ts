/**
 * What a GPU can do, derived from its compute capability, and the datasheet peak rates of the GPUs
 * we know by name. Capability facts, from NVIDIA's CUDA and PTX documentation:
 *   8.0+  bf16 and tf32 tensor cores
 *   8.9+  fp8 (E4M3, E5M2) tensor cores (Ada, Hopper, Blackwell)
 *   9.0+  TMA (bulk tensor copies), thread-block clusters
 *   9.0   wgmma (warpgroup MMA) — Hopper only, through the sm_90a target
 *   10.x  tcgen05 MMA and tensor memory (datacenter Blackwell, through sm_100a / sm_100f)
 *   10.x+ block-scaled MMA: MXFP8, MXFP6, MXFP4 and NVFP4 (12.x through mma.sync, without tcgen05)
 */
import { checkInteger, invalid } from '@deepwell/core';

export interface GpuFeatures {
  bf16: boolean;
  tf32: boolean;
  fp8: boolean;
  tma: boolean;
  clusters: boolean;
  wgmma: boolean;
  tcgen05: boolean;
  tmem: boolean;
  mxfp8: boolean;
  mxfp6: boolean;
  mxfp4: boolean;
  nvfp4: boolean;
}

export function featuresOf(major: number, minor: number): GpuFeatures {
  checkInteger(major, 'featuresOf major (compute capability)', 0, 99);
  checkInteger(minor, 'featuresOf minor (compute capability)', 0, 99);
  const cc = major * 10 + minor;
  const blackwellDc = major === 10 || major === 11;
  const blockScaled = major >= 10;
  return {
    bf16: cc >= 80,
    tf32: cc >= 80,
    fp8: cc >= 89,
    tma: cc >= 90,
    clusters: cc >= 90,
    wgmma: major === 9,
    tcgen05: blackwellDc,
    tmem: blackwellDc,
    mxfp8: blockScaled,
    mxfp6: blockScaled,
    mxfp4: blockScaled,
    nvfp4: blockScaled,
  };
}

/** Which code in the addon serves this GPU: its own SASS, or PTX compiled by the driver at load. */
export function kernelImageFor(major: number, minor: number, builtArchs: string): string {
  checkInteger(major, 'kernelImageFor major (compute capability)', 0, 99);
  checkInteger(minor, 'kernelImageFor minor (compute capability)', 0, 99);
  if (typeof builtArchs !== 'string') invalid("the addon's built architectures as a string ('sm_90a,sm_100f')", 'kernelImageFor builtArchs', builtArchs);
  const archs = builtArchs.split(',').map((s) => s.trim());
  if (major === 9 && minor === 0 && archs.includes('sm_90a')) return 'sm_90a';
  if (major === 10 && archs.includes('sm_100f')) return 'sm_100f';
  if (major === 10 && minor === 0 && archs.includes('sm_100a')) return 'sm_100a';
  return archs.some((a) => a.includes('PTX')) ? 'PTX (JIT-compiled by the driver)' : 'none';
}

export interface PeakRates {
  /** Dense tensor-core rates in TFLOP/s. */
  bf16Tflops: number;
  fp8Tflops: number;
  fp4Tflops: number | null;
  /** Memory bandwidth in GB/s. */
  memoryGBps: number;
  source: string;
}

// Dense (not 2:4 sparse) rates from NVIDIA's datasheets.
const PEAKS: Record<string, PeakRates> = {
  'NVIDIA H100 80GB HBM3': { bf16Tflops: 989.4, fp8Tflops: 1978.9, fp4Tflops: null, memoryGBps: 3350, source: 'NVIDIA H100 SXM datasheet' },
  'NVIDIA H100 PCIe': { bf16Tflops: 756, fp8Tflops: 1513, fp4Tflops: null, memoryGBps: 2000, source: 'NVIDIA H100 PCIe datasheet' },
  'NVIDIA H200': { bf16Tflops: 989.4, fp8Tflops: 1978.9, fp4Tflops: null, memoryGBps: 4800, source: 'NVIDIA H200 SXM datasheet' },
  'NVIDIA B200': { bf16Tflops: 2250, fp8Tflops: 4500, fp4Tflops: 9000, memoryGBps: 8000, source: 'NVIDIA HGX B200 datasheet' },
};

export function peakRatesFor(name: string): PeakRates | null {
  if (typeof name !== 'string') invalid("a GPU's name (a string)", 'peakRatesFor name', name);
  return Object.hasOwn(PEAKS, name) ? PEAKS[name]! : null;
}
