// sparsek_attention against an independent naive implementation in float64: the block means, block
// scores and selection computed here (candidates sorted by score, the tie rule, NaN last), then the
// full score matrix under an explicit block mask, softmax, the product; its backward against a naive
// masked backward and its gradient rule against finite differences; topK = nB against sdpa; the op in
// a compiled CPU step; the Tensor-level call; every bad input a typed error. Fresh random inputs
// every run (never zeros).
import { DeepwellError, Tensor, bf16BitsToF32, f32ToBf16Bits, registerBackend, registry, unregisterBackend, type Backend, type KernelCandidate } from '@deepwell/core';
import type { CudaCall } from '@deepwell/kernels-native';
import { GraphBuilder, checkAttrs, compile, getOp, gradcheck, interpret, type KernelParams, type NumArray, type ValueType } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { layoutStrides, sparseKAttention, sparsekAttention, sparsekAttentionBackward, sparsekDims, sparsekFlops, sparsekSelect } from '../src/index.js';

const randn = (n: number) => Float64Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));

interface Case {
  B: number;
  H: number;
  Hkv: number;
  S: number;
  D: number;
  blockSize: number;
  topK: number;
  causal: boolean;
  first: boolean;
  window: number;
}

const attrsOf = (c: Case, extra: Record<string, unknown> = {}) => ({ blockSize: c.blockSize, topK: c.topK, causal: c.causal, first: c.first, window: c.window, ...extra });
const nBlocks = (c: Case) => Math.ceil(c.S / c.blockSize);
/** Element (b, h, s, d) of a [B, heads, S, D] array. */
const ix = (c: Case, heads: number, b: number, h: number, s: number, d: number) => ((b * heads + h) * c.S + s) * c.D + d;

/** The selection, naively: i32-valued [B, Hkv, nB, topK] as numbers. */
function naiveSelect(c: Case, q: Float64Array, k: Float64Array): number[] {
  const nB = nBlocks(c);
  const G = c.H / c.Hkv;
  const out: number[] = [];
  for (let b = 0; b < c.B; b++)
    for (let g = 0; g < c.Hkv; g++) {
      const rows = (j: number) => Array.from({ length: Math.min(c.S, (j + 1) * c.blockSize) - j * c.blockSize }, (_, r) => j * c.blockSize + r);
      const kbar = (j: number) => Array.from({ length: c.D }, (_, d) => rows(j).reduce((a, r) => a + k[ix(c, c.Hkv, b, g, r, d)]!, 0) / rows(j).length);
      const qbar = (i: number) =>
        Array.from({ length: c.D }, (_, d) => {
          let sum = 0;
          for (let h = g * G; h < (g + 1) * G; h++) for (const r of rows(i)) sum += q[ix(c, c.H, b, h, r, d)]!;
          return sum / (G * rows(i).length);
        });
      for (let i = 0; i < nB; i++) {
        const cand = Array.from({ length: c.causal ? i + 1 : nB }, (_, j) => j);
        const forced = cand.filter((j) => (j <= i && j > i - c.window) || (c.first && j === 0));
        const qi = qbar(i);
        const scored = cand.filter((j) => !forced.includes(j)).map((j) => ({ j, s: kbar(j).reduce((a, x, d) => a + x * qi[d]!, 0) }));
        // Sort key: numbers before NaN, then score descending, then block ascending.
        scored.sort((x, y) => (Number.isNaN(x.s) ? 1 : 0) - (Number.isNaN(y.s) ? 1 : 0) || (Number.isNaN(x.s) ? 0 : y.s - x.s) || x.j - y.j);
        const sel = [...forced, ...scored.slice(0, c.topK - forced.length).map((x) => x.j)].sort((x, y) => x - y);
        out.push(...sel, ...new Array<number>(c.topK - sel.length).fill(-1));
      }
    }
  return out;
}

/** mask(b, g, r, col): query row r of kv group g sees key col, from indices and causality. */
function maskOf(c: Case, indices: ArrayLike<number>) {
  const nB = nBlocks(c);
  return (b: number, g: number, r: number, col: number) => {
    if (c.causal && col > r) return false;
    const at = ((b * c.Hkv + g) * nB + Math.floor(r / c.blockSize)) * c.topK;
    return Array.from({ length: c.topK }, (_, t) => indices[at + t]).includes(Math.floor(col / c.blockSize));
  };
}

/** Naive masked attention on [B, heads, S, D] arrays, every score materialised: out, lse, and P per (b, h). */
function naiveForward(c: Case, q: Float64Array, k: Float64Array, v: Float64Array, scale: number, indices: ArrayLike<number>) {
  const see = maskOf(c, indices);
  const out = new Float64Array(c.B * c.H * c.S * c.D);
  const lse = new Float64Array(c.B * c.H * c.S);
  const P: number[][][] = [];
  for (let b = 0; b < c.B; b++)
    for (let h = 0; h < c.H; h++) {
      const g = Math.floor((h * c.Hkv) / c.H);
      const Pbh: number[][] = [];
      for (let r = 0; r < c.S; r++) {
        const s = Array.from({ length: c.S }, (_, col) => {
          let dot = 0;
          for (let d = 0; d < c.D; d++) dot += q[ix(c, c.H, b, h, r, d)]! * k[ix(c, c.Hkv, b, g, col, d)]!;
          return see(b, g, r, col) ? scale * dot : -Infinity;
        });
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const l = e.reduce((a, x) => a + x, 0);
        lse[(b * c.H + h) * c.S + r] = m + Math.log(l);
        Pbh.push(e.map((x) => x / l));
        for (let d = 0; d < c.D; d++) out[ix(c, c.H, b, h, r, d)] = Pbh[r]!.reduce((a, p, col) => a + p * v[ix(c, c.Hkv, b, g, col, d)]!, 0);
      }
      P.push(Pbh);
    }
  return { out, lse, P };
}

