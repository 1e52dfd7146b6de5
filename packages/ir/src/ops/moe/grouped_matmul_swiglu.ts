/**
 * grouped_matmul_swiglu: gate = grouped_matmul(x, w1, offsets), up = grouped_matmul(x, w3, offsets),
 * out = swiglu(gate, up) = silu(gate) · up, all three returned: gate and up are what swiglu's
 * gradient reads. Never written by models: the fusion pass (passes/fuse-grouped.ts) makes it at
 * compile time from the two grouped GEMMs of one input that feed a swiglu — a SwiGLU expert MLP's
 * first layer — so a GPU computes both products of a tile from one load of x and applies the
 * activation in the epilogue (neither product is read back for it).
 *   x: F[R, K], w1, w3: F[E, K, N] (F[E, N, K] with transposeW), offsets: i32[E + 1] ->
 *   out, gate, up: F[R, N].
 * The reference is exactly the ops it replaces: the two grouped_matmuls, each product rounded to
 * its storage as the unfused graph stored it, then swiglu; the CUDA epilogue rounds both FP32
 * products the same way before the activation. Compile-time only: no gradient rule.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/grouped_gemm.ts; the
 * native kernel is native/gemm/grouped_gemm.cu (epilogue 'swiglu'); tested in
 * packages/ir/test/grouped_fusion.test.ts, dtypes.test.ts, cuda-grouped.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, shapeError } from '../../op.js';
import { roundTo } from '../../interpret.js';
import { sameShape, shapeStr } from '../../types.js';
import { sameFloat } from '../float.js';
import { swigluOp } from '../tensor/swiglu.js';
import { groupedMatmulOp } from './grouped_matmul.js';

export const groupedMatmulSwigluOp = defineOp({
  name: 'grouped_matmul_swiglu',
  doc: 'gate = grouped_matmul(x, w1), up = grouped_matmul(x, w3), out = silu(gate) · up; made by fusion',
  inputs: ['x', 'w1', 'w3', 'offsets'],
  outputs: ['out', 'gate', 'up'],
  attrs: { transposeW: { kind: 'bool', default: false } },
  infer: ([x, w1, w3, offsets], attrs) => {
    sameFloat('grouped_matmul_swiglu', [['x', x!], ['w1', w1!], ['w3', w3!]]);
    if (!sameShape(w1!.shape, w3!.shape)) shapeError('grouped_matmul_swiglu', `Expected the shape of w1 ${shapeStr(w1!)} for input 'w3' but received ${shapeStr(w3!)}`);
    const [prod] = groupedMatmulOp.infer([x!, w1!, offsets!], attrs);
    return [prod!, prod!, prod!];
  },
  reference: (ctx) => {
    const { inputs: [x, w1, w3, offsets], outputs: [out, gate, up], inTypes, outTypes, attrs } = ctx;
    const t = outTypes[0]!;
    for (const [w, wt, prod] of [[w1!, inTypes[1]!, gate!], [w3!, inTypes[2]!, up!]] as const) {
      groupedMatmulOp.reference({ inputs: [x!, w, offsets!], outputs: [prod], inTypes: [inTypes[0]!, wt, inTypes[3]!], outTypes: [t], attrs });
      roundTo(t.dtype, prod);
    }
    swigluOp.reference({ inputs: [gate!, up!], outputs: [out!], inTypes: [t, t], outTypes: [t], attrs: {} });
  },
  flops: (ins, outs, attrs) =>
    2 * groupedMatmulOp.flops!([ins[0]!, ins[1]!, ins[3]!], outs.slice(1, 2), attrs) + swigluOp.flops!(outs.slice(1), outs.slice(0, 1), {}),
});

/** [silu(gate) · up, gate, up] with gate = grouped_matmul(x, w1, offsets), up = grouped_matmul(x, w3, offsets). */
export function groupedMatmulSwiglu(x: Sym, w1: Sym, w3: Sym, offsets: Sym, options: { transposeW?: boolean } = {}): [Sym, Sym, Sym] {
  const [out, gate, up] = builderOf(x, 'x of groupedMatmulSwiglu').op('grouped_matmul_swiglu', [x, w1, w3, offsets], { transposeW: options.transposeW ?? false });
  return [out!, gate!, up!];
}
