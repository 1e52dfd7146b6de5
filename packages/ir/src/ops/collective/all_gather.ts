/**
 * all_gather: every rank's flat tensor, concatenated in rank order on every rank (NCCL's all-gather).
 *   x: T[m] (f32, bf16, f16 or i32) -> y: T[m · worldSize], y[r·m + i] = x[i] on rank r.
 * Attributes: worldSize (>= 1) and comm (the communicator's handle; 0 only with worldSize 1).
 *
 * Never written by models: ZeRO-1 (passes/zero.ts) makes it from each rank's updated shard of the
 * parameters, so every rank holds every parameter again after the optimizer. Not differentiated.
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
import { cpuGroupOf } from './cpu_group.js';
import { checkWorld } from './world.js';

const DTYPES = new Set(['f32', 'bf16', 'f16', 'i32']);

export const allGatherOp = defineOp({
  name: 'all_gather',
  doc: "every rank's flat tensor concatenated in rank order on every rank (NCCL all-gather)",
  inputs: ['x'],
  outputs: ['y'],
  attrs: {
    worldSize: { kind: 'int' },
    comm: { kind: 'int', default: 0 },
  },
  nonDifferentiable: true,
  infer: ([x], attrs) => {
    const world = checkWorld('all_gather', attrs);
    const t = x as ValueType;
    if (!DTYPES.has(t.dtype)) throw new DeepwellError('INVALID_DTYPE', `all_gather: Expected f32, bf16, f16 or i32 for input x but received ${t.dtype}`);
    if (t.shape.length !== 1) shapeError('all_gather', `Expected a flat (1-D) input x but received shape [${t.shape.join(', ')}]`);
    return [{ shape: [t.shape[0]! * world], dtype: t.dtype }];
  },
  reference: ({ inputs: [x], outputs: [y], attrs }) => {
    if (attrs.worldSize === 1) {
      y!.set(x!);
      return;
    }
    y!.set(cpuGroupOf('all_gather', attrs.comm as number, attrs.worldSize as number).allGather(Float64Array.from(x!)));
  },
  flops: () => 0,
});