/** Naive backward from the masked P: dV = Pᵀ dO, dS = P ∘ (dO Vᵀ - rowsum(dO ∘ O)), dQ = scale dS K, dK = scale dSᵀ Q. */
function naiveBackward(c: Case, dout: Float64Array, q: Float64Array, k: Float64Array, v: Float64Array, scale: number, indices: ArrayLike<number>) {
  const { out, lse, P } = naiveForward(c, q, k, v, scale, indices);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  for (let b = 0; b < c.B; b++)
    for (let h = 0; h < c.H; h++) {
      const g = Math.floor((h * c.Hkv) / c.H);
      const Pbh = P[b * c.H + h]!;
      for (let r = 0; r < c.S; r++) {
        let delta = 0;
        for (let d = 0; d < c.D; d++) delta += dout[ix(c, c.H, b, h, r, d)]! * out[ix(c, c.H, b, h, r, d)]!;
        for (let col = 0; col < c.S; col++) {
          const p = Pbh[r]![col]!;
          let dp = 0;
          for (let d = 0; d < c.D; d++) dp += dout[ix(c, c.H, b, h, r, d)]! * v[ix(c, c.Hkv, b, g, col, d)]!;
          const ds = p * (dp - delta);
          for (let d = 0; d < c.D; d++) {
            dv[ix(c, c.Hkv, b, g, col, d)]! += p * dout[ix(c, c.H, b, h, r, d)]!;
            dq[ix(c, c.H, b, h, r, d)]! += scale * ds * k[ix(c, c.Hkv, b, g, col, d)]!;
            dk[ix(c, c.Hkv, b, g, col, d)]! += scale * ds * q[ix(c, c.H, b, h, r, d)]!;
          }
        }
      }
    }
  return { out, lse, dq, dk, dv };
}

/** [B, heads, S, D] -> [B, S, heads, D]. */
function toBshd(x: Float64Array, B: number, heads: number, S: number, D: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let b = 0; b < B; b++) for (let h = 0; h < heads; h++) for (let s = 0; s < S; s++) for (let d = 0; d < D; d++) y[((b * S + s) * heads + h) * D + d] = x[((b * heads + h) * S + s) * D + d]!;
  return y;
}

const types = (c: Case, bshd = false): ValueType[] => {
  const t = (heads: number): ValueType => ({ shape: bshd ? [c.B, c.S, heads, c.D] : [c.B, heads, c.S, c.D], dtype: 'f32' });
  return [t(c.H), t(c.Hkv), t(c.Hkv)];
};

/** The op's reference forward: out, lse, indices (outputs poisoned first, so unwritten ones show). */
function runForward(c: Case, attrs: Record<string, unknown>, q: NumArray, k: NumArray, v: NumArray) {
  const op = getOp('sparsek_attention');
  const checked = checkAttrs(op, attrs);
  const inTypes = types(c, checked.layout === 'bshd');
  const outTypes = op.infer(inTypes, checked);
  const out = new Float64Array(q.length).fill(NaN);
  const lse = new Float64Array(c.B * c.H * c.S).fill(NaN);
  const indices = new Int32Array(c.B * c.Hkv * nBlocks(c) * c.topK).fill(-7);
  op.reference({ inputs: [q, k, v], outputs: [out, lse, indices], inTypes, outTypes, attrs: checked });
  return { out, lse, indices };
}

function runBackward(opName: string, c: Case, attrs: Record<string, unknown>, inputs: NumArray[]) {
  const op = getOp(opName);
  const checked = checkAttrs(op, attrs);
  const [tq, tk, tv] = types(c);
  const lseT: ValueType = { shape: [c.B, c.H, c.S], dtype: 'f32' };
  const inTypes = [tq!, tq!, tk!, tv!, tq!, lseT, ...(inputs.length === 7 ? [{ shape: [c.B, c.Hkv, nBlocks(c), c.topK], dtype: 'i32' } as ValueType] : [])];
  const outTypes = op.infer(inTypes, checked);
  const [dq, dk, dv] = outTypes.map((t) => new Float64Array(t.shape.reduce((a, b) => a * b, 1)).fill(NaN));
  op.reference({ inputs, outputs: [dq!, dk!, dv!], inTypes, outTypes, attrs: checked });
  return { dq: dq!, dk: dk!, dv: dv! };
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]!)) throw new Error(`element ${i} is NaN (unwritten?)`);
    m = Math.max(m, a[i] === b[i] ? 0 : Math.abs(a[i]! - b[i]!));
  }
  return m;
};

const err = (fn: () => unknown): DeepwellError => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DeepwellError);
    return e as DeepwellError;
  }
  throw new Error('did not throw');
};

const CASES: [string, Case][] = [
  ['MHA, non-causal, S a multiple of blockSize', { B: 2, H: 2, Hkv: 2, S: 20, D: 8, blockSize: 4, topK: 3, causal: false, first: false, window: 1 }],
  ['GQA 4:2, causal, first, S = 37 (a partial last block)', { B: 1, H: 4, Hkv: 2, S: 37, D: 8, blockSize: 8, topK: 3, causal: true, first: true, window: 1 }],
  ['MQA 4:1, causal, window 2, S = 80', { B: 1, H: 4, Hkv: 1, S: 80, D: 16, blockSize: 16, topK: 3, causal: true, first: false, window: 2 }],
  ['GQA, non-causal, first and window 2, S = 45', { B: 2, H: 4, Hkv: 2, S: 45, D: 8, blockSize: 7, topK: 4, causal: false, first: true, window: 2 }],
  ['blockSize 1, causal', { B: 1, H: 2, Hkv: 1, S: 9, D: 4, blockSize: 1, topK: 3, causal: true, first: false, window: 1 }],
  ['one block (blockSize > S)', { B: 1, H: 2, Hkv: 2, S: 5, D: 4, blockSize: 8, topK: 1, causal: true, first: false, window: 1 }],
];

