/**
 * trainingStep(forward) -> one graph for a whole training step: the forward pass, its backward
 * pass (autodiff), optionally gradient accumulation over micro-batches and clipping by the global
 * gradient norm, and an AdamW update of every parameter, with the moments as state and the
 * learning rate and step number as inputs (so schedules need no recompile). The clipping and
 * optimizer nodes have phase 'optimizer' (scopes 'clip' and 'optimizer.<param>').
 *
 * Clipping is one sum_squares node over every gradient (whatever their dtypes) and one clip_coef;
 * the factor goes into each adamw as its gradScale input, so no scaled copy of a gradient is ever
 * written. `graph.gradients` therefore names each parameter's gradient as the backward pass made
 * it, before clipping (the optimizer applies the factor).
 */
import { DeepwellError, checkFunction, checkKeys, describe, invalid } from '@deepwell/core';
import { differentiate } from './autodiff.js';
import { GraphBuilder, type Sym } from './builder.js';
import { Graph, checkGraph } from './graph.js';
import { checkAdamWAttrs } from './ops/optim/adamw-attrs.js';
import { add } from './ops/basic/add.js';
import { clipCoef } from './ops/optim/clip_coef.js';
import { sumSquares } from './ops/optim/sum_squares.js';
import { scale } from './ops/tensor/scale.js';
import { slice } from './ops/tensor/slice.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters decay; default: those of rank >= 2 (matrices and embeddings, not biases or norms). */
  decay?: (name: string, shape: readonly number[]) => boolean;
}

export interface TrainingStepOptions {
  /** The output holding the loss (default 'loss'). */
  loss?: string;
  optimizer?: AdamWOptions;
  /**
   * Clip the gradients by their global norm (torch.nn.utils.clip_grad_norm_): every gradient is
   * multiplied by min(1, clipGradNorm / (norm + 1e-6)) before AdamW (inside it: its gradScale
   * input, the product rounded to f32); the step outputs `grad_norm`.
   */
  clipGradNorm?: number;
  /**
   * Gradient accumulation over this many micro-batches: each input gets `accumulate` times the
   * forward graph's first dimension; micro-batch i is rows [i·B, (i+1)·B). Each micro-batch's
   * forward and backward come before the next one's (so their activations are not live at once),
   * its gradients are summed, and the loss and gradients are the mean over micro-batches. Only the
   * loss is output.
   */
  accumulate?: number;
}

/**
 * The most micro-batches trainingStep accumulates over: each is a copy of the forward and backward
 * graph, so the step graph grows with it (and a huge count would take forever to build).
 */
export const MAX_ACCUMULATE = 1024;

export function trainingStep(forward: Graph, options: TrainingStepOptions = {}): Graph {
  checkGraph(forward, 'the forward graph of trainingStep');
  checkKeys(options, ['loss', 'optimizer', 'clipGradNorm', 'accumulate'], 'trainingStep', { aliases: { gradientAccumulation: 'accumulate', maxGradNorm: 'clipGradNorm', clip: 'clipGradNorm' } });
  const lossName = options.loss ?? 'loss';
  if (typeof lossName !== 'string') invalid('an output name', 'trainingStep loss', lossName);
  const o = options.optimizer ?? {};
  checkKeys(o, ['beta1', 'beta2', 'eps', 'weightDecay', 'decay'], 'trainingStep optimizer', { aliases: { betas: 'beta1 and beta2', weight_decay: 'weightDecay', lr: 'the step input lr' } });
  checkAdamWAttrs(o as Record<string, unknown>, 'trainingStep optimizer');
  if (o.decay !== undefined) checkFunction(o.decay, 'trainingStep optimizer decay');
  if (!Object.prototype.hasOwnProperty.call(forward.outputs, lossName)) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected an output named '${lossName}' for the loss but received a graph with outputs ${Object.keys(forward.outputs).join(', ') || '(none)'}`);
  }
  if (Object.keys(forward.params).length === 0) throw new DeepwellError('INVALID_ARGUMENT', 'Expected a graph with parameters to train but received one with none');
  for (const reserved of ['lr', 'step']) {
    if (reserved in forward.inputs) throw new DeepwellError('INVALID_ARGUMENT', `The input name '${reserved}' is reserved for the optimizer`);
  }
  const k = options.accumulate ?? 1;
  if (!Number.isSafeInteger(k) || k < 1) invalid('a positive integer', 'accumulate', options.accumulate);
  if (k > MAX_ACCUMULATE) invalid(`a positive integer up to ${MAX_ACCUMULATE} (each micro-batch copies the forward and backward graph)`, 'accumulate', k);
  const clip = options.clipGradNorm;
  if (clip !== undefined && !(Number.isFinite(clip) && clip > 0)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a positive number for clipGradNorm but received ${describe(clip)}`);

  const names = Object.keys(forward.params);
  const { g, grads: gradIds } = k === 1 ? oneBatch(forward, lossName, names) : microBatches(forward, lossName, names, k);
  const b = GraphBuilder.extend(g);
  const grads = names.map((name) => b.sym(gradIds.get(g.params[name]!)!));
  let gradScale: Sym | undefined;
  if (clip !== undefined) {
    gradScale = b.phase('optimizer', () => b.scoped('clip', () => {
      const [coef, norm] = clipCoef(sumSquares(grads), clip);
      b.output('grad_norm', norm);
      return coef;
    }));
  }
  const lr = b.input('lr', [1], 'f32');
  const step = b.input('step', [1], 'f32');
  const decay = o.decay ?? ((_: string, shape: readonly number[]) => shape.length >= 2);
  names.forEach((name, j) => {
    const p = b.sym(g.params[name]!);
    const grad = grads[j]!;
    g.gradients[name] = grad.id;
    const m = b.state(`adamw.m.${name}`, p.shape, 'f32', { dist: 'zeros' });
    const v = b.state(`adamw.v.${name}`, p.shape, 'f32', { dist: 'zeros' });
    const decays = decay(name, p.shape);
    if (typeof decays !== 'boolean') invalid('a boolean', `trainingStep optimizer decay('${name}')`, decays);
    const [p2, m2, v2] = b.phase('optimizer', () =>
      b.scoped(`optimizer.${name}`, () =>
        b.op('adamw', [p, grad, m, v, lr, step, ...(gradScale ? [gradScale] : [])], {
          beta1: o.beta1 ?? 0.9,
          beta2: o.beta2 ?? 0.95,
          eps: o.eps ?? 1e-8,
          weightDecay: decays ? (o.weightDecay ?? 0.1) : 0,
        }),
      ),
    );
    b.update(name, p2!);
    b.update(`adamw.m.${name}`, m2!);
    b.update(`adamw.v.${name}`, v2!);
  });
  return g.verify();
}

