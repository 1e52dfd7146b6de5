// sparsek_attention's CUDA kernels against the float64 reference, on fresh random inputs with
// poisoned outputs and workspaces: the selection (equal to the reference's, except where two scores
// lie within f32 rounding of each other), the forward (out, lse; no less accurate than a naive bf16
// attention under the same mask), the backward over the GPU's own indices (dq, dk, dv), bf16 and
// f16, causal or not, GQA, MQA and MHA, block sizes 64 and 128 (on sm_90 the Hopper kernels), S
// not a multiple of the block;
// topK = every block equal to dense attention; two runs bitwise identical; the registry's choice;
// the native entry points' refusals. Skipped without a GPU. SANITIZE_SMALL=1 keeps the small cases
// (for compute-sanitizer, scripts/sparsek-check.sh).
import { DeepwellError, f16BitsToF32, f32ToF16Bits } from '@deepwell/core';
import { type ValueType } from '@deepwell/ir';
import { nativeEntries } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import '../src/index.js';
import { bitDiff, candidatesFor, gpu, gradErr, naiveAtPrecision, naturalGrad, paramsOf, randn, reference, relErr, round, runCuda } from './gpu_helpers.js';

interface Case {
  B: number;
  H: number;
  Hkv: number;
  S: number;
  D: number;
  blockSize: number;
  topK: number;
  causal: boolean;
  first?: boolean;
  window?: number;
  dtype: 'bf16' | 'f16';
  small?: boolean;
}

const ALL: Case[] = [
  { B: 1, H: 4, Hkv: 2, S: 300, D: 64, blockSize: 64, topK: 3, causal: true, first: true, dtype: 'bf16', small: true },
  { B: 2, H: 4, Hkv: 1, S: 200, D: 128, blockSize: 64, topK: 2, causal: true, window: 2, dtype: 'bf16', small: true }, // MQA
  { B: 1, H: 2, Hkv: 2, S: 390, D: 64, blockSize: 128, topK: 2, causal: false, dtype: 'bf16', small: true }, // MHA, block 128
  { B: 1, H: 2, Hkv: 1, S: 129, D: 64, blockSize: 64, topK: 2, causal: true, dtype: 'f16', small: true },
  { B: 1, H: 8, Hkv: 2, S: 1100, D: 128, blockSize: 64, topK: 6, causal: true, first: true, dtype: 'bf16' }, // GQA 4:1
  { B: 1, H: 4, Hkv: 2, S: 700, D: 128, blockSize: 128, topK: 3, causal: true, window: 2, dtype: 'bf16' },
  // Block size 128 on sm_90: the Hopper kernels (D 64 here; the cases above at D 128 and non-causal).
  { B: 2, H: 8, Hkv: 2, S: 1000, D: 64, blockSize: 128, topK: 3, causal: true, first: true, dtype: 'bf16' },
  { B: 1, H: 2, Hkv: 1, S: 300, D: 128, blockSize: 128, topK: 2, causal: true, dtype: 'f16', small: true },
];
const CASES = process.env.SANITIZE_SMALL === '1' ? ALL.filter((c) => c.small) : ALL;
const TOL = 1e-2; // one rounding to a 16-bit format, with room for FP32 sums
const name = (c: Case) => JSON.stringify(c);
const rnd = (c: Case, n: number) => (c.dtype === 'bf16' ? round('bf16', randn(n)) : Float64Array.from(randn(n), (y) => f16BitsToF32(f32ToF16Bits(y))));

function attrsOf(c: Case) {
  return { causal: c.causal, blockSize: c.blockSize, topK: c.topK, first: c.first ?? false, window: c.window ?? 1, scale: 0, layout: 'bhsd' };
}

/** The reference's block scores (float64 means, as the op defines them): [B, Hkv, nB(query), nB(key)]. */
function blockScores(c: Case, q: Float64Array, k: Float64Array): (b: number, g: number, i: number, j: number) => number {
  const nB = Math.ceil(c.S / c.blockSize);
  const G = c.H / c.Hkv;
  const mean = (x: Float64Array, heads: number[], b: number, i: number, Hx: number) => {
    const m = new Float64Array(c.D);
    const r0 = i * c.blockSize, r1 = Math.min(c.S, r0 + c.blockSize);
    for (const h of heads) for (let r = r0; r < r1; r++) for (let d = 0; d < c.D; d++) m[d]! += x[((b * Hx + h) * c.S + r) * c.D + d]!;
    return m.map((v) => v / (heads.length * (r1 - r0)));
  };
  return (b, g, i, j) => {
    const qm = mean(q, Array.from({ length: G }, (_, t) => g * G + t), b, i, c.H);
    const km = mean(k, [g], b, j, c.Hkv);
    return qm.reduce((a, v, d) => a + v * km[d]!, 0);
  };
}

