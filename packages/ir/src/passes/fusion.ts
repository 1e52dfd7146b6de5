/**
 * Elementwise fusion marks: chains of elementwise ops where each link's only consumer is the next
 * link get one fusionGroup, telling a backend they may run as a single kernel (one read, one write).
 * Marks only: the CPU reference still runs node by node; the CUDA backend acts on them.
 */
import { checkGraph, type Graph } from '../graph.js';
import { getOp } from '../op.js';

export function markElementwiseFusion(graph: Graph): Graph {
  checkGraph(graph, 'the graph of markElementwiseFusion');
  const uses = new Map<number, number>();
  for (const n of graph.nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  for (const v of [...Object.values(graph.outputs), ...Object.values(graph.updates)]) uses.set(v, (uses.get(v) ?? 0) + 1);
  const groupOf = new Map<number, number>(); // value -> group of the node that made it
  let next = 0;
  for (const n of graph.nodes) {
    delete n.fusionGroup;
    if (!getOp(n.op).elementwise || n.outputs.length !== 1) continue;
    const from = n.inputs.find((i) => groupOf.has(i) && uses.get(i) === 1);
    const g = from !== undefined ? groupOf.get(from)! : next++;
    n.fusionGroup = g;
    groupOf.set(n.outputs[0]!, g);
  }
  // A group of one node fuses nothing: drop its mark.
  const size = new Map<number, number>();
  for (const n of graph.nodes) if (n.fusionGroup !== undefined) size.set(n.fusionGroup, (size.get(n.fusionGroup) ?? 0) + 1);
  for (const n of graph.nodes) if (n.fusionGroup !== undefined && size.get(n.fusionGroup) === 1) delete n.fusionGroup;
  return graph;
}
