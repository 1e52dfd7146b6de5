/**
 * CUDA candidates of grouped_matmul and grouped_matmul_wgrad (native/gemm/grouped_gemm.cu), and of
 * the fused grouped_matmul_gelu, grouped_matmul_dgelu and grouped_matmul_swiglu (the same kernel
 * with an epilogue, native/gemm/grouped_epilogue.cuh): FP32 accumulation in a fixed order, any
 * float dtype (every float tensor in one); the native side takes the Hopper kernels (TMA + wgmma)
 * for bf16 / f16 with K and N multiples of 64 on a compute capability 9.0 device, and its general
 * SIMT path otherwise.
 * The offsets are read on the device; bad offsets are recorded in the moe error word, and the run
 * synchronises through opsErrorCheck and throws INVALID_ARGUMENT naming the entry unless the call
 * says `checkIndices: false` (as the index-taking ops do, see nn.ts).
 */
import type { KernelParams } from '../op.js';
import { GROUPED_EPILOGUE_CODE as EPI, registerCuda } from '@deepwell/kernels-native';
import { checkIndicesAfter, code, oneFloatStorage } from './nn.js';

const I32_MAX = 2 ** 31 - 1;
const MAX_EXPERTS = 8192;
const MAX_TILED = 65535 * 64; // a dimension the grid tiles by 64 in y

function sizes(p: KernelParams, wgrad: boolean, offsets = 2): true | string {
  const [R, K] = p.inTypes[0]!.shape as [number, number];
  const N = wgrad ? p.inTypes[1]!.shape[1]! : p.outTypes[0]!.shape[1]!;
  const E = p.inTypes[offsets]!.shape[0]! - 1;
  for (const [v, max, what] of [[R, I32_MAX, 'rows'], [K, I32_MAX, 'K'], [N, I32_MAX, 'N'], [E, MAX_EXPERTS, 'experts']] as const) if (v > max) return `${what} ${v} is above ${max}`;
  if ((wgrad ? K : N) > MAX_TILED) return `${wgrad ? 'K' : 'N'} ${wgrad ? K : N} is above ${MAX_TILED}`;
  if (R * K > Number.MAX_SAFE_INTEGER || E * K * N > Number.MAX_SAFE_INTEGER) return 'a tensor too large to index';
  return true;
}

/**
 * The forward grouped GEMM and its fused forms: which input is x, w, w3 (SwiGLU) and offsets, which
 * output is out, and which tensors the epilogue reads or writes (aux, aux2).
 */
const FORWARD = [
  { op: 'grouped_matmul', epilogue: EPI.none, w3: -1, offsets: 2, aux: null, aux2: null },
  { op: 'grouped_matmul_gelu', epilogue: EPI.gelu, w3: -1, offsets: 2, aux: { output: 1 }, aux2: null }, // outputs [out, pre]
  { op: 'grouped_matmul_dgelu', epilogue: EPI.dgelu, w3: -1, offsets: 2, aux: { input: 3 }, aux2: null }, // inputs [g, w, offsets, pre]
  { op: 'grouped_matmul_swiglu', epilogue: EPI.swiglu, w3: 2, offsets: 3, aux: { output: 1 }, aux2: { output: 2 } }, // [x, w1, w3, offsets] -> [out, gate, up]
] as const;

for (const f of FORWARD) {
  registerCuda<KernelParams>({
    op: f.op,
    name: `${f.op}_cuda`,
    needs: ['groupedGemm'],
    supports: (p) => {
      const fl = oneFloatStorage(p);
      return fl === true ? sizes(p, false, f.offsets) : fl;
    },
    run: (call, ops) => {
      const [R, K] = call.inTypes[0]!.shape as [number, number];
      const N = call.outTypes[0]!.shape[1]!;
      const E = call.inTypes[f.offsets]!.shape[0]! - 1;
      const pick = (t: { input: number } | { output: number } | null) => (t === null ? null : 'input' in t ? call.inputs[t.input]! : call.outputs[t.output]!);
      ops.groupedGemm(call.stream, code(call.inTypes[0]!), R, K, N, E, call.attrs.transposeW ? 1 : 0, call.inputs[0]!, call.inputs[1]!, call.inputs[f.offsets]!, call.outputs[0]!,
        f.epilogue, f.w3 >= 0 ? call.inputs[f.w3]! : null, pick(f.aux), pick(f.aux2));
      checkIndicesAfter(call, ops);
    },
  });
}

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