/**
 * The GPU's selection against the reference's: equal, or where a row differs, the blocks in one but
 * not the other score within `eps` (relative) of the lowest score both kept: a near tie that f32 and
 * float64 may order differently. Returns the number of rows that differed that way.
 */
function checkSelection(c: Case, got: Float64Array, want: Float64Array, q: Float64Array, k: Float64Array): number {
  const nB = Math.ceil(c.S / c.blockSize);
  const score = blockScores(c, q, k);
  let nearTies = 0;
  for (let row = 0; row < got.length / c.topK; row++) {
    const g = Array.from(got.subarray(row * c.topK, (row + 1) * c.topK));
    const w = Array.from(want.subarray(row * c.topK, (row + 1) * c.topK));
    if (g.join() === w.join()) continue;
    const [b, hk, i] = [Math.floor(row / (c.Hkv * nB)), Math.floor(row / nB) % c.Hkv, row % nB];
    const onlyG = g.filter((j) => !w.includes(j));
    const onlyW = w.filter((j) => !g.includes(j));
    expect(onlyG.length, `row ${row}: ${g} vs ${w}`).toBe(onlyW.length);
    const sg = onlyG.map((j) => score(b, hk, i, j));
    const sw = onlyW.map((j) => score(b, hk, i, j));
    const scale = Math.max(...[...sg, ...sw].map(Math.abs), 1e-30);
    expect(Math.max(...sw) - Math.min(...sg), `row ${row}: selection ${g} vs the reference's ${w} is not a near tie`).toBeLessThan(1e-5 * scale);
    nearTies++;
  }
  return nearTies;
}

