/**
 * quantize_kgrouped: an operand of a MoE's expert weight gradient, dw[e] = x_eᵀ · g_e (grouped_matmul_wgrad,
 * reducing over each expert's rows), quantized for the FP8 "k-grouped" GEMM (DeepGEMM's, as DeepSeek-V3
 * trains its experts): 1 × 128 blocks running down the rows, the reduction axis, each expert's rows
 * padded alone to whole blocks so that no block straddles two experts and every block scale belongs
 * to one expert's sum — what the precision policy's native rewrite puts before
 * grouped_scaled_matmul_wgrad (native_grouped.ts), once for x and once for g.
 *
 *   x: f32 | bf16 | f16 [R, C] (the experts' rows, sorted by expert), offsets: i32[E + 1]
 *   (grouped_matmul's rules: 0 first, never decreasing, R last), attribute experts (E >= 1)
 *   -> codes: f8e4m3 [C, P], stored transposed (the positions contiguous: the K-major operand of
 *      the weight-gradient GEMM); scales: f32 [P / 128, C], block (c, b) at b · C + c (quantize's
 *      'gemm' layout of 1 × 128 scales for a stored [C, P] matrix); P = 128 · (ceil(R / 128) + E).
 *
 * Expert e has c_e = offsets[e+1] − offsets[e] rows and owns the padded positions [q_e, q_e + 128 ·
 * ceil(c_e / 128)), q_e = 128 · Σ_{e' < e} ceil(c_e' / 128) (paddedOffsets); position q_e + i holds
 * row offsets[e] + i for i < c_e, else a padding zero (+0, code 0x00). Each block of 128 positions
 * of a channel is one FP8 block, quantized as quantize's fp8-block1x128 columnwise block is, bit for
 * bit (layout.ts's quantize2d on the expert's rows zero-padded: blocks.ts's fp8Scaling, mul =
 * f32(448 / amax), codes E4M3(f32(v · mul)) saturating, ties to even, scale f32(1 / mul)). P is a
 * static bound of the padded length (the true q_E comes from the offsets, on the device); since
 * Σ ceil(c_e / 128) <= ceil(R / 128) + E − 1, at least one block is always spare, and P >= 128 even
 * with no rows. Every block from q_E on is an all-zero block: codes 0x00 and scale 1 (fp8Scaling of
 * amax 0: mul 1, scale 1). So every output element is written.
 *
 * Non-finite x, as quantize's blockwise path: a block's amax is that of its finite values (NaN and
 * ±Inf ignored; a block with none gets scale 1); NaN becomes the E4M3 NaN code 0x7F, ±Inf saturate
 * to ±448 (0x7E / 0xFE). -0 keeps its sign (0x80). x's values are read as float32 (the interpreter
 * may hold f64).
 *
 * On the CPU the codes are held as their byte values in a float array (scaled_matmul's convention).
 * Compile-time only (the policy inserts it after autodiff), so no gradient rule. CUDA candidate:
 * ../cuda/quantize_kgrouped.ts (being written). Tests: test/quantize_kgrouped.test.ts.
 */
import { DeepwellError, checkInteger, describe, invalid } from '@deepwell/core';
import { defineOp, shapeError, type Attrs, type ValueType } from '@deepwell/ir';
import { fp8Scaling } from '../blocks.js';
import { quantize2d } from '../layout.js';

const OP = 'quantize_kgrouped';
const MAX_I32 = 2 ** 31 - 1;
const str = (t: ValueType) => `${t.dtype}[${t.shape.join(', ')}]`;

/** The sizes of a quantize_kgrouped call: R rows of C channels, E experts, P padded positions. */
export interface KgroupedDims {
  R: number;
  C: number;
  E: number;
  P: number;
}

