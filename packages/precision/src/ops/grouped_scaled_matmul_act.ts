/**
 * grouped_scaled_matmul_gelu, grouped_scaled_matmul_dgelu and grouped_scaled_matmul_swiglu: the FP8
 * blockwise grouped GEMM of an expert MLP's first layer with the activation (forward) or its gradient
 * (backward) and the quantization of the result for the next GEMM done in its epilogue, so the bf16
 * activation is written once and never read back to be quantized. Never written by models:
 * fuse_scaled_grouped.ts makes them after the precision policy's native rewrite (fp8-blockwise), as
 * ir's fuse-grouped.ts makes grouped_matmul_gelu, _dgelu and _swiglu in bf16.
 *
 *   a, aScale, b, bScale, offsets as grouped_scaled_matmul's with FP8 blockwise scaling (a: f8e4m3 |
 *   f8e5m2 [R, K] in 1 × 128 blocks, b: [E, N, K] in 128 × 128 tiles; scaleLayout 'gemm' and
 *   outDtype 'bf16' only: the fused kernel reads and writes nothing else), N a multiple of 128, R >= 1.
 *   gelu:  -> out bf16 [R, N] = gelu(pre), pre bf16 [R, N] = the product (kept for gelu_backward),
 *             codes, scales = quantize(out, fp8-block1x128, rowwise)
 *   dgelu: pre bf16 [R, N] (the forward's) as a sixth input
 *          -> out bf16 [R, N] = product · gelu'(pre), codes, scales = quantize(out, …)
 *   swiglu: inputs a, aScale, b1, b1Scale, b3, b3Scale, offsets: two weights of one type (w1, the
 *           gate, and w3, the up projection, each as grouped_scaled_matmul's b and bScale)
 *          -> out bf16 [R, N] = swiglu(gate, up) = silu(gate) · up, gate bf16 [R, N] = a · w1 and
 *             up bf16 [R, N] = a · w3 (the products, kept for swiglu's gradient), codes, scales =
 *             quantize(out, …)
 *   codes f8e4m3 [R, N], scales f32 [N/128, R] (the 'gemm' layout): quantize's own shape rule gives
 *   their types, so the fused and unfused graphs cannot disagree.
 *
 * The reference is exactly the ops they replace, each result rounded to bf16 where the unfused graph
 * stored it: grouped_scaled_matmul's (one rounding of the float64 sum to bf16; twice for SwiGLU), ir's
 * gelu, gelu_backward or swiglu, then quantize's; so a fused graph interpreted on the CPU computes
 * what the unfused one did, bit for bit. The CUDA kernels (kernels-native's groupedScaledGemmAct and
 * groupedScaledGemmSwiglu) run the unfused kernel's main loop and round where the reference does.
 * Compile-time only: no gradient rule. CUDA candidates: ../cuda/grouped_scaled_matmul_act.ts. Tests:
 * test/grouped_scaled_matmul_act.test.ts, test/grouped_act_gpu.test.ts.
 */
import { DeepwellError, bf16BitsToF32, describe, f32ToBf16Bits, invalid } from '@deepwell/core';
import { defineOp, geluBackwardOp, geluOp, shapeError, swigluOp, type Attrs, type NumArray, type ValueType } from '@deepwell/ir';
import { checkGrouped, groupedScaledMatmulOp, type GroupedScaledDims } from './grouped_scaled_matmul.js';
import { checkInputTypes } from './quantize_kgrouped.js';
import { quantizeOp } from './quantize.js';

export const GROUPED_GELU_OP = 'grouped_scaled_matmul_gelu';
export const GROUPED_DGELU_OP = 'grouped_scaled_matmul_dgelu';
export const GROUPED_SWIGLU_OP = 'grouped_scaled_matmul_swiglu';
type ActOp = typeof GROUPED_GELU_OP | typeof GROUPED_DGELU_OP;

const GEMM_INPUTS = ['a', 'aScale', 'b', 'bScale', 'offsets'] as const;
/** The SwiGLU form's: one activation operand, the gate weight w1 and the up weight w3, one set of offsets. */
const SWIGLU_INPUTS = ['a', 'aScale', 'b1', 'b1Scale', 'b3', 'b3Scale', 'offsets'] as const;
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

/** The attributes of the three ops: grouped_scaled_matmul's, each allowed its one value (the precision policy's native rewrite sets them so). */
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

/**
 * The checks every fused op makes of its GEMM (types: a, aScale, b, bScale, offsets; `bName` the weight's
 * input name): the one allowed value of each attribute, grouped_scaled_matmul's own checks, N a multiple
 * of 128 and R >= 1; the product's type and the quantized result's.
 */
