/**
 * capture(model, inputSpec) traces a model's forward with symbolic tensors into a Graph. Modules
 * create their parameters through the builder of the capture in progress (`currentBuilder()`), so
 * the same model object can be captured many times (different batch sizes, eager runs).
 *
 * eager(model, inputs) runs the same ops one by one on the CPU reference right away: for debugging,
 * with a callback after every node.
 */
import { DeepwellError, checkShape, type DTypeName } from '@deepwell/core';
import { GraphBuilder, Sym } from './builder.js';
import type { Graph, NodeDecl } from './graph.js';
import { initialValues } from './init.js';
import { interpret } from './interpret.js';
import { numel, type NumArray } from './types.js';

export interface InputSpec {
  shape: readonly number[];
  dtype?: DTypeName;
}

export interface Capturable {
  forward(inputs: Record<string, Sym>): Sym | Record<string, Sym>;
}

const stack: GraphBuilder[] = [];

/** The builder of the capture in progress; modules call this to make parameters. */
export function currentBuilder(): GraphBuilder {
  const b = stack.at(-1);
  if (!b) throw new DeepwellError('INVALID_ARGUMENT', 'Modules make symbolic tensors only inside capture() or eager()');
  return b;
}

export function capture(model: Capturable, inputSpec: Record<string, InputSpec>): Graph {
  if (!model || typeof model.forward !== 'function') throw new DeepwellError('INVALID_ARGUMENT', 'Expected a model with a forward() method for capture');
  const b = new GraphBuilder();
  const inputs: Record<string, Sym> = {};
  for (const [name, spec] of Object.entries(inputSpec)) inputs[name] = b.input(name, checkShape(spec.shape, `shape of input '${name}'`), spec.dtype ?? 'f32');
  stack.push(b);
  let out: Sym | Record<string, Sym>;
  try {
    out = model.forward(inputs);
  } finally {
    stack.pop();
  }
  if (out instanceof Sym) b.output('out', out);
  else for (const [k, v] of Object.entries(out)) b.output(k, v);
  return b.graph.verify();
}

export interface EagerOptions {
  seed?: number;
  /** Parameter values by name; missing ones are initialised from the seed as compile would. */
  params?: Record<string, Float32Array | Float64Array>;
  onNode?: (node: NodeDecl, outputs: NumArray[]) => void;
}

/** Run a model's forward op by op on the CPU reference; returns its outputs by name. */
export function eager(model: Capturable, inputs: Record<string, { shape: readonly number[]; dtype?: DTypeName; data: NumArray }>, options: EagerOptions = {}): Record<string, NumArray> {
  const spec = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }]));
  const g = capture(model, spec);
  const bind: Record<string, NumArray> = {};
  for (const [k, v] of Object.entries(inputs)) bind[k] = v.data;
  for (const [name, id] of [...Object.entries(g.params), ...Object.entries(g.state)]) {
    bind[name] = options.params?.[name] ?? initialValues(g.init[name] ?? { dist: 'zeros' }, numel(g.values[id]!.type.shape), options.seed ?? 0, name);
  }
  const vals = interpret(g, bind, { onNode: options.onNode });
  return Object.fromEntries(Object.entries(g.outputs).map(([k, id]) => [k, vals[id]!]));
}
