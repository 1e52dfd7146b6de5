/**
 * The memory planner: every value a step computes gets an offset in one arena, from liveness.
 *
 * A value lives from the node that makes it to the last node that reads it (graph inputs from the
 * start; outputs and updates to the end). Values are placed largest first at the lowest offset that
 * overlaps no already-placed value whose lifetime overlaps (greedy by size, as TFLite's and XLA's
 * simple heap planners do). Parameters and state are persistent and live outside the arena; an
 * update produced by an in-place op (the optimizer) is written straight into the persistent value.
 *
 * A reshape of an arena value is an alias, not a copy: its output shares the storage (the offset) of
 * the value it reshapes, so the executors launch nothing for it. The values of one alias group (a
 * value and every reshape, or reshape of a reshape, of it) are placed once, live from the group's
 * first producer to the last use of any of them. Reshapes of persistent values stay copies (see
 * storageGroups).
 *
 * An op's `inplace` pairs let its output take the storage of an arena input that dies at that node
 * (cross_entropy_backward writes dlogits over the logits): the output joins the input's group, so
 * the two are placed once, and the node writes where it reads. Only where nothing reads the input's
 * group after the node (no later reader, not a graph output, no other input slot of the node), so
 * the op's kernel, which must be correct in place, clobbers nothing still to be read.
 *
 * Kernel workspaces are planned the same way: the scratch a node's selected kernel declares
 * (cuBLASLt's workspace, split-reduction partials, ...) is a region live for that node alone, so
 * the arena holds every byte a step uses on the device besides the persistent values, and dryrun's
 * total is what the allocator hands out.
 */
import { checkFunction, checkKeys, invalid } from '@deepwell/core';
import { byteSizeOf, checkGraph, type Graph } from './graph.js';
import { getOp, inplacePairs } from './op.js';
import { numel, type ValueType } from './types.js';

export const ARENA_ALIGN = 256;

export interface Placement {
  offset: number;
  bytes: number;
  first: number;
  last: number;
}

export interface MemoryPlan {
  /** Bytes of the arena one step needs. */
  arenaBytes: number;
  /** Arena offset of each value placed there (inputs and node outputs), by value id. */
  placements: Map<number, Placement>;
  /** Values that are persistent storage (parameters, state) or alias it (in-place updates): value id -> persistent name. */
  persistent: Map<number, string>;
  /**
   * Reshape outputs that share another value's arena storage: value id -> the id of the storage
   * group's root (the value the first reshape of the chain read, or, where the group was written in
   * place, the first value of the group). Their placement is the root's; their reshape nodes launch
   * no kernel in a compiled step.
   */
  aliases: Map<number, number>;
  /**
   * Outputs written in place over an arena input (an op's `inplace` pair whose input dies at the
   * node): output id -> the id of the input it overwrites. Their placement is that input's.
   */
  inplace: Map<number, number>;
  /** Arena region of each node's kernel workspace, by node index (nodes that declared one). */
  workspaces: Map<number, Placement>;
  /** Bytes live at the busiest point, by what they are (workspace: kernel scratch). */
  peak: { step: number; bytes: number; gradients: number; activations: number; inputs: number; workspace: number; other: number };
}

const align = (n: number) => Math.ceil(n / ARENA_ALIGN) * ARENA_ALIGN;

/** Bytes a value takes in CPU memory: f16 and bf16 are stored widened to 4 bytes. */
export function cpuStorageBytes(t: ValueType): number {
  return t.dtype === 'bf16' || t.dtype === 'f16' ? 4 * numel(t.shape) : byteSizeOf(t);
}

/** How a device stores a value: the CPU widens f16/bf16 to 4 bytes; GPUs store them as they are. */
export function storageBytesFor(device: string): (t: ValueType) => number {
  return device === 'cpu' ? cpuStorageBytes : byteSizeOf;
}

export interface PlanOptions {
  /** Let outputs of ops' `inplace` pairs take the storage of arena inputs that die there (default true). */
  inplace?: boolean;
}

/**
 * `bytesOf`: what a value takes in the device's memory (the CPU stores f16/bf16 widened).
 * `workspace`: the scratch bytes node k's kernel needs while it runs (default none).
 */