function checkFusedGemm(op: string, types: readonly ValueType[], attrs: Attrs, bName: string): GroupedActDims {
  if (typeof attrs !== 'object' || attrs === null) invalid('an attributes object', `${op}'s attributes`, attrs);
  for (const [k, want] of Object.entries(GEMM_ATTRS) as [keyof typeof GEMM_ATTRS, string][]) {
    const v = attrs[k] ?? want;
    if (v !== want) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected '${want}' for attribute '${k}' (${WHY[k]}) but received ${describe(v)}`);
  }
  const dims = checkGrouped(types, attrs, op, bName);
  const { R, N } = dims;
  if (N % 128 !== 0) shapeError(op, `Expected N (the output's columns, input '${bName}' [E, N, K]) a multiple of 128 (the epilogue quantizes each row in 1 × 128 blocks) but received N = ${N} (input '${bName}' ${str(types[2]!)})`);
  if (R < 1) shapeError(op, `Expected at least one row (R >= 1: the quantization, as quantize, takes no empty tensor) but received R = 0 (input 'a' ${str(types[0]!)})`);
  const product: ValueType = { shape: [R, N], dtype: 'bf16' };
  const [codes, scales] = quantizeOp.infer([product], EPILOGUE_QUANTIZE);
  return { ...dims, product, quantized: [codes!, scales!] };
}

/** Checks a call of `op` (input types and attributes) as its shape rule does; every error names the op and the argument. */
export function checkGroupedAct(op: ActOp, inTypes: readonly ValueType[], attrs: Attrs): GroupedActDims {
  const names = op === GROUPED_GELU_OP ? GEMM_INPUTS : [...GEMM_INPUTS, 'pre'];
  const types = checkInputTypes(op, inTypes, names);
  const d = checkFusedGemm(op, types.slice(0, 5), attrs, 'b');
  if (op === GROUPED_DGELU_OP) {
    const pre = types[5]!;
    if (pre.dtype !== 'bf16' || pre.shape.join() !== `${d.R},${d.N}`) {
      throw new DeepwellError(pre.dtype !== 'bf16' ? 'INVALID_DTYPE' : 'SHAPE_MISMATCH', `${op}: Expected bf16[${d.R}, ${d.N}] (the forward's pre-activation: the product's shape and dtype) for input 'pre' but received ${str(pre)}`);
    }
  }
  return d;
}

/**
 * Checks a call of grouped_scaled_matmul_swiglu as its shape rule does: a, aScale, b1, b1Scale and
 * offsets as the GELU form's GEMM, then b3 and b3Scale exactly b1's and b1Scale's types (the kernel
 * walks both weights with one set of tiles, and reads them in one format).
 */
export function checkGroupedSwiglu(inTypes: readonly ValueType[], attrs: Attrs): GroupedActDims {
  const op = GROUPED_SWIGLU_OP;
  const [a, aScale, b1, b1Scale, b3, b3Scale, offsets] = checkInputTypes(op, inTypes, SWIGLU_INPUTS) as [ValueType, ValueType, ValueType, ValueType, ValueType, ValueType, ValueType];
  const d = checkFusedGemm(op, [a, aScale, b1, b1Scale, offsets], attrs, 'b1');
  const same: [string, ValueType, string, ValueType, string][] = [
    ['b3', b3, 'b1', b1, "w1 and w3 are one MLP's gate and up projections: one shape and one format"],
    ['b3Scale', b3Scale, 'b1Scale', b1Scale, "the 128 × 128 scales of a weight of b1's shape"],
  ];
  for (const [name, t, like, want, why] of same) {
    if (t.dtype !== want.dtype || t.shape.join() !== want.shape.join()) {
      throw new DeepwellError(t.dtype !== want.dtype ? 'INVALID_DTYPE' : 'SHAPE_MISMATCH', `${op}: Expected ${str(want)} (the type of input '${like}': ${why}) for input '${name}' but received ${str(t)}`);
    }
  }
  return d;
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

export const groupedScaledMatmulSwigluOp = defineOp({
  name: GROUPED_SWIGLU_OP,
  doc: 'gate = grouped_scaled_matmul(a, aScale, b1, b1Scale, offsets), up = grouped_scaled_matmul(a, aScale, b3, b3Scale, offsets) (FP8 blockwise, bf16), out = silu(gate) · up, (codes, scales) = quantize(out, fp8-block1x128, rowwise); made by fusion',
  inputs: SWIGLU_INPUTS,
  outputs: ['out', 'gate', 'up', 'codes', 'scales'],
  attrs: ACT_ATTRS,
  infer: (inTypes, attrs) => {
    const d = checkGroupedSwiglu(inTypes, attrs);
    return [d.product, d.product, d.product, ...d.quantized];
  },
  reference: ({ inputs, outputs: [out, gate, up, codes, scales], inTypes, attrs }) => {
    const d = checkGroupedSwiglu(inTypes, attrs);
    // Each product as the unfused grouped_scaled_matmul stored it (its reference rounds to bf16).
    for (const [w, product] of [[2, gate!], [4, up!]] as const) {
      const pick = <T>(xs: readonly T[]) => [xs[0]!, xs[1]!, xs[w]!, xs[w + 1]!, xs[6]!];
      groupedScaledMatmulOp.reference({ inputs: pick(inputs), outputs: [product], inTypes: pick(inTypes), outTypes: [d.product], attrs: GEMM_ATTRS });
    }
    swigluOp.reference({ inputs: [gate!, up!], outputs: [out!], inTypes: [d.product, d.product], outTypes: [d.product], attrs: {} });
    roundBf16(out!);
    quantizeInto(out!, codes!, scales!, d);
  },
  flops: (ins, outs) => {
    const gemm = (w: number) => gemmFlops([ins[0]!, ins[1]!, ins[w]!, ins[w + 1]!, ins[6]!], outs[1]!);
    return gemm(2) + gemm(4) + swigluOp.flops!([outs[1]!, outs[2]!], [outs[0]!], {});
  },
});
