/**
 * A stable topological order: fusion passes move an output to the node that now computes it, which
 * may sit after some of that value's readers; this puts every node after what it reads while
 * keeping the existing order wherever it already allows (of the nodes ready to run, the earliest
 * in the old order goes first), so the memory plan changes as little as possible.
 */
import { DeepwellError } from '@deepwell/core';
import { checkGraph, type Graph, type NodeDecl } from '../graph.js';

export function sortNodes(graph: Graph): Graph {
  checkGraph(graph, 'the graph of sortNodes');
  const nodes = graph.nodes;
  const producer = new Map<number, number>();
  nodes.forEach((n, k) => n.outputs.forEach((o) => producer.set(o, k)));
  const waiting = nodes.map(() => 0);
  const readers: number[][] = nodes.map(() => []);
  nodes.forEach((n, k) => {
    for (const p of new Set(n.inputs.map((i) => producer.get(i)).filter((p): p is number => p !== undefined))) {
      waiting[k]!++;
      readers[p]!.push(k);
    }
  });
  const heap = new MinHeap();
  waiting.forEach((w, k) => w === 0 && heap.push(k));
  const order: NodeDecl[] = [];
  while (heap.size) {
    const k = heap.pop();
    order.push(nodes[k]!);
    for (const r of readers[k]!) if (--waiting[r]! === 0) heap.push(r);
  }
  if (order.length !== nodes.length) throw new DeepwellError('INTERNAL', 'sortNodes: the graph has a cycle');
  graph.nodes = order;
  return graph;
}

class MinHeap {
  #a: number[] = [];
  get size(): number {
    return this.#a.length;
  }
  push(x: number): void {
    const a = this.#a;
    a.push(x);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (a[p]! <= a[i]!) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): number {
    const a = this.#a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]! < a[m]!) m = l;
        if (r < a.length && a[r]! < a[m]!) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}
