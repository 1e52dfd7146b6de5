/**
 * Epilogue fusion of the grouped GEMMs (dropless MoE's expert MLPs), after autodiff: the activation
 * of an expert MLP's first layer done as the grouped GEMM writes its result, and the GELU backward
 * as the data-gradient GEMM writes its own, so neither product makes a round trip through memory.
 *   - GELU: a grouped_matmul whose product feeds a gelu -> grouped_matmul_gelu, which also returns
 *     the product (pre) for gelu_backward;
 *   - GELU backward: a grouped_matmul whose only use is the gradient input of a gelu_backward ->
 *     grouped_matmul_dgelu, pre read by the epilogue;
 *   - SwiGLU: the two grouped_matmuls of one input, offsets and layout whose products are a swiglu's
 *     gate and up -> grouped_matmul_swiglu (both products from one pass over the input, returned for
 *     swiglu's gradient).
 * Each fused op's CPU reference is the ops it replaces, so a fused graph computes on the CPU what
 * the unfused one did, bit for bit. The graph's outputs and updates keep their values; the caller
 * (fuse) sorts the nodes afterwards and drops what is left unused.
 */
import { checkGraph, type Graph } from '../graph.js';
import { sameShape } from '../types.js';
import { fuseDgeluInto, fuseGeluInto, producers } from './fuse-epilogues.js';

/** grouped_matmul -> gelu becomes grouped_matmul_gelu, the gelu's output moving to the GEMM. */
export function fuseGroupedGelu(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseGroupedGelu');
  return fuseGeluInto(graph, 'grouped_matmul', 'grouped_matmul_gelu');
}

/**
 * grouped_matmul -> gelu_backward(product, pre) becomes grouped_matmul_dgelu where the gelu_backward
 * reads the product as its gradient input and nothing else reads the product (a gelu_backward that
 * returns an amax is left alone).
 */
export function fuseGroupedDgelu(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseGroupedDgelu');
  return fuseDgeluInto(graph, 'grouped_matmul', 'grouped_matmul_dgelu');
}

/** Two grouped_matmuls of one x, offsets and layout feeding a swiglu's gate and up become grouped_matmul_swiglu. */
export function fuseGroupedSwiglu(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseGroupedSwiglu');
  const producer = producers(graph);
  let fused = 0;
  for (const n of graph.nodes) {
    if (n.op !== 'swiglu' || n.outputs.length !== 1) continue;
    const [a, b] = [producer.get(n.inputs[0]!), producer.get(n.inputs[1]!)];
    if (!a || !b || a === b || a.op !== 'grouped_matmul' || b.op !== 'grouped_matmul') continue;
    const transposeW = a.attrs.transposeW ?? false;
    if (a.inputs[0] !== b.inputs[0] || a.inputs[2] !== b.inputs[2] || transposeW !== (b.attrs.transposeW ?? false)) continue;
    if (!sameShape(graph.values[a.inputs[1]!]!.type.shape, graph.values[b.inputs[1]!]!.type.shape)) continue;
    // The swiglu node becomes the fused node (after both GEMMs' operands); the two grouped_matmuls
    // give it their products and are left without outputs.
    n.op = 'grouped_matmul_swiglu';
    n.inputs = [a.inputs[0]!, a.inputs[1]!, b.inputs[1]!, a.inputs[2]!];
    n.outputs = [n.outputs[0]!, a.outputs[0]!, b.outputs[0]!];
    n.attrs = { transposeW };
    a.outputs = [];
    b.outputs = [];
    fused++;
  }
  return fused;
}

/** All three (the GELU backward after the GELU: it reads the pre the first returns); how many nodes each fused. */
export function fuseGroupedEpilogues(graph: Graph): { gelu: number; dgelu: number; swiglu: number } {
  checkGraph(graph, 'the graph of fuseGroupedEpilogues');
  const gelu = fuseGroupedGelu(graph);
  const dgelu = fuseGroupedDgelu(graph);
  const swiglu = fuseGroupedSwiglu(graph);
  return { gelu, dgelu, swiglu };
}
