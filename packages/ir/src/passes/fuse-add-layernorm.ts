/**
 * Residual + layernorm fusion, after autodiff: an add of two same-shape tensors whose sum feeds a
 * layernorm (a pre-norm transformer's residual stream into the next block's norm) becomes one
 * add_layernorm node returning the sum as well, so a GPU reads both summands once and writes the
 * sum and the normalised rows in one kernel. The reference is the two ops it replaces.
 */
import { checkGraph, type Graph } from '../graph.js';
import { sameShape } from '../types.js';
import { producers } from './fuse-epilogues.js';

export function fuseAddLayernorm(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseAddLayernorm');
  const producer = producers(graph);
  let fused = 0;
  for (const n of graph.nodes) {
    if (n.op !== 'layernorm') continue;
    const add = producer.get(n.inputs[0]!);
    if (!add || add.op !== 'add' || add.outputs.length !== 1) continue;
    const [x, r] = add.inputs.map((i) => graph.values[i]!.type);
    if (!sameShape(x!.shape, r!.shape)) continue;
    n.op = 'add_layernorm';
    n.inputs = [add.inputs[0]!, add.inputs[1]!, n.inputs[1]!, n.inputs[2]!];
    n.outputs = [add.outputs[0]!, ...n.outputs];
    add.outputs = [];
    fused++;
  }
  return fused;
}
