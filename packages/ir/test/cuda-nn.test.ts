/**
 * The 'nn' family's CUDA kernels (native/ops/nn/, src/cuda/nn.ts) against the CPU references on
 * the same storage-rounded inputs. Runs only where a GPU is; skips cleanly elsewhere.
 *
 * Tolerances: f32 storage, maxError <= 1e-5 with the row's max |want| as the scale wherever the
 * result cancels (sums over rows use the output's max |want|); bf16 / f16, maxError against the
 * reference rounded to the storage dtype <= 2 units of roundoff (one rounding step either way).
 */
import { registry, type DTypeName } from '@deepwell/core';
import { Stream, cudaBackend, nativeEntries, type CudaBuffer, type CudaCall } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { errorOf } from '../../../testing/errors.js';
import { numel, type NumArray, type ValueType } from '../src/index.js';
import { gpu, reference, rounded, runCuda, type CudaInput } from './cuda-helpers.js';
import { randInt, randn } from './helpers.js';

import { STORAGES, allError, expectExact, maxAbs, rowsError, run, scaled, tol, type Storage } from './cuda-checks.js';

const randIds = (n: number, V: number): Int32Array => Int32Array.from({ length: n }, () => randInt(0, V - 1));

// ---- softmax -------------------------------------------------------------------------------------

const SOFTMAX_CASES: [number[], number][] = [
  [[5, 1], -1],
  [[3, 7], -1],
  [[4, 13], -1],
  [[6, 768], -1],
  [[3, 1000], -1],
  [[2, 50304], -1],
  [[1, 20000], -1],
  [[7], 0],
  [[3, 5, 4], 1],
  [[2, 3, 7], 0],
  [[2, 3, 7], -2],
];

/** Rows along `axis` of `shape` as (element indices) -> scale: the max |want| along that row. */
function axisError(got: Float64Array, want: NumArray, shape: number[], axis: number, storage: Storage): number {
  const a = axis < 0 ? axis + shape.length : axis;
  if (a === shape.length - 1) return rowsError(got, want, shape[a]!, storage);
  return allError(got, want, storage);
}

describe.skipIf(!gpu)('softmax_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference in ${storage} (rows of 1, 7, 13, 768, 1000, 20000, 50304; inner axes)`, () => {
      for (const [shape, axis] of SOFTMAX_CASES) {
        const inputs = [{ shape, data: scaled(numel(shape), 3) }];
        const { got, want } = run('softmax', inputs, { axis }, storage);
        expect(axisError(got[0]!, want[0]!, shape, axis, storage), `${shape} axis ${axis}`).toBeLessThanOrEqual(tol(storage));
      }
    });
  }

  it('turns a -1e30 mask into exactly 0 and is stable for large scores', () => {
    const data = Float64Array.from([1000, -1e30, 1001, -1e30, 999.5, 1002, -1e30]);
    const { got, want } = run('softmax', [{ shape: [1, 7], data }], { axis: -1 }, 'f32');
    expect(got[0]![1]).toBe(0);
    expect(got[0]![3]).toBe(0);
    expect(rowsError(got[0]!, want[0]!, 7, 'f32')).toBeLessThanOrEqual(1e-5);
  });
});

describe.skipIf(!gpu)('softmax_backward_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference in ${storage}`, () => {
      for (const [shape, axis] of SOFTMAX_CASES) {
        const total = numel(shape);
        const y = reference('softmax', [{ shape, data: scaled(total, 2) }], { axis }, storage)[0]!;
        const inputs = [
          { shape, data: randn(total) },
          { shape, data: Float64Array.from(y) },
        ];
        const { got, want } = run('softmax_backward', inputs, { axis }, storage);
        // y * (g - sum(g * y)) cancels, down to exactly 0 for one-element rows: the scale is the
        // size of its terms, max |y| * max |g| along the row.
        const gs = rounded(storage, inputs[0]!.data);
        const ys = rounded(storage, inputs[1]!.data);
        const a = axis < 0 ? axis + shape.length : axis;
        const n = shape[a]!;
        const err =
          a === shape.length - 1
            ? rowsError(got[0]!, want[0]!, n, storage, (r) => maxAbs(ys.subarray(r * n, r * n + n)) * maxAbs(gs.subarray(r * n, r * n + n)))
            : allError(got[0]!, want[0]!, storage, maxAbs(ys) * maxAbs(gs));
        expect(err, `${shape} axis ${axis}`).toBeLessThanOrEqual(tol(storage));
      }
    });
  }
});

// ---- layernorm / rmsnorm ------------------------------------------------------------------------------

const NORM_CASES: number[][] = [[1, 1], [3, 7], [5, 13], [17, 768], [2, 3, 768], [4, 1000], [3, 4096], [2, 16384], [2, 20000], [64, 64], [301, 96]];

