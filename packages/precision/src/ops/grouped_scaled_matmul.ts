/**
 * grouped_scaled_matmul: the low-precision grouped GEMM of dropless MoE: FP8 blockwise (DeepSeek-V3's
 * recipe on each expert; the Hopper kernel, docs/research/grouped-gemm.md §6) by default, or with
 * aScaling = bScaling = 'mx32' (MXFP8) or 'nv16' (NVFP4) Blackwell's block-scaled form: the codes and
 * scales as scaled_matmul takes them for those scalings (E8M0 / UE4M3 scale codes; 'gemm' layout: the
 * 128 × 4 tiles, a's over all R rows, b's per expert [E, tiles, 512]), and with nv16 two more inputs,
 * aGlobal f32[1] and bGlobal f32[E] (each expert's weight quantized alone has its own tensor scale),
 * d[r] = aGlobal · bGlobal[e] · Σ ….
 *
 *   a: [R, K] f8e4m3 | f8e5m2 codes with block1x128 scales aScale (f32; 'plain' [R, K/128] or 'gemm'
 *   [K/128, R], rows contiguous), b: [E, N, K] codes (each expert's weight K-major, as the columnwise
 *   copy of w [E, K, N]) with block128x128 scales bScale (f32; per expert 'plain' [ceil(N/128), K/128]
 *   or 'gemm' [ceil(N/128), L4], L4 = K/128 rounded up to 4: bScale [E, …]), offsets: i32[E + 1]
 *   (grouped_matmul's rules); attributes scaleLayout ('gemm' default), outDtype ('bf16' | 'f32')
 *   -> d: outDtype [R, N], d[r, n] = Σ_k a(r, k)·sa(r, k) · b(e, n, k)·sb(e, n, k) for e's rows r.
 *
 * scaled_matmul's conventions throughout: on the CPU codes are their byte values in a float array;
 * not both operands e5m2; K a whole number of 128-element blocks. Reference: each operand dequantized
 * exactly in float64 (scaled_matmul's dequantizeOperand, expert by expert for b), products summed in
 * float64 in ascending k, rounded once to outDtype. No gradient rule (as scaled_matmul: the precision
 * policy composes FP8 training after autodiff). CUDA: cuda/grouped_scaled_matmul.ts (kernels-native's
 * groupedScaledGemm: a Hopper kernel, TMA + FP8 wgmma, and a general path; not yet run on a GPU).
 *
 * Tests: test/grouped_scaled_matmul.test.ts (each expert's rows against scaled_matmul's reference on
 * that expert's slices; bad input).
 */
import { DeepwellError, describe } from '@deepwell/core';
import { defineOp, shapeError, type Attrs, type ValueType } from '@deepwell/ir';
import { FP8_DTYPES, GEMM_SCALE_LAYOUTS, SCALED_OUT_DTYPES, SCALINGS, dequantizeOperand, microBlock, roundToBf16, scaleShape, type GemmScaleLayout, type ScaledElement, type ScaledOutDtype, type Scaling } from './scaled_matmul.js';

const str = (t: ValueType) => `${t.dtype}[${t.shape.join(', ')}]`;

/** The (aScaling, bScaling) pairs the op takes: DeepSeek-V3's blockwise FP8, and Blackwell's MXFP8 and NVFP4. */
export const GROUPED_SCALING_PAIRS = [
  ['block1x128', 'block128x128'],
  ['mx32', 'mx32'],
  ['nv16', 'nv16'],
] as const;

export interface GroupedScaledDims {
  R: number;
  K: number;
  E: number;
  N: number;
  aScaling: Scaling;
  bScaling: Scaling;
  layout: GemmScaleLayout;
  aFormat: ScaledElement;
  bFormat: ScaledElement;
}

/**
 * The call's sizes, after the checks the shape rule makes (every error names the argument, and the
 * op: `op`, for the fused ops that take the same operands, grouped_scaled_matmul_act.ts; `bName` the
 * weight operand's name there, its scales `${bName}Scale`: 'b1' for the SwiGLU form's gate weight).
 */
