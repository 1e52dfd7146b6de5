/**
 * The CUDA candidate of scaled_matmul: kernels-native's scaledGemmLt (native/gemm/gemm_scaled.cpp),
 * cuBLASLt's FP8 GEMM — tensor scales through scale pointers (SCALAR_32F), row scales
 * (OUTER_VEC_32F), 1 × 128 and 128 × 128 block scales (VEC128_32F, BLK128x128_32F; cuBLAS >= 12.9
 * on Hopper), FP32 accumulation, bf16 or f32 out — and Blackwell's block-scaled GEMMs: MXFP8 (mx32,
 * VEC32_UE8M0) and NVFP4 (nv16, VEC16_UE4M3, its two tensor scales in alpha). The op's operands are
 * already the GEMM's (K-major codes, dequantization scales), so the call passes them through as
 * they are.
 *
 * It declines, with the reason, what the op allows but the GEMM does not take:
 *   - block scales in the 'plain' layout (the GEMM reads the 'gemm' layout; quantizeTensor writes it
 *     with `scaleLayout: 'gemm'`, or 'tiled128x4' for MXFP8 / NVFP4);
 *   - the sizes gemm_scaled.cpp refuses: K % 16 (16-byte rows of codes; K % 32 with mx32 / nv16),
 *     M and N % 4 with block scaling, a row of D not a multiple of 16 bytes, sizes from 2^31;
 *   - a shape cuBLASLt has no algorithm for (scaledGemmLtSupported, asked at selection time: the
 *     addon caches its plans, so asking again is a lookup), or no cuBLASLt;
 *   - mx32 / nv16 on a GPU below compute capability 10.0: the addon says so without asking cuBLASLt
 *     (on Hopper that is the reason this candidate gives). The sm_100 path is compiled, never run:
 *     no Blackwell GPU is available to the project.
 * The checks are repeated here rather than left to the addon because the addon throws on them, and
 * a candidate must answer a reason instead.
 *
 * Workspace: cuBLASLt's, 32 MiB, as the BF16 GEMMs declare it (GEMM_LT_WORKSPACE): the plan places
 * it in the arena; the eager Tensor call (../scaled_matmul.ts) keeps one per device. With nv16 the
 * addon keeps alpha and beta in its first 256 bytes and gives cuBLASLt the rest.
 * scaled_matmul_bias is the same call with cuBLASLt's BIAS epilogue (bias of outDtype, [N]).
 */
import { DTYPE_CODE, EPILOGUE_CODE, FP8_CODE, SCALING_CODE, findLibrary, nativeEntries, registerCuda, type CudaCall, type DevArg, type NativeEntries } from '@deepwell/kernels-native';
import { GEMM_LT_WORKSPACE, type KernelParams } from '@deepwell/ir';
import { checkScaledMatmul, checkScaledMatmulDims, isBlockScaling, isMicroScaling, type ScaledMatmulDims } from '../ops/scaled_matmul.js';

/** The cuBLASLt workspace of one FP8 GEMM call (the BF16 GEMMs' figure). */
export const SCALED_GEMM_WORKSPACE = GEMM_LT_WORKSPACE;

const withBias = (p: Pick<KernelParams, 'op'>) => p.op === 'scaled_matmul_bias';
/** The GEMM's own inputs: all of scaled_matmul's (4, or 6 with nv16), scaled_matmul_bias's first 4. */
const gemmInputs = <T>(p: Pick<KernelParams, 'op'>, xs: readonly T[]): readonly T[] => (withBias(p) ? xs.slice(0, 4) : xs);

/** A call's sizes, or why the op itself refuses it. */
function dimsOf(p: KernelParams): ScaledMatmulDims | string {
  try {
    return checkScaledMatmul(p.op, gemmInputs(p, p.inTypes), p.attrs);
  } catch (e) {
    return (e as Error).message;
  }
}