describe.skipIf(!gpu)('layernorm_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference in ${storage} (y, mean, rstd)`, () => {
      for (const shape of NORM_CASES) {
        const D = shape.at(-1)!;
        const x = scaled(numel(shape), 2, 0.5);
        const inputs = [
          { shape, data: x },
          { shape: [D], data: randn(D) },
          { shape: [D], data: randn(D) },
        ];
        const { got, want } = run('layernorm', inputs, { eps: 1e-5 }, storage);
        const xs = rounded(storage, x);
        expect(rowsError(got[0]!, want[0]!, D, storage), `y ${shape}`).toBeLessThanOrEqual(tol(storage));
        // The mean cancels: its scale is the row's max |x|.
        expect(rowsError(got[1]!, want[1]!, 1, storage, (r) => maxAbs(xs.subarray(r * D, r * D + D))), `mean ${shape}`).toBeLessThanOrEqual(tol(storage));
        expect(rowsError(got[2]!, want[2]!, 1, storage, () => 0), `rstd ${shape}`).toBeLessThanOrEqual(tol(storage));
      }
    });
  }
});

/**
 * Row scale for a norm backward's dx = rstd * (g * w - ...): rstd * max |g * w| over the row, the
 * size of the terms that cancel (completely for one-element rows). inputs: g, x, weight, ..., with
 * rstd at `rstdAt`.
 */
function termScale(inputs: { data: ArrayLike<number> }[], storage: Storage, rstdAt: number): (r: number) => number {
  const g = rounded(storage, inputs[0]!.data);
  const w = rounded(storage, inputs[2]!.data);
  const rstd = rounded(storage, inputs[rstdAt]!.data);
  const D = w.length;
  return (r) => {
    let m = 0;
    for (let d = 0; d < D; d++) m = Math.max(m, Math.abs(g[r * D + d]! * w[d]!));
    return Math.abs(rstd[r]!) * m;
  };
}

describe.skipIf(!gpu)('layernorm_backward_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference in ${storage} (dx, dweight, dbias)`, () => {
      for (const shape of NORM_CASES) {
        const D = shape.at(-1)!;
        const rows = shape.slice(0, -1);
        const x = scaled(numel(shape), 2, 0.5);
        const w = randn(D);
        const [, mean, rstd] = reference('layernorm', [{ shape, data: x }, { shape: [D], data: w }, { shape: [D], data: randn(D) }], { eps: 1e-5 }, storage);
        const inputs = [
          { shape, data: randn(numel(shape)) },
          { shape, data: x },
          { shape: [D], data: w },
          { shape: rows, dtype: 'f32' as const, data: Float64Array.from(mean!) }, // statistics are f32
          { shape: rows, dtype: 'f32' as const, data: Float64Array.from(rstd!) },
        ];
        const { got, want } = run('layernorm_backward', inputs, {}, storage);
        expect(rowsError(got[0]!, want[0]!, D, storage, termScale(inputs, storage, 4)), `dx ${shape}`).toBeLessThanOrEqual(tol(storage));
        expect(allError(got[1]!, want[1]!, storage), `dweight ${shape}`).toBeLessThanOrEqual(tol(storage));
        expect(allError(got[2]!, want[2]!, storage), `dbias ${shape}`).toBeLessThanOrEqual(tol(storage));
      }
    });
  }

  it('writes zero dweight and dbias for zero rows', () => {
    const { got } = run(
      'layernorm_backward',
      [
        { shape: [0, 5], data: new Float64Array(0) },
        { shape: [0, 5], data: new Float64Array(0) },
        { shape: [5], data: randn(5) },
        { shape: [0], data: new Float64Array(0) },
        { shape: [0], data: new Float64Array(0) },
      ],
      {},
      'f32',
    );
    expect(Array.from(got[1]!)).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(got[2]!)).toEqual([0, 0, 0, 0, 0]);
  });
});

/**
 * The register-row kernels (native/ops/nn/reg_rows.cuh): rows of 16-byte chunks up to 6144 bf16 /
 * 4096 f32 elements, a persistent grid whose row groups take several rows each (one warp per row up
 * to 768 bf16 elements; 2, 4, 8 warps beyond), against the reference; and the row framework's kernels
 * on the same rows (DEEPWELL_NORM_KERNEL=rows) as a second implementation. Row counts that are not
 * multiples of a block's row groups leave groups idle in the last round. dweight and dbias must be
 * bitwise the same on a second run (fixed-order column sums, no atomics).
 */
