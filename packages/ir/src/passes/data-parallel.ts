/**
 * Data parallelism in the compiled step: dataParallel(step, { worldSize, comm }) puts all_reduce
 * nodes between a training step's backward pass and its optimizer, so every rank averages its
 * gradients with the others inside the same step (and, on CUDA, inside its one CUDA graph), as
 * PyTorch's DDP does.
 *
 *   const step = dataParallel(trainingStep(forward), { worldSize, comm: communicator.handle });
 *
 * - The gradients (graph.gradients, one per parameter) go into buckets of about `bucketBytes`
 *   (default 25 MiB, DDP's bucket_cap_mb), in the order the backward pass makes them; each bucket is
 *   one all_reduce node (one NCCL group, one launch) placed right after the last of its gradients
 *   is made, so a bucket can move while the backward still computes the next (overlap needs the
 *   collective on a stream of its own: the CUDA executor runs one stream today, so buckets now run
 *   in order with the step's kernels).
 * - Every reader of a gradient after that point (clipping's sum_squares, AdamW) reads the average;
 *   graph.gradients names the averaged values.
 * - The loss output (`loss`, default 'loss'; false leaves it) is averaged too, so every rank reports
 *   the global batch's loss: with equal local batches, the mean of the ranks' means.
 * So each rank's step equals a single-GPU step over the global batch, up to the order of the
 * reduction. Applying it twice is refused. Returns the graph (changed in place; with `zero`, a new
 * graph: ZeRO-1's optimizer in place of the all-reduces, see passes/zero.ts).
 */
import { DeepwellError, checkInteger, checkKeys, checkNumber, describe, invalid } from '@deepwell/core';
import { GraphBuilder } from '../builder.js';
import { byteSizeOf, checkGraph, type Graph, type NodeDecl } from '../graph.js';
import { MAX_WORLD_SIZE, type AllReduceOp } from '../ops/collective/all_reduce.js';
import { isFloat } from '../ops/float.js';
import { zeroOptimizer } from './zero.js';

export interface DataParallelOptions {
  /** Ranks in the job, >= 1. */
  worldSize: number;
  /** The communicator's handle (kernels-native Communicator.handle); may be left out only with worldSize 1. */
  comm?: number;
  /** About how many bytes of gradients one all_reduce moves (default 25 MiB); a larger gradient is a bucket of its own. */
  bucketBytes?: number;
  /** The output averaged across ranks (default 'loss'; false: none). */
  loss?: string | false;
  /** 'avg' (the default: the mean gradient of the global batch) or 'sum'. */
  op?: AllReduceOp;
  /**
   * ZeRO-1 (passes/zero.ts): this process's rank, and the shards' alignment in elements (default
   * 64). The gradients are reduce-scattered instead of all-reduced, each rank keeps the AdamW
   * moments of its shard only, and the updated shards are all-gathered. Needs op 'avg'.
   */
  zero?: { rank: number; align?: number };
}

/** DDP's default bucket size (torch.nn.parallel.DistributedDataParallel's bucket_cap_mb = 25). */
export const DEFAULT_BUCKET_BYTES = 25 * 2 ** 20;

