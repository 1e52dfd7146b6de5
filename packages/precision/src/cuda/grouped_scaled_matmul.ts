/**
 * grouped_scaled_matmul's CUDA candidate: kernels-native's groupedScaledGemm (native/gemm/
 * grouped_gemm.cu), the FP8 blockwise grouped GEMM of dropless MoE. On a compute capability 9.0 GPU
 * with N a multiple of 64 it runs our Hopper kernel (gemm/grouped_fp8_sm90.cuh: persistent, TMA and
 * FP8 wgmma, each 128-deep K block's partial promoted into FP32 with its scales); elsewhere, and for
 * other shapes, the addon's general path (the codes decoded, the same per-block promotion). Written
 * and compiled, not yet run on a GPU (issue 21).
 *
 * It declines, with the reason: scales in the 'plain' layout (the kernels read 'gemm': aScale
 * [K/128, R], bScale [E, ceil(N/128), L4], as quantize with scaleLayout 'gemm' writes them), sizes
 * from 2^31, N above 65535 tiles of 64, more than 8192 experts, and the mx32 / nv16 scalings, which
 * the second candidate (grouped_scaled_matmul_sm100, Blackwell only) takes. Bad offsets are recorded on the device
 * and thrown by the error check after the call (INVALID_ARGUMENT naming the entry), unless the call
 * says `checkIndices: false` (a captured step checks later).
 * Its test is test/grouped_scaled_matmul_gpu.test.ts.
 */
import { DTYPE_CODE, FORMAT_CODE, FP8_CODE, registerCuda, type CudaCall, type NativeEntries } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import { checkGrouped, type GroupedScaledDims } from '../ops/grouped_scaled_matmul.js';
import { computeCapabilityOf } from '../device.js';

const MAX_INT = 2 ** 31 - 1;

function dims(p: Pick<KernelParams, 'inTypes' | 'attrs'>): GroupedScaledDims | string {
  try {
    return checkGrouped(p.inTypes, p.attrs);
  } catch (e) {
    return (e as Error).message;
  }
}

function limits(n: GroupedScaledDims, p: KernelParams): true | string {
  if (p.attrs.scaleLayout !== 'gemm') return "takes scales in scaleLayout 'gemm' (quantize with scaleLayout 'gemm' / 'tiled128x4')";
  if (Math.max(n.R, n.K, n.N) > MAX_INT) return `takes R, K and N up to 2^31 - 1, not ${n.R}, ${n.K} and ${n.N}`;
  if (Math.ceil(n.N / 64) > 65535) return `takes N up to ${65535 * 64}, not ${n.N}`;
  if (n.E > 8192) return `takes at most 8192 experts, not ${n.E}`;
  return true;
}

/** FP8 blockwise: groupedScaledGemm (the Hopper kernel, or the general path on any GPU). */
function supportsBlock(p: KernelParams): true | string {
  const n = dims(p);
  if (typeof n === 'string') return n;
  if (n.aScaling !== 'block1x128') return `takes FP8 blockwise scaling (block1x128 × block128x128), not ${n.aScaling}: grouped_scaled_matmul_sm100 takes mx32 and nv16`;
  return limits(n, p);
}

/** d = the grouped FP8 blockwise product through groupedScaledGemm on the call's stream. */
function runBlock(c: CudaCall<KernelParams>, ops: NativeEntries): void {
  const n = dims(c) as GroupedScaledDims;
  const [a, aScale, b, bScale, offsets] = c.inputs;
  ops.groupedScaledGemm(c.stream, n.R, n.K, n.N, n.E, FP8_CODE[n.aFormat as 'e4m3' | 'e5m2'], FP8_CODE[n.bFormat as 'e4m3' | 'e5m2'], DTYPE_CODE[c.attrs.outDtype as 'bf16' | 'f32'], a!, aScale!, b!, bScale!, offsets!, c.outputs[0]!);
  if (c.checkIndices !== false) ops.opsErrorCheck(c.stream);
}

registerCuda<KernelParams>({ op: 'grouped_scaled_matmul', name: 'grouped_scaled_matmul_cuda', needs: ['groupedScaledGemm', 'opsErrorCheck'], supports: supportsBlock, run: runBlock });

/**
 * MXFP8 and NVFP4: groupedBlockScaledGemm, the Blackwell kernel (tcgen05 block-scaled MMA; compiled,
 * never run: no Blackwell GPU here). It has no other path, so the candidate declines off Blackwell
 * (compute capability 10.x), and for shapes the kernel does not take: e4m3 × e4m3 only for MXFP8, K a
 * multiple of 128 (MXFP8) or 256 (NVFP4), N of 128, at most 2048 experts, at least one row, bf16 out.
 */
function supportsSm100(p: KernelParams): true | string {
  const n = dims(p);
  if (typeof n === 'string') return n;
  if (n.aScaling !== 'mx32' && n.aScaling !== 'nv16') return `takes mx32 or nv16 scaling, not ${n.aScaling}`;
  const base = limits(n, p);
  if (base !== true) return base;
  if (n.aScaling === 'mx32' && (n.aFormat !== 'e4m3' || n.bFormat !== 'e4m3')) return `takes e4m3 × e4m3 MXFP8 operands, not ${n.aFormat} × ${n.bFormat}`;
  const kStep = n.aScaling === 'mx32' ? 128 : 256;
  if (n.K % kStep !== 0 || n.N % 128 !== 0) return `takes K a multiple of ${kStep} and N of 128, not K ${n.K} and N ${n.N}`;
  if (n.E > 2048 || n.R < 1) return `takes 1 to 2048 experts and at least one row, not E ${n.E} and R ${n.R}`;
  if (p.attrs.outDtype !== 'bf16') return `writes bf16, not ${String(p.attrs.outDtype)}`;
  const cc = computeCapabilityOf(p.device);
  if (cc === null || !cc.startsWith('10.')) return `runs on Blackwell (compute capability 10.x) only, not ${cc ?? 'an unknown GPU'}; compiled for sm_100f, never run (no Blackwell GPU in the project)`;
  return true;
}

function runSm100(c: CudaCall<KernelParams>, ops: NativeEntries): void {
  const n = dims(c) as GroupedScaledDims;
  const [a, aScale, b, bScale, offsets, aGlobal, bGlobal] = c.inputs;
  const nv = n.aScaling === 'nv16';
  ops.groupedBlockScaledGemm(c.stream, n.R, n.K, n.N, n.E, FORMAT_CODE[nv ? 'nvfp4' : 'mxfp8-e4m3'], a!, aScale!, b!, bScale!, nv ? aGlobal! : null, nv ? bGlobal! : null, offsets!, c.outputs[0]!);
  if (c.checkIndices !== false) ops.opsErrorCheck(c.stream);
}

registerCuda<KernelParams>({ op: 'grouped_scaled_matmul', name: 'grouped_scaled_matmul_sm100', needs: ['groupedBlockScaledGemm', 'opsErrorCheck'], supports: supportsSm100, run: runSm100 });