describe.skipIf(!gpu)('layernorm register-row kernels', () => {
  const SHAPES: number[][] = [[2048, 768], [1001, 768], [257, 1024], [300, 1600], [129, 2048], [33, 4096], [9, 6144], [513, 200]];
  const withPath = <R>(path: 'reg' | 'rows', fn: () => R): R => {
    if (path === 'rows') process.env.DEEPWELL_NORM_KERNEL = 'rows';
    try {
      return fn();
    } finally {
      delete process.env.DEEPWELL_NORM_KERNEL;
    }
  };
  for (const storage of ['f32', 'bf16'] as const) {
    it(`layernorm and its backward match the reference in ${storage}, both paths`, () => {
      for (const shape of SHAPES) {
        const D = shape.at(-1)!;
        const rows = shape[0]!;
        const x = scaled(numel(shape), 2, 0.5);
        const w = randn(D);
        const fwdIn = [
          { shape, data: x },
          { shape: [D], data: w },
          { shape: [D], data: randn(D) },
        ];
        const fwdWant = reference('layernorm', fwdIn, { eps: 1e-5 }, storage);
        const bwdIn = [
          { shape, data: randn(numel(shape)) },
          { shape, data: x },
          { shape: [D], data: w },
          { shape: [rows], dtype: 'f32' as const, data: Float64Array.from(fwdWant[1]!) },
          { shape: [rows], dtype: 'f32' as const, data: Float64Array.from(fwdWant[2]!) },
        ];
        const bwdWant = reference('layernorm_backward', bwdIn, {}, storage);
        const xs = rounded(storage, x);
        for (const path of ['reg', 'rows'] as const) {
          const what = `${path} ${shape}`;
          const fwd = withPath(path, () => runCuda('layernorm', fwdIn, { eps: 1e-5 }, { storage }).outputs);
          expect(rowsError(fwd[0]!, fwdWant[0]!, D, storage), `y ${what}`).toBeLessThanOrEqual(tol(storage));
          expect(rowsError(fwd[1]!, fwdWant[1]!, 1, storage, (r) => maxAbs(xs.subarray(r * D, r * D + D))), `mean ${what}`).toBeLessThanOrEqual(tol(storage));
          expect(rowsError(fwd[2]!, fwdWant[2]!, 1, storage, () => 0), `rstd ${what}`).toBeLessThanOrEqual(tol(storage));
          const bwd = withPath(path, () => runCuda('layernorm_backward', bwdIn, {}, { storage }).outputs);
          expect(rowsError(bwd[0]!, bwdWant[0]!, D, storage, termScale(bwdIn, storage, 4)), `dx ${what}`).toBeLessThanOrEqual(tol(storage));
          // Sums over `rows` rows: the f32 bound grows with the row count (one rounding per add).
          const sumTol = storage === 'f32' ? Math.max(1e-5, rows * 2 ** -24) : tol(storage);
          expect(allError(bwd[1]!, bwdWant[1]!, storage), `dweight ${what}`).toBeLessThanOrEqual(sumTol);
          expect(allError(bwd[2]!, bwdWant[2]!, storage), `dbias ${what}`).toBeLessThanOrEqual(sumTol);
          const again = withPath(path, () => runCuda('layernorm_backward', bwdIn, {}, { storage }).outputs);
          expectExact(again[1]!, bwd[1]!, `dweight run to run ${what}`);
          expectExact(again[2]!, bwd[2]!, `dbias run to run ${what}`);
          expectExact(again[0]!, bwd[0]!, `dx run to run ${what}`);
          // With an addend (passes/fuse-norm-residual.ts): dx as stored, plus the addend in f32,
          // rounded to the storage: bit for bit what the kernel without it and an add give.
          const addend = randn(numel(shape));
          const fused = withPath(path, () => runCuda('layernorm_backward', [...bwdIn, { shape, data: addend }], {}, { storage }).outputs);
          const as = rounded(storage, addend);
          expectExact(fused[0]!, rounded(storage, bwd[0]!.map((v, i) => Math.fround(v + as[i]!))), `dx + addend ${what}`);
          expectExact(fused[1]!, bwd[1]!, `dweight with an addend ${what}`);
        }
      }
    });
  }
});

/**
 * The layernorm backward's register-row kernels, picked by DEEPWELL_NORM_BWD_KERNEL: the default
 * (layernormBwdPipeK, native/ops/nn/layernorm_bwd.cu), its variant without the prefetch (=wide) and
 * the first register kernel (=reg, layernormBwdRegK) do the same arithmetic on the same rows, so dx
 * is bit for bit the same, with and without an addend. From 768 elements on, the default and =reg
 * both run two blocks an SM (ptxas puts both between 86 and 128 registers), so the same grid: dweight
 * and dbias bit for bit too (the short row may get another count of blocks, so another grid). =wide
 * has a larger grid: its column sums are checked against the reference and run to run.
 */
