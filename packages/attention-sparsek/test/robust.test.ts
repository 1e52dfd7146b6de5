// Issue 20 (bad input never corrupts, hangs or lies), @deepwell/attention-sparsek: every public
// function refuses junk with a typed error naming itself (before: TypeErrors from inside, attributes
// silently ignored, a missing layout read as 'bshd', math helpers reading past their arrays).
// Fresh random inputs every run.
import { errorOf } from '../../../testing/errors.js';
import { Tensor } from '@deepwell/core';
import { GraphBuilder, type ValueType } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import {
  attentionDims, blockVisibility, decodeDims, kvCacheWrite, layoutStrides, packedStrides, qkvDims, scaledDotProductAttention, sdpa, sdpaBackward, sdpaDecode, sdpaOp, sdpaQkv,
  sparseKAttention, sparsekAttention, sparsekDims, sparsekFlops, sparsekSelect,
} from '../src/index.js';

const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const randn = (n: number) => Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
const f32 = (...shape: number[]): ValueType => ({ shape, dtype: 'f32' });

describe('captured calls: Syms and attributes checked first', () => {
  it('refuses a non-Sym argument with a typed error naming the function (before: TypeError reading .builder)', () => {
    const b = new GraphBuilder();
    const q = b.input('q', [1, 2, 4, 8]);
    for (const [name, fn] of [
      ['sdpa', () => sdpa(null as never, q, q)],
      ['sdpa', () => sdpa(q, {} as never, q)],
      ['sdpaBackward', () => sdpaBackward(q, q, q, q, q, 5 as never, {})],
      ['sdpaQkv', () => sdpaQkv('qkv' as never, { heads: 1 })],
      ['sparsekAttention', () => sparsekAttention(undefined as never, q, q)],
      ['kvCacheWrite', () => kvCacheWrite(q, q, q, [] as never, { heads: 1 })],
      ['sdpaDecode', () => sdpaDecode(q, q, q, Float32Array.of(1) as never, { heads: 1 })],
    ] as const) {
      const e = errorOf(fn);
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(new RegExp(`^${name}: Expected a symbolic tensor`));
    }
  });

  it('refuses unknown attribute keys and attributes that are not an object (before: kvCacheWrite ignored them, sdpa took a string as none)', () => {
    const b = new GraphBuilder();
    const H = rand(1, 3);
    const qkv = b.input('qkv', [1, 2, 3 * H, 4]);
    const cache = b.input('k', [1, H, 8, 4]);
    const v = b.input('v', [1, H, 8, 4]);
    const pos = b.input('pos', [2], 'i32');
    expect(errorOf(() => kvCacheWrite(cache, v, qkv, pos, { heads: H, scale: 0.5 } as never)).message).toMatch(/for a kvCacheWrite attribute but received 'scale'/);
    expect(errorOf(() => sdpaDecode(qkv, cache, v, pos, { heads: H, causal: true } as never)).message).toMatch(/received "causal"/);
    expect(errorOf(() => sdpaQkv(qkv, { heads: H, casual: true } as never)).message).toMatch(/received "casual"/);
    expect(errorOf(() => sdpaQkv(qkv, undefined as never)).code).toBe('INVALID_ARGUMENT');
    const q = b.input('q', [1, 2, 8, 4]);
    expect(errorOf(() => sparsekAttention(q, q, q, { blocksize: 4 } as never)).message).toMatch(/received "blocksize"/);
    expect(errorOf(() => sdpa(q, q, q, 'causal' as never)).message).toMatch(/^sdpa: Expected an attributes object but received "causal"/);
    expect(errorOf(() => sparsekAttention(q, q, q, 7 as never)).code).toBe('INVALID_ARGUMENT');
  });
});

