/**
 * Fused amax, after the other fusions: a node whose op reads the amax of its input 0
 * (OpDef.takesAmax: a tensorwise FP8 quantizer) and does not have it yet gets it from the node that
 * writes that input (followed back through reshapes, which alias), where that op can return the
 * amax of that output (OpDef.amaxOf: gelu, gelu_backward, add, cast, add_layernorm; ops/amax.ts).
 * The producer's `amax` attribute is set and its outputs gain the f32[1]; the consumer takes it as
 * its optional last input. One producer serves every consumer of the same value. A broadcasting
 * add is left alone (its kernels compute no amax), as is a producer whose output is not the one it
 * reduces. Returns how many consumers were given an amax.
 */
import { checkGraph, type Graph, type NodeDecl } from '../graph.js';
import { getOp } from '../op.js';
import { sameShape } from '../types.js';
import { producers, viewRoot } from './fuse-epilogues.js';

/** Whether the amax of output `index` of node `p` can come from `p` itself. */
function canReduce(graph: Graph, p: NodeDecl, index: number): boolean {
  const def = getOp(p.op);
  if (def.amaxOf !== index) return false;
  if (p.op === 'add') {
    const out = graph.values[p.outputs[0]!]!.type.shape;
    return p.inputs.every((i) => sameShape(graph.values[i]!.type.shape, out));
  }
  if (p.op === 'cast') return p.inputs.every((i) => graph.values[i]!.type.dtype !== 'i32') && graph.values[p.outputs[0]!]!.type.dtype !== 'i32';
  return true;
}

export function fuseAmax(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseAmax');
  const producer = producers(graph);
  let fused = 0;
  for (const n of graph.nodes) {
    const def = getOp(n.op);
    if (!def.takesAmax?.(n.attrs) || n.inputs.length !== def.inputs.length - 1) continue;
    const v = viewRoot(producer, n.inputs[0]!);
    const p = producer.get(v);
    if (!p || !canReduce(graph, p, p.outputs.indexOf(v))) continue;
    // A producer already returning its amax (for another consumer, or built so) has it last.
    const amax = p.attrs.amax === true ? p.outputs.at(-1)! : graph.values.length;
    if (p.attrs.amax !== true) {
      graph.values.push({ id: amax, type: Object.freeze({ shape: Object.freeze([1]), dtype: 'f32' }), kind: 'node', producer: p.id });
      p.attrs = { ...p.attrs, amax: true };
      p.outputs = [...p.outputs, amax];
    }
    n.inputs = [...n.inputs, amax];
    fused++;
  }
  return fused;
}
