// MXFP8, MXFP4 and NVFP4 on random and adversarial blocks, against per-block computations written
// here from the definitions (scale by search, elements by the element codec already checked
// exhaustively in elements.test.ts), and the quantize / dequantize API.
import { describe, expect, it } from 'vitest';
import { ELEMENTS, decodeE8m0, decodeElement, dequantize, encodeElement, quantize, type ElementFormat, type Format } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const f32 = Math.fround;
const randn = (n: number, scale = 1) => Float32Array.from({ length: n }, () => f32(scale * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())));

/** The largest e with 2^e <= a (a > 0), by search. */
function floorLog2(a: number): number {
  let e = 0;
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  return e;
}

function unpack4(data: Uint8Array): number[] {
  return Array.from(data).flatMap((b) => [b & 15, b >> 4]);
}

/** Adversarial blocks of `n`: zeros with signs, one huge value, subnormals, rounding boundaries. */
function adversarial(n: number, elem: ElementFormat): Float32Array[] {
  const blocks: Float32Array[] = [];
  blocks.push(Float32Array.from({ length: n }, (_, i) => (i % 2 ? -0 : 0)));
  const huge = randn(n, 1e-3);
  huge[Math.floor(n / 2)] = 3e38;
  blocks.push(huge);
  blocks.push(Float32Array.from({ length: n }, (_, i) => (i + 1) * 1e-41 * (i % 2 ? -1 : 1))); // f32 subnormals
  blocks.push(Float32Array.from({ length: n }, () => 2 ** -130));
  // Midpoints between neighbouring element values, at the block's scale (block max = elem max).
  const vals = Array.from({ length: 1 << (elem.bits - 1) }, (_, c) => decodeElement(elem, c)).filter(Number.isFinite);
  const mids = vals.slice(1).map((v, k) => (v + vals[k]!) / 2);
  const b = Float32Array.from({ length: n }, (_, i) => (i === 0 ? elem.max : mids[i % mids.length]! * (i % 3 ? 1 : -1)));
  blocks.push(b);
  blocks.push(Float32Array.from({ length: n }, () => 1));
  return blocks;
}

describe('MX block formats', () => {
  const cases: [Format, ElementFormat][] = [['mxfp8-e4m3', ELEMENTS.e4m3], ['mxfp8-e5m2', ELEMENTS.e5m2], ['mxfp4', ELEMENTS.e2m1]];
  for (const [format, elem] of cases) {
    for (const scaleMode of ['floor', 'rceil'] as const) {
      it(`${format} (${scaleMode}): scales and elements as defined, on random and adversarial blocks`, () => {
        const blocks = [...Array.from({ length: 20 }, (_, k) => randn(32, 10 ** (k / 2 - 5))), ...adversarial(32, elem)];
        const x = new Float32Array(blocks.length * 32);
        blocks.forEach((b, k) => x.set(b, 32 * k));
        const q = quantize(x, { format, scaleMode });
        expect(q.scales.length).toBe(blocks.length);
        expect(q.data.length).toBe(elem.bits === 4 ? x.length / 2 : x.length);
        const codes = elem.bits === 4 ? unpack4(q.data) : Array.from(q.data);
        const deq = dequantize(q);
        blocks.forEach((b, k) => {
          const amax = Math.max(...Array.from(b, Math.abs));
          let e: number;
          if (amax === 0) e = -127;
          else if (scaleMode === 'floor') e = floorLog2(amax) - elem.emax;
          else {
            e = -200;
            while (elem.max * 2 ** e < amax) e++; // the smallest power of two that fits amax
          }
          e = Math.min(127, Math.max(-127, e));
          expect(q.scales[k], `block ${k} scale`).toBe(e + 127);
          for (let i = 0; i < 32; i++) {
            const v = b[i]! / 2 ** e;
            const want = encodeElement(elem, v, { saturate: true });
            expect(codes[32 * k + i], `block ${k} element ${i} (${b[i]})`).toBe(want);
            expect(Object.is(deq[32 * k + i], f32(decodeElement(elem, want) * 2 ** e)) || deq[32 * k + i] === f32(decodeElement(elem, want) * 2 ** e)).toBe(true);
            if (scaleMode === 'rceil') expect(Math.abs(v)).toBeLessThanOrEqual(elem.max); // nothing saturates
          }
        });
      });
    }

    it(`${format}: a block with NaN or Inf gets the NaN scale and decodes to NaN; neighbours are untouched`, () => {
      const x = randn(96);
      x[40] = NaN;
      x[70] = -Infinity;
      const q = quantize(x, { format });
      expect([q.scales[0], q.scales[1], q.scales[2]]).toEqual([q.scales[0], 0xff, 0xff]);
      expect(q.scales[0]).not.toBe(0xff);
      const d = dequantize(q);
      expect(Array.from(d.subarray(32)).every(Number.isNaN)).toBe(true);
      expect(Array.from(d.subarray(0, 32)).every(Number.isFinite)).toBe(true);
    });
  }

  it('packs MXFP4 two elements per byte, element 2i in the low nibble', () => {
    const x = new Float32Array(32);
    x[0] = 6; // amax 6: floor scale 2^(2 - 2) = 1
    x[1] = -0.5;
    x[2] = 1.5;
    const q = quantize(x, { format: 'mxfp4' });
    expect(decodeE8m0(q.scales[0]!)).toBe(1);
    expect(q.data[0]).toBe(0x7 | (0x9 << 4)); // 6 = 0b0111 low, -0.5 = 0b1001 high
    expect(q.data[1]! & 0xf).toBe(0x3); // 1.5
  });
});

