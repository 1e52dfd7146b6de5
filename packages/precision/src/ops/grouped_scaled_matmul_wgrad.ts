/**
 * grouped_scaled_matmul_wgrad: the FP8 blockwise weight gradient of a MoE's experts, dw[e] = x_eᵀ ·
 * g_e, as DeepGEMM's "k-grouped" GEMM computes it for DeepSeek-V3: the reduction runs over each
 * expert's rows, so both operands come quantized down the rows in 1 × 128 blocks with each expert's
 * rows padded alone to whole blocks (quantize_kgrouped), and every block scale multiplies one
 * expert's partial sum — the 128-deep promotion of the forward's kernel, with K = the padded rows.
 *
 *   a: [K, P] f8e4m3 | f8e5m2 codes (x's, positions contiguous), aScale: f32 [P/128, K],
 *   b: [N, P] codes (g's), bScale: f32 [P/128, N] (quantize_kgrouped's outputs), offsets: i32[E + 1]
 *   (grouped_matmul's rules; offsets[E] = R, the real rows); attributes experts (E), outDtype
 *   ('bf16' | 'f32', default 'f32') -> dw: outDtype [E, K, N],
 *   dw[e, k, n] = Σ_{p ∈ [q_e, q_{e+1})} a(k, p)·aScale[p/128, k] · b(n, p)·bScale[p/128, n],
 *   q_e = 128 · Σ_{e' < e} ceil(c_e' / 128) (paddedOffsets; expert e's padded segment, its padding
 *   included: quantize_kgrouped writes zero codes there). An expert with no rows gets zeros.
 *
 * P is a multiple of 128 (>= 128); nothing beyond q_E is read, and q_E > P (codes holding fewer
 * positions than the offsets' padded rows) is an INVALID_ARGUMENT error. Not both operands e5m2.
 * Reference: each operand dequantized exactly in float64 (scaled_matmul's dequantizeOperand, the
 * block1x128 'gemm' layout of a stored [K, P] matrix), products summed in float64 in ascending p,
 * rounded once to outDtype (roundToBf16 / Math.fround), as grouped_scaled_matmul's reference. flops:
 * 2 · K · N · P (P the static bound; the real work is 2 · K · N · q_E). No gradient rule (compile-time
 * only, inserted by the precision policy after autodiff). CUDA candidate:
 * ../cuda/grouped_scaled_matmul_wgrad.ts (being written). Tests: test/grouped_scaled_matmul_wgrad.test.ts
 * (on quantize_kgrouped's outputs, against float64 sums; bad input).
 */
import { DeepwellError, describe } from '@deepwell/core';
import { defineOp, shapeError, type Attrs, type ValueType } from '@deepwell/ir';
import { FP8_DTYPES, SCALED_OUT_DTYPES, dequantizeOperand, roundToBf16, type ScaledOutDtype } from './scaled_matmul.js';
import { checkExperts, checkGroupOffsets, checkInputTypes, checkOffsetsType, paddedOffsets } from './quantize_kgrouped.js';

const OP = 'grouped_scaled_matmul_wgrad';
const str = (t: ValueType) => `${t.dtype}[${t.shape.join(', ')}]`;

/** The sizes and formats of a grouped_scaled_matmul_wgrad call. */
export interface GroupedWgradDims {
  K: number;
  N: number;
  P: number;
  E: number;
  aFormat: 'e4m3' | 'e5m2';
  bFormat: 'e4m3' | 'e5m2';
  outDtype: ScaledOutDtype;
}

