/**
 * grouped_scaled_matmul_gelu and grouped_scaled_matmul_dgelu: the FP8 blockwise grouped GEMM of a
 * GELU expert MLP with the activation (forward) or its gradient (backward) and the quantization of
 * the result for the next GEMM done in its epilogue, so the bf16 activation is written once and never
 * read back to be quantized. Never written by models: fuse_scaled_grouped.ts makes them after the
 * precision policy's native rewrite (fp8-blockwise), as ir's fuse-grouped.ts makes grouped_matmul_gelu
 * and _dgelu in bf16.
 *
 *   a, aScale, b, bScale, offsets as grouped_scaled_matmul's with FP8 blockwise scaling (a: f8e4m3 |
 *   f8e5m2 [R, K] in 1 × 128 blocks, b: [E, N, K] in 128 × 128 tiles; scaleLayout 'gemm' and
 *   outDtype 'bf16' only: the fused kernel reads and writes nothing else), N a multiple of 128, R >= 1.
 *   gelu:  -> out bf16 [R, N] = gelu(pre), pre bf16 [R, N] = the product (kept for gelu_backward),
 *             codes, scales = quantize(out, fp8-block1x128, rowwise)
 *   dgelu: pre bf16 [R, N] (the forward's) as a sixth input
 *          -> out bf16 [R, N] = product · gelu'(pre), codes, scales = quantize(out, …)
 *   codes f8e4m3 [R, N], scales f32 [N/128, R] (the 'gemm' layout): quantize's own shape rule gives
 *   their types, so the fused and unfused graphs cannot disagree.
 *
 * The reference is exactly the ops they replace, each result rounded to bf16 where the unfused graph
 * stored it: grouped_scaled_matmul's (one rounding of the float64 sum to bf16), ir's gelu or
 * gelu_backward, then quantize's; so a fused graph interpreted on the CPU computes what the unfused
 * one did, bit for bit. The CUDA kernel (kernels-native's groupedScaledGemmAct) runs the unfused
 * kernel's main loop and rounds where the reference does. Compile-time only: no gradient rule.
 * CUDA candidates: ../cuda/grouped_scaled_matmul_act.ts. Tests: test/grouped_scaled_matmul_act.test.ts,
 * test/grouped_act_gpu.test.ts.
 */
import { DeepwellError, bf16BitsToF32, describe, f32ToBf16Bits, invalid } from '@deepwell/core';
import { defineOp, geluBackwardOp, geluOp, shapeError, type Attrs, type NumArray, type ValueType } from '@deepwell/ir';
import { checkGrouped, groupedScaledMatmulOp, type GroupedScaledDims } from './grouped_scaled_matmul.js';
import { checkInputTypes } from './quantize_kgrouped.js';
import { quantizeOp } from './quantize.js';

export const GROUPED_GELU_OP = 'grouped_scaled_matmul_gelu';
export const GROUPED_DGELU_OP = 'grouped_scaled_matmul_dgelu';
type ActOp = typeof GROUPED_GELU_OP | typeof GROUPED_DGELU_OP;

const GEMM_INPUTS = ['a', 'aScale', 'b', 'bScale', 'offsets'] as const;
/** The one form the fused kernel takes: grouped_scaled_matmul's attributes, each with its only value. */
const GEMM_ATTRS = { aScaling: 'block1x128', bScaling: 'block128x128', scaleLayout: 'gemm', outDtype: 'bf16' } as const;
const WHY: Record<keyof typeof GEMM_ATTRS, string> = {
  aScaling: 'FP8 blockwise: 1 × 128 activation blocks',
  bScaling: 'FP8 blockwise: 128 × 128 weight tiles',
  scaleLayout: "the kernel reads scales in the 'gemm' layout",
  outDtype: 'the epilogue writes bf16',
};
/** The quantization fused into the epilogue: what the next GEMM reads, as the policy quantizes it. */
export const EPILOGUE_QUANTIZE = { format: 'fp8-block1x128', direction: 'rowwise' } as const;

/** The attributes of both ops: grouped_scaled_matmul's, each allowed its one value (the precision policy's native rewrite sets them so). */
const ACT_ATTRS = {
  aScaling: { kind: 'string', oneOf: [GEMM_ATTRS.aScaling], default: GEMM_ATTRS.aScaling },
  bScaling: { kind: 'string', oneOf: [GEMM_ATTRS.bScaling], default: GEMM_ATTRS.bScaling },
  scaleLayout: { kind: 'string', oneOf: [GEMM_ATTRS.scaleLayout], default: GEMM_ATTRS.scaleLayout },
  outDtype: { kind: 'string', oneOf: [GEMM_ATTRS.outDtype], default: GEMM_ATTRS.outDtype },
} as const;

const str = (t: ValueType) => `${t.dtype}[${t.shape.join(', ')}]`;

/** A fused call's sizes, and the types of its product and of its quantized result (codes, scales). */
export interface GroupedActDims extends GroupedScaledDims {
  product: ValueType;
  quantized: [ValueType, ValueType];
}

