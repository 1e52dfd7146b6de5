/**
 * What the collective ops (all_reduce, reduce_scatter, all_gather) share: the reductions, the largest
 * world, and the check of a node's worldSize and comm attributes.
 */
import { shapeError } from '../../op.js';

export const ALL_REDUCE_OPS = ['sum', 'avg'] as const;
export type AllReduceOp = (typeof ALL_REDUCE_OPS)[number];
/** The most ranks a collective names (NCCL's own limit is far above; this bounds a typo). */
export const MAX_WORLD_SIZE = 65536;

/** A collective node's worldSize, checked with its comm (a communicator's handle; 0 only for a world of one). */
export function checkWorld(op: string, attrs: Record<string, unknown>): number {
  const world = attrs.worldSize as number;
  const comm = attrs.comm as number;
  if (!Number.isSafeInteger(world) || world < 1 || world > MAX_WORLD_SIZE) shapeError(op, `Expected attribute worldSize in [1, ${MAX_WORLD_SIZE}] but received ${world}`);
  if (!Number.isSafeInteger(comm) || comm < 0) shapeError(op, `Expected attribute comm a communicator handle (an integer >= 0) but received ${comm}`);
  if (comm === 0 && world !== 1) shapeError(op, `Expected a communicator (attribute comm) for a world of ${world} ranks but received none (comm 0)`);
  return world;
}
