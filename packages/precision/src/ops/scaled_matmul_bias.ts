/**
 * scaled_matmul_bias: scaled_matmul with a bias added in the GEMM's epilogue (cuBLASLt's BIAS), so
 * a Linear's forward product never makes a round trip through memory for its bias (the FP8 form of
 * matmul_bias). The precision policy's native rewrite makes it from a forward GEMM whose only use is
 * a bias_add.
 *
 *   a, aScale, b, bScale as scaled_matmul's; bias: outDtype [N]; the same attributes, outDtype
 *   'bf16' (the FP8 GEMM has no bias epilogue with f32 output)
 *   -> d: bf16 [M, N],  d[m, n] = Σ_k a(m, k)·sa(m, k) · b(n, k)·sb(n, k) + bias[n]
 *
 * Reference: scaled_matmul's, the bias added to the exact sum before the one rounding (the epilogue
 * adds it to the FP32 accumulator before the conversion). No gradient rule, as scaled_matmul. Every
 * scaling but nv16 (its tensor scales would be two more inputs, beside the bias).
 * CUDA candidate: ../cuda/scaled_matmul.ts (scaledGemmLt with the bias epilogue).
 */
import { DeepwellError } from '@deepwell/core';
import { defineOp, shapeError } from '@deepwell/ir';
import { GEMM_SCALE_LAYOUTS, SCALINGS, checkScaledMatmul, scaledMatmulReference } from './scaled_matmul.js';

export const scaledMatmulBiasOp = defineOp({
  name: 'scaled_matmul_bias',
  doc: 'd = (a·aScale) · (b·bScale)ᵀ + bias: the FP8 GEMM with its bias in the epilogue, rounded once to bf16',
  inputs: ['a', 'aScale', 'b', 'bScale', 'bias'],
  outputs: ['d'],
  attrs: {
    aScaling: { kind: 'string', oneOf: SCALINGS },
    bScaling: { kind: 'string', oneOf: SCALINGS },
    scaleLayout: { kind: 'string', oneOf: GEMM_SCALE_LAYOUTS },
    outDtype: { kind: 'string', oneOf: ['bf16'] },
    fastAccum: { kind: 'bool', default: false },
  },
  infer: (inTypes, attrs) => {
    if (attrs.aScaling === 'nv16' || attrs.bScaling === 'nv16') {
      throw new DeepwellError('INVALID_ARGUMENT', `scaled_matmul_bias: Expected a scaling other than nv16 (NVFP4's tensor scales are inputs of scaled_matmul only; add the bias after it) but received (${attrs.aScaling}, ${attrs.bScaling})`);
    }
    const n = checkScaledMatmul('scaled_matmul_bias', inTypes.slice(0, 4), attrs);
    const bias = inTypes[4]!;
    if (bias.dtype !== n.outDtype) throw new DeepwellError('INVALID_DTYPE', `scaled_matmul_bias: Expected ${n.outDtype} (outDtype) for input 'bias' but received ${bias.dtype}`);
    if (bias.shape.length !== 1 || bias.shape[0] !== n.N) shapeError('scaled_matmul_bias', `Expected [${n.N}] (N) for input 'bias' but received [${bias.shape.join(', ')}]`);
    return [{ shape: [n.M, n.N], dtype: n.outDtype }];
  },
  reference: ({ inputs, outputs: [d], inTypes, attrs }) => scaledMatmulReference('scaled_matmul_bias', inputs.slice(0, 4), d!, inTypes.slice(0, 4), attrs, inputs[4]!),
  flops: ([a, , b]) => 2 * a!.shape[0]! * b!.shape[0]! * a!.shape[1]! + a!.shape[0]! * b!.shape[0]!,
});