/** The input types of a call of `op`, one per name (each { shape: non-negative integers, dtype }). */
export function checkInputTypes(op: string, inTypes: readonly ValueType[], names: readonly string[]): ValueType[] {
  if (!Array.isArray(inTypes)) invalid(`an array of input types (${names.join(', ')})`, `${op}'s inputs`, inTypes);
  if (inTypes.length !== names.length) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected ${names.length} inputs (${names.join(', ')}) but received ${inTypes.length}`);
  inTypes.forEach((t, i) => {
    const ok = typeof t === 'object' && t !== null && typeof t.dtype === 'string' && Array.isArray(t.shape) && t.shape.every((d: unknown) => Number.isSafeInteger(d) && (d as number) >= 0);
    if (!ok) invalid('an input type ({ shape: non-negative integers, dtype })', `${op}'s input '${names[i]}'`, t);
  });
  return inTypes.slice();
}

/** The attribute `experts` (E >= 1; offsets is i32[E + 1]). */
export function checkExperts(op: string, attrs: Attrs): number {
  if (typeof attrs !== 'object' || attrs === null) invalid('an attributes object', `${op}'s attributes`, attrs);
  return checkInteger(attrs.experts, `${op}'s attribute 'experts' (the number of experts)`, 1, MAX_I32 - 1);
}

/** offsets' type: i32[E + 1]. */
export function checkOffsetsType(op: string, offsets: ValueType, E: number): void {
  const want = `i32[${E + 1}] (one more than the ${E} experts) for input 'offsets'`;
  if (offsets.dtype !== 'i32') throw new DeepwellError('INVALID_DTYPE', `${op}: Expected ${want} but received ${str(offsets)}`);
  if (offsets.shape.length !== 1 || offsets.shape[0] !== E + 1) shapeError(op, `Expected ${want} but received ${str(offsets)}`);
}

/**
 * Offsets' values: 0 first, integers never decreasing, R last (grouped_matmul's rules; R null: only
 * within i32's range, as grouped_scaled_matmul_wgrad, which does not know R, checks them).
 * INVALID_ARGUMENT naming the entry.
 */
