/**
 * Common-subexpression elimination: two nodes applying the same op with the same attributes to the
 * same inputs compute the same values, so the later one's uses are pointed at the earlier one's
 * outputs (and DCE then drops it). Ops that update storage in place are never merged.
 */
import { checkGraph, type Graph } from '../graph.js';
import { getOp } from '../op.js';
import { eliminateDeadCode } from './dce.js';

export function eliminateCommonSubexpressions(graph: Graph): Graph {
  checkGraph(graph, 'the graph of eliminateCommonSubexpressions');
  const seen = new Map<string, number[]>();
  const alias = new Map<number, number>();
  const resolve = (v: number) => alias.get(v) ?? v;
  for (const n of graph.nodes) {
    n.inputs = n.inputs.map(resolve);
    if (getOp(n.op).inplace) continue;
    const key = `${n.op}(${n.inputs.join(',')})${JSON.stringify(n.attrs)}`;
    const prev = seen.get(key);
    if (prev) n.outputs.forEach((o, k) => alias.set(o, prev[k]!));
    else seen.set(key, n.outputs);
  }
  for (const t of [graph.outputs, graph.updates, graph.gradients]) for (const k of Object.keys(t)) t[k] = resolve(t[k]!);
  return eliminateDeadCode(graph);
}