describe.skipIf(!gpu)('sparsek_attention on CUDA', () => {
  it.each(CASES.map((c) => [name(c), c] as const))('selection, forward and backward against the float64 reference (%s)', (_n, c) => {
    const attrs = attrsOf(c);
    const nB = Math.ceil(c.S / c.blockSize);
    const t = (heads: number): ValueType => ({ shape: [c.B, heads, c.S, c.D], dtype: c.dtype });
    const lseT: ValueType = { shape: [c.B, c.H, c.S], dtype: 'f32' };
    const idxT: ValueType = { shape: [c.B, c.Hkv, nB, c.topK], dtype: 'i32' };
    const [q, k, v, dout] = [c.H, c.Hkv, c.Hkv, c.H].map((h) => rnd(c, c.B * h * c.S * c.D));
    const fwd = paramsOf('sparsek_attention', [t(c.H), t(c.Hkv), t(c.Hkv)], attrs);
    candidatesFor(fwd, 'sparsek_attention_cuda');
    const [out, lse, idx] = runCuda(fwd, 'sparsek_attention_cuda', [q!, k!, v!]);
    const [outRef, lseRef, idxRef] = reference('sparsek_attention', fwd.inTypes, [q!, k!, v!], attrs);
    const ties = checkSelection(c, idx!, idxRef!, q!, k!);
    console.log(`${name(c)}: selection rows differing by a near tie: ${ties}`);
    // The rest of the comparison over the GPU's selection (the reference's, unless a near tie moved it).
    const bwdIn = [t(c.H), t(c.H), t(c.Hkv), t(c.Hkv), t(c.H), lseT, idxT];
    if (ties === 0) {
      const err = relErr(out!, outRef!);
      console.log(`${name(c)}: out err ${err.toExponential(2)}, lse err ${relErr(lse!, lseRef!).toExponential(2)}`);
      expect(err, 'out').toBeLessThan(TOL);
      expect(relErr(lse!, lseRef!), 'lse').toBeLessThan(1e-5);
      if (c.S <= 300) {
        const G = c.H / c.Hkv;
        const sel = (b: number, h: number, i: number, j: number) => {
          const row = ((b * c.Hkv + Math.floor(h / G)) * nB + Math.floor(i / c.blockSize)) * c.topK;
          return Array.from(idx!.subarray(row, row + c.topK)).includes(Math.floor(j / c.blockSize));
        };
        const naive = naiveAtPrecision(c.dtype === 'f16' ? 'f32' : 'bf16', { ...c, layout: 'bhsd' }, q!, k!, v!, sel);
        expect(err, 'out no less accurate than a naive bf16 attention under the same mask').toBeLessThanOrEqual(1.25 * relErr(naive, outRef!) + 1e-3);
      }
    }
    const bwd = paramsOf('sparsek_attention_backward', bwdIn, attrs);
    candidatesFor(bwd, 'sparsek_attention_backward_cuda');
    const grads = runCuda(bwd, 'sparsek_attention_backward_cuda', [dout!, q!, k!, v!, out!, lse!, idx!]);
    const gradsRef = reference('sparsek_attention_backward', bwd.inTypes, [dout!, q!, k!, v!, out!, lse!, idx!], attrs);
    const natural = naturalGrad(c.D, dout!, Float64Array.from([...q!, ...k!, ...v!]));
    ['dq', 'dk', 'dv'].forEach((g, i) => {
      const err = gradErr(grads[i]!, gradsRef[i]!, natural);
      console.log(`${name(c)}: ${g} err ${err.toExponential(2)}`);
      expect(err, g).toBeLessThan(TOL);
    });
    // Deterministic: the same inputs, the same bits.
    const again = runCuda(fwd, 'sparsek_attention_cuda', [q!, k!, v!]);
    [out, lse, idx].forEach((x, i) => expect(bitDiff(again[i]!, x!), `forward output ${i} rerun`).toBe(''));
    const gradsAgain = runCuda(bwd, 'sparsek_attention_backward_cuda', [dout!, q!, k!, v!, out!, lse!, idx!]);
    grads.forEach((x, i) => expect(bitDiff(gradsAgain[i]!, x), `gradient ${i} rerun`).toBe(''));
  });

  it.skipIf(process.env.SANITIZE_SMALL === '1')('topK = every block is dense attention', () => {
    const c: Case = { B: 1, H: 4, Hkv: 2, S: 256, D: 128, blockSize: 128, topK: 2, causal: true, dtype: 'bf16' };
    const t = (heads: number): ValueType => ({ shape: [c.B, heads, c.S, c.D], dtype: 'bf16' });
    const [q, k, v] = [c.H, c.Hkv, c.Hkv].map((h) => rnd(c, c.B * h * c.S * c.D));
    const [out, lse, idx] = runCuda(paramsOf('sparsek_attention', [t(c.H), t(c.Hkv), t(c.Hkv)], attrsOf(c)), 'sparsek_attention_cuda', [q!, k!, v!]);
    const [outRef, lseRef] = reference('sdpa', [t(c.H), t(c.Hkv), t(c.Hkv)], [q!, k!, v!], { causal: true, scale: 0, layout: 'bhsd' });
    expect(relErr(out!, outRef!)).toBeLessThan(TOL);
    expect(relErr(lse!, lseRef!)).toBeLessThan(1e-5);
    expect(Array.from(idx!)).toEqual([0, -1, 0, 1, 0, -1, 0, 1]);
  });

  it('the native entry points refuse what the kernels do not take, with typed errors', () => {
    const e = nativeEntries().entries!;
    const thrown = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err instanceof DeepwellError ? `${err.code}: ${err.message}` : `untyped: ${String(err)}`;
      }
      return 'none';
    };
    const ws = { base: 0, offset: 0, bytes: 0 };
    const none = { base: 0, offset: 0, bytes: 0 };
    // (stream, dtype, B, H, Hkv, Sq, Sk, D, causal, scale, blockSize, topK, first, window, q, k, v, out, lse, indices, 9 strides, workspace)
    // B 1, H 2, Hkv 1, S 256, D 64 (contiguous [B, heads, S, D] element strides of q and out, k and v).
    const [QS, KS] = [[32768, 16384, 64], [16384, 16384, 64]] as const;
    const call = (over: Partial<Record<string, number>>) => {
      const a = { dtype: 1, Sq: 256, Sk: 256, D: 64, blockSize: 64, topK: 2, window: 1, ...over };
      return () => e.sparsekForward(0, a.dtype, 1, 2, 1, a.Sq, a.Sk, a.D, 1, 0.125, a.blockSize, a.topK, 0, a.window, none, none, none, none, none, none, ...QS, ...KS, ...QS, ws);
    };
    expect(thrown(call({ blockSize: 32 }))).toMatch(/INVALID_ARGUMENT.*block size of 64 or 128/);
    expect(thrown(call({ topK: 5 }))).toMatch(/INVALID_ARGUMENT.*topK in \[1, 4\]/);
    expect(thrown(call({ window: 3 }))).toMatch(/INVALID_ARGUMENT.*window/);
    expect(thrown(call({ Sk: 128 }))).toMatch(/SHAPE_MISMATCH/);
    expect(thrown(call({ D: 96 }))).toMatch(/INVALID_ARGUMENT.*head dimension/);
    expect(thrown(call({ dtype: 0 }))).toMatch(/INVALID_DTYPE/);
    expect(thrown(call({}))).toMatch(/INVALID_ARGUMENT.*workspace/);
  });
});