describe('NVFP4', () => {
  it('scales each block of 16 by an E4M3 code and the tensor by an FP32 amax / 2688', () => {
    const x = new Float32Array(16 * 24);
    for (let b = 0; b < 24; b++) x.set(randn(16, 10 ** (b / 4 - 3)), 16 * b);
    x[5] = 0; // and a zero block with a negative zero
    x.fill(0, 32, 48);
    x[33] = -0;
    const q = quantize(x, { format: 'nvfp4' });
    let amax = 0;
    for (const v of x) amax = Math.max(amax, Math.abs(v));
    const g = f32(amax / 2688);
    expect(q.globalScale).toBe(g);
    const codes = unpack4(q.data);
    const deq = dequantize(q);
    for (let b = 0; b < 24; b++) {
      const blk = x.subarray(16 * b, 16 * b + 16);
      const bamax = Math.max(...Array.from(blk, Math.abs));
      const sc = encodeElement(ELEMENTS.e4m3, f32(f32(bamax / 6) / g));
      expect(q.scales[b], `block ${b}`).toBe(sc);
      const denom = f32(decodeElement(ELEMENTS.e4m3, sc) * g);
      for (let i = 0; i < 16; i++) {
        const want = denom === 0 ? 0 : encodeElement(ELEMENTS.e2m1, f32(blk[i]! / denom));
        expect(codes[16 * b + i], `block ${b} element ${i}`).toBe(want);
        expect(deq[16 * b + i]).toBe(f32(decodeElement(ELEMENTS.e2m1, want) * decodeElement(ELEMENTS.e4m3, sc) * g));
      }
    }
    // The error stays within half the top E2M1 step (s, at the block's scale s) unless the block
    // scale rounded down and the largest elements saturate at 6s; a block whose scale underflowed
    // E4M3 (amax / 6 / g below 2^-10: the tensor spans more range than E4M3 has) is all zeros.
    for (let i = 0; i < x.length; i++) {
      const b = Math.floor(i / 16);
      const s = decodeElement(ELEMENTS.e4m3, q.scales[b]!) * g;
      const bamax = Math.max(...Array.from(x.subarray(16 * b, 16 * b + 16), Math.abs));
      expect(Math.abs(deq[i]! - x[i]!)).toBeLessThanOrEqual(s > 0 ? Math.max(s, bamax - 6 * s) * (1 + 1e-6) : 6 * g * 2 ** -10);
    }
  });

  it('an all-zero tensor quantizes to zeros; NaN marks only its block', () => {
    const z = quantize(new Float32Array(32), { format: 'nvfp4' });
    expect(z.globalScale).toBe(0);
    expect(Array.from(dequantize(z)).every((v) => v === 0)).toBe(true);
    const x = randn(48);
    x[20] = NaN;
    const d = dequantize(quantize(x, { format: 'nvfp4' }));
    expect(Array.from(d.subarray(16, 32)).every(Number.isNaN)).toBe(true);
    expect(Array.from(d.subarray(0, 16)).concat(Array.from(d.subarray(32))).every(Number.isFinite)).toBe(true);
  });
});

describe('tensorwise FP8 and the API', () => {
  it('fp8-e4m3 multiplies by m = f32(448 / amax), decodes with f32(1 / m), and saturates nothing', () => {
    const x = randn(1000, 3);
    const q = quantize(x, { format: 'fp8-e4m3' });
    const amax = Math.max(...Array.from(x, Math.abs));
    const m = f32(448 / amax);
    expect(q.globalScale).toBe(f32(1 / m));
    for (let i = 0; i < x.length; i += 97) expect(q.data[i]).toBe(encodeElement(ELEMENTS.e4m3, f32(x[i]! * m), { saturate: true }));
    // An amax so small that 448 / amax overflows f32 takes f32's largest multiplier.
    const tiny = quantize(Float32Array.of(1e-45, -1e-45, 0, 0), { format: 'fp8-e4m3' });
    expect(tiny.globalScale).toBe(f32(1 / 3.4028234663852886e38));
    const d = dequantize(q);
    for (let i = 0; i < x.length; i++) expect(Math.abs(d[i]! - x[i]!)).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -4 + q.globalScale! * 2 ** -9);
  });

  it('says what is wrong with bad input', () => {
    expect(errorOf(() => quantize(new Float32Array(32), { format: 'mxfp6' as Format })).message).toMatch(/Expected a format \(mxfp8-e4m3, .*\) but received .mxfp6/);
    expect(errorOf(() => quantize(new Float32Array(33), { format: 'mxfp8-e4m3' })).message).toMatch(/divisible by mxfp8-e4m3's block of 32 elements but received 33/);
    expect(errorOf(() => quantize(new Float32Array(24), { format: 'nvfp4' })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => quantize(new Int32Array(32) as never, { format: 'mxfp4' })).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => quantize(new Float32Array(32), { format: 'mxfp4', scaleMode: 'up' as never })).message).toMatch(/'floor' or 'rceil'/);
    expect(errorOf(() => quantize(new Float32Array(32), { format: 'nvfp4', scaleMode: 'rceil' })).message).toMatch(/no scaleMode for nvfp4/);
  });
});
