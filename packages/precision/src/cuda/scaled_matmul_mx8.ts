/**
 * scaled_matmul's MXFP8 candidate on Hopper: kernels-native's mx8GemmSm90 (native/gemm/
 * gemm_mx8_sm90.cu), our own kernel, exact to MX semantics — FP8 codes times E8M0 scales per 32 of
 * K, each 32-block's partial product multiplied by sa · sb and added in FP32 — reading the op's
 * mx32 operands as they are (K-major codes, scale codes in cuBLASLt's 128 × 4 tiles: quantizeTensor's
 * `scaleLayout: 'tiled128x4'`). Hopper has no block-scaled MMA, so this is not a fast path: two
 * CUDA-core operations per output per 32 tensor-core MACs cap it near the BF16 tensor-core peak,
 * not the FP8 one (the kernel file says why and how). It is here so MXFP8 runs on Hopper as it
 * is, where the alternative is emulation (dequantize, then a BF16 GEMM).
 *
 * It declines, with the reason:
 *   - scalings other than (mx32, mx32) (cuBLASLt's candidate takes those);
 *   - scales in the 'plain' layout (it reads the 128 × 4 tiles);
 *   - sizes from 2^31, or more than 2^31 - 1 tiles of 128 × 128;
 *   - a GPU whose compute capability is not 9.x: from 10.0 Blackwell's block-scaled tensor cores
 *     run MXFP8 through cuBLASLt (scaled_matmul_cublaslt), and the priority keeps cuBLASLt first
 *     anyway; below 9.0 the addon has no code for the kernel.
 * No workspace, no bias epilogue (scaled_matmul only, not scaled_matmul_bias). Compiled for sm_90a;
 * Its test is test/scaled_matmul_mx8_gpu.test.ts (passing on the H200, 2026-12-03). Measured there it
 * is slower than emulation (0.34× its speed), so the precision policy never uses it: it is the op's
 * exact MXFP8 path on Hopper, where the op has no other kernel.
 */
import { DTYPE_CODE, FP8_CODE, registerCuda, type CudaCall, type NativeEntries } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import { invalid } from '@deepwell/core';
import { checkScaledMatmul, checkScaledMatmulDims, type ScaledMatmulDims } from '../ops/scaled_matmul.js';
import { computeCapabilityOf } from '../device.js';

/** The candidate's name in the registry. */
export const MX8_SM90_KERNEL = 'scaled_matmul_mx8_sm90';

const MAX_INT = 2 ** 31 - 1;

/**
 * Whether mx8GemmSm90 takes the call `n` on a GPU of compute capability `cc` ('9.0'; null: not
 * known), else why not. The kernel's own limits only: the registry checks the device and the addon.
 */
export function mx8Sm90Limits(n: ScaledMatmulDims, cc: string | null): true | string {
  checkScaledMatmulDims(n, 'mx8Sm90Limits');
  if (cc !== null && typeof cc !== 'string') invalid("a compute capability ('9.0') or null", 'mx8Sm90Limits', cc);
  if (n.aScaling !== 'mx32' || n.bScaling !== 'mx32') return `takes MXFP8 operands only (mx32 × mx32 scaling), not (${n.aScaling}, ${n.bScaling})`;
  if (n.layout !== 'gemm') return `takes mx32 scale codes in scaleLayout 'gemm' (cuBLASLt's 128 × 4 tiles), not '${n.layout}': quantize with quantizeTensor(x, { format, scaleLayout: 'tiled128x4' })`;
  if (Math.max(n.M, n.N, n.K) > MAX_INT) return `takes M, N and K up to 2^31 - 1, not ${n.M}, ${n.N} and ${n.K}`;
  if (Math.ceil(n.M / 128) * Math.ceil(n.N / 128) > MAX_INT) return `takes at most 2^31 - 1 tiles of 128 × 128, not ${n.M} × ${n.N}`;
  if (cc === null) return 'could not read the GPU’s compute capability';
  const major = Number(cc.split('.')[0]);
  if (major >= 10) return `runs on Hopper (compute capability 9.x) only: this GPU is ${cc}, whose block-scaled tensor cores run MXFP8 through cuBLASLt (scaled_matmul_cublaslt)`;
  if (major !== 9) return `runs on compute capability 9.x (Hopper; the addon has its code for sm_90a) but this GPU is ${cc}`;
  return true;
}

function supports(p: KernelParams): true | string {
  let n: ScaledMatmulDims;
  try {
    n = checkScaledMatmul(p.op, p.inTypes, p.attrs);
  } catch (e) {
    return (e as Error).message;
  }
  if (n.aScaling !== 'mx32') return mx8Sm90Limits(n, null); // before asking the device
  return mx8Sm90Limits(n, computeCapabilityOf(p.device));
}

/** D = Σ_kb sa·sb · Σ a·b through mx8GemmSm90 on the call's stream. */
export function runMx8Sm90(c: CudaCall<KernelParams>, ops: NativeEntries): void {
  const n = checkScaledMatmul(c.op, c.inTypes, c.attrs);
  const [a, aScale, b, bScale] = c.inputs;
  ops.mx8GemmSm90(c.stream, n.M, n.N, n.K, FP8_CODE[n.aFormat], FP8_CODE[n.bFormat], DTYPE_CODE[n.outDtype], a!, aScale!, b!, bScale!, c.outputs[0]!);
}

registerCuda<KernelParams>({
  op: 'scaled_matmul',
  name: MX8_SM90_KERNEL,
  // Below scaled_matmul_cublaslt (200): where cuBLASLt has MXFP8 (Blackwell) it goes first.
  priority: 150,
  needs: ['mx8GemmSm90'],
  supports,
  run: runMx8Sm90,
});
