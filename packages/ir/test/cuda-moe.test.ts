/**
 * The 'moe' family's CUDA kernels (native/ops/moe/, src/cuda/moe.ts) against the CPU references
 * on the same storage-rounded inputs. Runs only where a GPU is; skips cleanly elsewhere.
 * Integer outputs (topk indices, moe_plan, one_hot) must match exactly; gathers are exact copies;
 * sums follow cuda-nn.test.ts's tolerances (f32 1e-5, bf16 / f16 two units of roundoff against the
 * rounded reference, with the row's max |want| as the scale).
 */
import { describe, expect, it } from 'vitest';
import { errorOf } from '../../../testing/errors.js';
import { numel, type AttrValue, type NumArray } from '../src/index.js';
import { UNIT_ROUNDOFF, gpu, maxError, reference, rounded, runCuda, type CudaInput } from './cuda-helpers.js';
import { randInt, randn } from './helpers.js';

type Storage = 'f32' | 'bf16' | 'f16';
const STORAGES: readonly Storage[] = ['f32', 'bf16', 'f16'];
const tol = (s: Storage): number => (s === 'f32' ? 1e-5 : 2 * UNIT_ROUNDOFF[s]!);
const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};

/** maxError row by row against the reference rounded to the storage dtype, scale = row max |want|. */
function rowsError(got: Float64Array, want: NumArray, len: number, storage: Storage): number {
  expect(got.length).toBe(want.length);
  const exact = Float64Array.from(want);
  const w = storage === 'f32' ? exact : rounded(storage, exact);
  let worst = 0;
  for (let o = 0; o < got.length; o += len) {
    worst = Math.max(worst, maxError(got.subarray(o, o + len), w.subarray(o, o + len), maxAbs(exact.subarray(o, o + len)) || Number.MIN_VALUE));
  }
  return worst;
}

function run(op: string, inputs: CudaInput[], attrs: Record<string, AttrValue>, storage: Storage = 'f32'): { got: Float64Array[]; want: NumArray[] } {
  const r = runCuda(op, inputs, attrs, { storage });
  expect(r.kernel).toBe(`${op}_cuda`);
  return { got: r.outputs, want: reference(op, inputs, attrs, storage) };
}

const ints = (a: ArrayLike<number>): number[] => Array.from(a);

/** Element-for-element equality (NaN equals NaN), reporting the first difference. */
function expectExact(got: ArrayLike<number>, want: ArrayLike<number>, what = ''): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], want[i])) {
      expect(got[i], `${what} element ${i}`).toBe(want[i]);
      return;
    }
  }
}
const randIdx = (n: number, lo: number, hi: number): Int32Array => Int32Array.from({ length: n }, () => randInt(lo, hi));

function expectInvalid(fn: () => unknown, ...parts: string[]): void {
  const e = errorOf(fn);
  expect(e.code).toBe('INVALID_ARGUMENT');
  for (const p of parts) expect(e.message).toContain(p);
}

// ---- topk ----------------------------------------------------------------------------------------

const TOPK_CASES: [number[], number][] = [
  [[1, 1], 1],
  [[5, 8], 2],
  [[7, 8], 8],
  [[33, 64], 1],
  [[33, 64], 64],
  [[4, 25, 13], 5],
  [[4, 300], 7],
  [[3, 2000], 2],
  [[9], 4],
];

describe.skipIf(!gpu)('topk_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference exactly in ${storage} (k = 1 and k = E, ties to the lower index)`, () => {
      for (const [shape, k] of TOPK_CASES) {
        // Values on a coarse grid, so ties are common.
        const data = randn(numel(shape)).map((v) => Math.round(v * 2) / 2);
        const { got, want } = run('topk', [{ shape, data }], { k }, storage);
        expect(ints(got[1]!), `indices ${shape} k ${k}`).toEqual(ints(want[1]!));
        expect(ints(got[0]!), `values ${shape} k ${k}`).toEqual(ints(want[0]!));
      }
    });
  }

  it('ranks NaN above every number, lower index first', () => {
    const data = Float64Array.from([1, NaN, 3, NaN, -Infinity, Infinity, 0, -0]);
    const { got, want } = run('topk', [{ shape: [1, 8], data }], { k: 8 });
    expect(ints(got[1]!)).toEqual(ints(want[1]!));
    expect(ints(got[1]!).slice(0, 3)).toEqual([1, 3, 5]);
  });
});

