/**
 * CUDA candidates of grouped_matmul and grouped_matmul_wgrad (native/gemm/grouped_gemm.cu): FP32
 * accumulation in a fixed order, any float dtype (x, w and out in one); the native side takes the
 * Hopper kernel (TMA + wgmma) for bf16 / f16 with K and N multiples of 64 on a compute capability
 * 9.0 device, and its general SIMT path otherwise.
 * The offsets are read on the device; bad offsets are recorded in the moe error word, and the run
 * synchronises through opsErrorCheck and throws INVALID_ARGUMENT naming the entry unless the call
 * says `checkIndices: false` (as the index-taking ops do, see nn.ts).
 */
import type { KernelParams } from '../op.js';
import { registerCuda } from '@deepwell/kernels-native';
import { checkIndicesAfter, code, oneFloatStorage } from './nn.js';

const I32_MAX = 2 ** 31 - 1;
const MAX_EXPERTS = 8192;
const MAX_TILED = 65535 * 64; // a dimension the grid tiles by 64 in y

function sizes(p: KernelParams, wgrad: boolean): true | string {
  const [R, K] = p.inTypes[0]!.shape as [number, number];
  const N = wgrad ? p.inTypes[1]!.shape[1]! : p.outTypes[0]!.shape[1]!;
  const E = p.inTypes[2]!.shape[0]! - 1;
  for (const [v, max, what] of [[R, I32_MAX, 'rows'], [K, I32_MAX, 'K'], [N, I32_MAX, 'N'], [E, MAX_EXPERTS, 'experts']] as const) if (v > max) return `${what} ${v} is above ${max}`;
  if ((wgrad ? K : N) > MAX_TILED) return `${wgrad ? 'K' : 'N'} ${wgrad ? K : N} is above ${MAX_TILED}`;
  if (R * K > Number.MAX_SAFE_INTEGER || E * K * N > Number.MAX_SAFE_INTEGER) return 'a tensor too large to index';
  return true;
}

registerCuda<KernelParams>({
  op: 'grouped_matmul',
  name: 'grouped_matmul_cuda',
  needs: ['groupedGemm'],
  supports: (p) => {
    const f = oneFloatStorage(p);
    return f === true ? sizes(p, false) : f;
  },
  run: (call, ops) => {
    const [R, K] = call.inTypes[0]!.shape as [number, number];
    const N = call.outTypes[0]!.shape[1]!;
    const E = call.inTypes[2]!.shape[0]! - 1;
    ops.groupedGemm(call.stream, code(call.inTypes[0]!), R, K, N, E, call.attrs.transposeW ? 1 : 0, call.inputs[0]!, call.inputs[1]!, call.inputs[2]!, call.outputs[0]!);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'grouped_matmul_wgrad',
  name: 'grouped_matmul_wgrad_cuda',
  needs: ['groupedGemmWgrad'],
  supports: (p) => {
    const f = oneFloatStorage(p);
    return f === true ? sizes(p, true) : f;
  },
  run: (call, ops) => {
    const [R, K] = call.inTypes[0]!.shape as [number, number];
    const N = call.inTypes[1]!.shape[1]!;
    const E = call.attrs.experts as number;
    ops.groupedGemmWgrad(call.stream, code(call.inTypes[0]!), R, K, N, E, call.inputs[0]!, call.inputs[1]!, call.inputs[2]!, call.outputs[0]!);
    checkIndicesAfter(call, ops);
  },
});