export function planMemory(graph: Graph, bytesOf: (t: ValueType) => number = byteSizeOf, workspace: (node: number) => number = () => 0, options: PlanOptions = {}): MemoryPlan {
  checkGraph(graph, 'the graph of planMemory');
  checkFunction(bytesOf, 'the bytesOf of planMemory');
  checkFunction(workspace, 'the workspace of planMemory');
  checkKeys(options, ['inplace'], 'planMemory');
  if (options.inplace !== undefined && typeof options.inplace !== 'boolean') invalid('a boolean', 'planMemory inplace', options.inplace);
  const persistent = new Map<number, string>();
  for (const [name, id] of [...Object.entries(graph.params), ...Object.entries(graph.state)]) persistent.set(id, name);
  // In-place updates: the output shares the persistent input's storage.
  const updateOf = new Map<number, string>(Object.entries(graph.updates).map(([k, v]) => [v, k]));
  for (const n of graph.nodes) {
    for (const [o, i] of inplacePairs(getOp(n.op), n.inputs.length)) {
      const out = n.outputs[o]!;
      const name = persistent.get(n.inputs[i]!);
      if (name !== undefined && updateOf.get(out) === name) persistent.set(out, name);
    }
  }
  const end = graph.nodes.length;
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  for (const id of Object.values(graph.inputs)) first.set(id, 0);
  graph.nodes.forEach((n, k) => {
    for (const i of n.inputs) last.set(i, k);
    for (const o of n.outputs) if (!first.has(o)) first.set(o, k);
  });
  for (const id of [...Object.values(graph.outputs), ...Object.values(graph.updates)]) last.set(id, end);
  const { parent, aliases, inplace, groupLast } = storageGroups(graph, (id) => first.has(id) && !persistent.has(id), bytesOf, first, last, options.inplace ?? true);
  // A storage group (a value, its reshapes, what is written in place over it) is one item: the root,
  // from its producer to the last use of any member.
  const items = [...first.keys()]
    .filter((id) => !persistent.has(id) && !parent.has(id))
    .map((id) => ({ id, bytes: align(Math.max(1, bytesOf(graph.values[id]!.type))), first: first.get(id)!, last: groupLast.get(id)! }))
    // A workspace is item -(k + 1), live at node k only.
    .concat(graph.nodes.flatMap((_, k) => {
      const w = workspace(k);
      return w > 0 ? [{ id: -(k + 1), bytes: align(w), first: k, last: k }] : [];
    }))
    .sort((a, b) => b.bytes - a.bytes || a.first - b.first || a.id - b.id);

  const placed: (Placement & { id: number })[] = [];
  let arenaBytes = 0;
  for (const it of items) {
    const clash = placed.filter((p) => p.first <= it.last && it.first <= p.last).sort((a, b) => a.offset - b.offset);
    let offset = 0;
    for (const p of clash) {
      if (offset + it.bytes <= p.offset) break;
      offset = Math.max(offset, p.offset + p.bytes);
    }
    placed.push({ ...it, offset });
    arenaBytes = Math.max(arenaBytes, offset + it.bytes);
  }
  const placement = (p: Placement) => ({ offset: p.offset, bytes: p.bytes, first: p.first, last: p.last });
  const placements = new Map(placed.filter((p) => p.id >= 0).map((p) => [p.id, placement(p)]));
  const rootOf = (id: number): number => {
    while (parent.has(id)) id = parent.get(id)!;
    return id;
  };
  for (const id of parent.keys()) placements.set(id, placements.get(rootOf(id))!);
  const workspaces = new Map(placed.filter((p) => p.id < 0).map((p) => [-p.id - 1, placement(p)]));

  // The busiest step, and what is live then (a group holding a gradient counts as gradient bytes).
  const gradIds = new Set(Object.values(graph.gradients).map(rootOf));
  const inputIds = new Set(Object.values(graph.inputs));
  const firstBackward = graph.nodes.findIndex((n) => n.phase === 'backward');
  let peak = { step: 0, bytes: 0, gradients: 0, activations: 0, inputs: 0, workspace: 0, other: 0 };
  for (let k = 0; k <= end; k++) {
    const live = placed.filter((p) => p.first <= k && k <= p.last);
    const bytes = live.reduce((a, p) => a + p.bytes, 0);
    if (bytes <= peak.bytes) continue;
    const sum = (f: (p: (typeof live)[number]) => boolean) => live.filter(f).reduce((a, p) => a + p.bytes, 0);
    const ws = sum((p) => p.id < 0);
    const gradients = sum((p) => gradIds.has(p.id));
    const inputs = sum((p) => inputIds.has(p.id));
    const activations = sum((p) => p.id >= 0 && !gradIds.has(p.id) && !inputIds.has(p.id) && (firstBackward < 0 || graph.values[p.id]!.producer! < firstBackward));
    peak = { step: k, bytes, gradients, inputs, activations, workspace: ws, other: bytes - gradients - inputs - activations - ws };
  }
  return { arenaBytes, placements, persistent, aliases, inplace, workspaces, peak };
}