describe('sparsek_attention: the reference', () => {
  it.each(CASES)('equals naive masked attention with a naive selection (%s), in both layouts', (_name, c) => {
    const [q, k, v] = [c.H, c.Hkv, c.Hkv].map((h) => randn(c.B * h * c.S * c.D)) as [Float64Array, Float64Array, Float64Array];
    const scale = Math.random() < 0.5 ? 0 : 0.3 + Math.random();
    const sel = naiveSelect(c, q, k);
    const want = naiveForward(c, q, k, v, scale || 1 / Math.sqrt(c.D), sel);
    const got = runForward(c, attrsOf(c, { scale }), q, k, v);
    expect(Array.from(got.indices)).toEqual(sel);
    expect(maxDiff(got.out, want.out)).toBeLessThan(1e-12);
    expect(maxDiff(got.lse, want.lse)).toBeLessThan(1e-12);
    const g2 = runForward(c, attrsOf(c, { scale, layout: 'bshd' }), toBshd(q, c.B, c.H, c.S, c.D), toBshd(k, c.B, c.Hkv, c.S, c.D), toBshd(v, c.B, c.Hkv, c.S, c.D));
    expect(Array.from(g2.indices)).toEqual(sel);
    expect(maxDiff(g2.out, toBshd(want.out, c.B, c.H, c.S, c.D))).toBeLessThan(1e-12);
    expect(maxDiff(g2.lse, want.lse)).toBeLessThan(1e-12);
  });

  it('pads early causal blocks with -1 and always selects the window and block 0', () => {
    const c: Case = { B: 1, H: 2, Hkv: 1, S: 40, D: 4, blockSize: 8, topK: 3, causal: true, first: true, window: 2 };
    const { indices } = runForward(c, attrsOf(c), randn(c.H * c.S * c.D), randn(c.S * c.D), randn(c.S * c.D));
    const rows = Array.from({ length: 5 }, (_, i) => Array.from(indices.subarray(i * 3, i * 3 + 3)));
    expect(rows.slice(0, 3)).toEqual([[0, -1, -1], [0, 1, -1], [0, 1, 2]]);
    for (const [i, row] of rows.entries()) {
      expect(row).toContain(0);
      expect(row).toContain(i);
      expect(row).toContain(i - 1 < 0 ? 0 : i - 1);
    }
  });

  it('breaks ties to the lower block index: identical key blocks', () => {
    // Every key block the same rows: every score equal, so each query block takes its diagonal and
    // then the lowest other indices.
    const c: Case = { B: 1, H: 2, Hkv: 1, S: 24, D: 4, blockSize: 4, topK: 3, causal: false, first: false, window: 1 };
    const block = randn(c.blockSize * c.D);
    const k = Float64Array.from({ length: c.S * c.D }, (_, e) => block[e % block.length]!);
    const { indices } = runForward(c, attrsOf(c), randn(c.H * c.S * c.D), k, randn(c.S * c.D));
    const rows = Array.from({ length: 6 }, (_, i) => Array.from(indices.subarray(i * 3, i * 3 + 3)));
    expect(rows).toEqual([[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 3], [0, 1, 4], [0, 1, 5]]);
  });

  it('breaks ties to the lower block index: a block with its rows permuted', () => {
    // Values on a 1/4 grid, so every block sum is exact in any order: block 3 is block 1 with its rows
    // permuted, and both are pushed far along q (positive everywhere), so they tie for the best score.
    const c: Case = { B: 1, H: 2, Hkv: 1, S: 24, D: 8, blockSize: 4, topK: 2, causal: false, first: false, window: 1 };
    const k = Float64Array.from({ length: c.S * c.D }, () => Math.round(4 * (Math.random() * 2 - 1)) / 4);
    const q = Float64Array.from({ length: c.H * c.S * c.D }, () => 0.5 + Math.random());
    const perm = [2, 0, 3, 1];
    for (let r = 0; r < 4; r++)
      for (let d = 0; d < c.D; d++) {
        k[(4 + r) * c.D + d] = k[(4 + r) * c.D + d]! + 8;
        k[(12 + perm[r]!) * c.D + d] = k[(4 + r) * c.D + d]!;
      }
    const { indices, out } = runForward(c, attrsOf(c), q, k, randn(c.S * c.D));
    const rows = Array.from({ length: 6 }, (_, i) => Array.from(indices.subarray(i * 2, i * 2 + 2)));
    expect(rows).toEqual([[0, 1], [1, 3], [1, 2], [1, 3], [1, 4], [1, 5]]);
    expect(Array.from(indices)).toEqual(naiveSelect(c, q, k));
    expect(out.every(Number.isFinite)).toBe(true);
  });

  it('ranks NaN scores below every number, then by index (sparsekSelect)', () => {
    const c: Case = { B: 1, H: 1, Hkv: 1, S: 16, D: 4, blockSize: 4, topK: 3, causal: false, first: false, window: 1 };
    const attrs = checkAttrs(getOp('sparsek_attention'), attrsOf(c));
    const n = sparsekDims('test', types(c), attrs);
    const q = randn(c.S * c.D);
    const k = randn(c.S * c.D);
    k[2 * 4 * c.D] = NaN; // block 2's mean, so its score, is NaN
    let rows = Array.from(sparsekSelect(n, layoutStrides(n), q, k));
    expect([rows.slice(0, 3), rows.slice(3, 6)]).toEqual([[0, 1, 3], [0, 1, 3]]);
    expect(rows).toEqual(naiveSelect(c, q, k));
    k[3 * 4 * c.D + 1] = NaN; // blocks 2 and 3 both NaN: the lower one fills the last slot
    rows = Array.from(sparsekSelect(n, layoutStrides(n), q, k));
    expect(rows.slice(0, 3)).toEqual([0, 1, 2]);
    expect(rows).toEqual(naiveSelect(c, q, k));
  });

  it.each([false, true])('with topK = nB equals dense sdpa (causal %s), forward and backward', (causal) => {
    const c: Case = { B: 2, H: 4, Hkv: 2, S: 19, D: 8, blockSize: 5, topK: 4, causal, first: false, window: 1 };
    const [q, k, v, dout] = [c.H, c.Hkv, c.Hkv, c.H].map((h) => randn(c.B * h * c.S * c.D)) as Float64Array[];
    const got = runForward(c, attrsOf(c), q!, k!, v!);
    const sdpa = getOp('sdpa');
    const sAttrs = checkAttrs(sdpa, { causal });
    const out = new Float64Array(q!.length).fill(NaN);
    const lse = new Float64Array(c.B * c.H * c.S).fill(NaN);
    sdpa.reference({ inputs: [q!, k!, v!], outputs: [out, lse], inTypes: types(c), outTypes: sdpa.infer(types(c), sAttrs), attrs: sAttrs });
    expect(maxDiff(got.out, out)).toBeLessThan(1e-12);
    expect(maxDiff(got.lse, lse)).toBeLessThan(1e-12);
    const every = Array.from({ length: 4 }, (_, i) => [0, 1, 2, 3].map((j) => (causal && j > i ? -1 : j))).flat();
    expect(Array.from(got.indices.subarray(0, 16))).toEqual(every);
    const sparse = runBackward('sparsek_attention_backward', c, attrsOf(c), [dout!, q!, k!, v!, got.out, got.lse, got.indices]);
    const dense = runBackward('sdpa_backward', c, { causal }, [dout!, q!, k!, v!, out, lse]);
    expect(maxDiff(sparse.dq, dense.dq)).toBeLessThan(1e-12);
    expect(maxDiff(sparse.dk, dense.dk)).toBeLessThan(1e-12);
    expect(maxDiff(sparse.dv, dense.dv)).toBeLessThan(1e-12);
  });

  it('counts FLOPs as dense attention at topK = nB and fewer below', () => {
    const sizes = (causal: boolean, topK: number) => sparsekDims('test', types({ B: 1, H: 2, Hkv: 1, S: 19, D: 8, blockSize: 5, topK, causal, first: false, window: 1 }), checkAttrs(getOp('sparsek_attention'), { blockSize: 5, topK, causal }));
    expect(sparsekFlops(sizes(false, 4), 2)).toBe(2 * 2 * 2 * 19 * 19 * 8);
    expect(sparsekFlops(sizes(true, 4), 2)).toBe(2 * 2 * 2 * ((19 * 20) / 2) * 8);
    expect(sparsekFlops(sizes(true, 2), 2)).toBeLessThan(sparsekFlops(sizes(true, 4), 2));
  });
});

