import { describe, expect, it } from 'vitest';
import { errorOf } from '../../../testing/errors.js';
import { Tensor, cpuBackend, f32ToBf16Bits, getBackend, keep, scope } from '../src/index.js';


const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

describe('Tensor', () => {
  it('holds a copy of its data and gives it back bit-exact', () => {
    const data = rand(6 * 7);
    const t = Tensor.from(data, [6, 7]);
    data[0] = 1234; // the tensor copied it
    const back = t.toHost() as Float32Array;
    expect(back[0]).not.toBe(1234);
    expect(Array.from(back.subarray(1))).toEqual(Array.from(data.subarray(1)));
    expect([t.numel, t.bytes, t.device, t.dtype]).toEqual([42, 168, 'cpu', 'f32']);
    t.dispose();
  });

  it('stores bf16 as bits and FP4 two per byte', () => {
    const bits = Uint16Array.from(rand(8), f32ToBf16Bits);
    const t = Tensor.from(bits, [2, 4], 'bf16');
    expect(Array.from(t.toHost() as Uint16Array)).toEqual(Array.from(bits));
    const f4 = Tensor.from(Uint8Array.from([0x21, 0x43]), [4], 'f4e2m1');
    expect(f4.bytes).toBe(2);
    expect(errorOf(() => Tensor.from(new Uint8Array(2), [3], 'f4e2m1')).code).toBe('SHAPE_MISMATCH');
    t.dispose();
    f4.dispose();
  });

  it('tracks memory in the CPU backend and frees on dispose', () => {
    const before = cpuBackend.memoryStats();
    const t = Tensor.empty([1000], 'f32');
    expect(cpuBackend.memoryStats().inUse - before.inUse).toBe(4000);
    expect(cpuBackend.memoryStats().allocations - before.allocations).toBe(1);
    t.dispose();
    expect(cpuBackend.memoryStats().inUse).toBe(before.inUse);
    expect(cpuBackend.memoryStats().peak).toBeGreaterThanOrEqual(before.inUse + 4000);
  });

  it('refuses use after dispose, and a second dispose is harmless', () => {
    const t = Tensor.from(rand(4), [4]);
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    const e = errorOf(() => t.toHost());
    expect(e.code).toBe('DISPOSED');
    expect(e.message).toContain('f32[4]');
    expect(errorOf(() => t.to('cpu')).code).toBe('DISPOSED');
  });

  it('refuses a double free at the backend', () => {
    const buf = cpuBackend.alloc(16);
    cpuBackend.free(buf);
    expect(errorOf(() => cpuBackend.free(buf)).code).toBe('DOUBLE_FREE');
  });

  it('gives typed errors for bad shapes, sizes, data and devices', () => {
    expect(errorOf(() => Tensor.empty([-1], 'f32')).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => Tensor.empty([2.5], 'f32')).message).toMatch(/Expected an integer >= 0 for shape\[0\] but received 2.5/);
    expect(errorOf(() => Tensor.empty([2 ** 40, 2 ** 40], 'f32')).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => Tensor.empty([2 ** 36], 'f32')).code).toBe('INVALID_ARGUMENT'); // absurd CPU size
    expect(errorOf(() => Tensor.empty([2], 'float' as never)).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => Tensor.from(rand(5), [2, 3])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => Tensor.from(new Int32Array(6), [2, 3], 'f32')).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => Tensor.empty([2], 'f32', { device: 'gpu' })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => Tensor.empty([2], 'f32', { device: 'cuda:7' })).code).toBe('NO_BACKEND');
    expect(errorOf(() => getBackend('cuda:0')).message).toMatch(/kernels-native/);
  });

  it('copies between mismatched sizes are refused by the backend', () => {
    const a = cpuBackend.alloc(8);
    const b = cpuBackend.alloc(16);
    expect(errorOf(() => cpuBackend.copy(a, b, 16)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => cpuBackend.write(a, new Float32Array(3))).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => cpuBackend.read(a, new Float32Array(1), 5)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => cpuBackend.read(a, new Float32Array(1), -1)).code).toBe('INVALID_ARGUMENT');
    cpuBackend.copy(b, a, 8, 8, 0);
    cpuBackend.free(a);
    cpuBackend.free(b);
  });
});

describe('scope', () => {
  it('disposes what it made, except what it returns or keeps', () => {
    let inner!: Tensor;
    let kept!: Tensor;
    const out = scope(() => {
      inner = Tensor.from(rand(3), [3]);
      kept = keep(Tensor.from(rand(3), [3]));
      return Tensor.from(rand(2), [2]);
    });
    expect(inner.disposed).toBe(true);
    expect(kept.disposed).toBe(false);
    expect(out.disposed).toBe(false);
    out.dispose();
    kept.dispose();
  });

  it('nests: a returned tensor belongs to the outer scope', () => {
    let mid!: Tensor;
    scope(() => {
      mid = scope(() => Tensor.from(rand(2), [2]));
      expect(mid.disposed).toBe(false);
    });
    expect(mid.disposed).toBe(true);
  });

  it('keeps tensors returned inside an object and disposes all on a throw', () => {
    const r = scope(() => ({ a: Tensor.from(rand(2), [2]), b: Tensor.from(rand(2), [2]) }));
    expect(r.a.disposed || r.b.disposed).toBe(false);
    r.a.dispose();
    r.b.dispose();
    let made!: Tensor;
    expect(() =>
      scope(() => {
        made = Tensor.from(rand(2), [2]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(made.disposed).toBe(true);
  });

  it('rejects async functions and frees what they made', () => {
    let made!: Tensor;
    const e = errorOf(() =>
      scope((() => {
        made = Tensor.from(rand(2), [2]);
        return Promise.resolve();
      }) as never),
    );
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(made.disposed).toBe(true);
  });
});
