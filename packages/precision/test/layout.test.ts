// Rowwise and columnwise quantization of matrices, blockwise FP8, and cuBLASLt's 128 × 4 tiled
// scale layout.
import { describe, expect, it } from 'vitest';
import { ELEMENTS, dequantize, dequantize2d, encodeElement, quantize, quantize2d, tileScales128x4, untileScales128x4 } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const randn = (n: number) => Float32Array.from({ length: n }, () => Math.fround((Math.random() * 2 - 1) * 10 ** (Math.random() * 4 - 2)));
const transpose = (x: Float32Array, rows: number, cols: number) => {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = x[r * cols + c]!;
  return t;
};

describe('quantize2d', () => {
  for (const format of ['mxfp8-e4m3', 'mxfp4', 'nvfp4'] as const) {
    it(`${format}: rowwise is per-row blocks; columnwise is the transpose's rowwise, stored transposed`, () => {
      const [rows, cols] = [64, 96];
      const x = randn(rows * cols);
      const row = quantize2d(x, rows, cols, { format });
      const flat = quantize(x, { format });
      expect(Array.from(row.data)).toEqual(Array.from(flat.data));
      expect(Array.from(row.scales)).toEqual(Array.from(flat.scales));
      const col = quantize2d(x, rows, cols, { format, direction: 'columnwise' });
      const xt = transpose(x, rows, cols);
      const ref = quantize(xt, { format });
      expect(Array.from(col.data)).toEqual(Array.from(ref.data));
      expect(Array.from(col.scales)).toEqual(Array.from(ref.scales));
      // dequantize2d returns the original [rows, cols] order.
      expect(Array.from(dequantize2d(col))).toEqual(Array.from(transpose(dequantize(ref), cols, rows)));
      expect(Array.from(dequantize2d(row))).toEqual(Array.from(dequantize(flat)));
    });
  }

  for (const format of ['fp8-block1x128', 'fp8-block128x128'] as const) {
    it(`${format}: one FP32 scale amax / 448 per block, E4M3 elements`, () => {
      const [rows, cols] = [256, 384];
      const x = randn(rows * cols);
      x.fill(0, 0, 128); // an all-zero 1 × 128 block (scale 1)
      const q = quantize2d(x, rows, cols, { format });
      const tile = format === 'fp8-block128x128' ? 128 : 1;
      const s = q.scales as Float32Array;
      expect(s.length).toBe((rows / tile) * (cols / 128));
      if (tile === 1) expect(s[0]).toBe(1);
      for (let br = 0; br < rows / tile; br++)
        for (let bc = 0; bc < cols / 128; bc++) {
          let amax = 0;
          for (let r = br * tile; r < (br + 1) * tile; r++) for (let c = bc * 128; c < bc * 128 + 128; c++) amax = Math.max(amax, Math.abs(x[r * cols + c]!));
          const want = amax === 0 ? 1 : Math.fround(amax / 448);
          expect(s[br * (cols / 128) + bc]).toBe(want);
          const r = br * tile;
          const c = bc * 128 + 7;
          expect(q.data[r * cols + c]).toBe(encodeElement(ELEMENTS.e4m3, Math.fround(x[r * cols + c]! / want)));
        }
      const d = dequantize2d(q);
      for (let i = 0; i < x.length; i++) {
        const sc = s[Math.floor(Math.floor(i / cols) / tile) * (cols / 128) + Math.floor((i % cols) / 128)]!;
        expect(Math.abs(d[i]! - x[i]!)).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -4 + sc * 2 ** -10);
      }
      const col = quantize2d(x, rows, cols, { format, direction: 'columnwise' });
      expect(Array.from(dequantize2d(col)).every(Number.isFinite)).toBe(true);
    });
  }

  it('says what is wrong with bad shapes and options', () => {
    expect(errorOf(() => quantize2d(new Float32Array(10), 2, 4, { format: 'mxfp4' })).message).toMatch(/2 × 4 = 8 values but received 10/);
    expect(errorOf(() => quantize2d(new Float32Array(96), 3, 32, { format: 'mxfp4', direction: 'columnwise' })).message).toMatch(/divisible by 32 for mxfp4/);
    expect(errorOf(() => quantize2d(new Float32Array(64), 1, 64, { format: 'fp8-block1x128' })).message).toMatch(/divisible by 128/);
    expect(errorOf(() => quantize2d(new Float32Array(64), 2, 32, { format: 'mxfp4', direction: 'diagonal' as never })).message).toMatch(/'rowwise' or 'columnwise'/);
  });
});

describe('tileScales128x4', () => {
  it('places each scale where the 128 × 4 tiled layout says, zero-padded, and inverts', () => {
    const [rows, cols] = [200, 7]; // 2 × 2 tiles, padded
    const s = Uint8Array.from({ length: rows * cols }, () => 1 + Math.floor(Math.random() * 254));
    const t = tileScales128x4(s, rows, cols);
    expect(t.length).toBe(2 * 2 * 512);
    const at = (r: number, c: number) => s[r * cols + c];
    expect(t[0]).toBe(at(0, 0));
    expect(t[16]).toBe(at(1, 0)); // rows step by 16 bytes within a group of 32
    expect(t[4]).toBe(at(32, 0)); // the next group of 32 rows: 4 bytes on
    expect(t[3]).toBe(at(0, 3));
    expect(t[512 + 16 + 4 + 1]).toBe(at(33, 5)); // tile (0, 1)
    expect(t[2 * 512 + 16 * 8 + 1 * 4 + 2]).toBe(at(128 + 40, 2)); // tile (1, 0): row 40 = 32 + 8
    expect(t[2 * 512 + (72 % 32) * 16 + 2 * 4 + 0]).toBe(0); // row 200 of 256: padding
    expect(Array.from(untileScales128x4(t, rows, cols))).toEqual(Array.from(s));
    expect(errorOf(() => untileScales128x4(t.subarray(1), rows, cols)).code).toBe('SHAPE_MISMATCH');
  });
});
