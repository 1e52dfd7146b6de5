// Issue 20: bad input to core's public API gets a typed DeepwellError, checked before anything is
// allocated; nothing is silently truncated, wrapped or half-done.
import { describe, expect, it } from 'vitest';
import { errorOf } from '../../../testing/errors.js';
import {
  CpuBackend,
  CpuBuffer,
  DeepwellError,
  KernelRegistry,
  Tensor,
  bf16BitsToF32,
  checkKeys,
  checkNumber,
  checkOneOf,
  checkRange,
  cpuBackend,
  describe as describeValue,
  editDistance,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  invalid,
  keep,
  packNibbles,
  registerBackend,
  scope,
  unpackNibbles,
} from '../src/index.js';

// A fresh seed each run; printed so a failure can be replayed.
const seed = Math.floor(Math.random() * 2 ** 31);
let state = seed;
const rnd = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
const ints = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 2 ** 32) - 2 ** 31);

describe(`core refuses bad input (seed ${seed})`, () => {
  it('Tensor.from refuses non-integers, NaN and values beyond i32 for i32 data, naming the index', () => {
    for (const [bad, at] of [[1.7, 1], [NaN, 2], [3e9, 0], [-(2 ** 31) - 1, 3], [Infinity, 1], ['5', 2]] as const) {
      const data: unknown[] = ints(4);
      data[at] = bad;
      const e = errorOf(() => Tensor.from(data as number[], [4], 'i32'));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain(`[${at}]`);
      expect(e.message).toContain(typeof bad === 'string' ? `"${bad}"` : String(bad));
    }
    // The whole i32 range is accepted and stored exactly.
    const ok = [...ints(6), 2 ** 31 - 1, -(2 ** 31)];
    const t = Tensor.from(ok, [8], 'i32');
    expect(Array.from(t.toHost() as Int32Array)).toEqual(ok);
    t.dispose();
  });

  it('Tensor.from refuses non-numbers and finite values beyond f32 in plain f32 data (NaN and ±Inf are f32 values)', () => {
    expect(errorOf(() => Tensor.from([1, 'a' as never, 3], [3])).message).toContain('[1]');
    expect(errorOf(() => Tensor.from([1, 2, 1e300], [3])).message).toContain('1e+300');
    const t = Tensor.from([NaN, Infinity, -Infinity, rnd()], [4]);
    expect(Array.from(t.toHost() as Float32Array).slice(0, 3)).toEqual([NaN, Infinity, -Infinity]);
    t.dispose();
  });

  it('Tensor.from checks the length against the shape before allocating (SHAPE_MISMATCH, never a RangeError)', () => {
    const before = cpuBackend.memoryStats();
    const long = Array.from({ length: 5 + Math.floor(rnd() * 5) }, rnd);
    const e = errorOf(() => Tensor.from(long, [2]));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => Tensor.from([rnd()], [2 ** 30, 2 ** 10])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => Tensor.from(new Float32Array(3), [2 ** 30, 2 ** 10])).code).toBe('SHAPE_MISMATCH');
    expect(cpuBackend.memoryStats()).toEqual(before);
  });

  it('Tensor.from and Tensor.empty refuse junk options and unknown option keys', () => {
    expect(errorOf(() => Tensor.from([1], [1], 'f32', null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => Tensor.from([1], [1], 'f32', 'cpu' as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => Tensor.empty([1], 'f32', { devic: 'cpu' } as never)).message).toMatch(/devic.*did you mean device/);
    expect(errorOf(() => Tensor.empty([1], 'f32', { device: null } as never)).code).toBe('INVALID_ARGUMENT');
  });

  it('the Tensor constructor cannot be called from outside', () => {
    const Ctor = Tensor as unknown as new (...a: unknown[]) => Tensor;
    expect(errorOf(() => new Ctor([1], 'f32', 'cpu', cpuBackend, cpuBackend.alloc(4))).code).toBe('INVALID_ARGUMENT');
  });

  it('scope and keep refuse what is not a function or a Tensor', () => {
    expect(errorOf(() => scope(5 as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => scope(null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => keep({} as never)).code).toBe('INVALID_ARGUMENT');
  });

  it('16-bit conversions refuse non-numbers and bit patterns outside 0..65535', () => {
    for (const f of [f32ToBf16Bits, f32ToF16Bits]) {
      expect(errorOf(() => f(Symbol('x') as never)).code).toBe('INVALID_ARGUMENT');
      expect(errorOf(() => f(1n as never)).code).toBe('INVALID_ARGUMENT');
      expect(errorOf(() => f('1' as never)).code).toBe('INVALID_ARGUMENT');
    }
    for (const f of [f16BitsToF32, bf16BitsToF32]) {
      for (const bad of [1n, 'x', -1, 65536, 1.5, NaN]) expect(errorOf(() => f(bad as never)).code).toBe('INVALID_ARGUMENT');
      const bits = Math.floor(rnd() * 65536);
      expect(Number.isNaN(f(bits)) || typeof f(bits) === 'number').toBe(true);
    }
  });

  it('packNibbles and unpackNibbles refuse what is not codes or bytes', () => {
    expect(errorOf(() => packNibbles(null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => packNibbles(5 as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => unpackNibbles(null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => unpackNibbles([1, 2] as never)).code).toBe('INVALID_ARGUMENT');
  });

  it('registerBackend refuses an object that is not a backend (nothing is registered)', () => {
    expect(errorOf(() => registerBackend(null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => registerBackend({ device: 'cuda:3' } as never)).message).toMatch(/alloc/);
  });

  it('CpuBuffer and CpuBackend refuse bad sizes and buffers they did not hand out', () => {
    expect(errorOf(() => new CpuBuffer(-1)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => new CpuBuffer(2 ** 60)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => new CpuBuffer('3' as never)).code).toBe('INVALID_ARGUMENT');
    const other = new CpuBackend();
    const buf = cpuBackend.alloc(8);
    const before = other.memoryStats();
    expect(errorOf(() => other.free(buf)).code).toBe('DEVICE_MISMATCH');
    expect(other.memoryStats()).toEqual(before);
    cpuBackend.free(buf);
    expect(errorOf(() => checkRange('x', 'a' as never, 0, 1)).code).toBe('INVALID_ARGUMENT');
  });

  it('the registry refuses op names that are not strings', () => {
    const r = new KernelRegistry();
    for (const f of [() => r.explain(Symbol('x') as never, {}), () => r.select(Symbol('x') as never, {}), () => r.dispatch(5 as never, {})]) {
      expect(errorOf(f).code).toBe('INVALID_ARGUMENT');
    }
  });

  it('the shared checks and DeepwellError itself refuse junk arguments with typed errors', () => {
    expect(errorOf(() => checkKeys({ a: 1 }, null as never, 'x')).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => checkOneOf('a', null as never, 'x')).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => checkNumber(1, 'x', null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => editDistance(null as never, 'a')).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => new DeepwellError('BOGUS' as never, 'x')).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => new DeepwellError('INTERNAL', Symbol('x') as never)).code).toBe('INVALID_ARGUMENT');
    expect(new DeepwellError('INTERNAL', 'x', null as never).details).toEqual({});
    expect(describeValue(Symbol('tag'))).toBe('Symbol(tag)');
    expect(errorOf(() => invalid(Symbol('x') as never, Symbol('y') as never, 1)).message).toBe('Expected Symbol(x) for Symbol(y) but received 1');
  });
});
