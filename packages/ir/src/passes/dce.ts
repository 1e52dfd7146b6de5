/**
 * Dead-code elimination: keep only the nodes the graph's outputs and updates need, then renumber
 * values and nodes densely (so the memory plan and the text form see no gaps). Inputs, parameters
 * and state are always kept: they are the graph's interface even when unused.
 */
import { checkGraph, Graph, type NodeDecl } from '../graph.js';

export function eliminateDeadCode(graph: Graph): Graph {
  checkGraph(graph, 'the graph of eliminateDeadCode');
  const live = new Set<number>([...Object.values(graph.outputs), ...Object.values(graph.updates)]);
  const keep: NodeDecl[] = [];
  for (let k = graph.nodes.length - 1; k >= 0; k--) {
    const n = graph.nodes[k]!;
    if (n.outputs.some((o) => live.has(o))) {
      keep.push(n);
      n.inputs.forEach((i) => live.add(i));
    }
  }
  keep.reverse();
  return renumber(graph, keep);
}

/** A copy of `graph` holding only `nodes` (in order) and the values they and the interface use. */
export function renumber(graph: Graph, nodes: NodeDecl[]): Graph {
  const g = new Graph();
  const vmap = new Map<number, number>();
  const addValue = (old: number, producer?: number) => {
    const v = graph.values[old]!;
    const id = g.values.length;
    g.values.push({ ...v, id, ...(producer !== undefined ? { producer } : {}) });
    vmap.set(old, id);
  };
  // Inputs, parameters and state the tables name (a pass that dropped one, as ZeRO-1 drops the
  // whole-size moments, leaves its value unnamed: it goes).
  const named = new Set([...Object.values(graph.inputs), ...Object.values(graph.params), ...Object.values(graph.state)]);
  for (const v of graph.values) if (v.kind !== 'node' && named.has(v.id)) addValue(v.id);
  const nmap = new Map<number, number>();
  nodes.forEach((n, k) => {
    nmap.set(n.id, k);
    n.outputs.forEach((o) => addValue(o, k));
  });
  g.nodes = nodes.map((n, k) => ({ ...n, id: k, inputs: n.inputs.map((i) => vmap.get(i)!), outputs: n.outputs.map((o) => vmap.get(o)!) }));
  const remap = (t: Record<string, number>) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k, vmap.get(v)!]));
  g.inputs = remap(graph.inputs);
  g.params = remap(graph.params);
  g.state = remap(graph.state);
  g.outputs = remap(graph.outputs);
  g.updates = remap(graph.updates);
  g.gradients = remap(graph.gradients);
  g.init = { ...graph.init };
  return g;
}
