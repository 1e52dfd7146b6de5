/**
 * matmul: batched matrix product with either operand transposed.
 *   a: F[...Ba, M, K] (F[...Ba, K, M] when transA), b: F[...Bb, K, N] (F[...Bb, N, K] when
 *   transB) -> F[...broadcast(Ba, Bb), M, N], F one float dtype (f32, bf16 or f16) shared by a and
 *   b. Batch dimensions broadcast numpy-style; a rank-2 operand is shared by every batch. The
 *   reference accumulates each dot product in float64.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/gemm.ts; the native
 * kernel is in native/gemm/ (cuBLASLt through gemm.cpp; our fallback kernel gemm_fallback.cu);
 * tested in packages/ir/test/basic.test.ts, compile.test.ts, dtypes.test.ts, cuda-gemm.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { broadcastShapes, defineOp, expectRank, shapeError, stridesOf } from '../../op.js';
import { sameFloat, type FloatDType } from '../float.js';
import { numel, type Attrs, type ValueType } from '../../types.js';
import { reshape } from './reshape.js';
import { sumTo } from './sum_to.js';

function dims(t: ValueType, trans: boolean): [rows: number, cols: number] {
  const r = t.shape[t.shape.length - 2]!;
  const c = t.shape[t.shape.length - 1]!;
  return trans ? [c, r] : [r, c];
}

function infer(a: ValueType, b: ValueType, attrs: Attrs): { batch: number[]; M: number; K: number; N: number; dtype: FloatDType } {
  const dtype = sameFloat('matmul', [['a', a], ['b', b]]);
  expectRank('matmul', 'a', a, 2, Infinity);
  expectRank('matmul', 'b', b, 2, Infinity);
  const [M, K] = dims(a, attrs.transA === true);
  const [K2, N] = dims(b, attrs.transB === true);
  if (K !== K2) {
    shapeError('matmul', `Expected inner dimensions that agree but received ${K} (a: [${a.shape.join(', ')}]${attrs.transA ? ', transposed' : ''}) and ${K2} (b: [${b.shape.join(', ')}]${attrs.transB ? ', transposed' : ''})`);
  }
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  return { batch, M, K, N, dtype };
}

/** Offset of batch `i` (of the broadcast batch shape) into an operand with batch shape `own`. */
function batchOffsets(batch: number[], own: readonly number[], matrix: number): Int32Array {
  const n = numel(batch);
  const out = new Int32Array(n);
  const bs = stridesOf(batch);
  const os = stridesOf(own);
  const off = batch.length - own.length;
  for (let i = 0; i < n; i++) {
    let rem = i;
    let j = 0;
    for (let d = 0; d < batch.length; d++) {
      const c = Math.floor(rem / bs[d]!);
      rem -= c * bs[d]!;
      const od = d - off;
      if (od >= 0 && own[od] !== 1) j += c * os[od]!;
    }
    out[i] = j * matrix;
  }
  return out;
}

export const matmulOp = defineOp({
  name: 'matmul',
  doc: 'out = op(a) @ op(b), op = transpose when transA/transB; batch dims broadcast',
  inputs: ['a', 'b'],
  outputs: ['out'],
  attrs: { transA: { kind: 'bool', default: false }, transB: { kind: 'bool', default: false } },
  infer: ([a, b], attrs) => {
    const { batch, M, N, dtype } = infer(a!, b!, attrs);
    return [{ shape: [...batch, M, N], dtype }];
  },
  reference: ({ inputs: [a, b], outputs: [out], inTypes, attrs }) => {
    const { batch, M, K, N } = infer(inTypes[0]!, inTypes[1]!, attrs);
    const ta = attrs.transA === true;
    const tb = attrs.transB === true;
    const offA = batchOffsets(batch, inTypes[0]!.shape.slice(0, -2), M * K);
    const offB = batchOffsets(batch, inTypes[1]!.shape.slice(0, -2), K * N);
    // Element strides of op(a)[m, k] and op(b)[k, n] inside one matrix.
    const [am, ak] = ta ? [1, M] : [K, 1];
    const [bk, bn] = tb ? [1, K] : [N, 1];
    // Pack op(a) by rows and op(b) by columns so every dot product reads two contiguous runs: the
    // same arithmetic, in the same order, without strided reads (the reference is also the CPU
    // backend's kernel, so this keeps CPU training fast enough to test).
    const rowsA = new Float64Array(M * K);
    const colsB = new Float64Array(N * K);
    for (let p = 0; p < offA.length; p++) {
      const A = offA[p]!;
      const B = offB[p]!;
      const C = p * M * N;
      for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) rowsA[m * K + k] = a![A + m * am + k * ak]!;
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) colsB[n * K + k] = b![B + k * bk + n * bn]!;
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let acc = 0; // JS numbers are float64
          for (let k = 0, i = m * K, j = n * K; k < K; k++, i++, j++) acc += rowsA[i]! * colsB[j]!;
          out![C + m * N + n] = acc;
        }
      }
    }
  },
  flops: ([a, b], [out], attrs) => {
    const K = dims(a!, attrs.transA === true)[1];
    void b;
    return 2 * numel(out!.shape) * K;
  },
  gradient: ({ inputs: [a, b], grads: [g], attrs }) => {
    const ta = attrs.transA === true;
    const tb = attrs.transB === true;
    // A rank-2 weight shared by a batch of activations: fold the batch into rows first, so the
    // weight gradient is one matmul instead of one per batch followed by a sum.
    if (b!.rank === 2 && a!.rank > 2 && !ta) {
      const K = a!.shape.at(-1)!;
      const N = g!.shape.at(-1)!;
      const a2 = reshape(a!, [-1, K]);
      const g2 = reshape(g!, [-1, N]);
      const da = matmul(g!, b!, { transB: !tb });
      const db = tb ? matmul(g2, a2, { transA: true }) : matmul(a2, g2, { transA: true });
      return [da, db];
    }
    const da = ta ? matmul(b!, g!, { transA: tb, transB: true }) : matmul(g!, b!, { transB: !tb });
    const db = tb ? matmul(g!, a!, { transA: true, transB: ta }) : matmul(a!, g!, { transA: !ta });
    return [sumTo(da, a!.shape), sumTo(db, b!.shape)];
  },
});

export function matmul(a: Sym, b: Sym, attrs: { transA?: boolean; transB?: boolean } = {}): Sym {
  return builderOf(a, 'a of matmul').op1('matmul', [a, b], attrs);
}