export function checkGrouped(inTypes: readonly ValueType[], attrs: Attrs, op = 'grouped_scaled_matmul', bName = 'b'): GroupedScaledDims {
  const aScaling = (attrs.aScaling ?? 'block1x128') as Scaling;
  const bScaling = (attrs.bScaling ?? 'block128x128') as Scaling;
  const layout = (attrs.scaleLayout ?? 'gemm') as GemmScaleLayout;
  if (!GROUPED_SCALING_PAIRS.some(([x, y]) => x === aScaling && y === bScaling)) {
    throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected (aScaling, bScaling) of (block1x128, block128x128), (mx32, mx32) or (nv16, nv16) but received (${describe(aScaling)}, ${describe(bScaling)})`);
  }
  const nv = aScaling === 'nv16';
  if (inTypes.length !== (nv ? 7 : 5)) {
    throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected ${nv ? '7 inputs (a, aScale, b, bScale, offsets, aGlobal, bGlobal: NVFP4 has tensor scales)' : '5 inputs (a, aScale, b, bScale, offsets)'} with ${aScaling} scaling but received ${inTypes.length}`);
  }
  const [a, aScale, b, bScale, offsets] = inTypes as [ValueType, ValueType, ValueType, ValueType, ValueType];
  const codes: readonly string[] = nv ? ['f4e2m1'] : FP8_DTYPES;
  const codesText = nv ? 'f4e2m1 codes (NVFP4)' : aScaling === 'mx32' ? 'f8e4m3 or f8e5m2 codes (MXFP8)' : 'f8e4m3 or f8e5m2 codes';
  for (const [name, t, rank] of [['a', a, 2], [bName, b, 3]] as const) {
    if (!codes.includes(t.dtype)) throw new DeepwellError('INVALID_DTYPE', `${op}: Expected ${codesText} for input '${name}' but received ${str(t)}`);
    if (t.shape.length !== rank) shapeError(op, `Expected a rank-${rank} tensor (${name === 'a' ? '[R, K]' : '[E, N, K], each expert K-major'}) for input '${name}' but received ${str(t)}`);
  }
  if (a.dtype === 'f8e5m2' && b.dtype === 'f8e5m2') throw new DeepwellError('INVALID_DTYPE', `${op}: Expected at most one f8e5m2 operand but received f8e5m2 for both 'a' and '${bName}'`);
  const [R, K] = a.shape as [number, number];
  const [E, N, Kb] = b.shape as [number, number, number];
  if (Kb !== K) shapeError(op, `Expected input '${bName}' with K = ${K} (a's columns) as its last dimension but received ${str(b)}`);
  if (E < 1 || N < 1 || K < 1) shapeError(op, `Expected E, N and K >= 1 but received ${E}, ${N} and ${K}`);
  const block = aScaling === 'block1x128' ? 128 : microBlock(aScaling);
  if (K % block !== 0) shapeError(op, `Expected K a whole number of ${block}-element blocks but received K = ${K}`);
  if (offsets.dtype !== 'i32' || offsets.shape.length !== 1 || offsets.shape[0] !== E + 1) shapeError(op, `Expected i32[${E + 1}] (one more than the ${E} experts) for input 'offsets' but received ${str(offsets)}`);
  const scaleDtype = aScaling === 'mx32' ? 'e8m0' : nv ? 'f8e4m3' : 'f32';
  // With no rows (R = 0) the row dimension of a's scales is 0: the first, except block1x128's 'gemm' [L, R].
  const aShape = R > 0 ? scaleShape(aScaling, layout, R, K) : scaleShape(aScaling, layout, 1, K).map((d, i) => (i === (layout === 'gemm' && aScaling === 'block1x128' ? 1 : 0) ? 0 : d));
  const want = [
    ['aScale', aScale, aShape, scaleDtype],
    [`${bName}Scale`, bScale, [E, ...scaleShape(bScaling, layout, N, K)], scaleDtype],
    ...(nv ? ([['aGlobal', inTypes[5]!, [1], 'f32'], ['bGlobal', inTypes[6]!, [E], 'f32']] as const) : []),
  ] as const;
  for (const [name, t, shape, dtype] of want) {
    if (t.dtype !== dtype || t.shape.join() !== shape.join()) {
      throw new DeepwellError(t.dtype !== dtype ? 'INVALID_DTYPE' : 'SHAPE_MISMATCH', `${op}: Expected ${dtype}[${shape.join(', ')}] for input '${name}' (scaleLayout '${layout}') but received ${str(t)}`);
    }
  }
  const fmt = (t: ValueType): ScaledElement => (t.dtype === 'f4e2m1' ? 'e2m1' : t.dtype === 'f8e5m2' ? 'e5m2' : 'e4m3');
  return { R, K, E, N, aScaling, bScaling, layout, aFormat: fmt(a), bFormat: fmt(b) };
}