describe('sparsek_attention_backward: the reference', () => {
  it.each([
    ['GQA, non-causal', { B: 1, H: 4, Hkv: 2, S: 13, D: 8, blockSize: 3, topK: 3, causal: false, first: false, window: 1 }],
    ['MQA, causal', { B: 2, H: 2, Hkv: 1, S: 11, D: 4, blockSize: 4, topK: 2, causal: true, first: true, window: 1 }],
  ] as [string, Case][])('equals a naive masked backward and follows the indices given, not its own selection (%s)', (_name, c) => {
    const [q, k, v, dout] = [c.H, c.Hkv, c.Hkv, c.H].map((h) => randn(c.B * h * c.S * c.D)) as Float64Array[];
    // Random block sets (the diagonal always, so no row is empty), in no particular order.
    const nB = nBlocks(c);
    const indices = new Int32Array(c.B * c.Hkv * nB * c.topK);
    for (let row = 0; row < c.B * c.Hkv * nB; row++) {
      const i = row % nB;
      const others = Array.from({ length: c.causal ? i : nB }, (_, j) => j).filter((j) => j !== i).sort(() => Math.random() - 0.5);
      const set = [i, ...others.slice(0, c.topK - 1)];
      while (set.length < c.topK) set.push(-1);
      indices.set(set.reverse(), row * c.topK);
    }
    const scale = 0.4 + Math.random();
    const want = naiveBackward(c, dout!, q!, k!, v!, scale, indices);
    const got = runBackward('sparsek_attention_backward', c, attrsOf(c, { scale }), [dout!, q!, k!, v!, want.out, want.lse, indices]);
    expect(maxDiff(got.dq, want.dq)).toBeLessThan(1e-12);
    expect(maxDiff(got.dk, want.dk)).toBeLessThan(1e-12);
    expect(maxDiff(got.dv, want.dv)).toBeLessThan(1e-12);
  });
});

