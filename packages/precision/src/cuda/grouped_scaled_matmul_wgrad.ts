/**
 * grouped_scaled_matmul_wgrad's CUDA candidate: kernels-native's groupedScaledGemmWgrad (native/
 * gemm/grouped_fp8_wgrad.cu), the FP8 blockwise expert weight gradient. On a compute capability 9.0
 * GPU with K and N multiples of 64 it runs our Hopper kernel (gemm/grouped_fp8_wgrad_sm90.cuh:
 * persistent, TMA and FP8 wgmma over each expert's padded 128-token blocks, each block's partial
 * promoted into FP32 with the product of its row and column scales); elsewhere the addon's general
 * path (the codes decoded, the same promotion). Bad offsets, and offsets whose padded rows do not fit
 * in P, are recorded on the device and thrown by the error check after the call (INVALID_ARGUMENT,
 * as the reference), unless the call says `checkIndices: false` (a captured step checks later).
 * Its test is test/kgrouped_gpu.test.ts.
 *
 * On by default. DEEPWELL_FP8_WGRAD=emulated turns it off (read at each selection): the precision
 * policy then keeps the weight gradient emulated (fake_quant → the BF16 grouped weight gradient; it
 * asks the registry first) and says why. It was opt-in in session 25, which found it was why FP8 MoE
 * trainings did not repeat bit for bit (docs/gpu-runs/2026-12-06-session25); session 26 added the
 * proxy fence the Hopper kernel lacked, and the reruns repeat (docs/gpu-runs/2026-12-06-session26).
 */
import { DTYPE_CODE, FP8_CODE, registerCuda, type CudaCall, type NativeEntries } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import { checkGroupedWgrad } from '../ops/grouped_scaled_matmul_wgrad.js';

const MAX_INT = 2 ** 31 - 1;

/** The environment variable that, set to 'emulated', turns the native FP8 weight gradient off (read at each selection). */
export const FP8_WGRAD_ENV = 'DEEPWELL_FP8_WGRAD';

function supports(p: KernelParams): true | string {
  if (process.env[FP8_WGRAD_ENV] === 'emulated') return `is off (${FP8_WGRAD_ENV}=emulated)`;
  let d: ReturnType<typeof checkGroupedWgrad>;
  try {
    d = checkGroupedWgrad(p.inTypes, p.attrs);
  } catch (e) {
    return (e as Error).message;
  }
  if (Math.max(d.K, d.N, d.P) > MAX_INT) return `takes K, N and P up to 2^31 - 1, not ${d.K}, ${d.N} and ${d.P}`;
  if (Math.ceil(d.K / 64) > 65535 || Math.ceil(d.N / 64) > 65535) return `takes K and N up to ${65535 * 64}, not ${d.K} and ${d.N}`;
  if (d.E > 8192) return `takes at most 8192 experts, not ${d.E}`;
  return true;
}

function run(c: CudaCall<KernelParams>, ops: NativeEntries): void {
  const d = checkGroupedWgrad(c.inTypes, c.attrs);
  const [a, aScale, b, bScale, offsets] = c.inputs;
  ops.groupedScaledGemmWgrad(c.stream, d.K, d.N, d.P, d.E, FP8_CODE[d.aFormat], FP8_CODE[d.bFormat], DTYPE_CODE[c.attrs.outDtype as 'bf16' | 'f32'], a!, aScale!, b!, bScale!, offsets!, c.outputs[0]!);
  if (c.checkIndices !== false) ops.opsErrorCheck(c.stream);
}

registerCuda<KernelParams>({ op: 'grouped_scaled_matmul_wgrad', name: 'grouped_scaled_matmul_wgrad_cuda', needs: ['groupedScaledGemmWgrad', 'opsErrorCheck'], supports, run });
