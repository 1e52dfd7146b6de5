/**
 * capture(model, inputSpec) traces a model's forward with symbolic tensors into a Graph. Modules
 * create their parameters through the builder of the capture in progress (`currentBuilder()`), so
 * the same model object can be captured many times (different batch sizes, eager runs).
 *
 * eager(model, inputs) runs the same ops one by one on the CPU reference right away: for debugging,
 * with a callback after every node.
 */
import { DeepwellError, checkFunction, checkKeys, checkShape, describe, invalid, type DTypeName } from '@deepwell/core';
import { GraphBuilder, Sym, isSym } from './builder.js';
import type { Graph, NodeDecl } from './graph.js';
import { checkSeed, initialValues } from './init.js';
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

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function capture(model: Capturable, inputSpec: Record<string, InputSpec>): Graph {
  if (!model || typeof model.forward !== 'function') throw new DeepwellError('INVALID_ARGUMENT', `Expected a model with a forward() method for capture but received ${describe(model)}`);
  if (!isRecord(inputSpec)) invalid('an object of input specs ({ name: { shape, dtype? } })', 'the inputs of capture', inputSpec);
  const b = new GraphBuilder();
  const inputs: Record<string, Sym> = {};
  for (const [name, spec] of Object.entries(inputSpec)) {
    if (!isRecord(spec)) invalid('an input spec ({ shape, dtype? })', `input '${name}' of capture`, spec);
    checkKeys(spec, ['shape', 'dtype'], `input spec '${name}'`, { noun: 'key' });
    inputs[name] = b.input(name, checkShape(spec.shape, `shape of input '${name}'`), spec.dtype ?? 'f32');
  }
  stack.push(b);
  let out: unknown;
  try {
    out = model.forward(inputs);
  } finally {
    stack.pop();
  }
  const own = (s: unknown) => isSym(s) && s.builder === b;
  if (out !== null && typeof (out as { then?: unknown })?.then === 'function') {
    // The trace is over when forward() returns: ops an async forward makes after that belong to no capture.
    invalid('a Sym or a record of Syms returned synchronously (forward cannot be async)', 'the result of forward() in capture', 'a Promise');
  }
  if (isSym(out) || out instanceof Sym) {
    // An object given Sym's prototype is no Sym (isSym): refused here, not read as a record of outputs.
    if (!own(out)) invalid('a Sym made in this capture', 'the output of forward() (a Sym of an earlier capture or another graph?)', isSym(out) ? out.toString() : out);
    b.output('out', out as Sym);
  } else {
    if (!isRecord(out)) invalid('a Sym or a record of Syms', 'the result of forward() in capture', out);
    for (const [k, v] of Object.entries(out)) {
      if (!own(v)) invalid('a Sym made in this capture', `output '${k}' of forward() (a Sym of an earlier capture or another graph?)`, isSym(v) ? v.toString() : v);
      b.output(k, v as Sym);
    }
  }
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
  checkKeys(options, ['seed', 'params', 'onNode'], 'eager');
  if (options.params !== undefined && !isRecord(options.params)) invalid('an object of parameter values by name', 'eager params', options.params);
  if (options.onNode !== undefined) checkFunction(options.onNode, 'eager onNode');
  if (!isRecord(inputs)) invalid('an object of inputs ({ name: { shape, dtype?, data } })', 'the inputs of eager', inputs);
  for (const [name, v] of Object.entries(inputs)) {
    if (!isRecord(v)) invalid('an input ({ shape, dtype?, data })', `input '${name}' of eager`, v);
    checkKeys(v, ['shape', 'dtype', 'data'], `eager input '${name}'`, { noun: 'key' });
  }
  const spec = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }]));
  const g = capture(model, spec);
  const bind: Record<string, NumArray> = {};
  for (const [k, v] of Object.entries(inputs)) bind[k] = v.data;
  const unknown = Object.keys(options.params ?? {}).filter((k) => !(k in g.params) && !(k in g.state));
  if (unknown.length) invalid(`names of the model's parameters or state (${[...Object.keys(g.params), ...Object.keys(g.state)].join(', ') || 'none'})`, 'eager params', unknown[0]);
  const seed = checkSeed(options.seed ?? 0, 'eager seed');
  for (const [name, id] of [...Object.entries(g.params), ...Object.entries(g.state)]) {
    bind[name] = options.params?.[name] ?? initialValues(g.init[name] ?? { dist: 'zeros' }, numel(g.values[id]!.type.shape), seed, name);
  }
  const vals = interpret(g, bind, { onNode: options.onNode });
  return Object.fromEntries(Object.entries(g.outputs).map(([k, id]) => [k, vals[id]!]));
}