describe('sparsek_attention: the gradient', () => {
  const shapes = (c: Case) => [[c.B, c.H, c.S, c.D], [c.B, c.Hkv, c.S, c.D], [c.B, c.Hkv, c.S, c.D]].map((shape) => ({ shape }));
  it.each([
    ['non-causal GQA 4:2', { B: 1, H: 4, Hkv: 2, S: 7, D: 3, blockSize: 2, topK: 2, causal: false, first: false, window: 1 }],
    ['causal MQA with first, a partial block', { B: 1, H: 2, Hkv: 1, S: 9, D: 2, blockSize: 2, topK: 3, causal: true, first: true, window: 1 }],
    ['causal MHA, window 2', { B: 2, H: 2, Hkv: 2, S: 6, D: 2, blockSize: 2, topK: 2, causal: true, first: false, window: 2 }],
  ] as [string, Case][])('matches finite differences (%s)', (_name, c) => {
    expect(gradcheck('sparsek_attention', shapes(c), { ...attrsOf(c), scale: 0.7 }, { outputs: [0] })).toBeLessThan(1e-6);
  });

  it('also in the bshd layout', () => {
    expect(gradcheck('sparsek_attention', [{ shape: [1, 7, 2, 2] }, { shape: [1, 7, 1, 2] }, { shape: [1, 7, 1, 2] }], { blockSize: 2, topK: 2, causal: true, layout: 'bshd' }, { outputs: [0] })).toBeLessThan(1e-6);
  });

  it('rejects a loss that uses lse directly', () => {
    const e = err(() => gradcheck('sparsek_attention', shapes(CASES[0]![1]), attrsOf(CASES[0]![1]), { outputs: [0, 1] }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/lse output only through its backward/);
  });
});

describe('sparsek_attention in a compiled CPU step', () => {
  it('forward and backward equal the interpreter bit for bit, indices flowing as i32', () => {
    const b = new GraphBuilder();
    const q = b.input('q', [2, 4, 20, 8], 'f32');
    const k = b.input('k', [2, 2, 20, 8], 'f32');
    const v = b.input('v', [2, 2, 20, 8], 'f32');
    const dout = b.input('dout', [2, 4, 20, 8], 'f32');
    const attrs = { blockSize: 4, topK: 3, causal: true, first: true };
    const [out, lse, indices] = sparsekAttention(q, k, v, attrs);
    expect(indices.dtype).toBe('i32');
    expect(indices.shape).toEqual([2, 2, 5, 3]);
    const [dq, dk, dv] = sparsekAttentionBackward(dout, q, k, v, out, lse, indices, attrs);
    for (const [name, s] of Object.entries({ out, lse, indices, dq, dk, dv })) b.output(name, s);
    const g = b.graph;
    const f32 = (n: number) => Float32Array.from(randn(n));
    const feed = { q: f32(2 * 4 * 20 * 8), k: f32(2 * 2 * 20 * 8), v: f32(2 * 2 * 20 * 8), dout: f32(2 * 4 * 20 * 8) };
    const exe = compile(g);
    const got = exe.run(feed);
    const want = interpret(g, feed);
    for (const name of ['out', 'lse', 'indices', 'dq', 'dk', 'dv']) expect(Array.from(got[name]!)).toEqual(Array.from(want[g.outputs[name]!]!));
    expect(got.indices).toBeInstanceOf(Int32Array);
    expect(exe.kernelSummary().find((r) => r.op === 'sparsek_attention')).toMatchObject({ backend: 'cpu', kernel: 'sparsek_attention_reference' });
    expect(exe.kernelSummary().find((r) => r.op === 'sparsek_attention_backward')).toMatchObject({ backend: 'cpu', kernel: 'sparsek_attention_backward_reference' });
    exe.dispose();
  });

  it('checks indices that are graph inputs of the backward before the step runs', () => {
    const c: Case = { B: 1, H: 2, Hkv: 1, S: 8, D: 4, blockSize: 2, topK: 2, causal: false, first: false, window: 1 };
    const b = new GraphBuilder();
    const [q, k, v, dout, out] = [['q', 2], ['k', 1], ['v', 1], ['dout', 2], ['out', 2]].map(([name, h]) => b.input(name as string, [1, h as number, 8, 4], 'f32'));
    const lse = b.input('lse', [1, 2, 8], 'f32');
    const indices = b.input('indices', [1, 1, 4, 2], 'i32');
    const [dq] = sparsekAttentionBackward(dout!, q!, k!, v!, out!, lse, indices, attrsOf(c));
    b.output('dq', dq);
    const exe = compile(b.graph);
    const f32 = (n: number) => Float32Array.from(randn(n));
    const e = err(() => exe.run({ q: f32(64), k: f32(32), v: f32(32), dout: f32(64), out: f32(64), lse: f32(16), indices: Int32Array.from([0, 1, 1, 2, 2, 4, 3, -1]) }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/\[0, 4\) or -1 for input 'indices'/);
    exe.dispose();
  });
});

describe('sparseKAttention on Tensors', () => {
  it('computes the reference on the CPU, f32 and bf16, GQA, with indices as an i32 tensor', () => {
    const c: Case = { B: 2, H: 4, Hkv: 2, S: 23, D: 8, blockSize: 4, topK: 3, causal: true, first: true, window: 1 };
    const [q, k, v] = [c.H, c.Hkv, c.Hkv].map((h) => randn(c.B * h * c.S * c.D)) as Float64Array[];
    const t = (x: Float64Array, heads: number) => Tensor.from(Float32Array.from(x), [c.B, heads, c.S, c.D]);
    const r32 = (x: Float64Array) => Float64Array.from(Float32Array.from(x));
    const sel = naiveSelect(c, r32(q!), r32(k!));
    const want = naiveForward(c, r32(q!), r32(k!), r32(v!), 0.5, sel).out;
    const got = sparseKAttention(t(q!, c.H), t(k!, c.Hkv), t(v!, c.Hkv), { blockSize: 4, topK: 3, causal: true, first: true, scale: 0.5 });
    expect(got.out.shape).toEqual([c.B, c.H, c.S, c.D]);
    expect(got.out.dtype).toBe('f32');
    expect(maxDiff(got.out.toHost() as Float32Array, want)).toBeLessThan(1e-5);
    expect([got.indices.dtype, got.indices.shape, got.indices.device]).toEqual(['i32', [c.B, c.Hkv, 6, 3], 'cpu']);
    expect(Array.from(got.indices.toHost() as Int32Array)).toEqual(sel);
    // bf16 in, bf16 out: within one bf16 rounding of the exact result on the rounded inputs.
    const r = (x: Float64Array) => Float64Array.from(x, (y) => bf16BitsToF32(f32ToBf16Bits(y)));
    const tb = (x: Float64Array, heads: number) => Tensor.from(Uint16Array.from(x, (y) => f32ToBf16Bits(y)), [c.B, heads, c.S, c.D], 'bf16');
    const selB = naiveSelect(c, r(q!), r(k!));
    const wantB = naiveForward(c, r(q!), r(k!), r(v!), 1 / Math.sqrt(c.D), selB).out;
    const gotB = sparseKAttention(tb(q!, c.H), tb(k!, c.Hkv), tb(v!, c.Hkv), { blockSize: 4, topK: 3, causal: true, first: true });
    expect(gotB.out.dtype).toBe('bf16');
    expect(Array.from(gotB.indices.toHost() as Int32Array)).toEqual(selB);
    const vals = Array.from(gotB.out.toHost() as Uint16Array, (x) => bf16BitsToF32(x));
    vals.forEach((x, i) => expect(Math.abs(x - wantB[i]!)).toBeLessThanOrEqual(2 ** -8 * Math.abs(wantB[i]!) + 1e-30));
    for (const x of [got.out, got.indices, gotB.out, gotB.indices]) x.dispose();
  });

  it('takes the bshd layout', () => {
    const c: Case = { B: 1, H: 2, Hkv: 1, S: 10, D: 4, blockSize: 3, topK: 2, causal: false, first: false, window: 1 };
    const [q, k, v] = [c.H, c.Hkv, c.Hkv].map((h) => Float64Array.from(Float32Array.from(randn(c.B * h * c.S * c.D)))) as Float64Array[];
    const sel = naiveSelect(c, q!, k!);
    const want = toBshd(naiveForward(c, q!, k!, v!, 1 / Math.sqrt(c.D), sel).out, c.B, c.H, c.S, c.D);
    const t = (x: Float64Array, heads: number) => Tensor.from(Float32Array.from(toBshd(x, c.B, heads, c.S, c.D)), [c.B, c.S, heads, c.D]);
    const got = sparseKAttention(t(q!, c.H), t(k!, c.Hkv), t(v!, c.Hkv), { blockSize: 3, topK: 2, layout: 'bshd' });
    expect(maxDiff(got.out.toHost() as Float32Array, want)).toBeLessThan(1e-5);
    expect(Array.from(got.indices.toHost() as Int32Array)).toEqual(sel);
  });
});

describe('sparseKAttention on a device (a fake one: this checks the call, not a kernel)', () => {
  // A host-memory backend for 'cuda:7' whose buffers have a `ptr`, and a 'cuda' candidate for it
  // that declares a workspace: the device path of the Tensor call without a GPU.
  type Buf = { device: 'cuda:7'; bytes: number; ptr: number; data: Uint8Array };
  const log: string[] = [];
  const live = new Map<number, Buf>();
  let next = 4096;
  const fake: Backend = {
    device: 'cuda:7',
    alloc: (bytes) => {
      const buf: Buf = { device: 'cuda:7', bytes, ptr: (next += 4096), data: new Uint8Array(bytes) };
      live.set(buf.ptr, buf);
      log.push(`alloc ${bytes}`);
      return buf;
    },
    free: (b) => {
      live.delete((b as Buf).ptr);
      log.push(`free ${b.bytes}`);
    },
    write: (dst, src, off = 0) => (dst as Buf).data.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), off),
    read: (src, dst, off = 0) => new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set((src as Buf).data.subarray(off, off + dst.byteLength)),
    copy: () => {
      throw new Error('not used');
    },
    synchronize: () => void log.push('sync'),
    memoryStats: () => ({ inUse: 0, reserved: 0, peak: 0, allocations: live.size }),
  };
  const WS = 1001;
  let fail = false;
  let seen: CudaCall<KernelParams> | null = null;
  const candidate: KernelCandidate<CudaCall<KernelParams>, void> = {
    op: 'sparsek_attention',
    backend: 'cuda',
    name: 'sparsek_attention_fake_device',
    priority: 1_000_000,
    supports: (p) => (p.device === 'cuda:7' ? true : 'the fake device only'),
    workspace: () => WS,
    run: (c) => {
      seen = c;
      if (fail) throw new DeepwellError('CUDA_ERROR', 'fake failure');
      // out = 1.5 everywhere (f32), indices = 2 everywhere.
      new Float32Array(live.get(c.outputs[0]!.base)!.data.buffer).fill(1.5);
      new Int32Array(live.get(c.outputs[2]!.base)!.data.buffer).fill(2);
    },
  };

  it('allocates the outputs and the workspace on the device, frees lse and the workspace after synchronizing', () => {
    registerBackend(fake);
    registry.register(candidate);
    try {
      const [q, k, v] = [[1, 4, 20, 8], [1, 2, 20, 8], [1, 2, 20, 8]].map((shape) => Tensor.from(Float32Array.from(randn(shape.reduce((a, b) => a * b))), shape, 'f32', { device: 'cuda:7' }));
      log.length = 0;
      const got = sparseKAttention(q!, k!, v!, { blockSize: 4, topK: 3, causal: true });
      const c = seen!;
      expect(c.inputs.map((a) => a.bytes)).toEqual([4 * 640, 4 * 320, 4 * 320]);
      expect(c.outputs.map((a) => a.bytes)).toEqual([4 * 640, 4 * 80, 4 * 2 * 5 * 3]);
      expect(c.workspace).toMatchObject({ offset: 0, bytes: WS });
      expect(live.get(c.workspace!.base)?.bytes ?? 'freed').toBe('freed');
      expect(log).toEqual(['alloc 2560', 'alloc 320', 'alloc 120', `alloc ${4 * Math.ceil(WS / 4)}`, 'sync', `free ${4 * Math.ceil(WS / 4)}`, 'free 320']);
      expect([got.out.device, got.out.dtype, got.indices.device, got.indices.dtype]).toEqual(['cuda:7', 'f32', 'cuda:7', 'i32']);
      expect(Array.from(got.out.toHost() as Float32Array).every((x) => x === 1.5)).toBe(true);
      expect(Array.from(got.indices.toHost() as Int32Array).every((x) => x === 2)).toBe(true);
      // A failing kernel: its error comes through and every output and the workspace are freed.
      fail = true;
      const before = live.size;
      expect(err(() => sparseKAttention(q!, k!, v!, { blockSize: 4, topK: 3 })).message).toMatch(/fake failure/);
      expect(live.size).toBe(before);
      for (const x of [q, k, v, got.out, got.indices]) x!.dispose();
      expect(live.size).toBe(0);
    } finally {
      registry.unregister('sparsek_attention', candidate.name);
      unregisterBackend('cuda:7');
    }
  });
});

