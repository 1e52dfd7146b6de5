/**
 * Residual gradient into the norm's backward, after autodiff: in a pre-norm transformer the
 * gradient of the residual stream is the residual branch's plus the norm's dx, an add of two
 * same-shape tensors. Where dx is read by that add only, the add becomes layernorm_backward's
 * optional addend, so a GPU writes the sum from the norm's kernel (one read of the other summand)
 * instead of writing dx, reading it back and writing the sum. The reference rounds dx to its
 * format before the add, as the unfused graph stored it: the same bits. An add whose sum a tensorwise
 * FP8 quantizer reads stays apart: fuse-amax gives that add the quantizer's amax, which the norm's
 * backward kernel does not compute.
 */
import { checkGraph, type Graph, type NodeDecl } from '../graph.js';
import { getOp } from '../op.js';
import { sameShape } from '../types.js';
import { producers, useCounts, viewRoot } from './fuse-epilogues.js';

/** Whether value `v` depends on an output of node `n` (walking the nodes in order). */
function dependsOn(graph: Graph, n: NodeDecl, v: number): boolean {
  const reached = new Set<number>(n.outputs);
  for (const m of graph.nodes) if (m !== n && m.inputs.some((i) => reached.has(i))) for (const o of m.outputs) reached.add(o);
  return reached.has(v);
}

/** The values (followed back through reshapes) whose amax a consumer asks for (OpDef.takesAmax). */
function amaxWanted(graph: Graph, producer: Map<number, NodeDecl>): Set<number> {
  const wanted = new Set<number>();
  for (const n of graph.nodes) {
    if (!getOp(n.op).takesAmax?.(n.attrs)) continue;
    wanted.add(viewRoot(producer, n.inputs[0]!));
  }
  return wanted;
}

export function fuseNormResidual(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseNormResidual');
  const uses = useCounts(graph);
  const producer = producers(graph);
  const wanted = amaxWanted(graph, producer);
  let fused = 0;
  for (const add of graph.nodes) {
    // An add that also returns an amax (a quantizer reads its sum) keeps its own kernel.
    if (add.op !== 'add' || add.outputs.length !== 1 || add.inputs.length !== 2 || add.attrs.amax || wanted.has(add.outputs[0]!)) continue;
    const [ta, tb] = add.inputs.map((i) => graph.values[i]!.type);
    const out = graph.values[add.outputs[0]!]!.type;
    if (!sameShape(ta!.shape, tb!.shape) || !sameShape(ta!.shape, out.shape) || ta!.dtype !== tb!.dtype || ta!.dtype !== out.dtype) continue;
    for (const k of [1, 0]) {
      const dx = add.inputs[k]!;
      const other = add.inputs[1 - k]!;
      const norm = producer.get(dx);
      if (!norm || norm.op !== 'layernorm_backward' || norm.outputs[0] !== dx || norm.inputs.length !== 5 || uses.get(dx) !== 1 || other === dx) continue;
      if (dependsOn(graph, norm, other)) continue;
      norm.inputs = [...norm.inputs, other];
      norm.outputs = [add.outputs[0]!, ...norm.outputs.slice(1)];
      add.outputs = [];
      fused++;
      break;
    }
  }
  return fused;
}
