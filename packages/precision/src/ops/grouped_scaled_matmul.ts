/**
 * grouped_scaled_matmul: the FP8 blockwise grouped GEMM of dropless MoE (DeepSeek-V3's recipe on
 * each expert), the contract of the Hopper kernel to come (docs/research/grouped-gemm.md §6).
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
 * policy composes FP8 training after autodiff). No CUDA candidate yet.
 *
 * Tests: test/grouped_scaled_matmul.test.ts (each expert's rows against scaled_matmul's reference on
 * that expert's slices; bad input).
 */
import { DeepwellError, describe } from '@deepwell/core';
import { defineOp, shapeError, type ValueType } from '@deepwell/ir';
import { FP8_DTYPES, GEMM_SCALE_LAYOUTS, SCALED_OUT_DTYPES, dequantizeOperand, roundToBf16, scaleShape, type GemmScaleLayout, type ScaledOutDtype } from './scaled_matmul.js';

const str = (t: ValueType) => `${t.dtype}[${t.shape.join(', ')}]`;

/** The call's sizes, after the checks the shape rule makes (every error names the argument). */
function checkGrouped(inTypes: readonly ValueType[], layout: GemmScaleLayout): { R: number; K: number; E: number; N: number } {
  const op = 'grouped_scaled_matmul';
  const [a, aScale, b, bScale, offsets] = inTypes as [ValueType, ValueType, ValueType, ValueType, ValueType];
  for (const [name, t, rank] of [['a', a, 2], ['b', b, 3]] as const) {
    if (!(FP8_DTYPES as readonly string[]).includes(t.dtype)) throw new DeepwellError('INVALID_DTYPE', `${op}: Expected f8e4m3 or f8e5m2 codes for input '${name}' but received ${str(t)}`);
    if (t.shape.length !== rank) shapeError(op, `Expected a rank-${rank} tensor (${name === 'a' ? '[R, K]' : '[E, N, K], each expert K-major'}) for input '${name}' but received ${str(t)}`);
  }
  if (a.dtype === 'f8e5m2' && b.dtype === 'f8e5m2') throw new DeepwellError('INVALID_DTYPE', `${op}: Expected at most one f8e5m2 operand but received f8e5m2 for both 'a' and 'b'`);
  const [R, K] = a.shape as [number, number];
  const [E, N, Kb] = b.shape as [number, number, number];
  if (Kb !== K) shapeError(op, `Expected input 'b' with K = ${K} (a's columns) as its last dimension but received ${str(b)}`);
  if (E < 1 || N < 1 || K < 1) shapeError(op, `Expected E, N and K >= 1 but received ${E}, ${N} and ${K}`);
  if (K % 128 !== 0) shapeError(op, `Expected K a whole number of 128-element blocks but received K = ${K}`);
  if (offsets.dtype !== 'i32' || offsets.shape.length !== 1 || offsets.shape[0] !== E + 1) shapeError(op, `Expected i32[${E + 1}] (one more than the ${E} experts) for input 'offsets' but received ${str(offsets)}`);
  const want = [
    ['aScale', aScale, R > 0 ? scaleShape('block1x128', layout, R, K) : layout === 'plain' ? [0, K / 128] : [K / 128, 0]],
    ['bScale', bScale, [E, ...scaleShape('block128x128', layout, N, K)]],
  ] as const;
  for (const [name, t, shape] of want) {
    if (t.dtype !== 'f32' || t.shape.join() !== shape.join()) {
      throw new DeepwellError(t.dtype !== 'f32' ? 'INVALID_DTYPE' : 'SHAPE_MISMATCH', `${op}: Expected f32[${shape.join(', ')}] for input '${name}' (scaleLayout '${layout}') but received ${str(t)}`);
    }
  }
  return { R, K, E, N };
}

export const groupedScaledMatmulOp = defineOp({
  name: 'grouped_scaled_matmul',
  doc: 'd[r] = (a[r]·sa) · (b[e]·sb)ᵀ for expert e\'s rows offsets[e] <= r < offsets[e+1]: FP8 blockwise (1×128 activations, 128×128 weights), rounded once',
  inputs: ['a', 'aScale', 'b', 'bScale', 'offsets'],
  outputs: ['d'],
  attrs: {
    scaleLayout: { kind: 'string', oneOf: GEMM_SCALE_LAYOUTS, default: 'gemm' },
    outDtype: { kind: 'string', oneOf: SCALED_OUT_DTYPES, default: 'bf16' },
  },
  infer: (inTypes, attrs) => {
    const { R, N } = checkGrouped(inTypes, attrs.scaleLayout as GemmScaleLayout);
    return [{ shape: [R, N], dtype: attrs.outDtype as ScaledOutDtype }];
  },
  reference: ({ inputs: [a, aScale, b, bScale, offsets], outputs: [d], inTypes, attrs }) => {
    const op = 'grouped_scaled_matmul';
    const layout = attrs.scaleLayout as GemmScaleLayout;
    const { R, K, E, N } = checkGrouped(inTypes, layout);
    const bad = (e: number, want: string) => {
      throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected ${want} for offsets[${e}] but received ${describe(offsets![e])}`);
    };
    if (offsets![0] !== 0) bad(0, '0 (the first expert starts at row 0)');
    for (let e = 1; e <= E; e++) if (!Number.isInteger(offsets![e]) || offsets![e]! < offsets![e - 1]! || offsets![e]! > R) bad(e, `an integer in [offsets[${e - 1}], ${R}] (offsets never decrease)`);
    if (offsets![E] !== R) bad(E, `${R} (the last expert ends at the last row)`);
    const fmt = (t: ValueType) => (t.dtype === 'f8e5m2' ? 'e5m2' : 'e4m3') as 'e4m3' | 'e5m2';
    const A = R > 0 ? dequantizeOperand(op, 'a', a!, aScale!, fmt(inTypes[0]!), 'block1x128', layout, R, K) : new Float64Array(0);
    const perExpert = bScale!.length / E;
    const round = attrs.outDtype === 'f32' ? Math.fround : roundToBf16;
    for (let e = 0; e < E; e++) {
      if (offsets![e] === offsets![e + 1]) continue;
      const B = dequantizeOperand(op, 'b', b!.subarray(e * N * K, (e + 1) * N * K), bScale!.subarray(e * perExpert, (e + 1) * perExpert), fmt(inTypes[2]!), 'block128x128', layout, N, K);
      for (let r = offsets![e]!; r < offsets![e + 1]!; r++)
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += A[r * K + k]! * B[n * K + k]!;
          d![r * N + n] = round(s);
        }
    }
  },
  flops: ([a, , b]) => 2 * a!.shape[0]! * b!.shape[1]! * a!.shape[1]!,
});