describe.skipIf(!gpu)('layernorm backward kernels (pipe, wide, reg)', () => {
  const SHAPES: number[][] = [[2048, 768], [1001, 768], [257, 1024], [300, 1600], [33, 4096], [9, 6144], [513, 200]];
  const withKernel = <R>(k: 'pipe' | 'wide' | 'reg', fn: () => R): R => {
    if (k !== 'pipe') process.env.DEEPWELL_NORM_BWD_KERNEL = k;
    try {
      return fn();
    } finally {
      delete process.env.DEEPWELL_NORM_BWD_KERNEL;
    }
  };
  for (const storage of ['f32', 'bf16'] as const) {
    it(`give the same dx bits in ${storage}; pipe the same dweight and dbias bits as reg from D = 768`, () => {
      for (const shape of SHAPES) {
        const D = shape.at(-1)!;
        const rows = shape[0]!;
        const x = scaled(numel(shape), 2, 0.5);
        const w = randn(D);
        const stats = reference('layernorm', [{ shape, data: x }, { shape: [D], data: w }, { shape: [D], data: randn(D) }], { eps: 1e-5 }, storage);
        const bwdIn = [
          { shape, data: randn(numel(shape)) },
          { shape, data: x },
          { shape: [D], data: w },
          { shape: [rows], dtype: 'f32' as const, data: Float64Array.from(stats[1]!) },
          { shape: [rows], dtype: 'f32' as const, data: Float64Array.from(stats[2]!) },
        ];
        const want = reference('layernorm_backward', bwdIn, {}, storage);
        const sumTol = storage === 'f32' ? Math.max(1e-5, rows * 2 ** -24) : tol(storage);
        for (const inputs of [bwdIn, [...bwdIn, { shape, data: randn(numel(shape)) }]]) {
          const what = `${shape}${inputs.length > 5 ? ' with an addend' : ''}`;
          const out = (k: 'pipe' | 'wide' | 'reg') => withKernel(k, () => runCuda('layernorm_backward', inputs, {}, { storage }).outputs);
          const reg = out('reg');
          const pipe = out('pipe');
          const wide = out('wide');
          expectExact(pipe[0]!, reg[0]!, `dx pipe ${what}`);
          expectExact(wide[0]!, reg[0]!, `dx wide ${what}`);
          if (D >= 768) {
            expectExact(pipe[1]!, reg[1]!, `dweight pipe ${what}`);
            expectExact(pipe[2]!, reg[2]!, `dbias pipe ${what}`);
          }
          for (const [k, o] of [['pipe', pipe], ['wide', wide]] as const) {
            expect(allError(o[1]!, want[1]!, storage), `dweight ${k} ${what}`).toBeLessThanOrEqual(sumTol);
            expect(allError(o[2]!, want[2]!, storage), `dbias ${k} ${what}`).toBeLessThanOrEqual(sumTol);
          }
          const again = out('wide');
          expectExact(again[1]!, wide[1]!, `dweight wide run to run ${what}`);
          expectExact(again[2]!, wide[2]!, `dbias wide run to run ${what}`);
        }
      }
    });
  }
});

describe.skipIf(!gpu)('rmsnorm_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference in ${storage} (y, rstd)`, () => {
      for (const shape of NORM_CASES) {
        const D = shape.at(-1)!;
        const inputs = [
          { shape, data: scaled(numel(shape), 2, 0.5) },
          { shape: [D], data: randn(D) },
        ];
        const { got, want } = run('rmsnorm', inputs, { eps: 1e-6 }, storage);
        expect(rowsError(got[0]!, want[0]!, D, storage), `y ${shape}`).toBeLessThanOrEqual(tol(storage));
        expect(rowsError(got[1]!, want[1]!, 1, storage, () => 0), `rstd ${shape}`).toBeLessThanOrEqual(tol(storage));
      }
    });
  }
});

describe.skipIf(!gpu)('rmsnorm_backward_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference in ${storage} (dx, dweight)`, () => {
      for (const shape of NORM_CASES) {
        const D = shape.at(-1)!;
        const x = scaled(numel(shape), 2, 0.5);
        const w = randn(D);
        const [, rstd] = reference('rmsnorm', [{ shape, data: x }, { shape: [D], data: w }], { eps: 1e-6 }, storage);
        const inputs = [
          { shape, data: randn(numel(shape)) },
          { shape, data: x },
          { shape: [D], data: w },
          { shape: shape.slice(0, -1), dtype: 'f32' as const, data: Float64Array.from(rstd!) }, // f32 statistics
        ];
        const { got, want } = run('rmsnorm_backward', inputs, {}, storage);
        expect(rowsError(got[0]!, want[0]!, D, storage, termScale(inputs, storage, 3)), `dx ${shape}`).toBeLessThanOrEqual(tol(storage));
        expect(allError(got[1]!, want[1]!, storage), `dweight ${shape}`).toBeLessThanOrEqual(tol(storage));
      }
    });
  }
});

// ---- embedding ---------------------------------------------------------------------------------------

const EMBED_CASES: [number[], number, number][] = [
  [[1], 1, 1],
  [[7], 5, 13],
  [[4, 25], 37, 768],
  [[513], 1000, 64],
  [[2, 1024], 50, 7],
  [[600], 20, 2100],
  [[5000], 3, 40],
];

describe.skipIf(!gpu)('embedding_cuda', () => {
  for (const storage of STORAGES) {
    it(`copies the rows exactly in ${storage}`, () => {
      for (const [idShape, V, D] of EMBED_CASES) {
        const inputs: CudaInput[] = [
          { shape: [V, D], data: randn(V * D) },
          { shape: idShape, dtype: 'i32', data: randIds(numel(idShape), V) },
        ];
        const { got, want } = run('embedding', inputs, {}, storage);
        expectExact(got[0]!, want[0]!, `${idShape} V ${V} D ${D}`);
      }
    });
  }

  it('throws INVALID_ARGUMENT for an id outside [0, V), naming it', () => {
    for (const bad of [5, -1, 1 << 30]) {
      const ids = Int32Array.from([0, 4, bad, 1]);
      const e = errorOf(() => runCuda('embedding', [{ shape: [5, 8], data: randn(40) }, { shape: [4], dtype: 'i32', data: ids }]));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain('embedding');
      expect(e.message).toContain(`received ${bad}`);
    }
    // The error word was cleared: a good call passes.
    runCuda('embedding', [{ shape: [5, 8], data: randn(40) }, { shape: [2], dtype: 'i32', data: Int32Array.from([1, 2]) }]);
  });
});

