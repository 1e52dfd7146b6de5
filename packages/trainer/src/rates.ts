/**
 * Measured kernel rates per GPU, for the engine's time model (engine.ts): what our kernels reach,
 * not what a datasheet promises. Each figure names the committed run it comes from. A GPU not listed
 * falls back to the datasheet peaks dryrun uses (@deepwell/probe's), FP8 at twice BF16 (the dense
 * ratio on Hopper and Blackwell), and says so; the CPU to the rates dryrun measures here.
 *
 * The GEMM rates are one shape's (GPT-2's MLP up-projection, 16384 × 3072 × 768, the shape family
 * that dominates a GPT-2 step); bigger GEMMs run faster (8192³: bf16 653, tensorwise 1179), so the
 * model is conservative for large models. Attention runs at the flash kernels' rate on GPT-2's
 * shape; elementwise and reduction kernels at the measured copy bandwidth times their measured share.
 */
import { checkNumber, invalid } from '@deepwell/core';
export interface KernelRates {
  /** TFLOP/s of a GEMM by how its operands are stored: bf16 (or f16/f32-TF32) and the native FP8 scalings. */
  gemmTflops: { bf16: number; tensor: number; row: number; block: number };
  /** TFLOP/s of the fused attention kernels (forward and backward together). */
  attentionTflops: number;
  /** GB/s (read + write) of the memory-bound kernels. */
  memoryGBps: number;
  source: string;
}

const MEASURED: Record<string, KernelRates> = {
  'NVIDIA H200': {
    gemmTflops: { bf16: 604.1, tensor: 871.1, row: 754.4, block: 781.1 },
    attentionTflops: 400,
    memoryGBps: 0.85 * 4203,
    source:
      'measured on an H200: GEMMs docs/gpu-runs/2026-12-03-fp8-gemm (run2, GPT-2 fc shape, cuBLASLt 13.1); ' +
      'attention docs/gpu-runs/2026-12-03-flash (forward 222–641 TFLOP/s, backward slower: 400 taken for both); ' +
      'memory 85% of the 4203 GB/s device copy (docs/gpu-runs/2026-11-21-membound.txt: our elementwise kernels reach 75–94%)',
  },
};

/**
 * The rates for a GPU by its name, else from dryrun's estimate (its datasheet peaks for a GPU, its
 * measured rates for the CPU: `gpuName` null).
 */
export function kernelRates(gpuName: string | null, estimate: { peakTflops: number; memoryGBps: number; source: string }): KernelRates {
  if (gpuName !== null && typeof gpuName !== 'string') invalid("a GPU's name or null", 'kernelRates gpuName', gpuName);
  if (typeof estimate !== 'object' || estimate === null) invalid('an estimate { peakTflops, memoryGBps, source }', 'kernelRates estimate', estimate);
  checkNumber(estimate.peakTflops, 'kernelRates estimate.peakTflops', { above: 0 });
  checkNumber(estimate.memoryGBps, 'kernelRates estimate.memoryGBps', { above: 0 });
  if (typeof estimate.source !== 'string') invalid('a string', 'kernelRates estimate.source', estimate.source);
  const measured = gpuName === null || !Object.hasOwn(MEASURED, gpuName) ? undefined : MEASURED[gpuName];
  if (measured) return measured;
  const t = estimate.peakTflops;
  const f8 = gpuName === null ? t : 2 * t;
  const why = gpuName === null ? ' (no FP8 arithmetic on the CPU: emulated)' : ` (no measured rates for ${gpuName}: datasheet peaks, FP8 at twice BF16)`;
  return { gemmTflops: { bf16: t, tensor: f8, row: f8, block: f8 }, attentionTflops: t, memoryGBps: estimate.memoryGBps, source: estimate.source + why };
}
