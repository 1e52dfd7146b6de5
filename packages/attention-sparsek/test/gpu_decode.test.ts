// kv_cache_write's and sdpa_decode's CUDA kernels (native/attention/decode.cu) against the float64
// references, on fresh random inputs rounded to the storage format, with poisoned outputs: f32 and
// bf16, multi-head, GQA and MQA, head dimensions 64, 128 and 40, caches of 1 to 1024 positions, one
// token a step and several; the write bitwise (it copies), the attention within one rounding of the
// output; two runs bitwise identical; the native checks of extents and overlaps. Skipped without a
// GPU (nn's GPU tests decode a GPT through them in a captured step).
import { DeepwellError } from '@deepwell/core';
import type { ValueType } from '@deepwell/ir';
import { cudaBackend, nativeEntries, type CudaBuffer, type DevArg } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import '../src/index.js';
import { DTS, gpu, paramsOf, randn, reference, relErr, round, runCuda, type Dt } from './gpu_helpers.js';

interface Case {
  B: number;
  H: number;
  Hkv: number;
  n: number;
  Tmax: number;
  D: number;
}

const CASES: Case[] = [
  { B: 1, H: 12, Hkv: 12, n: 1, Tmax: 1024, D: 64 }, // GPT-2 small's decode step
  { B: 2, H: 8, Hkv: 2, n: 3, Tmax: 77, D: 128 }, // GQA 4:1, three tokens a step
  { B: 1, H: 4, Hkv: 1, n: 1, Tmax: 1, D: 64 }, // MQA, a one-position cache
  { B: 3, H: 2, Hkv: 2, n: 2, Tmax: 300, D: 40 }, // another head dimension
];
const TOL: Record<Dt, number> = { f32: 2e-5, bf16: 1e-2 };
const rows = CASES.flatMap((c) => DTS.map((dt) => [`${JSON.stringify(c)} ${dt}`, c, dt] as const));

/** Distinct random positions in [0, Tmax), the last one Tmax - 1 when `full` (every key seen). */
function positions(c: Case, full: boolean): Float64Array {
  const all = Array.from({ length: c.Tmax }, (_, i) => i).sort(() => Math.random() - 0.5);
  const pos = all.slice(0, c.n);
  if (full) pos[pos.length - 1] = c.Tmax - 1;
  return Float64Array.from(new Set(pos).size === pos.length ? pos : Array.from({ length: c.n }, (_, i) => (c.Tmax - 1 - i + c.Tmax) % c.Tmax));
}

function thrown(fn: () => void): [string, string] {
  try {
    fn();
  } catch (err) {
    return [DeepwellError.is(err) ? err.code : 'untyped', (err as Error).message];
  }
  return ['none', ''];
}