/** What scaledGemmLt takes beyond the op's own rule (gemm_scaled.cpp's checkShape), else why not. */
export function scaledGemmLimits(n: ScaledMatmulDims): true | string {
  checkScaledMatmulDims(n, 'scaledGemmLimits');
  const block = isBlockScaling(n.aScaling);
  const micro = isMicroScaling(n.aScaling);
  if (block && n.layout !== 'gemm') return `takes block scales in scaleLayout 'gemm' (cuBLASLt's VEC128_32F / BLK128x128_32F layouts), not '${n.layout}': quantize with quantizeTensor(x, { format, scaleLayout: 'gemm' })`;
  if (micro && n.layout !== 'gemm') return `takes ${n.aScaling} scale codes in scaleLayout 'gemm' (cuBLASLt's 128 × 4 tiles), not '${n.layout}': quantize with quantizeTensor(x, { format, scaleLayout: 'tiled128x4' })`;
  if (Math.max(n.M, n.N, n.K) > 2 ** 31) return `takes M, N and K up to 2^31, not ${n.M}, ${n.N} and ${n.K}`;
  if (micro && n.K % 32 !== 0) return `takes K divisible by 32 with ${n.aScaling} scaling (16-byte rows of FP4 codes, whole scale tiles), not ${n.K}`;
  if (n.K % 16 !== 0) return `takes K divisible by 16 (16-byte rows of FP8 codes), not ${n.K}`;
  if (block && (n.M % 4 !== 0 || n.N % 4 !== 0)) return `takes M and N divisible by 4 with block scaling, not ${n.M} and ${n.N}`;
  const rowBytes = n.N * (n.outDtype === 'f32' ? 4 : 2);
  if (rowBytes % 16 !== 0) return `takes rows of d of a multiple of 16 bytes, not ${rowBytes} (N = ${n.N}, ${n.outDtype})`;
  return true;
}

/** The size, format and scaling arguments scaledGemmLt and scaledGemmLtSupported share. */
const shapeArgs = (n: ScaledMatmulDims) =>
  [n.M, n.N, n.K, FP8_CODE[n.aFormat], FP8_CODE[n.bFormat], SCALING_CODE[n.aScaling], SCALING_CODE[n.bScaling], DTYPE_CODE[n.outDtype], n.fastAccum ? 1 : 0] as const;

function supports(p: KernelParams): true | string {
  const n = dimsOf(p);
  if (typeof n === 'string') return n;
  return scaledGemmAvailable(n, withBias(p));
}

/**
 * Whether this machine runs the FP8 GEMM of `n` (with the bias epilogue when `bias`): the sizes
 * scaledGemmLt takes, cuBLASLt found, the addon's entry points, and cuBLASLt's own answer for the
 * shape on the current device (the addon caches its plans, so asking again is a lookup); else why
 * not. The candidate asks it at selection time, the precision policy before it rewrites a GEMM.
 */
export function scaledGemmAvailable(n: ScaledMatmulDims, bias: boolean): true | string {
  const limits = scaledGemmLimits(n);
  if (limits !== true) return limits;
  if (bias && n.outDtype === 'f32') return 'has no bias epilogue with f32 output';
  const lib = findLibrary('cublasLt');
  if (!lib.found) return `cuBLASLt not found (${lib.tried.at(-1)?.error ?? 'no candidates'})`;
  const entries = nativeEntries().entries;
  if (!entries || typeof entries.scaledGemmLtSupported !== 'function' || typeof entries.scaledGemmLt !== 'function') return 'the loaded @deepwell/kernels-native has no scaledGemmLt (rebuild it)';
  try {
    const why = entries.scaledGemmLtSupported(...shapeArgs(n), bias ? EPILOGUE_CODE.bias : EPILOGUE_CODE.none, SCALED_GEMM_WORKSPACE);
    return why === '' ? true : why;
  } catch (e) {
    return (e as Error).message;
  }
}

/** D = (a·sa)·(b·sb)ᵀ through cuBLASLt on the call's stream, with the call's workspace. */
export function runScaledGemm(c: CudaCall<KernelParams>, ops: NativeEntries): void {
  const n = checkScaledMatmul(c.op, gemmInputs(c, c.inTypes), c.attrs);
  const [a, aScale, b, bScale, fifth, sixth] = c.inputs as [DevArg, DevArg, DevArg, DevArg, DevArg | undefined, DevArg | undefined];
  const bias = withBias(c) ? fifth! : null;
  const [aGlobal, bGlobal] = n.aScaling === 'nv16' ? [fifth!, sixth!] : [null, null];
  ops.scaledGemmLt(c.stream, ...shapeArgs(n), a, aScale, b, bScale, c.outputs[0]!, bias ? EPILOGUE_CODE.bias : EPILOGUE_CODE.none, bias, aGlobal, bGlobal, c.workspace);
}

for (const op of ['scaled_matmul', 'scaled_matmul_bias']) {
  registerCuda<KernelParams>({
    op,
    name: `${op}_cublaslt`,
    priority: 200,
    needs: ['scaledGemmLt', 'scaledGemmLtSupported'],
    supports,
    workspace: () => SCALED_GEMM_WORKSPACE,
    run: runScaledGemm,
  });
}
