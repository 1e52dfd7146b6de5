/**
 * matmul_bias: out = op(a) @ op(b) + bias, the bias (f32|bf16|f16 [N]) broadcast over rows. Never
 * written by models: the fusion pass (passes/fuse-matmul-bias.ts) makes it at compile time from a
 * matmul whose only use is a bias_add, so a GPU runs both as one GEMM with cuBLASLt's bias epilogue.
 * The reference is exactly the two ops it replaces (the product rounded to the output's storage,
 * then the bias added), so a fused graph computes on the CPU what the unfused one did, bit for bit.
 * Compile-time only, it has no gradient rule: autodiff runs before fusion.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/gemm.ts; the native
 * kernel is in native/gemm/ (cuBLASLt through gemm.cpp; our fallback kernel gemm_fallback.cu);
 * tested in packages/ir/test/basic.test.ts, compile.test.ts, fusion.test.ts, cuda-gemm.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, shapeError } from '../../op.js';
import { roundTo } from '../../interpret.js';
import { numel } from '../../types.js';
import { sameFloat } from '../float.js';
import { matmulOp } from './matmul.js';

export const matmulBiasOp = defineOp({
  name: 'matmul_bias',
  doc: 'out = op(a) @ op(b) + bias (bias over the last dimension); made by fusion',
  inputs: ['a', 'b', 'bias'],
  outputs: ['out'],
  attrs: { transA: { kind: 'bool', default: false }, transB: { kind: 'bool', default: false } },
  infer: ([a, b, bias], attrs) => {
    const [out] = matmulOp.infer([a!, b!], attrs);
    sameFloat('matmul_bias', [['a', a!], ['bias', bias!]]);
    if (bias!.shape.length !== 1 || bias!.shape[0] !== out!.shape.at(-1)) {
      shapeError('matmul_bias', `Expected a bias of shape [${out!.shape.at(-1)}] but received [${bias!.shape.join(', ')}]`);
    }
    return [out!];
  },
  reference: (ctx) => {
    const { inputs, outputs, inTypes, outTypes, attrs } = ctx;
    matmulOp.reference({ inputs: [inputs[0]!, inputs[1]!], outputs, inTypes: [inTypes[0]!, inTypes[1]!], outTypes, attrs });
    const out = outputs[0]!;
    // Round the product as the unfused matmul's output was stored: Float32Array rounds f32 on
    // assignment; a widened bf16/f16 product the executable rounded after the matmul: do it here.
    roundTo(outTypes[0]!.dtype, out);
    const bias = inputs[2]!;
    const N = bias.length;
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + bias[i % N]!;
  },
  flops: (ins, outs, attrs) => matmulOp.flops!(ins.slice(0, 2), outs, attrs) + numel(outs[0]!.shape),
});

export function matmulBias(a: Sym, b: Sym, bias: Sym, attrs: { transA?: boolean; transB?: boolean } = {}): Sym {
  return builderOf(a, 'a of matmulBias').op1('matmul_bias', [a, b, bias], attrs);
}