describe.skipIf(!gpu)('embedding_backward_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference in ${storage} (repeated ids accumulate)`, () => {
      for (const [idShape, V, D] of EMBED_CASES) {
        const P = numel(idShape);
        const inputs: CudaInput[] = [
          { shape: idShape, dtype: 'i32', data: randIds(P, V) },
          { shape: [...idShape, D], data: randn(P * D) },
        ];
        const { got, want } = run('embedding_backward', inputs, { vocab: V }, storage);
        expect(rowsError(got[0]!, want[0]!, D, storage), `${idShape} V ${V} D ${D}`).toBeLessThanOrEqual(tol(storage));
      }
    });
  }

  it('is bitwise deterministic', () => {
    for (const storage of ['f32', 'bf16'] as const) {
      const inputs: CudaInput[] = [
        { shape: [4096], dtype: 'i32', data: randIds(4096, 17) },
        { shape: [4096, 96], data: randn(4096 * 96) },
      ];
      const a = runCuda('embedding_backward', inputs, { vocab: 17 }, { storage }).outputs[0]!;
      const b = runCuda('embedding_backward', inputs, { vocab: 17 }, { storage }).outputs[0]!;
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    }
  });

  // The sorted path (with the declared workspace) and the scatter path (without) add each row's
  // contributions in the same order from 0 in FP32: the same bits. GPT-2's wte shape included, with
  // skewed ids (a few very frequent), rows of unvectorizable width, and ids nobody names (zero rows).
  it('gives the same bits through the sorted path as through the scatter path', () => {
    const cases: [number, number, number][] = [[16384, 50304, 768], [4096, 17, 96], [1000, 300, 13], [7, 5000, 64], [1, 1, 8]];
    for (const storage of STORAGES) {
      for (const [P, V, D] of cases) {
        const ids = Int32Array.from({ length: P }, () => (Math.random() < 0.3 ? randInt(0, Math.min(V, 10) - 1) : randInt(0, V - 1)));
        const inputs: CudaInput[] = [
          { shape: [P], dtype: 'i32', data: ids },
          { shape: [P, D], data: randn(P * D) },
        ];
        const sorted = runCuda('embedding_backward', inputs, { vocab: V }, { storage }).outputs[0]!;
        const scatter = runCuda('embedding_backward', inputs, { vocab: V }, { storage, noWorkspace: true }).outputs[0]!;
        expectExact(sorted, scatter, `${storage} P ${P} V ${V} D ${D}`);
      }
    }
  });

  it('throws INVALID_ARGUMENT for an id outside [0, vocab)', () => {
    const e = errorOf(() => runCuda('embedding_backward', [{ shape: [3], dtype: 'i32', data: Int32Array.from([0, 9, 1]) }, { shape: [3, 4], data: randn(12) }], { vocab: 9 }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain('embedding_backward');
    expect(e.message).toContain('received 9');
    // The same through the scatter path (no workspace), and a negative id through both.
    for (const noWorkspace of [false, true]) {
      const n = errorOf(() => runCuda('embedding_backward', [{ shape: [3], dtype: 'i32', data: Int32Array.from([0, -3, 1]) }, { shape: [3, 4], data: randn(12) }], { vocab: 9 }, { noWorkspace }));
      expect(n.code).toBe('INVALID_ARGUMENT');
      expect(n.message).toContain('received -3');
    }
  });
});

// ---- cross entropy -------------------------------------------------------------------------------

const CE_CASES: [number, number][] = [[1, 1], [3, 7], [5, 13], [33, 768], [4, 50304], [64, 1000], [2000, 16], [2, 20000]];

/** Targets in [0, V) with every third row (from row 1) the ignore index. */
function targetsFor(N: number, V: number, ignore: number): Int32Array {
  return Int32Array.from({ length: N }, (_, r) => (r % 3 === 1 ? ignore : randInt(0, V - 1)));
}

