// quantize_kgrouped (the k-grouped weight-gradient operand's contract) on the CPU, fresh random inputs
// every run: each expert's blocks against quantize (fp8-block1x128, columnwise) run on that expert's
// rows zero-padded to whole blocks, and against an independent per-block computation (blocks.ts's
// fp8Scaling and the public E4M3 encoder), bit for bit; the padding and the unused tail exact zero
// codes with scale 1; on ragged groups (empty experts, one expert taking every row, counts of exactly
// 128 and not multiples of it, no rows at all), f32 and bf16 x, the outputs poisoned (NaN) so an
// unwritten element fails. Non-finite values as quantize treats them; paddedOffsets; bad input.
import { bf16BitsToF32, f32ToBf16Bits } from '@deepwell/core';
import { checkAttrs, getOp, type Attrs, type ValueType } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { ELEMENTS, checkQuantizeKgrouped, encodeElement, paddedOffsets } from '../src/index.js';
import { fp8Scaling } from '../src/blocks.js';
import { errorOf } from '../../../testing/errors.js';
import { firstDiff, runReference as run } from './fp8.js';

const randInt = (n: number) => Math.floor(Math.random() * n);

/** Rows per expert: empty, exactly 128 or 256, ragged, or (one) one expert taking them all. */
function countsOf(E: number, kind: 'ragged' | 'one' | 'none'): number[] {
  if (kind === 'none') return Array(E).fill(0);
  if (kind === 'one') {
    const c = Array(E).fill(0);
    c[randInt(E)] = 1 + randInt(400);
    return c;
  }
  return Array.from({ length: E }, () => [0, 128, 256, 1 + randInt(127), 129 + randInt(300)][randInt(5)]!);
}

const offsetsOf = (counts: number[]) => Int32Array.from([0, ...counts.map((_, e) => counts.slice(0, e + 1).reduce((a, b) => a + b, 0))]);

/** Random non-zero values, magnitudes over 2^-10 … 2^10 varying per channel; bf16-representable for bf16. */
function values(R: number, C: number, dtype: 'f32' | 'bf16'): Float64Array {
  const mag = Array.from({ length: C }, () => 2 ** (Math.random() * 20 - 10));
  return Float64Array.from({ length: R * C }, (_, i) => {
    const v = Math.fround((Math.random() * 2 - 1 || 0.5) * mag[i % C]!);
    return dtype === 'bf16' ? bf16BitsToF32(f32ToBf16Bits(v)) : v;
  });
}

/** quantize_kgrouped's codes and scales of x [R, C] with these offsets. */
function kgrouped(x: Float64Array, R: number, C: number, offsets: Int32Array, dtype: 'f32' | 'bf16' = 'f32') {
  const E = offsets.length - 1;
  const [codes, scales] = run('quantize_kgrouped', [x, offsets], [{ shape: [R, C], dtype }, { shape: [E + 1], dtype: 'i32' }], { experts: E }) as [Float64Array, Float64Array];
  return { codes, scales };
}

