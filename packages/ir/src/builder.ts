/**
 * Building graphs: a GraphBuilder adds values and nodes, checks each node's types as it is added
 * (so a mistake is reported at the line that made it, naming the node), and tracks the module
 * scope that names nodes and parameters and the phase (forward, backward, optimizer) every node it
 * makes is marked with. A Sym is a symbolic tensor: a value of the graph being
 * built. Every op file exports Sym helpers (`matmul(a, b)`), which is how modules and gradient
 * rules are written.
 */
import { DeepwellError, checkFunction, checkKeys, checkShape, describe, dtypeInfo, invalid, type DTypeName } from '@deepwell/core';
import { Graph, PHASES, checkGraph, withNode, type InitSpec, type NodeDecl, type Phase, type ValueKind } from './graph.js';
import { checkInitSpec } from './init.js';
import { checkAttrs, getOp } from './op.js';
import type { AttrValue, ValueType } from './types.js';

/** Every Sym this copy of the package made: an object given Sym's prototype (no builder) is not one. */
const SYMS = new WeakSet<object>();

export class Sym {
  constructor(
    readonly builder: GraphBuilder,
    readonly id: number,
  ) {
    if (!(builder instanceof GraphBuilder)) invalid('a GraphBuilder', 'the builder of a Sym', builder);
    builder.graph.value(id);
    SYMS.add(this);
  }
  get type(): ValueType {
    return this.builder.graph.values[this.id]!.type;
  }
  get shape(): readonly number[] {
    return this.type.shape;
  }
  get dtype(): DTypeName {
    return this.type.dtype;
  }
  get rank(): number {
    return this.type.shape.length;
  }
  toString(): string {
    return `%${this.id}: ${this.dtype}[${this.shape.join(', ')}]`;
  }
}

/**
 * Whether `x` is a symbolic tensor: a Sym made by a GraphBuilder (the one test every package
 * uses; `instanceof Sym` would pass an object given Sym's prototype, without a builder or id).
 */
export function isSym(x: unknown): x is Sym {
  return typeof x === 'object' && x !== null && SYMS.has(x);
}

/** `x` as a Sym, or a typed error naming `what`. */
export function checkSym(x: unknown, what: string): Sym {
  if (!isSym(x)) invalid('a symbolic tensor (a Sym, inside capture() or eager())', what, x);
  return x;
}

/**
 * The builder of `x`, a Sym: how the ops' Sym helpers (`gelu(x)`) find the graph to add to, with a
 * typed error naming the helper when `x` is not a Sym (the builder then checks every other input).
 */
export function builderOf(x: unknown, what: string): GraphBuilder {
  return checkSym(x, what).builder;
}

