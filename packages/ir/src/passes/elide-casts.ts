/**
 * Widening casts that need not run: a cast from bf16 or f16 to f32 (exact: every narrow value is an
 * f32 value) whose every reader takes that input at its exact value in any float storage
 * (OpDef.anyFloatInputs: adamw's grad, sum_squares) is skipped, its readers reading the narrow
 * value instead, so the result is bitwise the same and the f32 copy is neither written nor read.
 * Under autocast these are the parameter gradients: autodiff's gradient of the forward's f32 ->
 * bf16 weight cast is a bf16 -> f32 cast of the bf16 gradient, read only by the clipping's
 * sum_squares and by the optimizer (one launch and 6 bytes per element each, before this pass).
 * A cast whose output is a graph output or update stays; `graph.gradients` entries naming a skipped
 * cast's output name its input from then on (the same numbers in the narrow dtype). Runs before
 * the multi-tensor AdamW fusion, so that sees the gradients' new dtype. Returns how many casts it
 * skipped (DCE then removes them).
 */
import { checkGraph, type Graph, type NodeDecl } from '../graph.js';
import { getOp } from '../op.js';

export function elideWideningCasts(graph: Graph): number {
  checkGraph(graph, 'the graph of elideWideningCasts');
  const readers = new Map<number, { node: NodeDecl; slot: number }[]>();
  for (const n of graph.nodes) n.inputs.forEach((i, slot) => readers.set(i, [...(readers.get(i) ?? []), { node: n, slot }]));
  const pinned = new Set([...Object.values(graph.outputs), ...Object.values(graph.updates)]);
  let elided = 0;
  for (const n of graph.nodes) {
    if (n.op !== 'cast' || n.attrs.amax === true || n.outputs.length !== 1) continue;
    const x = n.inputs[0]!;
    const y = n.outputs[0]!;
    const from = graph.values[x]!.type.dtype;
    if (graph.values[y]!.type.dtype !== 'f32' || (from !== 'bf16' && from !== 'f16') || pinned.has(y)) continue;
    const rs = readers.get(y) ?? [];
    if (rs.length === 0 || !rs.every(({ node, slot }) => getOp(node.op).anyFloatInputs?.(node.inputs.length).includes(slot))) continue;
    // New arrays, never writes into the old ones: a graph copied through toJSON shares them.
    for (const { node, slot } of rs) node.inputs = node.inputs.map((i, k) => (k === slot ? x : i));
    readers.set(x, [...(readers.get(x) ?? []), ...rs]);
    readers.delete(y);
    for (const [name, id] of Object.entries(graph.gradients)) if (id === y) graph.gradients[name] = x;
    elided++;
  }
  return elided;
}