describe('quantize_kgrouped', () => {
  it("each expert's blocks equal quantize's columnwise 1 × 128 blocks of its zero-padded rows and a per-block computation, bit for bit; padding and tail are zero blocks", () => {
    const kinds = ['ragged', 'ragged', 'one', 'none', 'ragged', 'one', 'ragged'] as const;
    kinds.forEach((kind, trial) => {
      const E = 1 + randInt(5);
      const C = 1 + randInt(trial % 2 ? 200 : 40);
      const dtype = trial % 2 ? 'bf16' : 'f32';
      const counts = countsOf(E, kind);
      const off = offsetsOf(counts);
      const R = off[E]!;
      const x = values(R, C, dtype);
      const P = 128 * (Math.ceil(R / 128) + E);
      const { codes, scales } = kgrouped(x, R, C, off, dtype);
      const where = `trial ${trial} (${kind}, E ${E}, C ${C}, counts ${counts.join(' ')}, ${dtype})`;
      expect(codes.length, where).toBe(C * P);
      expect(scales.length, where).toBe((P / 128) * C);
      expect(checkQuantizeKgrouped([{ shape: [R, C], dtype }, { shape: [E + 1], dtype: 'i32' }], { experts: E })).toEqual({ R, C, E, P });
      const q = paddedOffsets(off, E);
      for (let e = 0; e < E; e++) {
        const nb = Math.ceil(counts[e]! / 128);
        expect(q[e + 1]! - q[e]!, where).toBe(128 * nb);
        if (nb === 0) continue;
        const rows = 128 * nb;
        const padded = new Float64Array(rows * C);
        padded.set(x.subarray(off[e]! * C, off[e + 1]! * C));
        // quantize (columnwise): codes [C, rows], 'gemm' scales [nb, C].
        const [wc, ws] = run('quantize', [padded], [{ shape: [rows, C], dtype }], { format: 'fp8-block1x128', direction: 'columnwise' });
        const gotCodes = new Float64Array(C * rows);
        for (let c = 0; c < C; c++) gotCodes.set(codes.subarray(c * P + q[e]!, c * P + q[e]! + rows), c * rows);
        expect(firstDiff(gotCodes, wc!), `${where} expert ${e} codes`).toBe(-1);
        expect(firstDiff(scales.subarray((q[e]! / 128) * C, (q[e + 1]! / 128) * C), ws!), `${where} expert ${e} scales`).toBe(-1);
        // The same, block by block, from fp8Scaling and the encoder.
        for (let j = 0; j < nb; j++)
          for (let c = 0; c < C; c++) {
            const v = Array.from({ length: 128 }, (_, i) => (128 * j + i < counts[e]! ? x[(off[e]! + 128 * j + i) * C + c]! : 0));
            const { mul, scale } = fp8Scaling(Math.max(...v.map(Math.abs)), 448);
            expect(scales[(q[e]! / 128 + j) * C + c], `${where} expert ${e} block ${j} channel ${c}`).toBe(scale);
            for (let i = 0; i < 128; i++) {
              const p = q[e]! + 128 * j + i;
              const want = 128 * j + i < counts[e]! ? encodeElement(ELEMENTS.e4m3, Math.fround(v[i]! * mul)) : 0;
              if (codes[c * P + p] !== want) expect(codes[c * P + p], `${where} expert ${e} position ${p} channel ${c}`).toBe(want);
            }
          }
      }
      // The tail from q_E on: zero codes, scale 1 (fp8Scaling of amax 0); at least one block of it.
      expect(P - q[E]!, where).toBeGreaterThanOrEqual(128);
      expect(fp8Scaling(0, 448).scale).toBe(1);
      for (let c = 0; c < C; c++) for (let p = q[E]!; p < P; p++) if (codes[c * P + p] !== 0) expect(codes[c * P + p], `${where} tail (${c}, ${p})`).toBe(0);
      for (let i = (q[E]! / 128) * C; i < (P / 128) * C; i++) if (scales[i] !== 1) expect(scales[i], `${where} tail scale ${i}`).toBe(1);
      // The quantized values are not trivially zero: some code of a real row is non-zero.
      if (R > 0) expect(codes.some((c) => c !== 0)).toBe(true);
      expect(codes.every((c) => Number.isInteger(c) && c >= 0 && c <= 255), where).toBe(true);
    });
  });

  it("non-finite values as quantize's blockwise path: amax of the finite values, NaN → 0x7F, ±Inf → ±448, -0 keeps its sign", () => {
    const [R, C] = [200, 3];
    const off = Int32Array.of(0, 70, 200);
    const x = values(R, C, 'f32');
    x[5 * C + 0] = Number.NaN; // expert 0, block 0, channel 0
    x[6 * C + 0] = Number.POSITIVE_INFINITY;
    x[7 * C + 0] = Number.NEGATIVE_INFINITY;
    x[8 * C + 0] = -0;
    for (let r = 70; r < 200; r++) x[r * C + 1] = r === 100 ? Number.NaN : 0; // expert 1, channel 1: a NaN among zeros
    const { codes, scales } = kgrouped(x, R, C, off);
    const P = 128 * (2 + 2);
    let amax = 0;
    for (let r = 0; r < 70; r++) if (Number.isFinite(x[r * C]!)) amax = Math.max(amax, Math.abs(x[r * C]!));
    expect(scales[0]).toBe(fp8Scaling(amax, 448).scale);
    expect([codes[5], codes[6], codes[7], codes[8]]).toEqual([0x7f, 0x7e, 0xfe, 0x80]);
    // Expert 1 starts at position 128; its channel-1 block has no finite non-zero value: scale 1.
    expect(scales[1 * C + 1]).toBe(1);
    expect(codes[1 * P + 128 + 30]).toBe(0x7f);
    expect(codes[1 * P + 128 + 31]).toBe(0);
    // And quantize gives the same for expert 0's block.
    const padded = new Float64Array(128 * C);
    padded.set(x.subarray(0, 70 * C));
    const [wc, ws] = run('quantize', [padded], [{ shape: [128, C], dtype: 'f32' }], { format: 'fp8-block1x128', direction: 'columnwise' });
    for (let c = 0; c < C; c++) expect(firstDiff(codes.subarray(c * P, c * P + 128), wc!.subarray(c * 128, (c + 1) * 128)), `channel ${c}`).toBe(-1);
    expect(firstDiff(scales.subarray(0, C), ws!)).toBe(-1);
  });

  it('paddedOffsets: each expert starts at 128 · the blocks before it; junk is a typed error', () => {
    expect(Array.from(paddedOffsets([0, 0, 1, 129, 129, 385], 5))).toEqual([0, 0, 128, 256, 256, 512]);
    expect(Array.from(paddedOffsets(Int32Array.of(0, 128, 128), 2))).toEqual([0, 128, 128]);
    expect(Array.from(paddedOffsets(Float64Array.of(0, 0), 1))).toEqual([0, 0]);
    expect(errorOf(() => paddedOffsets([0, 3, 2], 2)).message).toMatch(/paddedOffsets: Expected an integer in \[offsets\[1\] = 3, 2147483647\] \(offsets never decrease\) for offsets\[2\] but received 2/);
    expect(errorOf(() => paddedOffsets([1, 3], 1)).message).toMatch(/Expected 0 \(the first expert starts at row 0\) for offsets\[0\] but received 1/);
    expect(errorOf(() => paddedOffsets([0, 3], 2)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => paddedOffsets([0, 2 ** 31 - 1, 2 ** 31 - 1], 2)).message).toMatch(/Expected a padded total within i32/);
    for (const junk of ['0,1', 3, null, [0, '1'], [0, 1.5], [0n, 1n], { length: 2 }]) expect(errorOf(() => paddedOffsets(junk as never, 1)).code).toMatch(/INVALID_ARGUMENT|SHAPE_MISMATCH/);
    for (const junk of [0, 1.5, '2', 2n, null]) expect(errorOf(() => paddedOffsets([0, 0], junk as never)).code).toBe('INVALID_ARGUMENT');
  });

  it('bad input gives typed errors naming the argument', () => {
    const [R, C, E] = [10, 4, 2];
    const ok: ValueType[] = [{ shape: [R, C], dtype: 'bf16' }, { shape: [E + 1], dtype: 'i32' }];
    const infer = (t: ValueType[], attrs: Attrs = { experts: E }) => errorOf(() => getOp('quantize_kgrouped').infer(t, checkAttrs(getOp('quantize_kgrouped'), attrs)));
    expect(getOp('quantize_kgrouped').infer(ok, { experts: E })).toEqual([{ shape: [C, 128 * 3], dtype: 'f8e4m3' }, { shape: [3, C], dtype: 'f32' }]);
    expect(getOp('quantize_kgrouped').infer([{ shape: [0, C], dtype: 'f32' }, ok[1]!], { experts: E })).toEqual([{ shape: [C, 256], dtype: 'f8e4m3' }, { shape: [2, C], dtype: 'f32' }]);
    let e = infer([{ shape: [R, C], dtype: 'i32' }, ok[1]!]);
    expect([e.code, e.message]).toEqual(['INVALID_DTYPE', "quantize_kgrouped: Expected f32, bf16 or f16 for input 'x' but received i32[10, 4]"]);
    e = infer([{ shape: [R, C, 1], dtype: 'f32' }, ok[1]!]);
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toMatch(/Expected a rank-2 tensor \[R, C\] \(the experts' rows\) for input 'x' but received f32\[10, 4, 1\]/);
    expect(infer([{ shape: [R, 0], dtype: 'f32' }, ok[1]!]).message).toMatch(/at least one column/);
    e = infer([ok[0]!, { shape: [E + 1], dtype: 'f32' }]);
    expect([e.code, e.message]).toEqual(['INVALID_DTYPE', "quantize_kgrouped: Expected i32[3] (one more than the 2 experts) for input 'offsets' but received f32[3]"]);
    e = infer([ok[0]!, { shape: [E + 2], dtype: 'i32' }]);
    expect([e.code, e.message]).toEqual(['SHAPE_MISMATCH', "quantize_kgrouped: Expected i32[3] (one more than the 2 experts) for input 'offsets' but received i32[4]"]);
    expect(infer(ok, { experts: 3 }).message).toMatch(/Expected i32\[4\] \(one more than the 3 experts\)/);
    expect(infer(ok, {}).message).toMatch(/Expected a value for attribute 'experts' of quantize_kgrouped/);
    expect(errorOf(() => checkQuantizeKgrouped(ok, { experts: 0 })).message).toMatch(/Expected an integer in \[1, 2147483646\] for quantize_kgrouped's attribute 'experts'/);
    expect(errorOf(() => checkQuantizeKgrouped([ok[0]!], { experts: E })).message).toMatch(/Expected 2 inputs \(x, offsets\) but received 1/);
    expect(errorOf(() => checkQuantizeKgrouped('x' as never, { experts: E })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => checkQuantizeKgrouped([ok[0]!, { shape: [-1], dtype: 'i32' }], { experts: E })).message).toMatch(/input type .* for quantize_kgrouped's input 'offsets'/);
    expect(errorOf(() => checkQuantizeKgrouped(ok, null as never)).code).toBe('INVALID_ARGUMENT');
    // Offsets that break grouped_matmul's rules, at run time: INVALID_ARGUMENT naming the entry.
    const x = values(R, C, 'f32');
    for (const [offs, want] of [
      [[0, 4, 9], /Expected 10 \(the last expert ends at the last row\) for offsets\[2\] but received 9/],
      [[0, 6, 4], /Expected an integer in \[offsets\[1\] = 6, 10\] \(offsets never decrease\) for offsets\[2\] but received 4/],
      [[2, 6, 10], /Expected 0 \(the first expert starts at row 0\) for offsets\[0\] but received 2/],
      [[0, 11, 10], /for offsets\[1\] but received 11/],
    ] as const) {
      e = errorOf(() => run('quantize_kgrouped', [x, Int32Array.from(offs)], [{ shape: [R, C], dtype: 'f32' }, ok[1]!], { experts: E }));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(/^quantize_kgrouped: /);
      expect(e.message).toMatch(want);
    }
    expect(getOp('quantize_kgrouped').gradient).toBeUndefined();
  });
});
