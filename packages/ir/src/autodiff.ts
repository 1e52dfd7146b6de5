/**
 * Reverse-mode autodiff on the IR: from a scalar loss back to the parameters, appending the
 * backward nodes to the same graph. Each op's gradient rule comes with its definition (defineOp's
 * `gradient`, or defineGradient) and is written with the same Sym helpers as the forward pass, so
 * the backward pass is ordinary IR that every later pass and backend handles like the forward one.
 *
 * Every node it appends has phase 'backward'. The nodes of a rule keep the scope of the forward node
 * they differentiate (so a layer's backward GEMMs are found under the layer's own name); the loss's
 * seed, the sums of gradients reaching one value from several uses, and the zeros of a parameter the
 * loss does not depend on are in scope 'grad'.
 */
import { DeepwellError, invalid } from '@deepwell/core';
import { GraphBuilder, type Sym } from './builder.js';
import { checkGraph, type Graph } from './graph.js';
import { getOp, gradientRule } from './op.js';
import { add } from './ops/basic/add.js';
import { fill } from './ops/basic/fill.js';
import type { FloatDType } from './ops/float.js';
import { numel, shapeStr } from './types.js';

/**
 * Append the gradient of value `loss` (one element) with respect to each value in `wrt`. Returns a
 * map from each of `wrt` to its gradient value; a value the loss does not depend on gets zeros.
 */
export function differentiate(graph: Graph, loss: number, wrt: readonly number[]): Map<number, number> {
  checkGraph(graph, 'the graph of differentiate');
  if (!Number.isSafeInteger(loss)) invalid('a value id', 'the loss of differentiate', loss);
  if (!Array.isArray(wrt) || !wrt.every((w) => Number.isSafeInteger(w))) invalid('an array of value ids', 'wrt of differentiate', wrt);
  wrt.forEach((w) => graph.value(w));
  const lossType = graph.value(loss).type;
  if (numel(lossType.shape) !== 1 || lossType.dtype !== 'f32') {
    throw new DeepwellError('SHAPE_MISMATCH', `Expected a one-element f32 loss for differentiate but received ${shapeStr(lossType)}`);
  }
  const b = GraphBuilder.extend(graph);
  return b.phase('backward', () => backward(b, graph, loss, wrt));
}

function backward(b: GraphBuilder, graph: Graph, loss: number, wrt: readonly number[]): Map<number, number> {
  const lossType = graph.value(loss).type;
  const nodes = graph.nodes.slice(); // the forward nodes only: backward nodes are appended as we go
  // Values the loss depends on through differentiable paths, and values that depend on `wrt`.
  const needed = new Set<number>([loss]);
  for (let k = nodes.length - 1; k >= 0; k--) {
    const n = nodes[k]!;
    if (n.outputs.some((o) => needed.has(o))) n.inputs.forEach((i) => needed.add(i));
  }
  // Gradients flow through float values only, and not through ops marked non-differentiable
  // (routing plans, one-hot masks, optimizer updates).
  const isFloat = (id: number) => graph.values[id]!.type.dtype !== 'i32';
  const depends = new Set<number>(wrt);
  for (const n of nodes) {
    if (getOp(n.op).nonDifferentiable) continue;
    if (n.inputs.some((i) => depends.has(i))) n.outputs.filter(isFloat).forEach((o) => depends.add(o));
  }

  const grads = new Map<number, Sym>();
  grads.set(loss, b.scoped('grad', () => fill(b, lossType.shape, 1)));
  for (let k = nodes.length - 1; k >= 0; k--) {
    const n = nodes[k]!;
    const gOut = n.outputs.map((o) => grads.get(o) ?? null);
    if (gOut.every((g) => g === null)) continue;
    if (!n.inputs.some((i) => depends.has(i) && needed.has(i))) continue;
    if (getOp(n.op).nonDifferentiable) continue;
    const rule = gradientRule(n.op);
    if (!rule) throw new DeepwellError('INVALID_ARGUMENT', `${graph.describeNode(n)} has no gradient rule`);
    const gIn = b.within(n.scope, () =>
      rule({ b, inputs: n.inputs.map((i) => b.sym(i)), outputs: n.outputs.map((o) => b.sym(o)), grads: gOut, attrs: n.attrs }),
    );
    n.inputs.forEach((i, j) => {
      const g = gIn[j];
      if (!g || !depends.has(i)) return;
      const prev = grads.get(i);
      grads.set(i, prev ? b.scoped('grad', () => add(prev, g)) : g);
    });
  }
  const out = new Map<number, number>();
  for (const w of wrt) {
    const t = graph.value(w).type;
    out.set(w, (grads.get(w) ?? b.scoped('grad', () => fill(b, t.shape, 0, t.dtype as FloatDType))).id);
  }
  return out;
}