describe.skipIf(!gpu)('topk_backward_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference in ${storage} (repeated indices accumulate)`, () => {
      for (const [shape, k] of TOPK_CASES) {
        const E = shape.at(-1)!;
        const outShape = [...shape.slice(0, -1), k];
        const n = numel(outShape);
        const inputs: CudaInput[] = [
          { shape: outShape, data: randn(n) },
          { shape: outShape, dtype: 'i32', data: randIdx(n, 0, E - 1) },
        ];
        const { got, want } = run('topk_backward', inputs, { size: E }, storage);
        expect(rowsError(got[0]!, want[0]!, E, storage), `${shape} k ${k}`).toBeLessThanOrEqual(tol(storage));
      }
    });
  }

  it('throws INVALID_ARGUMENT for an index outside [0, size)', () => {
    for (const bad of [4, -1]) {
      expectInvalid(
        () => runCuda('topk_backward', [{ shape: [2, 2], data: randn(4) }, { shape: [2, 2], dtype: 'i32', data: Int32Array.from([0, 1, bad, 2]) }], { size: 4 }),
        'topk_backward',
        `received ${bad}`,
      );
    }
  });
});

// ---- gather_rows / scatter_add_rows ------------------------------------------------------------------

const ROW_CASES: [number, number, number][] = [
  [1, 1, 1],
  [7, 5, 13],
  [100, 37, 768],
  [513, 1000, 64],
  [2048, 50, 7],
  [600, 20, 2100],
  [5000, 3, 40],
];

describe.skipIf(!gpu)('gather_rows_cuda', () => {
  for (const storage of STORAGES) {
    it(`copies rows exactly in ${storage}, -1 giving a zero row`, () => {
      for (const [M, R, D] of ROW_CASES) {
        const inputs: CudaInput[] = [
          { shape: [R, D], data: randn(R * D) },
          { shape: [M], dtype: 'i32', data: randIdx(M, -1, R - 1) },
        ];
        const { got, want } = run('gather_rows', inputs, {}, storage);
        expectExact(got[0]!, want[0]!, `${M} ${R} ${D}`);
      }
    });
  }

  it('throws INVALID_ARGUMENT for an index other than -1 outside [0, R)', () => {
    for (const bad of [5, -2]) {
      expectInvalid(
        () => runCuda('gather_rows', [{ shape: [5, 3], data: randn(15) }, { shape: [3], dtype: 'i32', data: Int32Array.from([0, bad, -1]) }]),
        `gather_rows: Expected -1 or an index in [0, 5) for idx[1] but received ${bad}`,
      );
    }
  });
});

describe.skipIf(!gpu)('scatter_add_rows_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference in ${storage} (repeats accumulate, -1 skips)`, () => {
      for (const [M, R, D] of ROW_CASES) {
        const inputs: CudaInput[] = [
          { shape: [M, D], data: randn(M * D) },
          { shape: [M], dtype: 'i32', data: randIdx(M, -1, R - 1) },
        ];
        const { got, want } = run('scatter_add_rows', inputs, { rows: R }, storage);
        expect(rowsError(got[0]!, want[0]!, D, storage), `${M} ${R} ${D}`).toBeLessThanOrEqual(tol(storage));
      }
    });
  }

  it('is bitwise deterministic', () => {
    for (const storage of ['f32', 'bf16'] as const) {
      const inputs: CudaInput[] = [
        { shape: [6000, 160], data: randn(6000 * 160) },
        { shape: [6000], dtype: 'i32', data: randIdx(6000, -1, 30) },
      ];
      const a = runCuda('scatter_add_rows', inputs, { rows: 31 }, { storage }).outputs[0]!;
      const b = runCuda('scatter_add_rows', inputs, { rows: 31 }, { storage }).outputs[0]!;
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    }
  });

  it('writes nothing for zero rows but still checks the indices', () => {
    const ok = run('scatter_add_rows', [{ shape: [2, 3], data: randn(6) }, { shape: [2], dtype: 'i32', data: Int32Array.from([-1, -1]) }], { rows: 0 });
    expect(ok.got[0]!.length).toBe(0);
    expectInvalid(
      () => runCuda('scatter_add_rows', [{ shape: [2, 3], data: randn(6) }, { shape: [2], dtype: 'i32', data: Int32Array.from([-1, 0]) }], { rows: 0 }),
      'scatter_add_rows',
      'idx[1] but received 0',
    );
    expectInvalid(
      () => runCuda('scatter_add_rows', [{ shape: [3, 3], data: randn(9) }, { shape: [3], dtype: 'i32', data: Int32Array.from([0, 1, 4]) }], { rows: 4 }),
      'idx[2] but received 4',
    );
  });
});

