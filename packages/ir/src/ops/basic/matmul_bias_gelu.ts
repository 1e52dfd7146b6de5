/**
 * matmul_bias_gelu: pre = op(a) @ op(b) + bias, out = gelu(pre) (tanh GELU), both returned: `pre`
 * is what gelu_backward needs. Never written by models: the fusion pass (passes/fuse-epilogues.ts)
 * makes it at compile time from a matmul_bias whose product feeds a gelu, so a GPU runs the three as
 * one GEMM with cuBLASLt's GELU_AUX_BIAS epilogue (the product is written once, as pre, and never
 * read back for the activation).
 *   a, b, bias as matmul_bias; attributes transA, transB -> out: F[..., M, N], pre: F[..., M, N].
 * The reference is exactly the ops it replaces: matmul_bias, pre rounded to its storage as the
 * unfused graph stored it, then gelu. Compile-time only: no gradient rule.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/gemm.ts; the native
 * kernel is in native/gemm/ (cuBLASLt through gemm.cpp; our fallback kernel gemm_fallback.cu);
 * tested in packages/ir/test/compile.test.ts, fusion.test.ts, cuda-fused.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp } from '../../op.js';
import { roundTo } from '../../interpret.js';
import { numel } from '../../types.js';
import { geluOp } from '../tensor/gelu.js';
import { matmulBiasOp } from './matmul_bias.js';

export const matmulBiasGeluOp = defineOp({
  name: 'matmul_bias_gelu',
  doc: 'pre = op(a) @ op(b) + bias, out = gelu(pre); made by fusion',
  inputs: ['a', 'b', 'bias'],
  outputs: ['out', 'pre'],
  attrs: { transA: { kind: 'bool', default: false }, transB: { kind: 'bool', default: false } },
  infer: (inputs, attrs) => {
    const [pre] = matmulBiasOp.infer(inputs, attrs);
    return [pre!, pre!];
  },
  reference: (ctx) => {
    const [out, pre] = ctx.outputs;
    const t = ctx.outTypes[1]!;
    matmulBiasOp.reference({ ...ctx, outputs: [pre!], outTypes: [t] });
    roundTo(t.dtype, pre!);
    geluOp.reference({ inputs: [pre!], outputs: [out!], inTypes: [t], outTypes: [t], attrs: {} });
  },
  flops: (ins, outs, attrs) => matmulBiasOp.flops!(ins, outs.slice(1), attrs) + geluOp.flops!(outs.slice(1), outs.slice(0, 1), {}),
});

/** [gelu(pre), pre] with pre = op(a) @ op(b) + bias. */
export function matmulBiasGelu(a: Sym, b: Sym, bias: Sym, attrs: { transA?: boolean; transB?: boolean } = {}): [Sym, Sym] {
  const [out, pre] = builderOf(a, 'a of matmulBiasGelu').op('matmul_bias_gelu', [a, b, bias], attrs);
  return [out!, pre!];
}