/**
 * Storage groups: values that share one arena placement. `parent` links each non-root member to the
 * value whose storage it takes; `groupLast` is each root's last use over its whole group.
 *
 * - A reshape of an arena value (same bytes) aliases it: `aliases`, reshape output id -> the group's
 *   root (chains resolve through every link).
 * - Reshapes of persistent values (parameters, state, in-place updates) stay copies: the optimizer
 *   writes a parameter in place at its node and updates not made in place are copied over it after
 *   the last node, so a read-only alias would be safe only if every read of it came first, and a
 *   graph output aliasing a parameter would return the updated value. The copies are small (a
 *   parameter's size) and rare; the reshapes that cost time are of activations and gradients.
 * - Graph inputs may be roots: the host writes them before the first node, and the group lives on
 *   to its last use like any other.
 * - An in-place pair [o, i] of node k (inplacePairs) puts output o in input i's group when the
 *   group's last use is node k (nothing reads it later and it is no graph output), no other input
 *   slot of node k reads the group, and input and output have the same dtype and bytes: `inplace`,
 *   output id -> input id. Nodes are taken in order, so a group grown by an earlier in-place write
 *   is judged whole. Where the condition fails the output gets storage of its own, so a reshape
 *   group read in an in-place slot before its end keeps its alias: nothing writes over it.
 */
function storageGroups(
  graph: Graph,
  inArena: (id: number) => boolean,
  bytesOf: (t: ValueType) => number,
  first: ReadonlyMap<number, number>,
  last: ReadonlyMap<number, number>,
  writeInPlace: boolean,
): { parent: Map<number, number>; aliases: Map<number, number>; inplace: Map<number, number>; groupLast: Map<number, number> } {
  const parent = new Map<number, number>();
  const rootOf = (id: number): number => {
    while (parent.has(id)) id = parent.get(id)!;
    return id;
  };
  const reshapes: number[] = [];
  for (const n of graph.nodes) {
    if (n.op !== 'reshape' || n.outputs.length !== 1) continue;
    const [src, out] = [n.inputs[0]!, n.outputs[0]!];
    // The same dtype and element count, so the same bytes; checked rather than assumed.
    if (!inArena(src) || bytesOf(graph.values[src]!.type) !== bytesOf(graph.values[out]!.type)) continue;
    parent.set(out, src);
    reshapes.push(out);
  }
  const lastOf = (id: number) => last.get(id) ?? first.get(id)!;
  const groupLast = new Map<number, number>();
  for (const id of first.keys()) {
    if (!inArena(id)) continue;
    const r = rootOf(id);
    groupLast.set(r, Math.max(groupLast.get(r) ?? -1, lastOf(id)));
  }
  const inplace = new Map<number, number>();
  graph.nodes.forEach((n, k) => {
    const pairs = writeInPlace ? inplacePairs(getOp(n.op), n.inputs.length) : [];
    if (pairs.length === 0) return;
    const taken = new Set<number>();
    for (const [o, i] of pairs) {
      const src = n.inputs[i];
      const out = n.outputs[o];
      if (src === undefined || out === undefined || !inArena(src) || !inArena(out) || parent.has(out)) continue;
      const [ts, to] = [graph.values[src]!.type, graph.values[out]!.type];
      if (ts.dtype !== to.dtype || bytesOf(ts) !== bytesOf(to)) continue;
      const r = rootOf(src);
      if (taken.has(r) || groupLast.get(r) !== k) continue;
      if (n.inputs.some((x, j) => j !== i && inArena(x) && rootOf(x) === r)) continue;
      // out is its own group's root (its reshapes come later); the merged group lives to both ends.
      groupLast.set(r, Math.max(k, groupLast.get(out) ?? k));
      groupLast.delete(out);
      parent.set(out, src);
      inplace.set(out, src);
      taken.add(r);
    }
  });
  return { parent, aliases: new Map(reshapes.map((id) => [id, rootOf(id)])), inplace, groupLast };
}
