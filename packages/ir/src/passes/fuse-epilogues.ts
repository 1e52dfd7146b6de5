/**
 * GEMM epilogue fusion, after autodiff: the elementwise work next to a matmul that cuBLASLt can do
 * as the GEMM writes its result, so the product never makes a round trip through memory.
 *   - bias: a matmul whose only use is a bias_add -> matmul_bias (the BIAS epilogue);
 *   - GELU: a matmul_bias whose product feeds a gelu -> matmul_bias_gelu, which also returns the
 *     pre-activation for gelu_backward (GELU_AUX_BIAS);
 *   - GELU backward: a matmul whose only use is the gradient input of a gelu_backward ->
 *     matmul_dgelu, the pre-activation read by the epilogue (DGELU);
 *   - bias gradient: a weight-gradient matmul gᵀ·x (transA) and the sum_to of the same g that makes
 *     the bias gradient -> matmul_bgrad (BGRADB). After the GELU backward fusion, so an MLP's fc
 *     layer gets its weight and bias gradients from one GEMM reading matmul_dgelu's output.
 * Each fused op's CPU reference is the ops it replaces, so a fused graph computes on the CPU what
 * the unfused one did, bit for bit. The graph's outputs and updates keep their values. The callers
 * (runPasses) sort the nodes afterwards (a moved output may have readers before its new producer)
 * and drop what is left unused.
 */
import { checkGraph, type Graph, type NodeDecl } from '../graph.js';
import { sameShape } from '../types.js';

