/**
 * embedding: look up rows of a table. table: F[V, D] (F a float dtype: f32, bf16 or f16),
 *   ids: i32[...I] -> out: F[...I, D],
 *   out[i..., :] = table[ids[i...], :].
 * A gather of whole rows (the ids may have any rank, so a batch of sequences looks up in one node).
 * An id outside [0, V) is an INVALID_ARGUMENT error naming its position and value, raised by the
 * reference when the data is seen (shapes alone cannot catch it); no id is clamped or wrapped.
 *
 * embedding_backward: the gradient w.r.t. the table, a scatter-add (as embedding_dense_backward).
 *   ids: i32[...I], g: F[...I, D]; attribute vocab (int, V) -> dtable: F[V, D],
 *   dtable[v, :] = sum of g[i..., :] over the positions with ids[i...] = v (rows never used are 0).
 * Repeated ids accumulate in float64. The ids take no gradient.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/nn.ts; the native
 * kernel is in native/ops/nn/; tested in packages/ir/test/nn.test.ts, dtypes.test.ts,
 * cuda-nn.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, expectRank, shapeError, stridesOf } from '../../op.js';
import { byteSizeOf } from '../../graph.js';
import { numel, sameShape, shapeStr, type NumArray } from '../../types.js';
import { expectFloat } from '../float.js';

/** The id at flat position p, checked against [0, V); errors name the position as ids[i, j, ...]. */
function idAt(op: string, ids: NumArray, idShape: readonly number[], p: number, V: number): number {
  const id = ids[p]!;
  if (!Number.isInteger(id) || id < 0 || id >= V) {
    const strides = stridesOf(idShape);
    const pos = strides.map((s, d) => Math.floor(p / s) % idShape[d]!);
    throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected an id in [0, ${V}) for ids[${pos.join(', ')}] but received ${id}`, { details: { position: pos, id } });
  }
  return id;
}

export const embeddingOp = defineOp({
  name: 'embedding',
  doc: 'out[i..., :] = table[ids[i...], :]',
  inputs: ['table', 'ids'],
  outputs: ['out'],
  attrs: {},
  indexInputs: [{ input: 1, bound: ([table]) => table!.shape[0]! }],
  // The rows it takes (out's size), not the whole table; ids; out.
  bytes: ([, ids], [out]) => byteSizeOf(ids!) + 2 * byteSizeOf(out!),
  infer: ([table, ids]) => {
    const dtype = expectFloat('embedding', 'table', table!);
    expectDtype('embedding', 'ids', ids!, ['i32']);
    expectRank('embedding', 'table', table!, 2);
    return [{ shape: [...ids!.shape, table!.shape[1]!], dtype }];
  },
  reference: ({ inputs: [table, ids], outputs: [out], inTypes }) => {
    const [V, D] = inTypes[0]!.shape as [number, number];
    const idShape = inTypes[1]!.shape;
    for (let p = 0; p < ids!.length; p++) {
      const row = idAt('embedding', ids!, idShape, p, V);
      for (let d = 0; d < D; d++) out![p * D + d] = table![row * D + d]!;
    }
  },
  gradient: ({ inputs: [table, ids], grads: [g] }) => [embeddingBackward(ids!, g!, table!.shape[0]!), null],
});

export const embeddingBackwardOp = defineOp({
  name: 'embedding_backward',
  doc: 'dtable[v, :] = sum of g[i..., :] where ids[i...] = v',
  inputs: ['ids', 'g'],
  outputs: ['dtable'],
  attrs: { vocab: { kind: 'int' } },
  indexInputs: [{ input: 0, bound: (_, attrs) => attrs.vocab as number }],
  // ids and g read; dtable written whole (zeros where no id), then g's rows added into it.
  bytes: ([ids, g], [dtable]) => byteSizeOf(ids!) + 3 * byteSizeOf(g!) + byteSizeOf(dtable!),
  infer: ([ids, g], attrs) => {
    const op = 'embedding_backward';
    expectDtype(op, 'ids', ids!, ['i32']);
    const dtype = expectFloat(op, 'g', g!);
    expectRank(op, 'g', g!, ids!.shape.length + 1);
    if (!sameShape(g!.shape.slice(0, -1), ids!.shape)) {
      shapeError(op, `Expected ${dtype}[${[...ids!.shape, 'D'].join(', ')}] (the ids' shape then D) for input 'g' but received ${shapeStr(g!)}`);
    }
    const V = attrs.vocab as number;
    if (V < 1) shapeError(op, `Expected a positive vocabulary size for attribute 'vocab' but received ${V}`);
    return [{ shape: [V, g!.shape.at(-1)!], dtype }];
  },
  reference: ({ inputs: [ids, g], outputs: [dtable], inTypes, outTypes }) => {
    const [V, D] = outTypes[0]!.shape as [number, number];
    const idShape = inTypes[0]!.shape;
    const acc = new Float64Array(V * D);
    for (let p = 0; p < ids!.length; p++) {
      const row = idAt('embedding_backward', ids!, idShape, p, V);
      for (let d = 0; d < D; d++) acc[row * D + d]! += g![p * D + d]!;
    }
    dtable!.set(acc);
  },
  flops: ([, g]) => numel(g!.shape),
});

export function embedding(table: Sym, ids: Sym): Sym {
  return builderOf(table, 'table of embedding').op1('embedding', [table, ids]);
}

export function embeddingBackward(ids: Sym, g: Sym, vocab: number): Sym {
  return builderOf(ids, 'ids of embeddingBackward').op1('embedding_backward', [ids, g], { vocab });
}