/** Checks a call of `op` (input types and attributes) as its shape rule does; every error names the op and the argument. */
export function checkGroupedAct(op: ActOp, inTypes: readonly ValueType[], attrs: Attrs): GroupedActDims {
  const names = op === GROUPED_GELU_OP ? GEMM_INPUTS : [...GEMM_INPUTS, 'pre'];
  const types = checkInputTypes(op, inTypes, names);
  if (typeof attrs !== 'object' || attrs === null) invalid('an attributes object', `${op}'s attributes`, attrs);
  for (const [k, want] of Object.entries(GEMM_ATTRS) as [keyof typeof GEMM_ATTRS, string][]) {
    const v = attrs[k] ?? want;
    if (v !== want) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected '${want}' for attribute '${k}' (${WHY[k]}) but received ${describe(v)}`);
  }
  const dims = checkGrouped(types.slice(0, 5), attrs, op);
  const { R, N } = dims;
  if (N % 128 !== 0) shapeError(op, `Expected N (the output's columns, input 'b' [E, N, K]) a multiple of 128 (the epilogue quantizes each row in 1 × 128 blocks) but received N = ${N} (input 'b' ${str(types[2]!)})`);
  if (R < 1) shapeError(op, `Expected at least one row (R >= 1: the quantization, as quantize, takes no empty tensor) but received R = 0 (input 'a' ${str(types[0]!)})`);
  const product: ValueType = { shape: [R, N], dtype: 'bf16' };
  if (op === GROUPED_DGELU_OP) {
    const pre = types[5]!;
    if (pre.dtype !== 'bf16' || pre.shape.join() !== `${R},${N}`) {
      throw new DeepwellError(pre.dtype !== 'bf16' ? 'INVALID_DTYPE' : 'SHAPE_MISMATCH', `${op}: Expected bf16[${R}, ${N}] (the forward's pre-activation: the product's shape and dtype) for input 'pre' but received ${str(pre)}`);
    }
  }
  const [codes, scales] = quantizeOp.infer([product], EPILOGUE_QUANTIZE);
  return { ...dims, product, quantized: [codes!, scales!] };
}

/** Round a widened array to bf16 in place, as the interpreter stores a bf16 result (through float32). */
function roundBf16(a: NumArray): void {
  for (let i = 0; i < a.length; i++) a[i] = bf16BitsToF32(f32ToBf16Bits(a[i]!));
}

/** quantize(out) into codes and scales, with quantize's own reference. */
function quantizeInto(out: NumArray, codes: NumArray, scales: NumArray, d: GroupedActDims): void {
  quantizeOp.reference({ inputs: [out], outputs: [codes, scales], inTypes: [d.product], outTypes: d.quantized, attrs: EPILOGUE_QUANTIZE });
}

const gemmFlops = (ins: ValueType[], product: ValueType) => groupedScaledMatmulOp.flops!(ins.slice(0, 5), [product], GEMM_ATTRS);

export const groupedScaledMatmulGeluOp = defineOp({
  name: GROUPED_GELU_OP,
  doc: 'pre = grouped_scaled_matmul(a, aScale, b, bScale, offsets) (FP8 blockwise, bf16), out = gelu(pre), (codes, scales) = quantize(out, fp8-block1x128, rowwise); made by fusion',
  inputs: GEMM_INPUTS,
  outputs: ['out', 'pre', 'codes', 'scales'],
  attrs: ACT_ATTRS,
  infer: (inTypes, attrs) => {
    const d = checkGroupedAct(GROUPED_GELU_OP, inTypes, attrs);
    return [d.product, d.product, ...d.quantized];
  },
  reference: ({ inputs, outputs: [out, pre, codes, scales], inTypes, attrs }) => {
    const d = checkGroupedAct(GROUPED_GELU_OP, inTypes, attrs);
    groupedScaledMatmulOp.reference({ inputs, outputs: [pre!], inTypes, outTypes: [d.product], attrs: GEMM_ATTRS });
    geluOp.reference({ inputs: [pre!], outputs: [out!], inTypes: [d.product], outTypes: [d.product], attrs: {} });
    roundBf16(out!);
    quantizeInto(out!, codes!, scales!, d);
  },
  flops: (ins, outs) => gemmFlops(ins, outs[1]!) + geluOp.flops!([outs[1]!], [outs[0]!], {}),
});

export const groupedScaledMatmulDgeluOp = defineOp({
  name: GROUPED_DGELU_OP,
  doc: "out = grouped_scaled_matmul(a, aScale, b, bScale, offsets) (FP8 blockwise, bf16) · gelu'(pre), (codes, scales) = quantize(out, fp8-block1x128, rowwise); made by fusion",
  inputs: [...GEMM_INPUTS, 'pre'],
  outputs: ['out', 'codes', 'scales'],
  attrs: ACT_ATTRS,
  infer: (inTypes, attrs) => {
    const d = checkGroupedAct(GROUPED_DGELU_OP, inTypes, attrs);
    return [d.product, ...d.quantized];
  },
  reference: ({ inputs, outputs: [out, codes, scales], inTypes, attrs }) => {
    const d = checkGroupedAct(GROUPED_DGELU_OP, inTypes, attrs);
    // The product as the unfused grouped_scaled_matmul stored it (its reference rounds to bf16).
    const product = new Float64Array(out!.length);
    groupedScaledMatmulOp.reference({ inputs: inputs.slice(0, 5), outputs: [product], inTypes: inTypes.slice(0, 5), outTypes: [d.product], attrs: GEMM_ATTRS });
    geluBackwardOp.reference({ inputs: [product, inputs[5]!], outputs: [out!], inTypes: [d.product, d.product], outTypes: [d.product], attrs: {} });
    roundBf16(out!);
    quantizeInto(out!, codes!, scales!, d);
  },
  flops: (ins, outs) => gemmFlops(ins, outs[0]!) + geluBackwardOp.flops!([outs[0]!, ins[5]!], [outs[0]!], {}),
});
