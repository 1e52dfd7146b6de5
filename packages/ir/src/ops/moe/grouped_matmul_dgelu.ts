/**
 * grouped_matmul_dgelu: out = gelu_backward(grouped_matmul(g, w, offsets), pre), the GELU backward
 * applied to a grouped product: out = product * gelu'(pre) (tanh GELU). Never written by models: the
 * fusion pass (passes/fuse-grouped.ts) makes it at compile time from a grouped_matmul whose only use
 * is the gradient input of a gelu_backward — in a GELU expert MLP's backward, the data gradient
 * dh = dy · w2ᵀ feeding gelu_backward(dh, pre) — so a GPU multiplies by gelu'(pre) in the grouped
 * GEMM's epilogue (the product is never written).
 *   g, w, offsets and attribute transposeW as grouped_matmul's, pre: F[R, N] (the product's shape
 *   and dtype) -> out: F[R, N].
 * The reference is exactly the ops it replaces: grouped_matmul, the product rounded to its storage
 * as the unfused graph stored it, then gelu_backward; the CUDA epilogue rounds the FP32 product the
 * same way before multiplying. Compile-time only: no gradient rule.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/grouped_gemm.ts; the
 * native kernel is native/gemm/grouped_gemm.cu (epilogue 'dgelu'); tested in
 * packages/ir/test/grouped_fusion.test.ts, dtypes.test.ts, cuda-grouped.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, shapeError } from '../../op.js';
import { roundTo } from '../../interpret.js';
import { sameShape } from '../../types.js';
import { sameFloat } from '../float.js';
import { geluBackwardOp } from '../tensor/gelu_backward.js';
import { groupedMatmulOp } from './grouped_matmul.js';

export const groupedMatmulDgeluOp = defineOp({
  name: 'grouped_matmul_dgelu',
  doc: "out = grouped_matmul(g, w, offsets) * gelu'(pre); made by fusion",
  inputs: ['g', 'w', 'offsets', 'pre'],
  outputs: ['out'],
  attrs: { transposeW: { kind: 'bool', default: false } },
  infer: ([g, w, offsets, pre], attrs) => {
    sameFloat('grouped_matmul_dgelu', [['g', g!], ['w', w!], ['pre', pre!]]);
    const [prod] = groupedMatmulOp.infer([g!, w!, offsets!], attrs);
    if (!sameShape(pre!.shape, prod!.shape)) {
      shapeError('grouped_matmul_dgelu', `Expected the product's shape [${prod!.shape.join(', ')}] for input 'pre' but received [${pre!.shape.join(', ')}]`);
    }
    return [prod!];
  },
  reference: (ctx) => {
    const { inputs: [g, w, offsets, pre], outputs: [out], inTypes, outTypes, attrs } = ctx;
    const t = outTypes[0]!;
    // The product as the unfused grouped_matmul stored it (an array of out's kind, rounded to its dtype).
    const prod = new (out!.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(out!.length);
    groupedMatmulOp.reference({ inputs: [g!, w!, offsets!], outputs: [prod], inTypes: inTypes.slice(0, 3), outTypes: [t], attrs });
    roundTo(t.dtype, prod);
    geluBackwardOp.reference({ inputs: [prod, pre!], outputs: [out!], inTypes: [t, inTypes[3]!], outTypes: [t], attrs: {} });
  },
  flops: (ins, outs, attrs) => groupedMatmulOp.flops!(ins.slice(0, 3), outs, attrs) + geluBackwardOp.flops!([outs[0]!, ins[3]!], outs, {}),
});

/** grouped_matmul(g, w, offsets) * gelu'(pre). */
export function groupedMatmulDgelu(g: Sym, w: Sym, offsets: Sym, pre: Sym, options: { transposeW?: boolean } = {}): Sym {
  return builderOf(g, 'g of groupedMatmulDgelu').op1('grouped_matmul_dgelu', [g, w, offsets, pre], { transposeW: options.transposeW ?? false });
}
