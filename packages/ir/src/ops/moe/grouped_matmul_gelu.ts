/**
 * grouped_matmul_gelu: pre = grouped_matmul(x, w, offsets), out = gelu(pre) (tanh GELU), both
 * returned: `pre` is what gelu_backward needs. Never written by models: the fusion pass
 * (passes/fuse-grouped.ts) makes it at compile time from a grouped_matmul whose product feeds a
 * gelu — a GELU expert MLP's first GEMM — so a GPU applies the activation in the grouped GEMM's
 * epilogue (the product is written once, as pre, and never read back for the activation).
 *   x, w, offsets and attribute transposeW as grouped_matmul's -> out: F[R, N], pre: F[R, N].
 * The reference is exactly the ops it replaces: grouped_matmul, pre rounded to its storage as the
 * unfused graph stored it, then gelu; the CUDA epilogue rounds the FP32 product to pre's dtype and
 * applies gelu to that, as the reference does. Compile-time only: no gradient rule.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/grouped_gemm.ts; the
 * native kernel is native/gemm/grouped_gemm.cu (epilogue 'gelu'); tested in
 * packages/ir/test/grouped_fusion.test.ts, dtypes.test.ts, cuda-grouped.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp } from '../../op.js';
import { roundTo } from '../../interpret.js';
import { geluOp } from '../tensor/gelu.js';
import { groupedMatmulOp } from './grouped_matmul.js';

export const groupedMatmulGeluOp = defineOp({
  name: 'grouped_matmul_gelu',
  doc: 'pre = grouped_matmul(x, w, offsets), out = gelu(pre); made by fusion',
  inputs: ['x', 'w', 'offsets'],
  outputs: ['out', 'pre'],
  attrs: { transposeW: { kind: 'bool', default: false } },
  infer: (inputs, attrs) => {
    const [pre] = groupedMatmulOp.infer(inputs, attrs);
    return [pre!, pre!];
  },
  reference: (ctx) => {
    const [out, pre] = ctx.outputs;
    const t = ctx.outTypes[1]!;
    groupedMatmulOp.reference({ ...ctx, outputs: [pre!], outTypes: [t] });
    roundTo(t.dtype, pre!);
    geluOp.reference({ inputs: [pre!], outputs: [out!], inTypes: [t], outTypes: [t], attrs: {} });
  },
  flops: (ins, outs, attrs) => groupedMatmulOp.flops!(ins, outs.slice(1), attrs) + geluOp.flops!(outs.slice(1), outs.slice(0, 1), {}),
});

/** [gelu(pre), pre] with pre = grouped_matmul(x, w, offsets). */
export function groupedMatmulGelu(x: Sym, w: Sym, offsets: Sym, options: { transposeW?: boolean } = {}): [Sym, Sym] {
  const [out, pre] = builderOf(x, 'x of groupedMatmulGelu').op('grouped_matmul_gelu', [x, w, offsets], { transposeW: options.transposeW ?? false });
  return [out!, pre!];
}