describe('shape rules and math helpers: junk refused, defaults as the op has them', () => {
  it('attentionDims takes a missing layout as bhsd, refuses an unknown one and junk types (before: bshd, silently)', () => {
    const [B, H, S, D] = [rand(1, 2), rand(1, 3), rand(2, 9), rand(1, 8)];
    const t = f32(B, H, S, D);
    const n = attentionDims('test', [t, t, t], { scale: 0 });
    expect([n.layout, n.B, n.H, n.Sq, n.D]).toEqual(['bhsd', B, H, S, D]);
    expect(attentionDims('test', [t, t, t], {}).scale).toBeCloseTo(1 / Math.sqrt(D), 12);
    expect(errorOf(() => attentionDims('test', [t, t, t], { layout: 'bsdh' })).message).toMatch(/'bhsd' or 'bshd' for attribute 'layout'/);
    expect(errorOf(() => attentionDims('test', [t, t, t], { causal: 'yes' as never })).message).toMatch(/boolean for attribute 'causal'/);
    for (const junk of [null, [t], [t, t, null], [t, t, { shape: [1, -1, 2, 2], dtype: 'f32' }], 'qkv'] as const) {
      expect(errorOf(() => attentionDims('test', junk as never, {})).code).toBe('INVALID_ARGUMENT');
    }
    expect(errorOf(() => qkvDims('test', null as never, { heads: 1 })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => decodeDims('test', t, t, undefined as never, t, { heads: 1 })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => sparsekDims('test', [t, t, t], { blockSize: 2, topK: 99 })).message).toMatch(/topK at most the number of blocks/);
    expect(errorOf(() => sdpaOp.infer([t] as never, {} as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => layoutStrides({ ...n, layout: 'xyz' as never })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => packedStrides(null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => packedStrides({ ...n, H: 3, Hkv: 2 })).code).toBe('INVALID_ARGUMENT');
  });

  it('sparsekSelect, blockVisibility and sparsekFlops refuse sizes that do not match their arrays (before: read past them, NaN or undefined)', () => {
    const [S, D, bs] = [rand(8, 16), rand(2, 6), 4];
    const t = f32(1, 1, S, D);
    const n = sparsekDims('test', [t, t, t], { blockSize: bs, topK: 2 });
    const st = layoutStrides(n);
    const q = randn(S * D);
    const sel = sparsekSelect(n, st, q, randn(S * D));
    expect(sel.length).toBe(n.nB * 2);
    expect(errorOf(() => sparsekSelect(n, st, q, randn(S * D - 1))).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => sparsekSelect({ ...n, Sq: S + 4, Sk: S + 4, nB: Math.ceil((S + 4) / bs) }, st, q, q)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => sparsekSelect({ ...n, nB: 99 }, st, q, q)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => sparsekSelect(n, null as never, q, q)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => sparsekSelect(n, st, [1, 2] as never, q)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => blockVisibility('test', n, new Int32Array(1))).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => sparsekFlops({ ...n, D: NaN }, 2)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => sparsekFlops(n, -1)).code).toBe('INVALID_ARGUMENT');
    expect(sparsekFlops(n, 2)).toBeGreaterThan(0);
  });
});

describe('Tensor-level calls', () => {
  it('name an unknown option and refuse NaN, 0 and beyond-the-blocks sizes, and options that are an array', () => {
    const [S, D] = [rand(8, 12), 4];
    const x = () => Tensor.from(randn(S * D), [1, 1, S, D]);
    const [q, k, v] = [x(), x(), x()];
    expect(errorOf(() => scaledDotProductAttention(q, k, v, { casual: true } as never)).message).toMatch(/received "casual"/);
    expect(errorOf(() => sparseKAttention(q, k, v, { topk: 1 } as never)).message).toMatch(/received "topk"/);
    for (const o of [{ blockSize: NaN }, { blockSize: 0 }, { topK: 99, blockSize: 4 }, { window: 1.5 }, { scale: NaN }, { layout: 'xyz' }]) {
      expect(errorOf(() => sparseKAttention(q, k, v, o as never)).code, JSON.stringify(o)).toBe('INVALID_ARGUMENT');
    }
    expect(errorOf(() => scaledDotProductAttention(q, k, v, [] as never)).code).toBe('INVALID_ARGUMENT');
    const { out, indices } = sparseKAttention(q, k, v, { blockSize: 4, topK: 2, causal: true });
    expect(Array.from(out.toHost() as Float32Array).every(Number.isFinite)).toBe(true);
    expect(indices.shape).toEqual([1, 1, Math.ceil(S / 4), 2]);
  });
});
