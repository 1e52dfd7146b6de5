// Delayed scaling: the scale of a step comes from the amax history of the steps before it.
import { describe, expect, it } from 'vitest';
import { AmaxHistory, ELEMENTS, decodeElement } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

// The decode scale of an amax: f32(1 / m), m = f32(448 / amax) (torchao's dynamic scaling).
const sc = (amax: number) => Math.fround(1 / Math.fround(448 / amax));

describe('AmaxHistory', () => {
  it('scales by the largest amax of the last `length` steps, saturating what exceeds it', () => {
    const h = new AmaxHistory(3);
    expect(h.scale()).toBe(1);
    const steps = [10, 2000, 5, 7, 3].map((m) => Float32Array.from({ length: 64 }, (_, i) => (i === 0 ? m : (Math.random() * 2 - 1) * m)));
    const scales: number[] = [];
    for (const x of steps) scales.push(h.quantize(x).scale);
    expect(scales).toEqual([1, sc(10), sc(2000), sc(2000), sc(2000)]);
    expect(h.values).toEqual([5, 7, 3]);
    expect(h.scale()).toBe(sc(7)); // 2000 has dropped out of the window
    // Step 2 used the scale of amax 10 for values up to 2000: they saturate at 448 × scale.
    const h2 = new AmaxHistory(3);
    h2.push(10);
    const q = h2.quantize(Float32Array.of(2000, -5));
    const d = h2.dequantize(q);
    expect(d[0]).toBe(Math.fround(448 * sc(10)));
    expect(Math.abs(d[1]! + 5)).toBeLessThan(5 * 2 ** -3);
    expect(decodeElement(ELEMENTS.e4m3, q.data[0]!)).toBe(448);
  });

  it('keeps a step with NaN out of the history, and refuses bad values', () => {
    const h = new AmaxHistory(4);
    h.quantize(Float32Array.of(1, NaN));
    expect(h.values).toEqual([]);
    expect(errorOf(() => h.push(Infinity)).message).toMatch(/finite amax/);
    expect(errorOf(() => new AmaxHistory(0)).message).toMatch(/positive integer history length/);
  });
});