describe.skipIf(!gpu)('cross_entropy_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference in ${storage} (rows of 1 to 50304 classes, ignored rows)`, () => {
      for (const [N, V] of CE_CASES) {
        const inputs: CudaInput[] = [
          { shape: [N, V], data: scaled(N * V, 2) },
          { shape: [N], dtype: 'i32', data: targetsFor(N, V, -100) },
        ];
        const { got, want } = run('cross_entropy', inputs, { ignoreIndex: -100 }, storage);
        // logsumexp - logit cancels (to exactly 0 for one class): scale by the logits' size.
        expect(allError(got[0]!, want[0]!, storage, maxAbs(rounded(storage, inputs[0]!.data))), `${N} x ${V}`).toBeLessThanOrEqual(tol(storage));
      }
    });
  }

  it('gives 0 when every row is ignored, and honours an ignore index inside [0, V)', () => {
    const logits = { shape: [6, 5], data: randn(30) };
    const none = run('cross_entropy', [logits, { shape: [6], dtype: 'i32', data: new Int32Array(6).fill(-1) }], { ignoreIndex: -1 }, 'f32');
    expect(none.got[0]![0]).toBe(0);
    const inside = [logits, { shape: [6], dtype: 'i32' as const, data: Int32Array.from([0, 1, 2, 0, 4, 3]) }];
    const { got, want } = run('cross_entropy', inside, { ignoreIndex: 0 }, 'f32');
    expect(allError(got[0]!, want[0]!, 'f32', maxAbs(rounded('f32', logits.data)))).toBeLessThanOrEqual(1e-5);
  });

  it('is bitwise deterministic', () => {
    const inputs: CudaInput[] = [
      { shape: [300, 1000], data: scaled(300000, 3) },
      { shape: [300], dtype: 'i32', data: targetsFor(300, 1000, -1) },
    ];
    const a = runCuda('cross_entropy', inputs, { ignoreIndex: -1 }).outputs[0]!;
    const b = runCuda('cross_entropy', inputs, { ignoreIndex: -1 }).outputs[0]!;
    expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
  });

  it('throws INVALID_ARGUMENT for a target outside [0, V) that is not the ignore index', () => {
    for (const bad of [7, -2]) {
      const e = errorOf(() =>
        runCuda('cross_entropy', [{ shape: [3, 7], data: randn(21) }, { shape: [3], dtype: 'i32', data: Int32Array.from([0, bad, 6]) }], { ignoreIndex: -1 }),
      );
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain('cross_entropy');
      expect(e.message).toContain(`row 1 but received ${bad}`);
    }
  });
});

describe.skipIf(!gpu)('cross_entropy_backward_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference in ${storage} (g, the loss gradient, in f32)`, () => {
      for (const [N, V] of CE_CASES) {
        for (const gDtype of ['f32'] as DTypeName[]) {
          const inputs: CudaInput[] = [
            { shape: [N, V], data: scaled(N * V, 2) },
            { shape: [N], dtype: 'i32', data: targetsFor(N, V, -100) },
            { shape: [1], dtype: gDtype, data: Float64Array.of(0.5 + Math.random()) },
          ];
          const { got, want } = run('cross_entropy_backward', inputs, { ignoreIndex: -100 }, storage);
          // (p - onehot) * g / count cancels at the target (to exactly 0 for one class): the scale is
          // at least g / count.
          const count = (inputs[1]!.data as Int32Array).filter((t) => t !== -100).length;
          const unit = Math.abs(rounded(gDtype, inputs[2]!.data)[0]!) / Math.max(1, count);
          expect(allError(got[0]!, want[0]!, storage, Math.max(maxAbs(want[0]!), unit)), `${N} x ${V}, g ${gDtype}`).toBeLessThanOrEqual(tol(storage));
        }
      }
    });
  }

  it('is bitwise deterministic', () => {
    const inputs: CudaInput[] = [
      { shape: [64, 50304], data: scaled(64 * 50304, 2) },
      { shape: [64], dtype: 'i32', data: targetsFor(64, 50304, -1) },
      { shape: [1], dtype: 'f32', data: Float64Array.of(1) },
    ];
    const a = runCuda('cross_entropy_backward', inputs, { ignoreIndex: -1 }, { storage: 'bf16' }).outputs[0]!;
    const b = runCuda('cross_entropy_backward', inputs, { ignoreIndex: -1 }, { storage: 'bf16' }).outputs[0]!;
    expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
  });

  // The planner writes dlogits over the logits where they die (the op's inplace pair [0, 0]): every
  // row path (warp rows, cached block rows, uncached 1024-thread rows of 50304, unvectorized rows of
  // 7 and 13, ignored rows) must give the same bits in place as into a buffer of its own.
  for (const storage of STORAGES) {
    it(`gives the same bits written over the logits as apart, in ${storage}`, () => {
      for (const [N, V] of CE_CASES) {
        const inputs: CudaInput[] = [
          { shape: [N, V], data: scaled(N * V, 2) },
          { shape: [N], dtype: 'i32', data: targetsFor(N, V, -100) },
          { shape: [1], dtype: 'f32', data: Float64Array.of(0.5 + Math.random()) },
        ];
        const apart = runCuda('cross_entropy_backward', inputs, { ignoreIndex: -100 }, { storage }).outputs[0]!;
        const over = runCuda('cross_entropy_backward', inputs, { ignoreIndex: -100 }, { storage, inplace: [[0, 0]] }).outputs[0]!;
        expect(apart.some((v) => Number.isNaN(v)), `${N} x ${V}: unwritten`).toBe(false);
        expect(Buffer.from(over.buffer, over.byteOffset, over.byteLength).equals(Buffer.from(apart.buffer, apart.byteOffset, apart.byteLength)), `${N} x ${V}`).toBe(true);
      }
    });
  }

  it('refuses dlogits that overlap the logits without being them, or the targets, g and workspace', () => {
    const backend = cudaBackend(0);
    const stream = new Stream(0);
    const [N, V] = [4, 64];
    const T = N * V * 4; // bytes of the logits
    // One buffer: logits [0, T), room for dlogits apart [T, 2T), then targets, g and the workspace.
    const host = new ArrayBuffer(3 * T);
    new Float32Array(host).set(Float32Array.from(randn(3 * N * V)));
    new Int32Array(host, 2 * T, N).set([0, 5, 63, 17]);
    new Float32Array(host, 2 * T + 32, 1).set([1]);
    const buf = backend.alloc(3 * T);
    try {
      backend.write(buf, new Uint8Array(host));
      const at = (offset: number, bytes: number) => ({ base: buf.ptr, offset, bytes });
      const call = (dl: ReturnType<typeof at>) =>
        nativeEntries().entries!.crossEntropyBackward(stream.handle, 0, 0, N, V, -1, at(0, T), at(2 * T, 4 * N), at(2 * T + 32, 4), dl, at(2 * T + 48, 4));
      for (const dl of [at(256, T), at(2 * T - 512, T)]) {
        const e = errorOf(() => call(dl));
        expect(e.code).toBe('INVALID_ARGUMENT');
        expect(e.message).toContain('overlapping');
      }
      call(at(0, T)); // in place: accepted
      call(at(T, T)); // apart: accepted
      stream.synchronize();
    } finally {
      stream.dispose();
      backend.free(buf);
    }
  });

  it('throws INVALID_ARGUMENT for a bad target', () => {
    const e = errorOf(() =>
      runCuda('cross_entropy_backward', [
        { shape: [2, 4], data: randn(8) },
        { shape: [2], dtype: 'i32', data: Int32Array.from([4, 0]) },
        { shape: [1], data: Float64Array.of(1) },
      ]),
    );
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain('cross_entropy_backward');
    expect(e.message).toContain('row 0 but received 4');
  });
});