/** How many times each value is read, counting the graph's outputs, updates and gradients. */
export function useCounts(graph: Graph): Map<number, number> {
  const uses = new Map<number, number>();
  for (const n of graph.nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  for (const v of [...Object.values(graph.outputs), ...Object.values(graph.updates), ...Object.values(graph.gradients)]) uses.set(v, (uses.get(v) ?? 0) + 1);
  return uses;
}

export function producers(graph: Graph): Map<number, NodeDecl> {
  const producer = new Map<number, NodeDecl>();
  for (const n of graph.nodes) for (const o of n.outputs) producer.set(o, n);
  return producer;
}

/** The value `v` is a view of: followed back through reshapes (which alias their input). */
export function viewRoot(producer: Map<number, NodeDecl>, v: number): number {
  for (let p = producer.get(v); p && p.op === 'reshape'; p = producer.get(v)) v = p.inputs[0]!;
  return v;
}

/** matmul -> bias_add becomes matmul_bias where the bias_add is the product's only use. */
export function fuseMatmulBias(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseMatmulBias');
  const uses = useCounts(graph);
  const producer = producers(graph);
  let fused = 0;
  for (const n of graph.nodes) {
    if (n.op !== 'bias_add') continue;
    const mm = producer.get(n.inputs[0]!);
    if (!mm || mm.op !== 'matmul' || uses.get(mm.outputs[0]!) !== 1) continue;
    // The bias_add node becomes the fused node (it sits after both operands and the bias); the
    // matmul is left without uses.
    n.op = 'matmul_bias';
    n.inputs = [mm.inputs[0]!, mm.inputs[1]!, n.inputs[1]!];
    n.attrs = mm.attrs;
    fused++;
  }
  return fused;
}

/**
 * A `from` GEMM whose product feeds a gelu becomes `to`, the gelu's output moving to the GEMM
 * (outputs [gelu(product), product]: the product stays for gelu_backward). A gelu returning its amax
 * keeps its own kernel. Shared by the dense (matmul_bias_gelu) and grouped (grouped_matmul_gelu) fusions.
 */
export function fuseGeluInto(graph: Graph, from: string, to: string): number {
  const producer = producers(graph);
  let fused = 0;
  for (const n of graph.nodes) {
    if (n.op !== 'gelu' || n.outputs.length !== 1) continue;
    const mm = producer.get(n.inputs[0]!);
    if (!mm || mm.op !== from) continue;
    mm.op = to;
    mm.outputs = [n.outputs[0]!, mm.outputs[0]!];
    n.outputs = [];
    fused++;
  }
  return fused;
}

/**
 * A `from` GEMM whose only use is the gradient input of a gelu_backward(product, pre) becomes `to`
 * with inputs [...the GEMM's inputs, pre] and its attributes: the gelu_backward node becomes the
 * fused node (it sits after the operands and pre), the GEMM is left without uses. Not where the
 * product is also pre, nor a gelu_backward that returns an amax (the fused op returns none).
 */
export function fuseDgeluInto(graph: Graph, from: string, to: string): number {
  const uses = useCounts(graph);
  const producer = producers(graph);
  let fused = 0;
  for (const n of graph.nodes) {
    if (n.op !== 'gelu_backward' || n.outputs.length !== 1 || n.attrs.amax === true) continue;
    const mm = producer.get(n.inputs[0]!);
    if (!mm || mm.op !== from || uses.get(mm.outputs[0]!) !== 1 || n.inputs[1] === mm.outputs[0]) continue;
    n.op = to;
    n.inputs = [...mm.inputs, n.inputs[1]!];
    n.attrs = mm.attrs;
    fused++;
  }
  return fused;
}

/** matmul_bias -> gelu becomes matmul_bias_gelu, the gelu's output moving to the GEMM. */
export function fuseMatmulGelu(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseMatmulGelu');
  return fuseGeluInto(graph, 'matmul_bias', 'matmul_bias_gelu');
}

/**
 * matmul -> gelu_backward(product, pre) becomes matmul_dgelu where the gelu_backward reads the
 * product as its gradient input and nothing else reads the product. A gelu_backward that returns an
 * amax (made so, or by an earlier fuse-amax) is left alone: matmul_dgelu returns none.
 */
export function fuseMatmulDgelu(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseMatmulDgelu');
  return fuseDgeluInto(graph, 'matmul', 'matmul_dgelu');
}

/** A transA matmul of g (or of g reshaped to 2-D) and the sum_to of g to [M] become matmul_bgrad. */
export function fuseBiasGradient(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseBiasGradient');
  const producer = producers(graph);
  const sums = new Map<number, NodeDecl[]>();
  for (const n of graph.nodes) if (n.op === 'sum_to' && n.outputs.length === 1) sums.set(n.inputs[0]!, [...(sums.get(n.inputs[0]!) ?? []), n]);
  let fused = 0;
  for (const n of graph.nodes) {
    if (n.op !== 'matmul' || n.attrs.transA !== true) continue;
    const a = graph.values[n.inputs[0]!]!.type;
    if (a.shape.length !== 2 || graph.values[n.inputs[1]!]!.type.shape.length !== 2) continue;
    const M = a.shape[1]!;
    // op(a) = aᵀ is [M, K]: its row sums are the column sums of a, which is g or g reshaped.
    const from = [n.inputs[0]!];
    const r = producer.get(n.inputs[0]!);
    if (r && r.op === 'reshape' && graph.values[r.inputs[0]!]!.type.shape.at(-1) === M) from.push(r.inputs[0]!);
    const s = from.flatMap((v) => sums.get(v) ?? []).find((m) => m.outputs.length === 1 && sameShape(m.attrs.shape as number[], [M]));
    if (!s) continue;
    n.op = 'matmul_bgrad';
    n.outputs = [n.outputs[0]!, s.outputs[0]!];
    s.outputs = [];
    fused++;
  }
  return fused;
}

/** All four, in order; returns how many nodes each fused. */
export function fuseGemmEpilogues(graph: Graph): { bias: number; gelu: number; dgelu: number; bgrad: number } {
  checkGraph(graph, 'the graph of fuseGemmEpilogues');
  const bias = fuseMatmulBias(graph);
  const gelu = fuseMatmulGelu(graph);
  const dgelu = fuseMatmulDgelu(graph);
  const bgrad = fuseBiasGradient(graph);
  return { bias, gelu, dgelu, bgrad };
}