/** The builder of `xs[0]`, `xs` a non-empty array of Syms (the variadic helpers: concat, sum_squares). */
export function builderOfAll(xs: unknown, what: string): GraphBuilder {
  if (!Array.isArray(xs) || xs.length === 0) invalid('a non-empty array of symbolic tensors', what, xs);
  return builderOf(xs[0], `${what}[0]`);
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$/;

export class GraphBuilder {
  readonly graph = new Graph();
  #scope: string[] = [];
  #phase: Phase = 'forward';

  get scope(): string {
    return this.#scope.join('.');
  }

  /** Run `fn` with every node it makes marked as part of phase `p` (autodiff: 'backward'). */
  phase<T>(p: Phase, fn: () => T): T {
    checkFunction(fn, 'the function of phase()');
    if (!PHASES.includes(p)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${PHASES.join(', ')} for a phase but received ${describe(p)}`);
    const saved = this.#phase;
    this.#phase = p;
    try {
      return fn();
    } finally {
      this.#phase = saved;
    }
  }

  /** Run `fn` with the scope and phase of `node`: for passes that copy or rewrite a node. */
  like<T>(node: Pick<NodeDecl, 'scope' | 'phase'>, fn: () => T): T {
    if (typeof node !== 'object' || node === null || typeof node.scope !== 'string') invalid('a node ({ scope, phase })', 'like()', node);
    return this.phase(node.phase, () => this.within(node.scope, fn));
  }

  /** Run `fn` with `name` appended to the scope that names nodes and parameters. */
  scoped<T>(name: string, fn: () => T): T {
    if (typeof name !== 'string' || name === '') invalid('a non-empty scope name', 'scoped()', name);
    checkFunction(fn, 'the function of scoped()');
    this.#scope.push(name);
    try {
      return fn();
    } finally {
      this.#scope.pop();
    }
  }

  #value(kind: ValueKind, name: string | undefined, type: ValueType, producer?: number): Sym {
    const id = this.graph.values.length;
    this.graph.values.push({ id, type: Object.freeze({ shape: Object.freeze([...type.shape]), dtype: type.dtype }), kind, ...(name ? { name } : {}), ...(producer !== undefined ? { producer } : {}) });
    return new Sym(this, id);
  }

  #named(kind: 'input' | 'param' | 'state', name: string, shape: readonly number[], dtype: DTypeName): Sym {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a dotted identifier for ${kind} name but received ${JSON.stringify(name)}`);
    }
    const table = kind === 'input' ? this.graph.inputs : kind === 'param' ? this.graph.params : this.graph.state;
    if (name in this.graph.inputs || name in this.graph.params || name in this.graph.state) {
      throw new DeepwellError('INVALID_ARGUMENT', `The name '${name}' is used twice (a ${kind} cannot share it)`);
    }
    const s = this.#value(kind, name, { shape: checkShape(shape, `shape of ${kind} '${name}'`), dtype: dtypeInfo(dtype).name });
    table[name] = s.id;
    return s;
  }

  /** Data fed to every run (token ids, targets, the learning rate). */
  input(name: string, shape: readonly number[], dtype: DTypeName = 'f32'): Sym {
    return this.#named('input', name, shape, dtype);
  }

  /** Run `fn` with the scope set to `path` (a module's full path), whatever it was. */
  within<T>(path: string, fn: () => T): T {
    if (typeof path !== 'string') invalid('a scope path', 'within()', path);
    checkFunction(fn, 'the function of within()');
    const saved = this.#scope;
    this.#scope = path ? [path] : [];
    try {
      return fn();
    } finally {
      this.#scope = saved;
    }
  }

  /** A trainable parameter; `name` is prefixed with the current scope unless `absolute`. */
  param(name: string, shape: readonly number[], dtype: DTypeName, init: InitSpec, options: { absolute?: boolean } = {}): Sym {
    checkKeys(options, ['absolute'], 'param');
    const full = this.scope && !options.absolute ? `${this.scope}.${name}` : name;
    checkInitSpec(init, `init of parameter '${full}'`);
    const s = this.#named('param', full, shape, dtype);
    this.graph.init[full] = init;
    return s;
  }

  /** Persistent non-trainable storage (optimizer moments); the name is used as given. */
  state(name: string, shape: readonly number[], dtype: DTypeName, init: InitSpec): Sym {
    checkInitSpec(init, `init of state '${name}'`);
    const s = this.#named('state', name, shape, dtype);
    this.graph.init[name] = init;
    return s;
  }

  /** Apply an op; its types are checked now, and errors name the node being made. */
  op(name: string, inputs: readonly Sym[], attrs: Record<string, AttrValue> = {}): Sym[] {
    const def = getOp(name);
    const nodeId = this.graph.nodes.length;
    const where = `node #${nodeId}${this.scope ? ` '${this.scope}'` : ''} (${name})`;
    let outTypes: ValueType[];
    try {
      if (!Array.isArray(inputs)) invalid('an array of symbolic tensors', 'inputs', inputs);
      for (const s of inputs) {
        if (!isSym(s) || s.builder !== this) throw new DeepwellError('INVALID_ARGUMENT', 'Expected symbolic tensors of this graph for inputs');
      }
      const variadic = def.inputs.length === 1 && def.inputs[0]!.startsWith('...');
      const required = def.inputs.filter((name) => !name.endsWith('?')).length;
      if (variadic ? inputs.length < 1 : inputs.length < required || inputs.length > def.inputs.length) {
        const want = required === def.inputs.length ? `${required}` : `${required} to ${def.inputs.length}`;
        throw new DeepwellError('INVALID_ARGUMENT', `Expected ${variadic ? 'at least 1 input' : `${want} inputs (${def.inputs.join(', ')})`} but received ${inputs.length}`);
      }
      const checked = checkAttrs(def, attrs);
      outTypes = def.infer(inputs.map((s) => s.type), checked);
      // Whatever the op's rule computed (a size from an attribute), every output must be a real shape.
      outTypes.forEach((t, k) => checkShape(t.shape, `the shape of output ${k}`));
      const outs = outTypes.map((t) => this.#value('node', undefined, t, nodeId));
      this.graph.nodes.push({ id: nodeId, op: name, inputs: inputs.map((s) => s.id), outputs: outs.map((s) => s.id), attrs: checked, scope: this.scope, phase: this.#phase });
      return outs;
    } catch (e) {
      throw withNode(where, e);
    }
  }

  /** Apply an op with one output. */
  op1(name: string, inputs: readonly Sym[], attrs: Record<string, AttrValue> = {}): Sym {
    return this.op(name, inputs, attrs)[0]!;
  }

  output(name: string, s: Sym): void {
    this.#own(name, s, 'output');
    this.graph.outputs[name] = s.id;
  }

  /** After a step, `s` replaces the parameter or state value called `name`. */
  update(name: string, s: Sym): void {
    this.#own(name, s, 'update');
    if (!(name in this.graph.params) && !(name in this.graph.state)) invalid('the name of a parameter or state value', 'update', name);
    this.graph.updates[name] = s.id;
  }

  /** Checks an output's or update's name and that `s` is a value of this graph. */
  #own(name: unknown, s: unknown, what: string): void {
    if (typeof name !== 'string' || name === '') invalid('a non-empty string', `${what} name`, name);
    if (!isSym(s) || s.builder.graph !== this.graph) invalid('a symbolic tensor of this graph', `${what} '${name}'`, s);
  }

  /** A Sym for an existing value of this graph (for passes that extend a graph). */
  sym(id: number): Sym {
    this.graph.value(id);
    return new Sym(this, id);
  }

  /** Continue building on an existing graph (autodiff and the optimizer append to the forward graph). */
  static extend(graph: Graph): GraphBuilder {
    checkGraph(graph, 'the graph of GraphBuilder.extend');
    const b = new GraphBuilder();
    (b as { graph: Graph }).graph = graph;
    return b;
  }
}
