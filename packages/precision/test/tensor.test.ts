// quantizeTensor / dequantizeTensor on CPU tensors: the same codes and scales as quantize2d (the
// GPU test holds the CUDA kernels to these), tiled scales as tileScales128x4 lays them out, results
// written into given tensors, delayed amax, and clear errors for bad input.
import { Tensor, bf16BitsToF32, f32ToBf16Bits } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import { dequantize2d, dequantizeTensor, quantize2d, quantizeTensor, tileScales128x4 } from '../src/index.js';
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

  it('takes a delayed amax for tensorwise FP8 and NVFP4 (values beyond it saturate)', () => {
    const v = rnd(256);
    const q = quantizeTensor(Tensor.from(v, [2, 128]), { format: 'fp8-e4m3', amax: 0.25 });
    expect(Array.from(q.globalScale!.toHost() as Float32Array)).toEqual([Math.fround(0.25 / 448)]);
    expect(Array.from(q.amax!.toHost() as Float32Array)).toEqual([0.25]);
    const back = dequantizeTensor(q).toHost() as Float32Array;
    expect(Math.max(...back.map(Math.abs))).toBeLessThanOrEqual(0.25);
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