export const groupedScaledMatmulOp = defineOp({
  name: 'grouped_scaled_matmul',
  doc: "d[r] = (a[r]·sa) · (b[e]·sb)ᵀ for expert e's rows offsets[e] <= r < offsets[e+1]: FP8 blockwise (1×128 activations, 128×128 weights), MXFP8 or NVFP4, rounded once",
  // a, aScale, b, bScale, offsets, and with nv16 aGlobal, bGlobal (checkGrouped counts).
  inputs: ['...a_aScale_b_bScale_offsets_then_aGlobal_bGlobal_with_nv16'],
  outputs: ['d'],
  attrs: {
    aScaling: { kind: 'string', oneOf: SCALINGS, default: 'block1x128' },
    bScaling: { kind: 'string', oneOf: SCALINGS, default: 'block128x128' },
    scaleLayout: { kind: 'string', oneOf: GEMM_SCALE_LAYOUTS, default: 'gemm' },
    outDtype: { kind: 'string', oneOf: SCALED_OUT_DTYPES, default: 'bf16' },
  },
  infer: (inTypes, attrs) => {
    const { R, N } = checkGrouped(inTypes, attrs);
    return [{ shape: [R, N], dtype: attrs.outDtype as ScaledOutDtype }];
  },
  reference: ({ inputs, outputs: [d], inTypes, attrs }) => {
    const op = 'grouped_scaled_matmul';
    const [a, aScale, b, bScale, offsets] = inputs;
    const { R, K, E, N, aScaling, bScaling, layout, aFormat, bFormat } = checkGrouped(inTypes, attrs);
    const bad = (e: number, want: string) => {
      throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected ${want} for offsets[${e}] but received ${describe(offsets![e])}`);
    };
    if (offsets![0] !== 0) bad(0, '0 (the first expert starts at row 0)');
    for (let e = 1; e <= E; e++) if (!Number.isInteger(offsets![e]) || offsets![e]! < offsets![e - 1]! || offsets![e]! > R) bad(e, `an integer in [offsets[${e - 1}], ${R}] (offsets never decrease)`);
    if (offsets![E] !== R) bad(E, `${R} (the last expert ends at the last row)`);
    const A = R > 0 ? dequantizeOperand(op, 'a', a!, aScale!, aFormat, aScaling, layout, R, K) : new Float64Array(0);
    const perExpert = bScale!.length / E;
    const round = attrs.outDtype === 'f32' ? Math.fround : roundToBf16;
    for (let e = 0; e < E; e++) {
      if (offsets![e] === offsets![e + 1]) continue;
      const B = dequantizeOperand(op, 'b', b!.subarray(e * N * K, (e + 1) * N * K), bScale!.subarray(e * perExpert, (e + 1) * perExpert), bFormat, bScaling, layout, N, K);
      // NVFP4's tensor scales: exact in float64 (two f32 values), applied to the exact sum.
      const g = aScaling === 'nv16' ? inputs[5]![0]! * inputs[6]![e]! : 1;
      for (let r = offsets![e]!; r < offsets![e + 1]!; r++)
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += A[r * K + k]! * B[n * K + k]!;
          d![r * N + n] = round(s * g);
        }
    }
  },
  flops: ([a, , b]) => 2 * a!.shape[0]! * b!.shape[1]! * a!.shape[1]!,
});
