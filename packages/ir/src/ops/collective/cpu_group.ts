/**
 * Collectives on the CPU: how the references of all_reduce, reduce_scatter and all_gather reach the
 * other ranks of a job when the step runs on the CPU backend (tests and CI, where no GPU or NCCL
 * is). A CPU group is registered under a handle, the number the nodes carry as their `comm`
 * attribute, exactly as a Communicator's handle is on CUDA; the references look the handle up in
 * this thread. A world of one needs no group (comm 0). Handles of CPU groups start at 2^40, far
 * from NCCL communicators' small handles, so one is never taken for the other.
 *
 * Every rank must call the same collectives in the same order (as with NCCL); each call blocks
 * until every rank has made it. The values are the references' float64 arrays; a group sums them in
 * rank order (rank 0's value, plus rank 1's, ...), so every rank gets the same bits.
 */
import { DeepwellError, checkInteger, invalid } from '@deepwell/core';

export type CpuReduceOp = 'sum' | 'avg';

export interface CpuCollectives {
  readonly rank: number;
  readonly worldSize: number;
  /** Each array's element-wise sum (or mean) over the ranks, the same on every rank. */
  allReduce(xs: readonly Float64Array[], op: CpuReduceOp): Float64Array[];
  /** The sum (or mean) over ranks of `x` (length n, n divisible by worldSize), then this rank's block [rank·n/W, (rank + 1)·n/W). */
  reduceScatter(x: Float64Array, op: CpuReduceOp): Float64Array;
  /** Every rank's `x` (the same length on each), concatenated in rank order. */
  allGather(x: Float64Array): Float64Array;
}

/** The first handle of a CPU group. */
export const CPU_GROUP_HANDLE_BASE = 2 ** 40;
const GROUPS = new Map<number, CpuCollectives>();
let next = CPU_GROUP_HANDLE_BASE;

/** Registers `group` in this thread; returns its handle (for dataParallel's comm) and a function that forgets it. */
export function registerCpuCollectives(group: CpuCollectives): { handle: number; unregister: () => void } {
  if (typeof group !== 'object' || group === null || typeof group.allReduce !== 'function' || typeof group.reduceScatter !== 'function' || typeof group.allGather !== 'function') {
    throw new DeepwellError('INVALID_ARGUMENT', 'Expected a CPU collectives object (rank, worldSize, allReduce, reduceScatter, allGather) for registerCpuCollectives');
  }
  checkInteger(group.worldSize, 'worldSize of a CPU group', 1, 65536);
  checkInteger(group.rank, 'rank of a CPU group', 0, group.worldSize - 1);
  const handle = next++;
  GROUPS.set(handle, group);
  return { handle, unregister: () => void GROUPS.delete(handle) };
}

/**
 * The CPU group a collective node names (attribute comm), checked against the node's world size; a
 * typed error when there is none in this thread: the CPU cannot reach other ranks without one.
 */
export function cpuGroupOf(op: string, comm: number, worldSize: number): CpuCollectives {
  if (typeof op !== 'string') invalid('the name of a collective op', 'the op of cpuGroupOf', op);
  checkInteger(comm, `comm of ${op}`, 0);
  checkInteger(worldSize, `worldSize of ${op}`, 1, 65536);
  const g = GROUPS.get(comm);
  if (!g) {
    throw new DeepwellError(
      'NO_KERNEL',
      `${op}: the CPU holds one rank and no CPU group is registered under comm ${comm} in this thread, so it cannot reach the rest of a world of ${worldSize}; run a data-parallel step on CUDA (NCCL), or register a CPU group (registerCpuCollectives)`,
    );
  }
  if (g.worldSize !== worldSize) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected a CPU group of ${worldSize} ranks (the node's worldSize) but the group under comm ${comm} has ${g.worldSize}`);
  return g;
}
