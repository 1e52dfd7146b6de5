/**
 * all_reduce: each input reduced element by element across the ranks of a data-parallel job (NCCL's
 * all-reduce), 'sum' or 'avg'.
 *   x_0: T_0[X_0...], x_1: T_1[X_1...], ... (any number >= 1; each f32, bf16, f16, or i32 with
 *   'sum') -> y_k: T_k[X_k...], y_k[i] = (Σ over ranks r of x_k[i] on r) (/ worldSize with 'avg').
 * Attributes: op, worldSize (the ranks taking part, >= 1) and comm (the communicator's handle in this
 * process, kernels-native's Communicator.handle; 0: none, allowed only with worldSize 1). A node
 * holding several tensors is one bucket: its kernel issues them as one NCCL group, so NCCL moves
 * the bucket in one launch. Each output may share its input's storage (in place).
 *
 * Never written by models: the data-parallel pass (passes/data-parallel.ts) makes it from a training
 * step's gradients (and its loss) before the optimizer. Not differentiated.
 *
 * The reference (the CPU) holds one rank: with worldSize 1 each output is its input, exactly ('avg'
 * divides by 1); a world of several ranks reaches the others through the CPU group registered under
 * `comm` in this thread (ops/collective/cpu_group.ts; tests run one rank per worker thread), and
 * without one says so. The CUDA candidate (ir/src/cuda/collective.ts) calls NCCL through kernels-native.
 *
 * Kernels and tests: CUDA candidate in packages/ir/src/cuda/collective.ts, native code in
 * native/comm/nccl.cpp; tested in packages/ir/test/data_parallel.test.ts (CPU) and
 * packages/ir/test/cuda-dist.test.ts (one H200, a world of one through NCCL).
 */
import { DeepwellError } from '@deepwell/core';
import { defineOp } from '../../op.js';
import type { ValueType } from '../../types.js';
import { numel } from '../../types.js';
import { cpuGroupOf } from './cpu_group.js';
import { ALL_REDUCE_OPS, checkWorld, type AllReduceOp } from './world.js';

export { ALL_REDUCE_OPS, MAX_WORLD_SIZE, type AllReduceOp } from './world.js';

const DTYPES = new Set(['f32', 'bf16', 'f16', 'i32']);

export const allReduceOp = defineOp({
  name: 'all_reduce',
  doc: 'each input summed or averaged element by element across the ranks of a data-parallel job (NCCL all-reduce)',
  inputs: ['...xs'],
  outputs: ['...ys'],
  attrs: {
    op: { kind: 'string', oneOf: ALL_REDUCE_OPS, default: 'avg' },
    worldSize: { kind: 'int' },
    comm: { kind: 'int', default: 0 },
  },
  inplace: (inputs: number) => Array.from({ length: inputs }, (_, k) => [k, k] as const),
  nonDifferentiable: true,
  infer: (xs, attrs) => {
    checkWorld('all_reduce', attrs);
    return xs.map((x: ValueType, k: number) => {
      if (!DTYPES.has(x.dtype)) throw new DeepwellError('INVALID_DTYPE', `all_reduce: Expected f32, bf16, f16 or i32 for input xs[${k}] but received ${x.dtype}`);
      if (x.dtype === 'i32' && attrs.op === 'avg') throw new DeepwellError('INVALID_DTYPE', `all_reduce: Expected a float input for op 'avg' (an average of integers is not an integer) but received i32 for xs[${k}]`);
      return { shape: [...x.shape], dtype: x.dtype };
    });
  },
  reference: ({ inputs, outputs, attrs }) => {
    if (attrs.worldSize === 1) {
      inputs.forEach((x, k) => outputs[k]!.set(x));
      return;
    }
    const group = cpuGroupOf('all_reduce', attrs.comm as number, attrs.worldSize as number);
    group.allReduce(inputs.map((x) => Float64Array.from(x)), attrs.op as AllReduceOp).forEach((y, k) => outputs[k]!.set(y));
  },
  flops: (xs, _outs, attrs) => (attrs.worldSize === 1 ? 0 : xs.reduce((a, x) => a + numel(x.shape), 0)),
});