export function checkGroupOffsets(op: string, offsets: ArrayLike<number>, E: number, R: number | null): void {
  const bad = (e: number, want: string): never => {
    throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected ${want} for offsets[${e}] but received ${describe(offsets[e])}`);
  };
  if (offsets[0] !== 0) bad(0, '0 (the first expert starts at row 0)');
  const top = R ?? MAX_I32;
  for (let e = 1; e <= E; e++) {
    const o = offsets[e]!;
    if (!Number.isInteger(o) || o < offsets[e - 1]! || o > top) bad(e, `an integer in [offsets[${e - 1}] = ${describe(offsets[e - 1])}, ${top}] (offsets never decrease)`);
  }
  if (R !== null && offsets[E] !== R) bad(E, `${R} (the last expert ends at the last row)`);
}

/**
 * Each expert's start in the padded positions: q[e] = 128 · Σ_{e' < e} ceil(c_e' / 128), c_e =
 * offsets[e+1] − offsets[e], for e = 0 … E (q[E]: the padded total). offsets: E + 1 entries, 0
 * first, integers never decreasing (checked: INVALID_ARGUMENT naming the entry).
 */
export function paddedOffsets(offsets: ArrayLike<number>, E: number): Int32Array {
  checkInteger(E, 'the experts of paddedOffsets', 1, MAX_I32 - 1);
  const arrayLike = Array.isArray(offsets) || offsets instanceof Int32Array || offsets instanceof Float32Array || offsets instanceof Float64Array;
  if (!arrayLike) invalid('offsets (an Int32Array, Float32Array, Float64Array or array of numbers)', 'paddedOffsets', offsets);
  if (offsets.length !== E + 1) throw new DeepwellError('SHAPE_MISMATCH', `paddedOffsets: Expected ${E + 1} offsets (one more than the ${E} experts) but received ${offsets.length}`);
  checkGroupOffsets('paddedOffsets', offsets, E, null);
  const q = new Int32Array(E + 1);
  let at = 0;
  for (let e = 0; e < E; e++) {
    at += 128 * Math.ceil((offsets[e + 1]! - offsets[e]!) / 128);
    if (at > MAX_I32) throw new DeepwellError('INVALID_ARGUMENT', `paddedOffsets: Expected a padded total within i32 (<= ${MAX_I32}) but received ${at} positions by expert ${e}`);
    q[e + 1] = at;
  }
  return q;
}

/** Checks a call (input types and attributes) as the shape rule does; every error names the argument. */
export function checkQuantizeKgrouped(inTypes: readonly ValueType[], attrs: Attrs): KgroupedDims {
  const [x, offsets] = checkInputTypes(OP, inTypes, ['x', 'offsets']) as [ValueType, ValueType];
  const E = checkExperts(OP, attrs);
  if (!['f32', 'bf16', 'f16'].includes(x.dtype)) throw new DeepwellError('INVALID_DTYPE', `${OP}: Expected f32, bf16 or f16 for input 'x' but received ${str(x)}`);
  if (x.shape.length !== 2) shapeError(OP, `Expected a rank-2 tensor [R, C] (the experts' rows) for input 'x' but received ${str(x)}`);
  const [R, C] = x.shape as [number, number];
  if (C < 1) shapeError(OP, `Expected at least one column (C >= 1) for input 'x' but received ${str(x)}`);
  checkOffsetsType(OP, offsets, E);
  const P = 128 * (Math.ceil(R / 128) + E);
  if (!Number.isSafeInteger(P * C)) shapeError(OP, `Expected C · P (P = ${P} padded positions) within 2^53 but received ${str(x)} with ${E} experts`);
  return { R, C, E, P };
}

/** The output types of a call of C channels and P positions: codes f8e4m3 [C, P], scales f32 [P / 128, C]. */
export const kgroupedTypes = (C: number, P: number): [ValueType, ValueType] => [
  { shape: [C, P], dtype: 'f8e4m3' },
  { shape: [P / 128, C], dtype: 'f32' },
];

export const quantizeKgroupedOp = defineOp({
  name: OP,
  doc: "x [R, C] quantized down its rows in 1 × 128 FP8 blocks, each expert's rows padded alone to whole blocks: codes [C, P] and scales [P/128, C] for the k-grouped weight-gradient GEMM",
  inputs: ['x', 'offsets'],
  outputs: ['codes', 'scales'],
  attrs: { experts: { kind: 'int' } },
  infer: (inTypes, attrs) => {
    const { C, P } = checkQuantizeKgrouped(inTypes, attrs);
    return kgroupedTypes(C, P);
  },
  reference: ({ inputs: [x, offsets], outputs: [codes, scales], inTypes, attrs }) => {
    const { R, C, E, P } = checkQuantizeKgrouped(inTypes, attrs);
    checkGroupOffsets(OP, offsets!, E, R);
    const q = paddedOffsets(offsets!, E);
    const values = Float64Array.from(x!, (v) => Math.fround(v)); // x's float32 values
    for (let e = 0; e < E; e++) {
      const rows = q[e + 1]! - q[e]!; // 128 · ceil(c_e / 128)
      if (rows === 0) continue;
      // The expert's rows, zero-padded to whole blocks, quantized columnwise: data [C, rows], plain scales [C, rows / 128].
      const m = new Float64Array(rows * C);
      m.set(values.subarray(offsets![e]! * C, offsets![e + 1]! * C));
      const z = quantize2d(m, rows, C, { format: 'fp8-block1x128', direction: 'columnwise' });
      const blocks = rows / 128;
      for (let c = 0; c < C; c++) {
        codes!.set(z.data.subarray(c * rows, (c + 1) * rows), c * P + q[e]!);
        for (let j = 0; j < blocks; j++) scales![(q[e]! / 128 + j) * C + c] = z.scales[c * blocks + j]!;
      }
    }
    // The unused tail: all-zero blocks.
    const zero = fp8Scaling(0, 448).scale;
    for (let c = 0; c < C; c++) codes!.fill(0, c * P + q[E]!, (c + 1) * P);
    scales!.fill(zero, (q[E]! / 128) * C, (P / 128) * C);
  },
});