describe.skipIf(!gpu)('cross_entropy_with_grad_cuda', () => {
  // Every row path (warp rows, cached and shared-memory block rows, uncached rows of 50304 f32,
  // unvectorized rows), ignored rows, against the two references; then in place against apart.
  for (const storage of STORAGES) {
    it(`gives the loss and dlogits of the references in ${storage}, and the same bits written over the logits`, () => {
      for (const [N, V] of CE_CASES) {
        const inputs: CudaInput[] = [
          { shape: [N, V], data: scaled(N * V, 2) },
          { shape: [N], dtype: 'i32', data: targetsFor(N, V, -100) },
          { shape: [1], dtype: 'f32', data: Float64Array.of(0.5 + Math.random()) },
        ];
        const { got, want } = run('cross_entropy_with_grad', inputs, { ignoreIndex: -100 }, storage);
        expect(allError(got[0]!, want[0]!, storage, maxAbs(rounded(storage, inputs[0]!.data))), `loss ${N} x ${V}`).toBeLessThanOrEqual(tol(storage));
        const count = (inputs[1]!.data as Int32Array).filter((t) => t !== -100).length;
        const unit = Math.abs(inputs[2]!.data[0]!) / Math.max(1, count);
        expect(allError(got[1]!, want[1]!, storage, Math.max(maxAbs(want[1]!), unit)), `dlogits ${N} x ${V}`).toBeLessThanOrEqual(tol(storage));
        const over = runCuda('cross_entropy_with_grad', inputs, { ignoreIndex: -100 }, { storage, inplace: [[1, 0]] }).outputs;
        expectExact(over[0]!, got[0]!, `loss in place ${N} x ${V}`);
        expectExact(over[1]!, got[1]!, `dlogits in place ${N} x ${V}`);
      }
    });
  }

  it('runs the two kernels in turn where the addon has no crossEntropyWithGrad (cross_entropy_with_grad_unfused)', () => {
    for (const storage of STORAGES) {
      for (const [N, V] of [[5, 13], [64, 1000], [4, 50304]] as const) {
        const inputs: CudaInput[] = [
          { shape: [N, V], data: scaled(N * V, 2) },
          { shape: [N], dtype: 'i32', data: targetsFor(N, V, -1) },
          { shape: [1], dtype: 'f32', data: Float64Array.of(1) },
        ];
        const want = reference('cross_entropy_with_grad', inputs, { ignoreIndex: -1 }, storage);
        for (const inplace of [[], [[1, 0]]] as [number, number][][]) {
          const got = runCuda('cross_entropy_with_grad', inputs, { ignoreIndex: -1 }, { storage, inplace, kernel: 'cross_entropy_with_grad_unfused' }).outputs;
          const count = (inputs[1]!.data as Int32Array).filter((t) => t !== -1).length;
          expect(allError(got[0]!, want[0]!, storage, maxAbs(rounded(storage, inputs[0]!.data))), `loss ${N} x ${V}`).toBeLessThanOrEqual(tol(storage));
          expect(allError(got[1]!, want[1]!, storage, Math.max(maxAbs(want[1]!), 1 / Math.max(1, count))), `dlogits ${N} x ${V}`).toBeLessThanOrEqual(tol(storage));
        }
      }
    }
  });

  it('gives loss 0 and zero rows when every row is ignored, and is bitwise deterministic', () => {
    const none = run('cross_entropy_with_grad', [{ shape: [6, 5], data: randn(30) }, { shape: [6], dtype: 'i32', data: new Int32Array(6).fill(-1) }, { shape: [1], data: Float64Array.of(1) }], { ignoreIndex: -1 }, 'f32');
    expect(none.got[0]![0]).toBe(0);
    expect(Array.from(none.got[1]!).every((v) => v === 0)).toBe(true);
    const inputs: CudaInput[] = [
      { shape: [300, 50304], data: scaled(300 * 50304, 3) },
      { shape: [300], dtype: 'i32', data: targetsFor(300, 50304, -1) },
      { shape: [1], dtype: 'f32', data: Float64Array.of(1) },
    ];
    const a = runCuda('cross_entropy_with_grad', inputs, { ignoreIndex: -1 }, { storage: 'bf16' }).outputs;
    const b = runCuda('cross_entropy_with_grad', inputs, { ignoreIndex: -1 }, { storage: 'bf16' }).outputs;
    expectExact(b[0]!, a[0]!, 'loss');
    expectExact(b[1]!, a[1]!, 'dlogits');
  });

  it('throws INVALID_ARGUMENT naming the op for a bad target', () => {
    const e = errorOf(() =>
      runCuda('cross_entropy_with_grad', [
        { shape: [2, 4], data: randn(8) },
        { shape: [2], dtype: 'i32', data: Int32Array.from([0, 4]) },
        { shape: [1], data: Float64Array.of(1) },
      ]),
    );
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain('cross_entropy_with_grad');
    expect(e.message).toContain('row 1 but received 4');
  });
});