describe.skipIf(!gpu)('decode kernels on CUDA', () => {
  it.each(rows)('kv_cache_write: the caches with the step’s rows written, bitwise, into poisoned outputs (%s)', (_name, c, dt) => {
    const heads = c.H + 2 * c.Hkv;
    const cacheT: ValueType = { shape: [c.B, c.Hkv, c.Tmax, c.D], dtype: dt };
    const types: ValueType[] = [cacheT, cacheT, { shape: [c.B, c.n, heads, c.D], dtype: dt }, { shape: [c.n], dtype: 'i32' }];
    const size = (t: ValueType) => t.shape.reduce((a, b) => a * b, 1);
    const inputs = [round(dt, randn(size(cacheT))), round(dt, randn(size(cacheT))), round(dt, randn(size(types[2]!))), positions(c, false)];
    const p = paramsOf('kv_cache_write', types, { heads: c.H });
    const got = runCuda(p, 'kv_cache_write_cuda', inputs);
    const want = reference('kv_cache_write', types, inputs, { heads: c.H });
    expect(Array.from(got[0]!)).toEqual(Array.from(want[0]!));
    expect(Array.from(got[1]!)).toEqual(Array.from(want[1]!));
  });

  it.each(rows)('sdpa_decode: the float64 reference within one rounding, every element written, two runs bitwise equal (%s)', (_name, c, dt) => {
    const heads = c.H + 2 * c.Hkv;
    const cacheT: ValueType = { shape: [c.B, c.Hkv, c.Tmax, c.D], dtype: dt };
    const types: ValueType[] = [{ shape: [c.B, c.n, heads, c.D], dtype: dt }, cacheT, cacheT, { shape: [c.n], dtype: 'i32' }];
    const size = (t: ValueType) => t.shape.reduce((a, b) => a * b, 1);
    const inputs = [round(dt, randn(size(types[0]!))), round(dt, randn(size(cacheT))), round(dt, randn(size(cacheT))), positions(c, true)];
    const attrs = { heads: c.H, scale: Math.random() < 0.5 ? 0 : 0.05 + 0.2 * Math.random() };
    const p = paramsOf('sdpa_decode', types, attrs);
    const [got] = runCuda(p, 'sdpa_decode_cuda', inputs);
    const [want] = reference('sdpa_decode', types, inputs, attrs);
    expect(relErr(got!, want!)).toBeLessThan(TOL[dt]);
    const [again] = runCuda(p, 'sdpa_decode_cuda', inputs);
    expect(Buffer.from(Float64Array.from(again!).buffer).equals(Buffer.from(Float64Array.from(got!).buffer))).toBe(true);
  });

  it('the native entry points reject extents past an allocation and outputs over inputs', () => {
    const e = nativeEntries().entries!;
    const be = cudaBackend(0);
    const [B, H, Hkv, n, Tmax, D] = [1, 2, 1, 1, 8, 16];
    const heads = H + 2 * Hkv;
    const cacheN = B * Hkv * Tmax * D;
    const bufs = [be.alloc(4 * B * n * heads * D), be.alloc(4 * (cacheN + 1)), be.alloc(4 * cacheN), be.alloc(4), be.alloc(4 * B * n * H * D), be.alloc(4 * cacheN), be.alloc(4 * cacheN)];
    for (const b of bufs) be.memset(b, 0);
    const [qkv, kc, vc, pos, out, ko, vo] = bufs as CudaBuffer[];
    const arg = (b: CudaBuffer, elems = 0, bytes = b.bytes - 4 * elems): DevArg => ({ base: b.ptr, offset: 4 * elems, bytes });
    const stride = heads * D;
    const write = (k: DevArg, kout: DevArg) => () => e.kvCacheWrite(0, 0, B, Hkv, n, Tmax, D, stride, arg(kc!), arg(vc!), k, arg(qkv!, (H + Hkv) * D), arg(pos!), kout, arg(vo!));
    const read = (q: DevArg, kcache: DevArg, o: DevArg) => () => e.sdpaDecode(0, 0, B, H, Hkv, n, Tmax, D, 0.25, stride, q, kcache, arg(vc!), arg(pos!), o);
    try {
      expect(thrown(write(arg(qkv!, H * D), arg(ko!)))).toEqual(['none', '']);
      expect(thrown(write(arg(qkv!, H * D), arg(kc!)))).toEqual(['none', '']); // in place
      expect(thrown(write(arg(qkv!, H * D + 3 * D), arg(ko!)))[0]).toBe('SHAPE_MISMATCH'); // k past the end of qkv
      expect(thrown(write(arg(qkv!, H * D), arg(kc!, 1, 4 * cacheN)))).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/kcache and vcache themselves or apart/)]);
      expect(thrown(read(arg(qkv!), arg(kc!), arg(out!)))).toEqual(['none', '']);
      expect(thrown(read(arg(qkv!), arg(vc!, 1), arg(out!)))[0]).toBe('SHAPE_MISMATCH'); // a cache one element short of its allocation's end
      expect(thrown(read(arg(qkv!), arg(kc!), arg(qkv!)))).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/out of sdpaDecode not to overlap the input q/)]);
      be.synchronize();
    } finally {
      for (const b of bufs) be.free(b);
    }
  });
});
