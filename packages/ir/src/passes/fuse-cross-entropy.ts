/**
 * Cross-entropy fusion, after autodiff: a cross_entropy and the cross_entropy_backward of the same
 * logits, targets and ignore index become one cross_entropy_with_grad node returning both the loss
 * and dlogits, so a GPU reads the logits once instead of twice (llm.c's fused classifier; for
 * GPT-2's [16384, 50304] bf16 logits, 1.6 GB less read per step). The reference is the two ops it
 * replaces, so the step's results are unchanged bit for bit.
 *
 * Only where the backward's g (the loss's gradient) does not depend on the loss: in a training step
 * it is the seed autodiff fills with 1 (scaled by constants under gradient accumulation), which
 * depends on nothing; a loss whose gradient is computed from the loss itself (a loss scaled by a
 * function of its own value) keeps the two ops. The fused node takes the backward's place; readers
 * of the loss that came before it are moved after it by the stable sort that follows the fusions.
 * The logits are then read by that node only where they were before, so the planner can still
 * write dlogits over them (its `inplace` pair).
 */
import { checkGraph, type Graph, type NodeDecl } from '../graph.js';
import { producers } from './fuse-epilogues.js';

export function fuseCrossEntropy(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseCrossEntropy');
  const producer = producers(graph);
  /** Whether value `id` is computed (transitively) from value `target`. */
  const dependsOn = (id: number, target: number): boolean => {
    const seen = new Set<number>();
    const stack = [id];
    while (stack.length) {
      const v = stack.pop()!;
      if (v === target) return true;
      if (seen.has(v)) continue;
      seen.add(v);
      const p = producer.get(v);
      if (p) stack.push(...p.inputs);
    }
    return false;
  };
  const forwards = graph.nodes.filter((n) => n.op === 'cross_entropy' && n.outputs.length === 1);
  const used = new Set<NodeDecl>();
  let fused = 0;
  for (const n of graph.nodes) {
    if (n.op !== 'cross_entropy_backward' || n.outputs.length !== 1) continue;
    const [logits, targets, g] = n.inputs as [number, number, number];
    const fwd = forwards.find((f) => !used.has(f) && f.inputs[0] === logits && f.inputs[1] === targets && f.attrs.ignoreIndex === n.attrs.ignoreIndex);
    if (!fwd || dependsOn(g, fwd.outputs[0]!)) continue;
    used.add(fwd);
    n.op = 'cross_entropy_with_grad';
    n.outputs = [fwd.outputs[0]!, n.outputs[0]!];
    fwd.outputs = [];
    fused++;
  }
  return fused;
}
