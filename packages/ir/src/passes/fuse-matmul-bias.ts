/**
 * Fuse a matmul whose only use is a bias_add into one matmul_bias node (one GEMM with cuBLASLt's bias
 * epilogue on a GPU: the product is never written and read back before the bias). Runs at compile
 * time, after autodiff; the graph's outputs and updates keep their values.
 */
import type { Graph, NodeDecl } from '../graph.js';
import { eliminateDeadCode } from './dce.js';

export function fuseMatmulBias(graph: Graph): Graph {
  const uses = new Map<number, number>();
  for (const n of graph.nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  for (const v of [...Object.values(graph.outputs), ...Object.values(graph.updates), ...Object.values(graph.gradients)]) uses.set(v, (uses.get(v) ?? 0) + 1);
  const producer = new Map<number, NodeDecl>();
  for (const n of graph.nodes) for (const o of n.outputs) producer.set(o, n);
  let fused = 0;
  for (const n of graph.nodes) {
    if (n.op !== 'bias_add') continue;
    const mm = producer.get(n.inputs[0]!);
    if (!mm || mm.op !== 'matmul' || uses.get(mm.outputs[0]!) !== 1) continue;
    // The bias_add node becomes the fused node (it sits after both operands and the bias); the
    // matmul is left without uses for DCE.
    n.op = 'matmul_bias';
    n.inputs = [mm.inputs[0]!, mm.inputs[1]!, n.inputs[1]!];
    n.attrs = mm.attrs;
    fused++;
  }
  return fused ? eliminateDeadCode(graph) : graph;
}
