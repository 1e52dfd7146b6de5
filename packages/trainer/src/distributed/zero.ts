/**
 * ZeRO-1's checkpoints (issue 22). The step (ir's dataParallel with `zero`, passes/zero.ts) keeps on
 * each rank only its shard of the AdamW moments, as state `zero.m.<param>` / `zero.v.<param>` of the
 * piece it holds. A checkpoint holds whole tensors under the single-GPU names (`adamw.m.<param>`),
 * written once by rank 0, so it resumes on any number of GPUs, with or without ZeRO:
 *
 *   - zeroCheckpointView(exe, layout, rank, gather) is what saveCheckpoint and loadCheckpoint get in
 *     place of the executable: its parameters and other state as they are, and `adamw.m.*` /
 *     `adamw.v.*` whole. Making it gathers every rank's moments (`gather`, a collective: every rank
 *     makes the view at the same step); setting a whole moment keeps this rank's piece of it.
 *   - ncclShardGather(comm, device) is the gather over NCCL (an all-gather of the f32 shards through
 *     device buffers, waited on with the communicator's watchdog); a world of one gathers nothing.
 * The layout is ir's zeroLayout of the step (zeroLayoutOf), the pass's own.
 */
import { DeepwellError, checkFunction, checkInteger, invalid } from '@deepwell/core';
import { Graph, checkZeroLayout, zeroLayout, zeroPieces, type Executable, type ZeroLayout } from '@deepwell/ir';
import { Stream, cudaBackend, type Communicator } from '@deepwell/kernels-native';
import type { CheckpointTarget } from '../checkpoint.js';

/** Every rank's shard (S f32 elements each) concatenated in rank order (W · S): a collective. */
export type ShardGather = (shard: Float32Array) => Float32Array;

/** The ZeRO layout dataParallel's `zero` gives `step` (a trainingStep graph) over `worldSize` ranks. */
export function zeroLayoutOf(step: Graph, worldSize: number, align?: number): ZeroLayout {
  if (!(step instanceof Graph)) invalid('a training step graph (ir Graph)', 'the step of zeroLayoutOf', step);
  const params = Object.keys(step.params).map((name) => {
    const g = step.gradients[name];
    if (g === undefined) throw new DeepwellError('INVALID_ARGUMENT', `Expected a training step (a gradient for every parameter) for zeroLayoutOf but parameter '${name}' has none`);
    return { name, size: step.values[step.params[name]!]!.type.shape.reduce((a, b) => a * b, 1), dtype: step.values[g]!.type.dtype };
  });
  return zeroLayout(params, worldSize, align);
}


/**
 * `exe` (a ZeRO-1 step of `rank`) seen with whole moments `adamw.m.<param>` / `adamw.v.<param>`
 * instead of its pieces. With a gather (a save), every rank's moments are gathered now (a
 * collective); with null (a load), the view only names the whole moments and keeps this rank's
 * pieces of those set into it, reading none.
 */
export function zeroCheckpointView(exe: Executable, layout: ZeroLayout, rank: number, gather: ShardGather | null): CheckpointTarget {
  const e = exe as Executable | null;
  if (typeof e !== 'object' || e === null || typeof e.get !== 'function' || typeof e.set !== 'function' || typeof e.graph?.params !== 'object' || typeof e.graph?.state !== 'object') {
    invalid('a compiled Executable (from compile())', 'the executable of zeroCheckpointView', exe);
  }
  checkZeroLayout(layout, 'zeroCheckpointView');
  checkInteger(rank, 'rank of zeroCheckpointView', 0, layout.worldSize - 1);
  if (gather !== null) checkFunction(gather, 'the gather of zeroCheckpointView');
  const g = exe.graph;
  // The whole moments by name: gathered for a save, names only (null) for a load.
  const whole = new Map<string, Float32Array | null>();
  for (const group of layout.groups) {
    const pieces = zeroPieces(layout, group, rank);
    for (const kind of ['m', 'v'] as const) {
      if (gather === null) {
        for (const name of group.names) whole.set(`adamw.${kind}.${name}`, null);
        continue;
      }
      const shard = new Float32Array(group.shard);
      for (const p of pieces) shard.set(exe.get(`zero.${kind}.${p.name}`), p.at);
      const all = gather(shard);
      if (all.length !== group.shard * layout.worldSize) throw new DeepwellError('INTERNAL', `zeroCheckpointView: the gather gave ${all.length} elements, expected ${group.shard * layout.worldSize}`);
      group.names.forEach((name, i) => whole.set(`adamw.${kind}.${name}`, all.slice(group.offsets[i]!, group.offsets[i]! + group.sizes[i]!)));
    }
  }
  // The view's tables: the parameters, the state that is not a piece, and a value for each whole moment.
  const values = [...g.values];
  const state: Record<string, number> = {};
  for (const [name, id] of Object.entries(g.state)) if (!/^zero\.[mv]\./.test(name)) state[name] = id;
  for (const name of whole.keys()) {
    const param = name.slice('adamw.m.'.length);
    state[name] = values.length;
    values.push({ id: values.length, kind: 'state', name, type: { shape: [...g.values[g.params[param]!]!.type.shape], dtype: 'f32' } });
  }
  const pieceOf = new Map<string, { from: number; to: number }>();
  for (const group of layout.groups) for (const p of zeroPieces(layout, group, rank)) pieceOf.set(p.name, p);
  return {
    graph: { params: g.params, state, values },
    get: (name) => {
      if (!whole.has(name)) return exe.get(name);
      const data = whole.get(name);
      if (!data) throw new DeepwellError('INVALID_ARGUMENT', `zeroCheckpointView: '${name}' is not read by a view made for loading (gather null)`);
      return data;
    },
    set: (name, data) => {
      const m = /^adamw\.([mv])\.(.+)$/.exec(name);
      if (!m || !whole.has(name)) return exe.set(name, data);
      const piece = pieceOf.get(m[2]!);
      if (piece) exe.set(`zero.${m[1]}.${m[2]}`, data.slice(piece.from, piece.to));
    },
  };
}

/** The gather of ZeRO's checkpoints over NCCL: an all-gather of f32 shards through device buffers on `device`. */
export function ncclShardGather(comm: Communicator, device: number): ShardGather {
  return (shard) => {
    const be = cudaBackend(device);
    const stream = new Stream(device);
    const send = be.alloc(shard.byteLength), recv = be.alloc(shard.byteLength * comm.worldSize);
    try {
      be.write(send, shard);
      comm.allGather(stream.handle, 'f32', { base: send.ptr, offset: 0, bytes: send.bytes }, { base: recv.ptr, offset: 0, bytes: recv.bytes }, shard.length);
      comm.waitStream(stream.handle);
      const out = new Float32Array(shard.length * comm.worldSize);
      be.read(recv, out);
      return out;
    } finally {
      be.free(send);
      be.free(recv);
      stream.dispose();
    }
  };
}