/** The forward graph copied, with the gradients of every parameter appended. */
function oneBatch(forward: Graph, lossName: string, names: string[]): { g: Graph; grads: Map<number, number> } {
  const g = Graph.fromJSON(forward.toJSON());
  return { g, grads: differentiate(g, g.outputs[lossName]!, names.map((n) => g.params[n]!)) };
}

/** `k` copies of the forward graph on row slices of k-times-larger inputs, each followed by its backward. */
function microBatches(forward: Graph, lossName: string, names: string[], k: number): { g: Graph; grads: Map<number, number> } {
  const b = new GraphBuilder();
  const shared = new Map<number, Sym>();
  for (const v of forward.values) {
    if (v.kind === 'param') shared.set(v.id, b.param(v.name!, v.type.shape, v.type.dtype, forward.init[v.name!]!, { absolute: true }));
    else if (v.kind === 'state') shared.set(v.id, b.state(v.name!, v.type.shape, v.type.dtype, forward.init[v.name!]!));
  }
  const big = new Map<number, { sym: Sym; rows: number }>();
  for (const [name, id] of Object.entries(forward.inputs)) {
    const t = forward.values[id]!.type;
    if (t.shape.length === 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected a batch dimension on input '${name}' to accumulate over but it is a scalar`);
    big.set(id, { sym: b.input(name, [k * t.shape[0]!, ...t.shape.slice(1)], t.dtype), rows: t.shape[0]! });
  }
  const paramIds = names.map((n) => shared.get(forward.params[n]!)!.id);
  let acc: Sym[] | null = null;
  let lossSum: Sym | null = null;
  for (let i = 0; i < k; i++) {
    const m = new Map<number, Sym>(shared);
    for (const [id, { sym, rows }] of big) m.set(id, b.within('', () => slice(sym, 0, i * rows, (i + 1) * rows)));
    for (const n of forward.nodes) {
      const outs = b.like(n, () => b.op(n.op, n.inputs.map((x) => m.get(x)!), n.attrs as never));
      n.outputs.forEach((o, j) => m.set(o, outs[j]!));
    }
    const li = m.get(forward.outputs[lossName]!)!;
    const gi = differentiate(b.graph, li.id, paramIds);
    const gs = paramIds.map((p) => b.sym(gi.get(p)!));
    acc = acc ? b.phase('backward', () => b.scoped('grad', () => acc!.map((a, j) => add(a, gs[j]!)))) : gs;
    lossSum = lossSum ? add(lossSum, li) : li;
  }
  b.output(lossName, scale(lossSum!, 1 / k));
  const grads = new Map<number, number>();
  b.phase('backward', () => b.scoped('grad', () => paramIds.forEach((p, j) => grads.set(p, scale(acc![j]!, 1 / k).id))));
  return { g: b.graph, grads };
}