// ---- moe_plan --------------------------------------------------------------------------------------

/** Each token's k distinct expert choices (k <= E), with a third of the tokens preferring expert 0. */
function choices(N: number, k: number, E: number): Int32Array {
  const out = new Int32Array(N * k);
  for (let n = 0; n < N; n++) {
    const perm = Array.from({ length: E }, (_, e) => e);
    for (let i = E - 1; i > 0; i--) {
      const j = randInt(0, i);
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    if (n % 3 === 0) {
      perm.splice(perm.indexOf(0), 1);
      perm.unshift(0);
    }
    for (let j = 0; j < k; j++) out[n * k + j] = perm[j]!;
  }
  return out;
}

describe.skipIf(!gpu)('moe_plan_cuda', () => {
  it('matches the reference exactly (k = 1 and k = E, capacity drops, capacity 0)', () => {
    const cases: [number, number, number, number][] = [
      [1, 1, 1, 1],
      [7, 2, 4, 2],
      [100, 2, 8, 20],
      [100, 2, 8, 0],
      [2000, 2, 64, 40],
      [5000, 4, 16, 1000],
      [4096, 8, 8, 4096],
      [3000, 1, 7, 300],
      [33, 3, 3, 5],
      [1025, 2, 2, 600],
    ];
    for (const [N, k, E, C] of cases) {
      const inputs: CudaInput[] = [{ shape: [N, k], dtype: 'i32', data: choices(N, k, E) }];
      const { got, want } = run('moe_plan', inputs, { numExperts: E, capacity: C });
      expectExact(got[0]!, want[0]!, `dispatch N ${N} k ${k} E ${E} C ${C}`);
      expectExact(got[1]!, want[1]!, `combine N ${N} k ${k} E ${E} C ${C}`);
    }
  });

  it('matches the reference with repeated choices per token', () => {
    const N = 500;
    const inputs: CudaInput[] = [{ shape: [N, 3], dtype: 'i32', data: randIdx(N * 3, 0, 4) }];
    const { got, want } = run('moe_plan', inputs, { numExperts: 5, capacity: 150 });
    expect(ints(got[0]!)).toEqual(ints(want[0]!));
    expect(ints(got[1]!)).toEqual(ints(want[1]!));
  });

  it('throws INVALID_ARGUMENT for an expert id outside [0, E)', () => {
    expectInvalid(
      () => runCuda('moe_plan', [{ shape: [3, 2], dtype: 'i32', data: Int32Array.from([0, 1, 2, 4, 1, 0]) }], { numExperts: 4, capacity: 2 }),
      'moe_plan: Expected an expert id in [0, 4) for experts[1, 1] but received 4',
    );
  });
});

// ---- one_hot ---------------------------------------------------------------------------------------

describe.skipIf(!gpu)('one_hot_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference exactly in ${storage} (-1 gives a zero row)`, () => {
      for (const [shape, classes] of [
        [[1], 1],
        [[7], 3],
        [[4, 25], 64],
        [[1000], 13],
      ] as [number[], number][]) {
        const inputs: CudaInput[] = [{ shape, dtype: 'i32', data: randIdx(numel(shape), -1, classes - 1) }];
        const { got, want } = run('one_hot', inputs, { classes }, storage);
        expectExact(got[0]!, want[0]!, `${shape} classes ${classes}`);
      }
    });
  }

  it('throws INVALID_ARGUMENT for an index other than -1 outside [0, classes)', () => {
    expectInvalid(() => runCuda('one_hot', [{ shape: [3], dtype: 'i32', data: Int32Array.from([0, 4, -1]) }], { classes: 4 }), 'one_hot', 'received 4');
  });
});
