/**
 * The CUDA candidates of grouped_scaled_matmul_gelu, _dgelu and _swiglu: kernels-native's
 * groupedScaledGemmAct and groupedScaledGemmSwiglu (native/gemm/grouped_gemm.cu), the FP8 blockwise
 * grouped GEMM of cuda/grouped_scaled_matmul.ts with an epilogue: 'gelu' writes aux = pre =
 * bf16(product) and d = bf16(gelu(pre)); 'dgelu' reads aux = pre and writes d = bf16(bf16(product) ·
 * gelu'(pre)); the SwiGLU entry computes both products of a tile (b, the gate weight w1; b3, the up
 * weight w3) and writes gate = bf16(a · w1), up = bf16(a · w3) and d = bf16(silu(gate) · up); then
 * each quantizes d rowwise in 1 × 128 blocks as quantize's fp8-block1x128 (e4m3 codes q [R, N],
 * scales qScale [N/128, R], the 'gemm' layout). On a compute capability 9.0 GPU it runs the Hopper
 * kernel (the unfused kernel's main loop, so the products' bits are the unfused GEMM's); elsewhere
 * the addon's general path. The ops are made by fuse_scaled_grouped.ts, which asks the registry
 * first, so where this build's addon lacks the entry (`needs`) the graph simply stays unfused.
 *
 * They decline, with the reason, what the op's shape rule refuses (N not a multiple of 128, scales
 * not in the 'gemm' layout, outputs other than bf16, w3 not of w1's type) and sizes the kernels do
 * not take: from 2^31, N above 65535 tiles of 64, more than 8192 experts. Bad offsets are recorded
 * on the device and thrown by the error check after the call (INVALID_ARGUMENT naming the entry),
 * unless the call says `checkIndices: false` (a captured step checks later). Their test is
 * test/grouped_act_gpu.test.ts.
 */
import { FP8_CODE, GROUPED_EPILOGUE_CODE, registerCuda, type CudaCall, type NativeEntries } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import { GROUPED_DGELU_OP, GROUPED_GELU_OP, GROUPED_SWIGLU_OP, checkGroupedAct, checkGroupedSwiglu, type GroupedActDims } from '../ops/grouped_scaled_matmul_act.js';

const MAX_INT = 2 ** 31 - 1;

function dims(p: Pick<KernelParams, 'op' | 'inTypes' | 'attrs'>): GroupedActDims | string {
  try {
    return p.op === GROUPED_SWIGLU_OP ? checkGroupedSwiglu(p.inTypes, p.attrs) : checkGroupedAct(p.op as typeof GROUPED_GELU_OP | typeof GROUPED_DGELU_OP, p.inTypes, p.attrs);
  } catch (e) {
    return (e as Error).message;
  }
}

function supports(p: KernelParams): true | string {
  const n = dims(p);
  if (typeof n === 'string') return n;
  if (Math.max(n.R, n.K, n.N) > MAX_INT) return `takes R, K and N up to 2^31 - 1, not ${n.R}, ${n.K} and ${n.N}`;
  if (Math.ceil(n.N / 64) > 65535) return `takes N up to ${65535 * 64}, not ${n.N}`;
  if (n.E > 8192) return `takes at most 8192 experts, not ${n.E}`;
  return true;
}

const fp8 = (f: string) => FP8_CODE[f as 'e4m3' | 'e5m2'];

/** gelu: d = outputs[0], aux (pre, written) = outputs[1], q = outputs[2], qScale = outputs[3]. */
function runGelu(c: CudaCall<KernelParams>, ops: NativeEntries): void {
  const n = dims(c) as GroupedActDims;
  const [a, aScale, b, bScale, offsets] = c.inputs;
  const [d, aux, q, qScale] = c.outputs;
  ops.groupedScaledGemmAct(c.stream, n.R, n.K, n.N, n.E, fp8(n.aFormat), fp8(n.bFormat), GROUPED_EPILOGUE_CODE.gelu, a!, aScale!, b!, bScale!, offsets!, d!, aux!, q!, qScale!);
  if (c.checkIndices !== false) ops.opsErrorCheck(c.stream);
}

/** dgelu: aux (pre, read) = inputs[5], d = outputs[0], q = outputs[1], qScale = outputs[2]. */
function runDgelu(c: CudaCall<KernelParams>, ops: NativeEntries): void {
  const n = dims(c) as GroupedActDims;
  const [a, aScale, b, bScale, offsets, aux] = c.inputs;
  const [d, q, qScale] = c.outputs;
  ops.groupedScaledGemmAct(c.stream, n.R, n.K, n.N, n.E, fp8(n.aFormat), fp8(n.bFormat), GROUPED_EPILOGUE_CODE.dgelu, a!, aScale!, b!, bScale!, offsets!, d!, aux!, q!, qScale!);
  if (c.checkIndices !== false) ops.opsErrorCheck(c.stream);
}

/** swiglu: b (w1) and b3 (w3) with their scales; d = outputs[0], gate = outputs[1], up = outputs[2], q = outputs[3], qScale = outputs[4]. */
function runSwiglu(c: CudaCall<KernelParams>, ops: NativeEntries): void {
  const n = dims(c) as GroupedActDims;
  const [a, aScale, b1, b1Scale, b3, b3Scale, offsets] = c.inputs;
  const [d, gate, up, q, qScale] = c.outputs;
  ops.groupedScaledGemmSwiglu(c.stream, n.R, n.K, n.N, n.E, fp8(n.aFormat), fp8(n.bFormat), a!, aScale!, b1!, b1Scale!, b3!, b3Scale!, offsets!, d!, gate!, up!, q!, qScale!);
  if (c.checkIndices !== false) ops.opsErrorCheck(c.stream);
}

const needs = ['groupedScaledGemmAct', 'opsErrorCheck'] as const;
registerCuda<KernelParams>({ op: GROUPED_GELU_OP, name: `${GROUPED_GELU_OP}_cuda`, needs: [...needs], supports, run: runGelu });
registerCuda<KernelParams>({ op: GROUPED_DGELU_OP, name: `${GROUPED_DGELU_OP}_cuda`, needs: [...needs], supports, run: runDgelu });
registerCuda<KernelParams>({ op: GROUPED_SWIGLU_OP, name: `${GROUPED_SWIGLU_OP}_cuda`, needs: ['groupedScaledGemmSwiglu', 'opsErrorCheck'], supports, run: runSwiglu });