export function dataParallel(graph: Graph, options: DataParallelOptions): Graph {
  checkGraph(graph, 'the graph of dataParallel');
  if (typeof options !== 'object' || options === null) invalid('an options object ({ worldSize, comm, bucketBytes, loss, op })', 'dataParallel', options);
  checkKeys(options, ['worldSize', 'comm', 'bucketBytes', 'loss', 'op', 'zero'], 'dataParallel', { aliases: { world: 'worldSize', communicator: 'comm (its handle)', bucket_cap_mb: 'bucketBytes', zero1: 'zero' } });
  const worldSize = checkInteger(options.worldSize, 'worldSize of dataParallel', 1, MAX_WORLD_SIZE);
  const comm = options.comm === undefined ? 0 : checkInteger(options.comm, 'comm of dataParallel (a Communicator handle)', 1, Number.MAX_SAFE_INTEGER);
  if (comm === 0 && worldSize !== 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected comm (a Communicator's handle) for dataParallel with worldSize ${worldSize} but received none`);
  const bucketBytes = options.bucketBytes === undefined ? DEFAULT_BUCKET_BYTES : checkNumber(options.bucketBytes, 'bucketBytes of dataParallel', { min: 1, max: 2 ** 40 });
  const op = options.op === undefined ? 'avg' : options.op;
  if (op !== 'avg' && op !== 'sum') throw new DeepwellError('INVALID_ARGUMENT', `Expected op 'avg' or 'sum' for dataParallel but received ${describe(op)}`);
  const lossName = options.loss === undefined ? 'loss' : options.loss;
  if (lossName !== false && typeof lossName !== 'string') invalid("an output name or false", 'loss of dataParallel', lossName);
  const zero = options.zero;
  if (zero !== undefined) {
    if (typeof zero !== 'object' || zero === null) invalid('an object ({ rank, align })', 'zero of dataParallel', zero);
    checkKeys(zero, ['rank', 'align'], 'zero of dataParallel');
    checkInteger(zero.rank, 'zero.rank of dataParallel', 0, worldSize - 1);
    if (zero.align !== undefined) checkInteger(zero.align, 'zero.align of dataParallel', 1, 1 << 20);
    if (op !== 'avg') throw new DeepwellError('INVALID_ARGUMENT', `Expected op 'avg' with dataParallel's zero (its reduce-scatter averages) but received '${op}'`);
  }
  const names = Object.keys(graph.gradients);
  if (names.length === 0) throw new DeepwellError('INVALID_ARGUMENT', 'Expected a training step (trainingStep\'s graph, whose gradients are named) for dataParallel but received a graph without gradients');
  if (graph.nodes.some((n) => n.op === 'all_reduce' || n.op === 'reduce_scatter')) throw new DeepwellError('INVALID_ARGUMENT', 'Expected a step without all_reduce nodes for dataParallel but received one that has them (dataParallel applied twice?)');
  if (lossName !== false && !(lossName in graph.outputs)) throw new DeepwellError('INVALID_ARGUMENT', `Expected an output named '${lossName}' for dataParallel's loss but received outputs ${Object.keys(graph.outputs).join(', ') || '(none)'} (loss: false averages none)`);

  const position = new Map<number, number>(); // node id -> index
  graph.nodes.forEach((n, k) => position.set(n.id, k));
  const madeAt = (v: number): number => {
    const p = graph.values[v]!.producer;
    return p === undefined ? -1 : position.get(p)!;
  };
  // Each distinct gradient value once (parameters could share one), in the order it is made.
  const seen = new Map<number, string[]>();
  for (const name of names) {
    const v = graph.gradients[name]!;
    if (!isFloat(graph.values[v]!.type.dtype)) throw new DeepwellError('INVALID_DTYPE', `dataParallel: Expected a float gradient for parameter '${name}' but received ${graph.values[v]!.type.dtype}`);
    seen.set(v, [...(seen.get(v) ?? []), name]);
  }
  const grads = [...seen.keys()].sort((a, b) => madeAt(a) - madeAt(b));
  const buckets: number[][] = [];
  let open: number[] = [];
  let bytes = 0;
  for (const v of grads) {
    open.push(v);
    bytes += byteSizeOf(graph.values[v]!.type);
    if (bytes >= bucketBytes) {
      buckets.push(open);
      open = [];
      bytes = 0;
    }
  }
  if (open.length) buckets.push(open);
  // With ZeRO-1 the gradients are reduce-scattered by its optimizer instead (passes/zero.ts).
  const groups: { values: number[]; scope: string; phase: 'forward' | 'backward' }[] = zero ? [] : buckets.map((values) => ({ values, scope: 'data_parallel.gradients', phase: 'backward' }));
  if (lossName !== false) {
    const v = graph.outputs[lossName]!;
    if (!isFloat(graph.values[v]!.type.dtype)) throw new DeepwellError('INVALID_DTYPE', `dataParallel: Expected a float loss output '${lossName}' but received ${graph.values[v]!.type.dtype}`);
    groups.unshift({ values: [v], scope: 'data_parallel.loss', phase: 'forward' });
  }

  const b = GraphBuilder.extend(graph);
  const replaced = new Map<number, number>();
  for (const group of groups) {
    const outs = b.phase(group.phase, () => b.scoped(group.scope, () => b.op('all_reduce', group.values.map((v) => b.sym(v)), { op: group.phase === 'forward' ? 'avg' : op, worldSize, comm })));
    const node = graph.nodes.pop()!;
    // Right after the last of its inputs is made; every reader after that point reads the result.
    const at = Math.max(...group.values.map(madeAt)) + 1;
    graph.nodes.splice(at, 0, node);
    graph.nodes.forEach((n, k) => position.set(n.id, k));
    group.values.forEach((v, k) => replaced.set(v, outs[k]!.id));
    // The loss's readers (if any) keep the local value: only the output is the average.
    if (group.phase === 'backward') rewire(graph, node, group.values, outs.map((s) => s.id), position);
  }
  if (lossName !== false) graph.outputs[lossName] = replaced.get(graph.outputs[lossName]!)!;
  if (zero) return zeroOptimizer(graph, { worldSize, comm, rank: zero.rank, ...(zero.align !== undefined ? { align: zero.align } : {}) });
  for (const name of names) graph.gradients[name] = replaced.get(graph.gradients[name]!)!;
  // Other outputs that are gradients (a step that outputs one) give the average, as the optimizer sees it.
  for (const [name, v] of Object.entries(graph.outputs)) if (name !== lossName && seen.has(v)) graph.outputs[name] = replaced.get(v)!;
  return graph.verify();
}

/** Readers of `from[k]` after `node` read `to[k]`; a reader before it would read the local value: refused. */
function rewire(graph: Graph, node: NodeDecl, from: number[], to: number[], position: Map<number, number>): void {
  const map = new Map(from.map((v, k) => [v, to[k]!]));
  const at = position.get(node.id)!;
  for (const n of graph.nodes) {
    if (n === node || !n.inputs.some((i) => map.has(i))) continue;
    if (position.get(n.id)! < at) {
      const v = n.inputs.find((i) => map.has(i))!;
      throw new DeepwellError('INTERNAL', `dataParallel: ${graph.describeNode(n)} reads %${v} before its all_reduce (the last gradient of its bucket is made later); a gradient read inside the backward pass cannot be averaged after it`);
    }
    n.inputs = n.inputs.map((i) => map.get(i) ?? i);
  }
}
