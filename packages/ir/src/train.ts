/**
 * trainingStep(forward) -> one graph for a whole training step: the forward pass, its backward
 * pass (autodiff), and an AdamW update of every parameter, with the moments as state and the
 * learning rate and step number as inputs (so schedules need no recompile).
 */
import { DeepwellError } from '@deepwell/core';
import { differentiate } from './autodiff.js';
import { GraphBuilder } from './builder.js';
import { Graph } from './graph.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters decay; default: those of rank >= 2 (matrices and embeddings, not biases or norms). */
  decay?: (name: string, shape: readonly number[]) => boolean;
}

export function trainingStep(forward: Graph, options: { loss?: string; optimizer?: AdamWOptions } = {}): Graph {
  const g = Graph.fromJSON(forward.toJSON());
  const lossName = options.loss ?? 'loss';
  const loss = g.outputs[lossName];
  if (loss === undefined) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected an output named '${lossName}' for the loss but received a graph with outputs ${Object.keys(g.outputs).join(', ') || '(none)'}`);
  }
  if (Object.keys(g.params).length === 0) throw new DeepwellError('INVALID_ARGUMENT', 'Expected a graph with parameters to train but received one with none');
  for (const reserved of ['lr', 'step']) {
    if (reserved in g.inputs) throw new DeepwellError('INVALID_ARGUMENT', `The input name '${reserved}' is reserved for the optimizer`);
  }
  const names = Object.keys(g.params);
  const grads = differentiate(g, loss, names.map((n) => g.params[n]!));
  const b = GraphBuilder.extend(g);
  const lr = b.input('lr', [1], 'f32');
  const step = b.input('step', [1], 'f32');
  const o = options.optimizer ?? {};
  const decay = o.decay ?? ((_: string, shape: readonly number[]) => shape.length >= 2);
  for (const name of names) {
    const p = b.sym(g.params[name]!);
    const grad = b.sym(grads.get(p.id)!);
    g.gradients[name] = grad.id;
    const m = b.state(`adamw.m.${name}`, p.shape, 'f32', { dist: 'zeros' });
    const v = b.state(`adamw.v.${name}`, p.shape, 'f32', { dist: 'zeros' });
    const [p2, m2, v2] = b.scoped(`optimizer.${name}`, () =>
      b.op('adamw', [p, grad, m, v, lr, step], {
        beta1: o.beta1 ?? 0.9,
        beta2: o.beta2 ?? 0.95,
        eps: o.eps ?? 1e-8,
        weightDecay: decay(name, p.shape) ? (o.weightDecay ?? 0.1) : 0,
      }),
    );
    b.update(name, p2!);
    b.update(`adamw.m.${name}`, m2!);
    b.update(`adamw.v.${name}`, v2!);
  }
  return g.verify();
}
