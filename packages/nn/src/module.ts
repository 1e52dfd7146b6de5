/**
 * Module: the base of every layer. A module declares its parameters (shape and initialisation) and
 * its children when it is built; its forward() is written with the IR's Sym helpers and runs only
 * inside capture() or eager(). Parameter names are module paths ("blocks.3.mlp.fc.weight"), given
 * when the tree is captured; a parameter used twice (tied embeddings) is one graph value.
 */
import { DTYPE_NAMES, DeepwellError, checkOneOf, checkShape, describe, type DTypeName } from '@deepwell/core';
import { checkInitSpec, currentBuilder, type GraphBuilder, type InitSpec, type Sym } from '@deepwell/ir';
import { checkParameterCount } from './limits.js';


/** A parameter or child name: a non-empty string. */
function checkName(name: unknown, owner: string): string {
  if (typeof name !== 'string' || name.length === 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a non-empty string for a parameter or child name of ${owner} but received ${describe(name)}`);
  return name;
}

/** An initialisation spec checked by ir's checkInitSpec (the one check, the builder's too), copied so a later change to the caller's object changes nothing. */
function checkInit(init: unknown, what: string): InitSpec {
  return { ...checkInitSpec(init, what) };
}

export interface ParamSpec {
  shape: readonly number[];
  init: InitSpec;
  dtype: DTypeName;
}

export abstract class Module {
  #params = new Map<string, ParamSpec>();
  #children = new Map<string, Module>();
  #path = '';
  #made = new WeakMap<GraphBuilder, Map<string, Sym>>();

  /**
   * Declares a parameter: its shape (at most MAX_PARAMETERS elements), its initialisation and its
   * dtype, all checked here (nothing is allocated until the model is compiled).
   */
  protected addParam(name: string, shape: readonly number[], init: InitSpec, dtype: DTypeName = 'f32'): void {
    const owner = this.constructor.name;
    checkName(name, owner);
    const dims = checkShape(shape, `shape of parameter '${name}' of ${owner}`);
    checkParameterCount(dims.reduce((a, b) => a * b, 1), `parameter '${name}' of ${owner}`);
    const spec: ParamSpec = { shape: [...dims], init: checkInit(init, `the init of parameter '${name}' of ${owner}`), dtype: checkOneOf(dtype, DTYPE_NAMES, `dtype of parameter '${name}' of ${owner}`) };
    if (this.#params.has(name) || this.#children.has(name)) throw new DeepwellError('INVALID_ARGUMENT', `'${name}' is declared twice in ${owner}`);
    this.#params.set(name, spec);
  }

  protected addChild<M extends Module>(name: string, child: M): M {
    checkName(name, this.constructor.name);
    if (!(child instanceof Module)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a Module for child '${name}' of ${this.constructor.name} but received ${describe(child)}`);
    if ((child as Module) === (this as Module)) throw new DeepwellError('INVALID_ARGUMENT', `Expected another module for child '${name}' of ${this.constructor.name} but received the module itself`);
    if (this.#params.has(name) || this.#children.has(name)) throw new DeepwellError('INVALID_ARGUMENT', `'${name}' is declared twice in ${this.constructor.name}`);
    this.#children.set(name, child);
    child.#setPath(this.#path ? `${this.#path}.${name}` : name);
    return child;
  }

  #setPath(path: string): void {
    this.#path = path;
    for (const [name, c] of this.#children) c.#setPath(path ? `${path}.${name}` : name);
  }

  /** The module's path in the tree ('' for the root). */
  get path(): string {
    return this.#path;
  }

  /** The parameter `name` of this module as a value of the graph being captured. */
  weight(name: string): Sym {
    const spec = typeof name === 'string' ? this.#params.get(name) : undefined;
    if (!spec) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${[...this.#params.keys()].join(', ') || '(none)'} for a parameter of ${this.constructor.name} but received ${describe(name)}`);
    const b = currentBuilder();
    let made = this.#made.get(b);
    if (!made) this.#made.set(b, (made = new Map()));
    let s = made.get(name);
    if (!s) {
      const full = this.#path ? `${this.#path}.${name}` : name;
      // The parameter's name is its module path, whatever scope the first use happens in.
      s = b.param(full, spec.shape, spec.dtype, spec.init, { absolute: true });
      made.set(name, s);
    }
    return s;
  }

  /** Every parameter of this module and its children, by full name. */
  namedParameters(): [string, ParamSpec][] {
    const out: [string, ParamSpec][] = [];
    for (const [name, spec] of this.#params) out.push([this.#path ? `${this.#path}.${name}` : name, spec]);
    for (const c of this.#children.values()) out.push(...c.namedParameters());
    return out;
  }

  parameterCount(): number {
    return this.namedParameters().reduce((a, [, p]) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  }

  /** Run this module's forward with its path as the scope that names the nodes it makes. */
  protected scope<T>(fn: () => T): T {
    return currentBuilder().within(this.#path, fn);
  }
}