/** Checks a call (input types and attributes) as the shape rule does; every error names the argument. */
export function checkGroupedWgrad(inTypes: readonly ValueType[], attrs: Attrs): GroupedWgradDims {
  const [a, aScale, b, bScale, offsets] = checkInputTypes(OP, inTypes, ['a', 'aScale', 'b', 'bScale', 'offsets']) as [ValueType, ValueType, ValueType, ValueType, ValueType];
  const E = checkExperts(OP, attrs);
  const outDtype = (attrs.outDtype ?? 'f32') as ScaledOutDtype;
  if (!SCALED_OUT_DTYPES.includes(outDtype)) throw new DeepwellError('INVALID_ARGUMENT', `${OP}: Expected 'bf16' or 'f32' for attribute 'outDtype' but received ${describe(outDtype)}`);
  for (const [name, t, rows] of [['a', a, 'K'], ['b', b, 'N']] as const) {
    if (!(FP8_DTYPES as readonly string[]).includes(t.dtype)) throw new DeepwellError('INVALID_DTYPE', `${OP}: Expected f8e4m3 or f8e5m2 codes for input '${name}' but received ${str(t)}`);
    if (t.shape.length !== 2) shapeError(OP, `Expected a rank-2 tensor [${rows}, P] (the padded rows contiguous, as quantize_kgrouped writes them) for input '${name}' but received ${str(t)}`);
  }
  if (a.dtype === 'f8e5m2' && b.dtype === 'f8e5m2') throw new DeepwellError('INVALID_DTYPE', `${OP}: Expected at most one f8e5m2 operand (there is no E5M2 × E5M2 GEMM) but received f8e5m2 for both 'a' and 'b'`);
  const [K, P] = a.shape as [number, number];
  const [N, Pb] = b.shape as [number, number];
  if (Pb !== P) shapeError(OP, `Expected input 'b' with P = ${P} positions (a's) as its last dimension but received ${str(b)}`);
  if (K < 1 || N < 1) shapeError(OP, `Expected K and N >= 1 but received ${K} and ${N} (inputs 'a' ${str(a)} and 'b' ${str(b)})`);
  if (P < 128 || P % 128 !== 0) shapeError(OP, `Expected P a positive multiple of 128 (whole blocks of 128 positions) but received P = ${P} (input 'a' ${str(a)})`);
  for (const [name, t, rows] of [['aScale', aScale, K], ['bScale', bScale, N]] as const) {
    if (t.dtype !== 'f32' || t.shape.join() !== `${P / 128},${rows}`) {
      throw new DeepwellError(t.dtype !== 'f32' ? 'INVALID_DTYPE' : 'SHAPE_MISMATCH', `${OP}: Expected f32[${P / 128}, ${rows}] (a scale per block of 128 positions and ${name === 'aScale' ? 'row of a' : 'row of b'}) for input '${name}' but received ${str(t)}`);
    }
  }
  checkOffsetsType(OP, offsets, E);
  const fmt = (t: ValueType) => (t.dtype === 'f8e5m2' ? 'e5m2' : 'e4m3') as 'e4m3' | 'e5m2';
  return { K, N, P, E, aFormat: fmt(a), bFormat: fmt(b), outDtype };
}

export const groupedScaledMatmulWgradOp = defineOp({
  name: OP,
  doc: "dw[e] = Σ over expert e's padded rows of (a·sa)ᵀ(b·sb): the FP8 blockwise k-grouped weight gradient of a MoE's experts, on quantize_kgrouped's codes, rounded once",
  inputs: ['a', 'aScale', 'b', 'bScale', 'offsets'],
  outputs: ['dw'],
  attrs: {
    experts: { kind: 'int' },
    outDtype: { kind: 'string', oneOf: SCALED_OUT_DTYPES, default: 'f32' },
  },
  infer: (inTypes, attrs) => {
    const { E, K, N, outDtype } = checkGroupedWgrad(inTypes, attrs);
    return [{ shape: [E, K, N], dtype: outDtype }];
  },
  reference: ({ inputs: [a, aScale, b, bScale, offsets], outputs: [dw], inTypes, attrs }) => {
    const { K, N, P, E, aFormat, bFormat, outDtype } = checkGroupedWgrad(inTypes, attrs);
    checkGroupOffsets(OP, offsets!, E, null);
    const q = paddedOffsets(offsets!, E);
    if (q[E]! > P) throw new DeepwellError('INVALID_ARGUMENT', `${OP}: Expected codes holding the experts' ${q[E]} padded positions (128 · Σ ceil(rows / 128) from offsets) but received P = ${P} positions in inputs 'a' and 'b' (too few)`);
    const A = dequantizeOperand(OP, 'a', a!, aScale!, aFormat, 'block1x128', 'gemm', K, P);
    const B = dequantizeOperand(OP, 'b', b!, bScale!, bFormat, 'block1x128', 'gemm', N, P);
    const round = outDtype === 'f32' ? Math.fround : roundToBf16;
    for (let e = 0; e < E; e++)
      for (let k = 0; k < K; k++)
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let p = q[e]!; p < q[e + 1]!; p++) s += A[k * P + p]! * B[n * P + p]!;
          dw![(e * K + k) * N + n] = round(s);
        }
  },
  flops: ([a, , b]) => 2 * a!.shape[0]! * b!.shape[0]! * a!.shape[1]!,
});
