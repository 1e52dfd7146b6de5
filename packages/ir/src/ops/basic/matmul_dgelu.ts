/**
 * matmul_dgelu: out = gelu_backward(op(a) @ op(b), pre), the GELU backward applied to a product:
 * out = (op(a) @ op(b)) * gelu'(pre) (tanh GELU). Never written by models: the fusion pass
 * (passes/fuse-epilogues.ts) makes it at compile time from a matmul whose only use is the gradient
 * input of a gelu_backward — in an MLP's backward, the data gradient dh = dy @ W_proj feeding
 * gelu_backward(dh, pre) with the pre-activation matmul_bias_gelu kept — so a GPU runs both as one
 * GEMM with cuBLASLt's DGELU epilogue (pre read as the epilogue's auxiliary input, the product
 * never written).
 *   a, b as matmul's (attributes transA, transB), pre: F[..., M, N] (the product's shape and
 *   dtype) -> out: F[..., M, N].
 * The reference is exactly the ops it replaces: matmul, the product rounded to its storage as the
 * unfused graph stored it, then gelu_backward. A GPU's DGELU epilogue applies gelu' to the FP32
 * product before the one rounding of out, so it differs from the reference by at most that
 * rounding of the product (the GPU test's bound says so). Compile-time only: no gradient rule.
 *
 * The bias gradient of the layer below (Σ_rows out) is not taken into this GEMM (cuBLASLt's
 * DGELU_BGRAD): the fusion pass already gets it from the weight-gradient GEMM that reads `out`
 * (matmul_bgrad, BGRADB), from the stored values the unfused graph sums; DGELU_BGRAD would sum the
 * unrounded products instead and save no read.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/gemm.ts; the native
 * kernel is in native/gemm/ (cuBLASLt through gemm.cpp; otherwise our GEMM, then the gelu_backward
 * kernel); tested in packages/ir/test/fusion.test.ts, dtypes.test.ts, cuda-fused.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, shapeError } from '../../op.js';
import { roundTo } from '../../interpret.js';
import { sameShape } from '../../types.js';
import { sameFloat } from '../float.js';
import { geluBackwardOp } from '../tensor/gelu_backward.js';
import { matmulOp } from './matmul.js';

export const matmulDgeluOp = defineOp({
  name: 'matmul_dgelu',
  doc: "out = (op(a) @ op(b)) * gelu'(pre); made by fusion",
  inputs: ['a', 'b', 'pre'],
  outputs: ['out'],
  attrs: { transA: { kind: 'bool', default: false }, transB: { kind: 'bool', default: false } },
  infer: ([a, b, pre], attrs) => {
    sameFloat('matmul_dgelu', [['a', a!], ['b', b!], ['pre', pre!]]);
    const [prod] = matmulOp.infer([a!, b!], attrs);
    if (!sameShape(pre!.shape, prod!.shape)) {
      shapeError('matmul_dgelu', `Expected the product's shape [${prod!.shape.join(', ')}] for input 'pre' but received [${pre!.shape.join(', ')}]`);
    }
    return [prod!];
  },
  reference: (ctx) => {
    const { inputs: [a, b, pre], outputs: [out], inTypes, outTypes, attrs } = ctx;
    const t = outTypes[0]!;
    // The product, stored as the unfused matmul stored it (in an array of out's kind, as the
    // interpreter holds the value, rounded to its dtype), then gelu_backward.
    const prod = new (out!.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(out!.length);
    matmulOp.reference({ inputs: [a!, b!], outputs: [prod], inTypes: inTypes.slice(0, 2), outTypes: [t], attrs });
    roundTo(t.dtype, prod);
    geluBackwardOp.reference({ inputs: [prod, pre!], outputs: [out!], inTypes: [t, inTypes[2]!], outTypes: [t], attrs: {} });
  },
  flops: (ins, outs, attrs) => matmulOp.flops!(ins.slice(0, 2), outs, attrs) + geluBackwardOp.flops!([outs[0]!, ins[2]!], outs, {}),
});

/** (op(a) @ op(b)) * gelu'(pre). */
export function matmulDgelu(a: Sym, b: Sym, pre: Sym, attrs: { transA?: boolean; transB?: boolean } = {}): Sym {
  return builderOf(a, 'a of matmulDgelu').op1('matmul_dgelu', [a, b, pre], attrs);
}
