/**
 * quant_stats: what quantizing x the way fake_quant does (same attributes) would do to it, in six
 * numbers — the per-layer numerics the precision policy reports on request and the fallback
 * controller reads.
 *   x: F[...] (f32, bf16 or f16); attributes format, scaleMode, axis exactly as fake_quant's (and
 *   the same shape rules) -> stats: f32[6] =
 *     [0] amax           the largest |x| over the finite elements (0 when there are none);
 *     [1] nonfinite      (number of NaN and ±Inf elements) / numel;
 *     [2] underflow      (number of finite, nonzero x whose fake_quant value y is ±0) / numel;
 *     [3] saturated      (number of finite x that the element encoder clamped) / numel;
 *     [4] log2ScaleMin   min over usable blocks of log2(decode scale);
 *     [5] log2ScaleMax   max over usable blocks of log2(decode scale); both NaN with no usable block.
 *
 * Groups and blocks are fake_quant's (a line along `axis` cut into blocks of 32 / 16 / 128, the
 * whole tensor for tensorwise FP8, 128 × 128 tiles of the last two axes). For each block:
 *   decode scale S:  MX 2^e (the E8M0 scale); NVFP4 s·g (the E4M3 block scale times the tensor's
 *                    FP32 scale g, from the amax of all of x, exact in float64); tensorwise and
 *                    blockwise FP8 the FP32 scale s.
 *   scaled value v of an element (what the element encoder was given):
 *                    MX x / 2^e (exact); NVFP4 f32(x / f32(s·g)); FP8 (both kinds) f32(x · m),
 *                    m = f32(max_elem / amax) of the block (blocks.ts's fp8Scaling).
 *   A block is usable for the scale range when it holds no NaN/±Inf, its amax is > 0 (an all-zero
 *   block's scale is a convention: 2^−127, 0 or 1) and S is finite and > 0 (NVFP4: s or g not 0).
 * An element is saturated when x is finite, its block was encoded (not an MX/NVFP4 block holding
 * NaN/Inf, which decodes to NaN; not an NVFP4 block with f32(s·g) = 0, whose codes are 0), and |v|
 * rounds above the element's largest value (ties to even, as if the exponent range went on):
 *   E4M3 |v| > 464, E5M2 |v| >= 61440, E2M1 |v| >= 7.
 * Every share is a count divided by numel in float64, then rounded to f32; log2 is Math.log2 in
 * float64 rounded to f32 (a device's log2f may differ in the last place for non-power-of-two
 * scales; MX scales give exact integers).
 * Compile-time only (the policy inserts it with `numerics: true`), so it has no gradient rule.
 */
import { defineOp, numel } from '@deepwell/ir';
import { ELEMENTS, decodeCode, decodeE8m0, type ElementName } from '../elements.js';
import { fp8Scaling } from '../blocks.js';
import { FAKE_QUANT_ATTRS, checkFakeQuant, fakeQuantBlocking, gather, quantGroups, quantizeGroup, tensorAmaxOf, type FakeQuantFormat } from './fake_quant.js';

/** The names of quant_stats' six values, in order. */
export const QUANT_STATS = ['amax', 'nonfinite', 'underflow', 'saturated', 'log2ScaleMin', 'log2ScaleMax'] as const;

/** Whether an element encoder clamped |v| (it rounds above the largest value). */
const CLAMPS: Readonly<Record<ElementName, (a: number) => boolean>> = { e4m3: (a) => a > 464, e5m2: (a) => a >= 61440, e2m1: (a) => a >= 7 };

export const quantStatsOp = defineOp({
  name: 'quant_stats',
  doc: "what fake_quant with the same attributes does to x: [amax, nonfinite, underflow, saturated shares, log2 scale min, max]",
  inputs: ['x'],
  outputs: ['stats'],
  attrs: FAKE_QUANT_ATTRS,
  infer: ([x], attrs) => {
    checkFakeQuant('quant_stats', x!, attrs.format as FakeQuantFormat, attrs.axis as number);
    return [{ shape: [QUANT_STATS.length], dtype: 'f32' }];
  },
  reference: ({ inputs: [x], outputs: [stats], inTypes, attrs }) => {
    const format = attrs.format as FakeQuantFormat;
    const axis = checkFakeQuant('quant_stats', inTypes[0]!, format, attrs.axis as number);
    const { kind, element } = fakeQuantBlocking(format);
    const clamps = CLAMPS[element];
    const n = numel(inTypes[0]!.shape);
    let amax = 0;
    let nonfinite = 0;
    let underflow = 0;
    let saturated = 0;
    let lo = Infinity;
    let hi = -Infinity;
    const tensorAmax = kind === 'nvfp4' ? tensorAmaxOf(x!) : undefined;
    for (const g of quantGroups(inTypes[0]!.shape, format, axis)) {
      const values = gather(x!, g);
      const qg = quantizeGroup(values, g, format, attrs.scaleMode as 'floor' | 'rceil', tensorAmax);
      // Block of the group's k-th element, and each block's decode scale.
      let blockOf: (k: number) => number;
      let scales: Float64Array;
      if (qg.kind === '2d') {
        const tile = kind === 'block128x128' ? 128 : 1;
        const perRow = g.cols / 128;
        blockOf = (k) => Math.floor(Math.floor(k / g.cols) / tile) * perRow + Math.floor((k % g.cols) / 128);
        scales = Float64Array.from(qg.q.scales);
      } else {
        const q = qg.q;
        blockOf = (k) => Math.floor(k / q.blockSize);
        scales =
          kind === 'mx' ? Float64Array.from(q.scales, decodeE8m0) :
          kind === 'nvfp4' ? Float64Array.from(q.scales, (c) => decodeCode(ELEMENTS.e4m3, c) * q.globalScale!) :
          Float64Array.of(q.globalScale!);
      }
      const special = new Uint8Array(scales.length);
      const bamax = new Float64Array(scales.length);
      values.forEach((v, k) => {
        const b = blockOf(k);
        if (!Number.isFinite(v)) special[b] = 1;
        else bamax[b] = Math.max(bamax[b]!, Math.abs(v));
      });
      // FP8's multipliers, from each block's amax.
      const muls = Float64Array.from(bamax, (a) => fp8Scaling(a, ELEMENTS[element].max).mul);
      for (let b = 0; b < scales.length; b++) {
        const s = scales[b]!;
        if (special[b] || bamax[b] === 0 || !(s > 0) || !Number.isFinite(s)) continue;
        lo = Math.min(lo, Math.log2(s));
        hi = Math.max(hi, Math.log2(s));
      }
      values.forEach((v, k) => {
        if (!Number.isFinite(v)) return void nonfinite++;
        amax = Math.max(amax, Math.abs(v));
        if (v !== 0 && qg.y[k] === 0) underflow++;
        const b = blockOf(k);
        const s = scales[b]!;
        let scaled: number;
        if (kind === 'mx') {
          if (special[b]) return;
          scaled = v / s;
        } else if (kind === 'nvfp4') {
          const denom = Math.fround(s);
          if (special[b] || denom === 0) return;
          scaled = Math.fround(v / denom);
        } else scaled = Math.fround(v * muls[b]!);
        if (clamps(Math.abs(scaled))) saturated++;
      });
    }
    const out = [amax, nonfinite / n, underflow / n, saturated / n, lo === Infinity ? NaN : lo, hi === -Infinity ? NaN : hi];
    out.forEach((v, i) => (stats![i] = v));
  },
  flops: ([x]) => 6 * numel(x!.shape),
});