describe('sparsek_attention: bad inputs give typed errors naming the problem', () => {
  const b = new GraphBuilder();
  const f = (shape: number[], dtype: 'f32' | 'bf16' | 'i32' = 'f32') => b.input(`x${Math.random()}`, shape, dtype);
  const qkv = (S = 20, H = 4, Hkv = 2) => [f([1, H, S, 8]), f([1, Hkv, S, 8]), f([1, Hkv, S, 8])] as const;
  const op = (attrs: Record<string, unknown>, [q, k, v] = qkv()) => sparsekAttention(q, k, v, attrs as never);

  it('in the op', () => {
    const cases: [() => unknown, string, RegExp][] = [
      [() => op({ blockSize: 4, topK: 6 }), 'INVALID_ARGUMENT', /topK at most the number of blocks, 5 .*received 6: k larger than the number of blocks/],
      [() => op({ blockSize: 4, topK: 3, window: 3, first: true }), 'INVALID_ARGUMENT', /always-selected blocks \(window 3 \+ first 1\) to be at most topK \(3\)/],
      [() => op({ blockSize: 4, topK: 2, window: 3 }), 'INVALID_ARGUMENT', /always-on blocks exceed topK/],
      [() => op({ blockSize: 0, topK: 1 }), 'INVALID_ARGUMENT', /integer >= 1 for attribute 'blockSize' but received 0/],
      [() => op({ blockSize: 2.5 }), 'INVALID_ARGUMENT', /an int for attribute 'blockSize' of sparsek_attention but received 2.5/],
      [() => op({ blockSize: 4, topK: 0 }), 'INVALID_ARGUMENT', /integer >= 1 for attribute 'topK' but received 0/],
      [() => op({ blockSize: 4, topK: 2, window: 0 }), 'INVALID_ARGUMENT', /integer >= 1 for attribute 'window' but received 0/],
      [() => op({ blockSize: 4, topK: 2, scale: -1 }), 'INVALID_ARGUMENT', /scale >= 0/],
      [() => op({ blockSize: 4, topK: 2, layout: 'bsdh' }), 'INVALID_ARGUMENT', /one of 'bhsd', 'bshd'/],
      [() => op({ blockSize: 4, topK: 2, k: 3 }), 'INVALID_ARGUMENT', /for an attribute of sparsek_attention but received "k"/],
      [() => op({ blockSize: 4, topK: 2 }, [f([1, 4, 8, 8]), f([1, 2, 12, 8]), f([1, 2, 12, 8])]), 'SHAPE_MISMATCH', /sequence length of k and v \(12\) to equal q's \(8\)/],
      [() => op({ blockSize: 4, topK: 2 }, [f([1, 4, 8, 8]), f([1, 2, 8, 8]), f([1, 2, 9, 8])]), 'SHAPE_MISMATCH', /Expected v shaped as k/],
      [() => op({ blockSize: 4, topK: 2 }, [f([1, 3, 8, 8]), f([1, 2, 8, 8]), f([1, 2, 8, 8])]), 'SHAPE_MISMATCH', /multiple of k's and v's heads \(2\)/],
      [() => op({ blockSize: 4, topK: 2 }, [f([1, 4, 8, 8]), f([1, 2, 8, 4]), f([1, 2, 8, 4])]), 'SHAPE_MISMATCH', /head dimension of k \(4\)/],
      [() => op({ blockSize: 4, topK: 2 }, [f([1, 4, 8, 8]), f([1, 2, 8, 8], 'bf16'), f([1, 2, 8, 8])]), 'INVALID_DTYPE', /input 'k'/],
      [() => op({ blockSize: 4, topK: 2 }, [f([4, 8, 8]), f([1, 2, 8, 8]), f([1, 2, 8, 8])]), 'SHAPE_MISMATCH', /rank-4 tensor/],
    ];
    for (const [fn, code, message] of cases) {
      const e = err(fn);
      expect([e.code, e.message]).toEqual([code, expect.stringMatching(message)]);
    }
  });

  it('in the backward: indices of the wrong type, shape or value', () => {
    const [q, k, v] = qkv(8, 2, 1);
    const attrs = { blockSize: 2, topK: 2 };
    const [out, lse] = sparsekAttention(q, k, v, attrs);
    const bwd = (indices: ReturnType<typeof f>) => sparsekAttentionBackward(out, q, k, v, out, lse, indices, attrs);
    expect([err(() => bwd(f([1, 1, 4, 2]))).code, err(() => bwd(f([1, 1, 4, 2]))).message]).toEqual(['INVALID_DTYPE', expect.stringMatching(/i32 for input 'indices'/)]);
    expect(err(() => bwd(f([1, 1, 4, 3], 'i32'))).message).toMatch(/Expected indices i32\[1, 1, 4, 2\] \(\[B, Hkv, nB, topK\]\) but received i32\[1, 1, 4, 3\]/);
    // Values: the reference checks every entry (-1 or a block in [0, nB)).
    const c: Case = { B: 1, H: 2, Hkv: 1, S: 8, D: 8, blockSize: 2, topK: 2, causal: false, first: false, window: 1 };
    const [tq, tk, tv, tout] = [c.H, c.Hkv, c.Hkv, c.H].map((h) => randn(c.B * h * c.S * c.D));
    for (const [bad, at, value] of [[4, '0, 0, 1, 1', 4], [-2, '0, 0, 1, 1', -2]] as const) {
      const indices = Int32Array.from([0, 1, 1, bad, 2, -1, 3, 2]);
      const e = err(() => runBackward('sparsek_attention_backward', c, attrsOf(c), [tout!, tq!, tk!, tv!, tout!, randn(c.H * c.S), indices]));
      expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', `sparsek_attention_backward: Expected a block index in [0, 4) or -1 for indices[${at}] but received ${value}`]);
    }
    const e = err(() => runBackward('sparsek_attention_backward', c, attrsOf(c), [tout!, tq!, tk!, tv!, tout!, randn(c.H * c.S), Float64Array.from([0, 1, 1, 1.5, 2, -1, 3, 2])]));
    expect(e.message).toMatch(/for indices\[0, 0, 1, 1\] but received 1.5/);
  });

  it('in sparseKAttention', () => {
    const t = (shape: number[], dtype: 'f32' | 'bf16' = 'f32') => Tensor.empty(shape, dtype);
    const [q, k, v] = [t([1, 4, 20, 8]), t([1, 2, 20, 8]), t([1, 2, 20, 8])];
    const call = (options: Record<string, unknown>, args: Tensor[] = [q, k, v]) => err(() => sparseKAttention(args[0]!, args[1]!, args[2]!, options as never));
    const cases: [Record<string, unknown>, string, RegExp, Tensor[]?][] = [
      [{ blockSize: 4, topK: 6 }, 'INVALID_ARGUMENT', /^sparseKAttention: .*k larger than the number of blocks/],
      [{ blockSize: 4, topK: 2, window: 2, first: true }, 'INVALID_ARGUMENT', /always-on blocks exceed topK/],
      [{ blockSize: 0 }, 'INVALID_ARGUMENT', /Expected an integer >= 1 for blockSize but received 0/],
      [{ blockSize: 1.5 }, 'INVALID_ARGUMENT', /Expected an integer >= 1 for blockSize but received 1.5/],
      [{ topK: '2' }, 'INVALID_ARGUMENT', /integer >= 1 for topK but received "2"/],
      [{ causal: 1 }, 'INVALID_ARGUMENT', /boolean for causal/],
      [{ first: 'yes' }, 'INVALID_ARGUMENT', /boolean for first/],
      [{ scale: 0 }, 'INVALID_ARGUMENT', /finite number > 0 for scale/],
      [{ layout: 'sbhd' }, 'INVALID_ARGUMENT', /'bhsd' or 'bshd' for layout/],
      [{ blockSize: 4, topK: 2, dropout: 0.1 }, 'INVALID_ARGUMENT', /one of blockSize, .* for an option of sparseKAttention but received "dropout"/],
      [{ blockSize: 4, topK: 2 }, 'SHAPE_MISMATCH', /^sparseKAttention: .*sequence length of k and v \(16\) to equal q's \(20\)/, [q, t([1, 2, 16, 8]), t([1, 2, 16, 8])]],
      [{ blockSize: 4, topK: 2 }, 'SHAPE_MISMATCH', /Expected v shaped as k/, [q, k, t([1, 2, 20, 4])]],
      [{ blockSize: 4, topK: 2 }, 'INVALID_DTYPE', /input 'v'/, [q, k, t([1, 2, 20, 8], 'bf16')]],
      [{}, 'INVALID_ARGUMENT', /Tensor for k/, [q, [] as never, v]],
    ];
    for (const [options, code, message, args] of cases) {
      const e = call(options, args);
      expect([e.code, e.message]).toEqual([code, expect.stringMatching(message)]);
    }
    expect(err(() => sparseKAttention(q, k, v, null as never)).message).toMatch(/options object/);
    for (const x of [q, k, v]) x.dispose();
  });
});
