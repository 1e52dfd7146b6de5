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
 * reshapeAliases).
 *
 * Kernel workspaces are planned the same way: the scratch a node's selected kernel declares
 * (cuBLASLt's workspace, split-reduction partials, ...) is a region live for that node alone, so
 * the arena holds every byte a step uses on the device besides the persistent values, and dryrun's
 * total is what the allocator hands out.
 */
import type { Graph } from './graph.js';
import { byteSizeOf } from './graph.js';
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
   * Reshape outputs that share another value's arena storage: value id -> the id of the group's root
   * (the value the first reshape of the chain read). Their placement is the root's; their reshape
   * nodes launch no kernel in a compiled step.
   */
  aliases: Map<number, number>;
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

/**
 * `bytesOf`: what a value takes in the device's memory (the CPU stores f16/bf16 widened).
 * `workspace`: the scratch bytes node k's kernel needs while it runs (default none).
 */
export function planMemory(graph: Graph, bytesOf: (t: ValueType) => number = byteSizeOf, workspace: (node: number) => number = () => 0): MemoryPlan {
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
  const aliases = reshapeAliases(graph, (id) => first.has(id) && !persistent.has(id), bytesOf);
  // An alias group is one item: the root, live until the last use of any of its aliases.
  for (const [id, root] of aliases) last.set(root, Math.max(last.get(root) ?? first.get(root)!, last.get(id) ?? first.get(id)!));
  const items = [...first.keys()]
    .filter((id) => !persistent.has(id) && !aliases.has(id))
    .map((id) => ({ id, bytes: align(Math.max(1, bytesOf(graph.values[id]!.type))), first: first.get(id)!, last: last.get(id) ?? first.get(id)! }))
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
  for (const [id, root] of aliases) placements.set(id, placements.get(root)!);
  const workspaces = new Map(placed.filter((p) => p.id < 0).map((p) => [-p.id - 1, placement(p)]));

  // The busiest step, and what is live then (a group holding a gradient counts as gradient bytes).
  const gradIds = new Set(Object.values(graph.gradients).map((id) => aliases.get(id) ?? id));
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
  return { arenaBytes, placements, persistent, aliases, workspaces, peak };
}

/**
 * Which reshape outputs alias their input's storage: reshape output id -> root id (chains resolve
 * to the first value, as nodes are in topological order). `inArena(id)`: the value is placed in the
 * arena (a graph input or a node output that is not persistent).
 *
 * - Reshapes of persistent values (parameters, state, in-place updates) stay copies: the optimizer
 *   writes a parameter in place at its node and updates not made in place are copied over it after
 *   the last node, so a read-only alias would be safe only if every read of it came first, and a
 *   graph output aliasing a parameter would return the updated value. The copies are small (a
 *   parameter's size) and rare; the reshapes that cost time are of activations and gradients.
 * - Graph inputs may be roots: the host writes them before the first node, and the group lives on
 *   to its last use like any other.
 * - No group in which any value is read in an in-place slot (inplacePairs) is aliased: such a node
 *   may write its output over that input, which would clobber every alias still to be read. Today
 *   only the optimizer writes in place, over persistent values (never aliased), so in a training
 *   step this never fires; the planner must not depend on that staying true.
 */
function reshapeAliases(graph: Graph, inArena: (id: number) => boolean, bytesOf: (t: ValueType) => number): Map<number, number> {
  const rootOf = new Map<number, number>();
  for (const n of graph.nodes) {
    if (n.op !== 'reshape' || n.outputs.length !== 1) continue;
    const [src, out] = [n.inputs[0]!, n.outputs[0]!];
    // The same dtype and element count, so the same bytes; checked rather than assumed.
    if (!inArena(src) || bytesOf(graph.values[src]!.type) !== bytesOf(graph.values[out]!.type)) continue;
    rootOf.set(out, rootOf.get(src) ?? src);
  }
  const overwritten = new Set<number>();
  for (const n of graph.nodes) {
    for (const [, i] of inplacePairs(getOp(n.op), n.inputs.length)) overwritten.add(rootOf.get(n.inputs[i]!) ?? n.inputs[i]!);
  }
  for (const [id, root] of rootOf) if (overwritten.has(root)) rootOf.delete(id);
  return rootOf;
}
