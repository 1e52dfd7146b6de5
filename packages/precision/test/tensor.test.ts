// quantizeTensor / dequantizeTensor on CPU tensors: the same codes and scales as quantize2d (the
// GPU test holds the CUDA kernels to these), tiled scales as tileScales128x4 lays them out,
// blockwise FP8's GEMM layout as gemmBlockScales does, results written into given tensors, delayed
// amax, and clear errors for bad input.
import { Tensor, bf16BitsToF32, f32ToBf16Bits } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import { dequantize2d, dequantizeTensor, gemmBlockScales, quantize2d, quantizeTensor, tileScales128x4, type TensorDirection } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const rnd = (n: number) => Float32Array.from({ length: n }, () => bf16BitsToF32(f32ToBf16Bits((Math.random() - 0.5) * 2 ** Math.floor(Math.random() * 16 - 8))));
const bytes = (t: Tensor) => {
  const h = t.toHost();
  return Array.from(new Uint8Array(h.buffer, h.byteOffset, h.byteLength));
};

describe('quantizeTensor on the CPU', () => {
  it('equals quantize2d rowwise and columnwise, from bf16 storage', () => {
    const [R, C] = [64, 96];
    const v = rnd(R * C);
    const x = Tensor.from(Uint16Array.from(v, f32ToBf16Bits), [2, 32, C], 'bf16');
    for (const format of ['mxfp8-e4m3', 'mxfp4', 'nvfp4', 'fp8-e5m2'] as const) {
      const q = quantizeTensor(x, { format, direction: 'both' });
      for (const direction of ['rowwise', 'columnwise'] as const) {
        const ref = quantize2d(v, R, C, { format, direction });
        const part = q[direction]!;
        expect(part.data.shape).toEqual(direction === 'rowwise' ? [R, C] : [C, R]);
        expect(bytes(part.data), `${format} ${direction}`).toEqual(Array.from(ref.data));
        if (part.scales) expect(bytes(part.scales)).toEqual(Array.from(new Uint8Array(ref.scales.buffer)));
        expect(Array.from(dequantizeTensor(q, { direction }).toHost() as Float32Array)).toEqual(Array.from(dequantize2d(ref)));
      }
      q.dispose();
    }
  });

  it('lays scales out in the 128 × 4 tiles when asked, and writes into given tensors', () => {
    const [R, C] = [160, 64];
    const v = rnd(R * C);
    const x = Tensor.from(v, [R, C]);
    const plain = quantizeTensor(x, { format: 'mxfp8-e4m3' });
    const tiled = quantizeTensor(x, { format: 'mxfp8-e4m3', scaleLayout: 'tiled128x4' });
    expect(tiled.rowwise!.scales!.shape).toEqual([2, 512]);
    expect(bytes(tiled.rowwise!.scales!)).toEqual(Array.from(tileScales128x4(plain.rowwise!.scales!.toHost() as Uint8Array, R, C / 32)));
    expect(Array.from(dequantizeTensor(tiled).toHost() as Float32Array)).toEqual(Array.from(dequantizeTensor(plain).toHost() as Float32Array));
    const out = { rowwise: { data: Tensor.from(new Uint8Array(R * C).fill(0xa5), [R, C], 'f8e4m3'), scales: Tensor.from(new Uint8Array(R * 2).fill(0xa5), [R, 2], 'e8m0') } };
    const into = quantizeTensor(x, { format: 'mxfp8-e4m3', out });
    expect(into.rowwise!.data).toBe(out.rowwise.data);
    expect(bytes(out.rowwise.data)).toEqual(bytes(plain.rowwise!.data));
    expect(bytes(out.rowwise.scales)).toEqual(bytes(plain.rowwise!.scales!));
  });

  it("lays blockwise-FP8 scales out as the GEMM reads them with scaleLayout 'gemm' (odd R, L not a multiple of 4), rowwise and columnwise", () => {
    // 1 × 128: R = 40 rows (no multiple of 128), L = 5, rowwise only; columnwise only from
    // [256, 200]: the stored [200, 256] has R = 200, L = 2.
    // 128 × 128: rows 384, cols 640: rowwise L = 5 (L4 = 8), columnwise [640, 384] L = 3 (L4 = 4).
    for (const [format, rows, cols] of [
      ['fp8-block1x128', 40, 640],
      ['fp8-block1x128', 256, 200],
      ['fp8-block1x128', 128, 384],
      ['fp8-block128x128', 384, 640],
      ['fp8-block128x128', 128, 128],
    ] as const) {
      const v = rnd(rows * cols);
      const x = Tensor.from(Uint16Array.from(v, f32ToBf16Bits), [rows, cols], 'bf16');
      const direction: TensorDirection = rows % 128 !== 0 ? 'rowwise' : cols % 128 !== 0 ? 'columnwise' : 'both';
      const directions = direction === 'both' ? (['rowwise', 'columnwise'] as const) : [direction];
      const plain = quantizeTensor(x, { format, direction });
      const gemm = quantizeTensor(x, { format, direction, scaleLayout: 'gemm' });
      expect(gemm.scaleLayout).toBe('gemm');
      for (const d of directions) {
        const [R, K] = d === 'rowwise' ? [rows, cols] : [cols, rows];
        const L = K / 128;
        const what = `${format} ${rows} × ${cols} ${d}`;
        const g = gemm[d]!.scales!;
        expect(g.dtype).toBe('f32');
        expect(g.shape, what).toEqual(format === 'fp8-block1x128' ? [L, R] : [R / 128, Math.ceil(L / 4) * 4]);
        expect(Array.from(g.toHost() as Float32Array), what).toEqual(Array.from(gemmBlockScales(format, plain[d]!.scales!.toHost() as Float32Array, R, K)));
        expect(bytes(gemm[d]!.data), what).toEqual(bytes(plain[d]!.data));
        // dequantize reads the layout back: the plain result's values, bit for bit.
        expect(Array.from(dequantizeTensor(gemm, { direction: d }).toHost() as Float32Array), what).toEqual(Array.from(dequantizeTensor(plain, { direction: d }).toHost() as Float32Array));
      }
      // Into given tensors of the GEMM layout's shape.
      const d0 = directions[0]!;
      const given = { [d0]: { data: Tensor.empty(gemm[d0]!.data.shape, 'f8e4m3'), scales: Tensor.empty(gemm[d0]!.scales!.shape, 'f32') } };
      const into = quantizeTensor(x, { format, direction: d0, scaleLayout: 'gemm', out: given });
      expect(into[d0]!.scales).toBe(given[d0]!.scales);
      expect(bytes(given[d0]!.scales)).toEqual(bytes(gemm[d0]!.scales!));
      for (const t of [plain, gemm, into, x]) t.dispose();
    }
  });

  it("refuses a scale layout the format does not have, and a plain-shaped destination for 'gemm'", () => {
    const x = Tensor.from(rnd(128 * 640), [128, 640]);
    expect(errorOf(() => quantizeTensor(x, { format: 'mxfp8-e4m3', scaleLayout: 'gemm' })).message).toMatch(/Expected scaleLayout 'plain' or 'tiled128x4' for mxfp8-e4m3 \(its GEMM layout is 'tiled128x4'; 'gemm' is blockwise FP8's\) but received 'gemm'/);
    expect(errorOf(() => quantizeTensor(x, { format: 'nvfp4', scaleLayout: 'gemm' })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => quantizeTensor(x, { format: 'fp8-block1x128', scaleLayout: 'tiled128x4' })).message).toMatch(/Expected scaleLayout 'plain' or 'gemm' for fp8-block1x128 \(its GEMM layout is 'gemm'; 'tiled128x4' holds MX and NVFP4 scale codes\) but received 'tiled128x4'/);
    expect(errorOf(() => quantizeTensor(x, { format: 'fp8-block128x128', scaleLayout: 'tiled128x4' })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => quantizeTensor(x, { format: 'fp8-e4m3', scaleLayout: 'gemm' })).message).toMatch(/Expected scaleLayout 'plain' for fp8-e4m3 \(one tensor scale: no layout to choose\) but received 'gemm'/);
    expect(errorOf(() => quantizeTensor(x, { format: 'fp8-block1x128', scaleLayout: 'cublas' as never })).message).toMatch(/Expected scaleLayout 'plain', 'tiled128x4' or 'gemm' but received "cublas"/);
    const plainShaped = { rowwise: { data: Tensor.empty([128, 640], 'f8e4m3'), scales: Tensor.empty([1, 5], 'f32') } };
    expect(errorOf(() => quantizeTensor(x, { format: 'fp8-block128x128', scaleLayout: 'gemm', out: plainShaped })).message).toMatch(/Expected f32\[1, 8\] on cpu for out.rowwise.scales but received f32\[1, 5\]/);
    const q = quantizeTensor(x, { format: 'fp8-block1x128', scaleLayout: 'gemm' });
    expect(errorOf(() => dequantizeTensor({ ...q, format: 'mxfp8-e4m3' })).message).toMatch(/Expected scaleLayout 'plain' or 'tiled128x4' for mxfp8-e4m3 but received "gemm"/);
  });

  it('takes a delayed amax for tensorwise FP8 and NVFP4 (values beyond it saturate)', () => {
    const v = rnd(256);
    const q = quantizeTensor(Tensor.from(v, [2, 128]), { format: 'fp8-e4m3', amax: 0.25 });
    const s = Math.fround(1 / Math.fround(448 / 0.25));
    expect(Array.from(q.globalScale!.toHost() as Float32Array)).toEqual([s]);
    expect(Array.from(q.amax!.toHost() as Float32Array)).toEqual([0.25]);
    const back = dequantizeTensor(q).toHost() as Float32Array;
    expect(Math.max(...back.map(Math.abs))).toBeLessThanOrEqual(Math.fround(448 * s));
  });

  it('refuses bad input with clear errors', () => {
    const x = Tensor.from(rnd(64 * 32), [64, 32]);
    expect(errorOf(() => quantizeTensor(x, { format: 'fp6' as never })).message).toMatch(/Expected a format \(mxfp8-e4m3, .*fp8-block128x128\) but received "fp6"/);
    expect(errorOf(() => quantizeTensor(Tensor.from(rnd(48), [1, 48]), { format: 'mxfp8-e4m3' })).message).toMatch(/Expected a length along the blocks divisible by 32 for mxfp8-e4m3 \(rowwise\)/);
    expect(errorOf(() => quantizeTensor(Tensor.from(rnd(20), [2, 10]), { format: 'fp8-e4m3' })).message).toMatch(/last dimension divisible by 8/);
    expect(errorOf(() => quantizeTensor(Tensor.from([1, 2, 3, 4, 5, 6, 7, 8], [8], 'i32'), { format: 'fp8-e4m3' })).message).toMatch(/Expected an f32, bf16 or f16 tensor to quantize but received i32/);
    expect(errorOf(() => quantizeTensor(x, { format: 'nvfp4', scaleMode: 'rceil' })).message).toMatch(/Expected no scaleMode for nvfp4/);
    expect(errorOf(() => quantizeTensor(x, { format: 'mxfp8-e4m3', amax: 1 })).message).toMatch(/Expected no amax for mxfp8-e4m3/);
    expect(errorOf(() => quantizeTensor(x, { format: 'fp8-block128x128' })).message).toMatch(/divisible by 128/);
    expect(errorOf(() => quantizeTensor(x, { format: 'mxfp8-e4m3', direction: 'diagonal' as never })).message).toMatch(/Expected direction/);
    expect(errorOf(() => quantizeTensor(x, { format: 'mxfp8-e4m3', out: { rowwise: { data: Tensor.from(new Uint8Array(4), [4], 'f8e4m3'), scales: null } } })).message).toMatch(/Expected f8e4m3\[64, 32\] on cpu for out.rowwise.data but received f8e4m3\[4\]/);
    expect(errorOf(() => quantizeTensor([1, 2] as never, { format: 'mxfp8-e4m3' })).message).toMatch(/Expected a Tensor to quantize/);
  });
});