// ---- causal mask ---------------------------------------------------------------------------------

describe.skipIf(!gpu)('causal_mask_cuda', () => {
  for (const storage of STORAGES) {
    it(`matches the reference exactly in ${storage} (S >= T, aligned and odd rows)`, () => {
      // f16 cannot hold -1e30 (it would be -inf in both, which maxError cannot compare): a finite fill.
      const value = storage === 'f16' ? -1e4 : -1e30;
      for (const shape of [[1, 1], [3, 5], [2, 7, 7], [2, 3, 16, 24], [13, 40], [4, 64, 64]]) {
        const inputs = [{ shape, data: randn(numel(shape)) }];
        const { got, want } = run('causal_mask', inputs, { value }, storage);
        expectExact(got[0]!, rounded(storage, want[0]!), `${shape}`);
      }
    });
  }
});

// ---- the index check ---------------------------------------------------------------------------------

describe.skipIf(!gpu)('checkIndices', () => {
  it('false skips the synchronising check; the bad id is reported by the next check', () => {
    const backend = cudaBackend(0);
    const stream = new Stream(0);
    const table = backend.alloc(5 * 4 * 4);
    const ids = backend.alloc(3 * 4);
    const out = backend.alloc(3 * 4 * 4);
    try {
      backend.write(table, Float32Array.from(randn(20)));
      backend.write(ids, Int32Array.from([1, 7, 2]));
      const inTypes: ValueType[] = [{ shape: [5, 4], dtype: 'f32' }, { shape: [3], dtype: 'i32' }];
      const params = { op: 'embedding', device: 'cuda:0', inTypes, outTypes: [{ shape: [3, 4], dtype: 'f32' }] as ValueType[], attrs: {} };
      const kernel = registry.select<CudaCall, void>('embedding', params as unknown as CudaCall);
      const arg = (b: CudaBuffer) => ({ base: b.ptr, offset: 0, bytes: b.bytes });
      kernel.run({ ...params, stream: stream.handle, inputs: [arg(table), arg(ids)], outputs: [arg(out)], workspace: null, checkIndices: false } as CudaCall);
      stream.synchronize();
      const e = errorOf(() => nativeEntries().entries!.opsErrorCheck(stream.handle));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain('received 7');
      nativeEntries().entries!.opsErrorCheck(stream.handle); // cleared
    } finally {
      stream.dispose();
      for (const b of [table, ids, out]) backend.free(b);
    }
  });
});

describe.skipIf(!gpu)('clip_coef_cuda', () => {
  it('gives the norm and the clipping factor, clipping or not', () => {
    for (const maxNorm of [0.5, 1e3]) {
      const s = Math.random() * 100 + 1;
      const { got, want } = run('clip_coef', [{ shape: [1], dtype: 'f32', data: Float64Array.of(s) }], { maxNorm }, 'f32');
      expect(Math.abs(got[1]![0]! - want[1]![0]!) / want[1]![0]!).toBeLessThanOrEqual(2 ** -23);
      expect(Math.abs(got[0]![0]! - want[0]![0]!) / want[0]![0]!).toBeLessThanOrEqual(2 ** -21);
    }
  });
});
