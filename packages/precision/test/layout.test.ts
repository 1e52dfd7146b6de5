// Rowwise and columnwise quantization of matrices, blockwise FP8, cuBLASLt's 128 × 4 tiled
// scale layout, and blockwise FP8's GEMM scale layouts.
import { describe, expect, it } from 'vitest';
import { ELEMENTS, dequantize, dequantize2d, encodeElement, gemmBlockScales, plainBlockScales, quantize, quantize2d, tileScales128x4, untileScales128x4 } from '../src/index.js';
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
    it(`${format}: one FP32 decode scale f32(1 / f32(448 / amax)) per block, E4M3 elements of f32(x · m)`, () => {
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
          const m = amax === 0 ? 1 : Math.fround(448 / amax);
          expect(s[br * (cols / 128) + bc]).toBe(Math.fround(1 / m));
          const r = br * tile;
          const c = bc * 128 + 7;
          expect(q.data[r * cols + c]).toBe(encodeElement(ELEMENTS.e4m3, Math.fround(x[r * cols + c]! * m)));
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

describe('gemmBlockScales', () => {
  // Distinct positive scales, so a misplaced one shows (0 only where padding is).
  const scalesOf = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.fround(1 + i + Math.random() / 2));

  it('1 × 128: [R, L] becomes [L, R] with R contiguous, and back (R odd)', () => {
    const [R, K] = [37, 5 * 128];
    const L = K / 128;
    const s = scalesOf(R * L);
    const g = gemmBlockScales('fp8-block1x128', s, R, K);
    expect(g.length).toBe(L * R);
    for (let r = 0; r < R; r++) for (let kb = 0; kb < L; kb++) expect(g[kb * R + r]).toBe(s[r * L + kb]);
    expect(g[1]).toBe(s[L]); // row 1 of K-block 0 sits next to row 0
    expect(Array.from(plainBlockScales('fp8-block1x128', g, R, K))).toEqual(Array.from(s));
  });

  for (const [R, L] of [
    [384, 5], // L not a multiple of 4: 3 padding columns
    [200, 6], // R not a multiple of 128 (ceil), 2 padding columns
    [128, 8], // no padding
    [130, 1],
  ] as const) {
    it(`128 × 128: [ceil(R/128), L] becomes [ceil(R/128), L4], K-blocks contiguous, padding 0, and back (R ${R}, L ${L})`, () => {
      const K = L * 128;
      const RB = Math.ceil(R / 128);
      const L4 = Math.ceil(L / 4) * 4;
      const s = scalesOf(RB * L);
      const g = gemmBlockScales('fp8-block128x128', s, R, K);
      expect(g.length).toBe(RB * L4);
      for (let rb = 0; rb < RB; rb++)
        for (let kb = 0; kb < L4; kb++) expect(g[rb * L4 + kb], `(${rb}, ${kb})`).toBe(kb < L ? s[rb * L + kb] : 0);
      expect(Array.from(plainBlockScales('fp8-block128x128', g, R, K))).toEqual(Array.from(s));
    });
  }

  it('rearranges quantize2d\'s scales, rowwise and columnwise (the stored matrix is [cols, rows])', () => {
    const [rows, cols] = [256, 640]; // columnwise: R = 640, K = 256 (L = 2, padded to 4)
    const x = Float32Array.from({ length: rows * cols }, () => Math.random() * 2 - 1);
    for (const format of ['fp8-block1x128', 'fp8-block128x128'] as const) {
      for (const direction of ['rowwise', 'columnwise'] as const) {
        const q = quantize2d(x, rows, cols, { format, direction });
        const [R, K] = direction === 'rowwise' ? [rows, cols] : [cols, rows];
        const g = gemmBlockScales(format, q.scales as Float32Array, R, K);
        const L4 = Math.ceil(K / 512) * 4;
        // Scale of stored element (r, k), read the GEMM's way, equals the plain layout's.
        for (let r = 0; r < R; r += 61)
          for (let k = 0; k < K; k += 97) {
            const plain = (q.scales as Float32Array)[(format === 'fp8-block1x128' ? r : Math.floor(r / 128)) * (K / 128) + Math.floor(k / 128)];
            const gemm = format === 'fp8-block1x128' ? g[Math.floor(k / 128) * R + r] : g[Math.floor(r / 128) * L4 + Math.floor(k / 128)];
            expect(gemm, `${format} ${direction} (${r}, ${k})`).toBe(plain);
          }
      }
    }
  });

  it('says what is wrong', () => {
    expect(errorOf(() => gemmBlockScales('fp8-block1x128', new Float32Array(3), 2, 256)).message).toMatch(/Expected 2 × 2 = 4 f32 scales of fp8-block1x128 for 2 × 256 but received Float32Array\(3\)/);
    expect(errorOf(() => gemmBlockScales('fp8-block128x128', new Float32Array(4), 128, 100)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => gemmBlockScales('mxfp8-e4m3' as never, new Float32Array(4), 128, 128)).message).toMatch(/Expected format 'fp8-block1x128' or 'fp8-block128x128' but received "mxfp8-e4m3"/);
    expect(errorOf(() => plainBlockScales('fp8-block128x128', new Float32Array(5), 128, 640)).message).toMatch(/Expected 8 f32 scales of fp8-block128x128 in the GEMM layout for 128 × 640/);
    expect(errorOf(() => gemmBlockScales('fp8-block1x128', new Uint8Array(4) as never, 2, 256)).code).toBe('SHAPE_MISMATCH');
  });
});
