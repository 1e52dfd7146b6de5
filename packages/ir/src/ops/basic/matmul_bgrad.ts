/**
 * matmul_bgrad: out = op(a) @ op(b), and bgrad[m] = Σ_k op(a)[m, k], the sum of each row of op(a).
 * With a = g (the output gradient of a Linear, [rows, M]) and transA, out is the weight gradient
 * gᵀ @ x and bgrad the bias gradient Σ_rows g, which is how the fusion pass
 * (passes/fuse-epilogues.ts) makes it: from such a matmul and the sum_to that reduced g for the
 * bias, so a GPU gets both from one GEMM with cuBLASLt's BGRADB epilogue (g is read once).
 *   a: F[M, K] (F[K, M] with transA), b: F[K, N] (F[N, K] with transB), 2-D only
 *   -> out: F[M, N], bgrad: F[M].
 * The reference is the two ops it replaces: the matmul, and the sum in float64 in the order sum_to
 * adds (k ascending), rounded once. Compile-time only: no gradient rule.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/gemm.ts; the native
 * kernel is in native/gemm/ (cuBLASLt through gemm.cpp; our fallback kernel gemm_fallback.cu);
 * tested in packages/ir/test/fusion.test.ts, cuda-fused.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectRank } from '../../op.js';
import { numel } from '../../types.js';
import { matmulOp } from './matmul.js';

export const matmulBgradOp = defineOp({
  name: 'matmul_bgrad',
  doc: 'out = op(a) @ op(b), bgrad = the row sums of op(a); made by fusion',
  inputs: ['a', 'b'],
  outputs: ['out', 'bgrad'],
  attrs: { transA: { kind: 'bool', default: false }, transB: { kind: 'bool', default: false } },
  infer: ([a, b], attrs) => {
    expectRank('matmul_bgrad', 'a', a!, 2);
    expectRank('matmul_bgrad', 'b', b!, 2);
    const [out] = matmulOp.infer([a!, b!], attrs);
    return [out!, { shape: [out!.shape[0]!], dtype: out!.dtype }];
  },
  reference: (ctx) => {
    const { inputs: [a], outputs: [out, bgrad], inTypes, attrs } = ctx;
    matmulOp.reference({ ...ctx, outputs: [out!], outTypes: ctx.outTypes.slice(0, 1) });
    const [r, c] = inTypes[0]!.shape as [number, number];
    const acc = new Float64Array(bgrad!.length);
    if (attrs.transA) for (let k = 0; k < r; k++) for (let m = 0; m < c; m++) acc[m]! += a![k * c + m]!;
    else for (let m = 0; m < r; m++) for (let k = 0; k < c; k++) acc[m]! += a![m * c + k]!;
    bgrad!.set(acc);
  },
  flops: (ins, outs, attrs) => matmulOp.flops!(ins, outs.slice(0, 1), attrs) + numel(ins[0]!.shape),
});

/** [op(a) @ op(b), the row sums of op(a)]. */
export function matmulBgrad(a: Sym, b: Sym, attrs: { transA?: boolean; transB?: boolean } = {}): [Sym, Sym] {
  const [out, bgrad] = builderOf(a, 'a of matmulBgrad').op('matmul_bgrad', [a, b], attrs);
  return [out!, bgrad!];
}
