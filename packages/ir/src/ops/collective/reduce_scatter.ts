/**
 * reduce_scatter: a flat tensor summed (or averaged) element by element across the ranks of a
 * data-parallel job, each rank keeping one block of the result (NCCL's reduce-scatter).
 *   x: T[n] (f32, bf16 or f16; n divisible by worldSize) -> y: T[n / worldSize],
 *   y[i] = (Σ over ranks r of x[rank·n/W + i] on r) (/ worldSize with 'avg'), `rank` this process's.
 * Attributes: op ('sum' or 'avg'), worldSize (>= 1) and comm (the communicator's handle, as
 * all_reduce's; 0 only with worldSize 1).
 *
 * Never written by models: ZeRO-1 (passes/zero.ts, through dataParallel's `zero` option) makes it
 * from a step's flat gradients, so each rank receives the averaged gradient of the shard whose
 * optimizer state it holds. Not differentiated.
 *
 * The reference holds one rank: with worldSize 1, y = x exactly; a world of several reaches the other
 * ranks through the CPU group under `comm` (ops/collective/cpu_group.ts), else a typed error.
 *
 * Kernels and tests: CUDA candidate in packages/ir/src/cuda/collective.ts (NCCL); tested in
 * packages/ir/test/zero.test.ts (CPU) and packages/ir/test/cuda-dist.test.ts (one GPU).
 */
import { DeepwellError } from '@deepwell/core';
import { defineOp, shapeError } from '../../op.js';
import type { ValueType } from '../../types.js';
import { ALL_REDUCE_OPS, checkWorld, type AllReduceOp } from './world.js';
import { cpuGroupOf } from './cpu_group.js';

const DTYPES = new Set(['f32', 'bf16', 'f16']);

export const reduceScatterOp = defineOp({
  name: 'reduce_scatter',
  doc: "a flat tensor summed or averaged across the ranks, each rank keeping its block (NCCL reduce-scatter)",
  inputs: ['x'],
  outputs: ['y'],
  attrs: {
    op: { kind: 'string', oneOf: ALL_REDUCE_OPS, default: 'avg' },
    worldSize: { kind: 'int' },
    comm: { kind: 'int', default: 0 },
  },
  nonDifferentiable: true,
  infer: ([x], attrs) => {
    const world = checkWorld('reduce_scatter', attrs);
    const t = x as ValueType;
    if (!DTYPES.has(t.dtype)) throw new DeepwellError('INVALID_DTYPE', `reduce_scatter: Expected f32, bf16 or f16 for input x but received ${t.dtype}`);
    if (t.shape.length !== 1) shapeError('reduce_scatter', `Expected a flat (1-D) input x but received shape [${t.shape.join(', ')}]`);
    if (t.shape[0]! % world !== 0) shapeError('reduce_scatter', `Expected the length of x (${t.shape[0]}) divisible by worldSize ${world}`);
    return [{ shape: [t.shape[0]! / world], dtype: t.dtype }];
  },
  reference: ({ inputs: [x], outputs: [y], attrs }) => {
    if (attrs.worldSize === 1) {
      y!.set(x!);
      return;
    }
    y!.set(cpuGroupOf('reduce_scatter', attrs.comm as number, attrs.worldSize as number).reduceScatter(Float64Array.from(x!), attrs.op as AllReduceOp));
  },
  flops: ([x], _outs, attrs) => (attrs.worldSize === 1 ? 0 : x!.shape[0]!),
});
