import { describe, expect, it } from 'vitest';
import { errorOf, expectClose, gradcheck, randInt, randShape, randn, runOp } from './helpers.js';

describe('matmul', () => {
  it('matches a triple loop for every transpose combination, with batches broadcast', () => {
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const [B, M, K, N] = [randInt(1, 3), randInt(1, 7), randInt(1, 9), randInt(1, 6)];
      const a = randn(B * M * K);
      const b = randn(K * N); // shared by the batch
      const out = runOp('matmul', [{ shape: ta ? [B, K, M] : [B, M, K], data: a }, { shape: tb ? [N, K] : [K, N], data: b }], { transA: ta, transB: tb })[0]!;
      const want = new Float64Array(B * M * N);
      for (let p = 0; p < B; p++)
        for (let m = 0; m < M; m++)
          for (let n = 0; n < N; n++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += a[p * M * K + (ta ? k * M + m : m * K + k)]! * b[tb ? n * K + k : k * N + n]!;
            want[p * M * N + m * N + n] = s;
          }
      expectClose(out, want, 1e-12, 1e-12);
    }
  });

  it('handles size-1 dimensions and sizes that are not multiples of anything', () => {
    const out = runOp('matmul', [{ shape: [1, 1], data: Float64Array.of(3) }, { shape: [1, 13], data: randn(13) }])[0]!;
    expect(out.length).toBe(13);
  });

  it('rejects inner dimensions that disagree, naming the node', () => {
    const e = errorOf(() => runOp('matmul', [{ shape: [2, 3], data: randn(6) }, { shape: [4, 5], data: randn(20) }]));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toMatch(/node #0 \(matmul\): matmul: Expected inner dimensions that agree but received 3/);
    expect(errorOf(() => runOp('matmul', [{ shape: [3], data: randn(3) }, { shape: [3, 1], data: randn(3) }])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('matmul', [{ shape: [2, 2], dtype: 'i32', data: new Int32Array(4) }, { shape: [2, 2], data: randn(4) }])).code).toBe('INVALID_DTYPE');
  });

  it('has a gradient that matches finite differences', () => {
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const [M, K, N] = [randInt(1, 4), randInt(1, 4), randInt(1, 4)];
      gradcheck('matmul', [{ shape: ta ? [K, M] : [M, K] }, { shape: tb ? [N, K] : [K, N] }], { transA: ta, transB: tb });
      gradcheck('matmul', [{ shape: [2, ...(ta ? [K, M] : [M, K])] }, { shape: tb ? [N, K] : [K, N] }], { transA: ta, transB: tb });
      gradcheck('matmul', [{ shape: [2, 1, ...(ta ? [K, M] : [M, K])] }, { shape: [3, ...(tb ? [N, K] : [K, N])] }], { transA: ta, transB: tb });
    }
  });
});

describe('add, sum_to, broadcast_to, reshape, fill', () => {
  it('add broadcasts like numpy', () => {
    const a = randn(2 * 3 * 4);
    const b = randn(4);
    const out = runOp('add', [{ shape: [2, 3, 4], data: a }, { shape: [4], data: b }])[0]!;
    expectClose(out, a.map((x, i) => x + b[i % 4]!));
    expect(errorOf(() => runOp('add', [{ shape: [2, 3], data: randn(6) }, { shape: [2], data: randn(2) }])).code).toBe('SHAPE_MISMATCH');
  });

  it('sum_to sums over broadcast dimensions; broadcast_to repeats', () => {
    const x = randn(2 * 3 * 4);
    const s = runOp('sum_to', [{ shape: [2, 3, 4], data: x }], { shape: [3, 1] })[0]!;
    const want = new Float64Array(3);
    for (let i = 0; i < 24; i++) want[Math.floor(i / 4) % 3]! += x[i]!;
    expectClose(s, want, 1e-12);
    const r = runOp('broadcast_to', [{ shape: [3, 1], data: Float64Array.of(1, 2, 3) }], { shape: [2, 3, 2] })[0]!;
    expect(Array.from(r)).toEqual([1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3]);
  });

  it('reshape infers one -1 and refuses a wrong element count', () => {
    const x = randn(24);
    expect(Array.from(runOp('reshape', [{ shape: [2, 12], data: x }], { shape: [4, -1] })[0]!)).toEqual(Array.from(x));
    expect(errorOf(() => runOp('reshape', [{ shape: [2, 12], data: x }], { shape: [5, -1] })).code).toBe('SHAPE_MISMATCH');
  });

  it('fill writes every element', () => {
    const v = Math.random();
    expect(Array.from(runOp('fill', [], { shape: [3, 2], value: v })[0]!)).toEqual(new Array(6).fill(v));
  });

  it('have gradients that match finite differences', () => {
    const s = randShape(3);
    gradcheck('add', [{ shape: s }, { shape: [s[2]!] }]);
    gradcheck('add', [{ shape: [s[0]!, 1, s[2]!] }, { shape: s }]);
    gradcheck('sum_to', [{ shape: s }], { shape: [1, s[2]!] });
    gradcheck('broadcast_to', [{ shape: [s[1]!, 1] }], { shape: [2, s[1]!, 3] });
    gradcheck('reshape', [{ shape: s }], { shape: [-1] });
  });
});

describe('matmul_bias (made by fusion)', () => {
  it('is the product plus the bias, for any transposes and a batch', () => {
    const [B, M, K, N] = [randInt(1, 3), randInt(1, 6), randInt(1, 7), randInt(1, 5)];
    const a = randn(B * M * K);
    const w = randn(N * K); // [N, K], transposed: a Linear
    const bias = randn(N);
    const out = runOp('matmul_bias', [{ shape: [B, M, K], data: a }, { shape: [N, K], data: w }, { shape: [N], data: bias }], { transB: true })[0]!;
    const want = new Float64Array(B * M * N);
    for (let r = 0; r < B * M; r++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[r * K + k]! * w[n * K + k]!;
        want[r * N + n] = s + bias[n]!;
      }
    expectClose(out, want, 1e-12, 1e-12);
    expect(errorOf(() => runOp('matmul_bias', [{ shape: [2, 3], data: randn(6) }, { shape: [3, 4], data: randn(12) }, { shape: [5], data: randn(5) }])).message).toMatch(/Expected a bias of shape \[4\]/);
  });
});
