/**
 * The op as a unit. Each op is one `defineOp` call in one file, ops/<family>/<op>.ts, giving: its
 * schema (inputs, outputs, attributes), its shape and dtype rule (`infer`), its CPU reference
 * (written for clarity, accumulating in float64), optionally its FLOP count, and its gradient rule
 * (`gradient`, written as IR with the ops' Sym helpers). Any package defines ops the same way;
 * `defineGradient` gives a rule to an op defined elsewhere that has none.
 *
 * `defineOp` registers the definition in the op table and the reference as the 'cpu' candidate of
 * the op in core's kernel registry, so the CPU reference is always the last fallback.
 */
import { DeepwellError, describe, invalid, registry } from '@deepwell/core';
import type { GraphBuilder, Sym } from './builder.js';
import type { AttrValue, Attrs, NumArray, ValueType } from './types.js';
import { shapeStr } from './types.js';
import { byteSizeOf } from './graph.js';

export type AttrKind = 'int' | 'float' | 'bool' | 'string' | 'ints';

export interface AttrSpec {
  kind: AttrKind;
  /** Used when the attribute is not given; without one the attribute is required. */
  default?: AttrValue;
  /** For 'string': the allowed values. */
  oneOf?: readonly string[];
}

/** What a CPU reference gets: preallocated outputs, which it must write in full. */
export interface RefContext {
  inputs: NumArray[];
  outputs: NumArray[];
  inTypes: ValueType[];
  outTypes: ValueType[];
  attrs: Attrs;
}

/** What a gradient rule gets: the node's inputs and outputs as Syms of the graph being extended. */
export interface GradContext {
  b: GraphBuilder;
  inputs: Sym[];
  outputs: Sym[];
  /** Gradient of each output; null where the loss does not depend on that output. */
  grads: (Sym | null)[];
  attrs: Attrs;
}

/**
 * How the gradients of a node's inputs follow from the gradients of its outputs, written as IR with
 * the ops' Sym helpers (as PyTorch's derivatives.yaml and JAX's AD rules): the gradients of the
 * inputs, in order; null for an input that takes none (indices, targets). A rule may call other ops'
 * helpers; it runs only when autodiff meets the op, never when the op's module loads.
 */
export type GradRule = (c: GradContext) => (Sym | null)[];

/**
 * An input of an op that holds indices into something (rows of a table, classes, experts). Where
 * such an input is a graph input (followed back through reshapes), the executable checks every
 * value before a step runs: a device kernel can only skip a bad index, and the optimizer would then
 * apply a step computed from garbage.
 */
export interface IndexInput {
  /** Which input holds the indices. */
  input: number;
  /** Indices must lie in [0, bound), from the node's input types and attributes. */
  bound(inTypes: readonly ValueType[], attrs: Attrs): number;
  /** The one value outside the range that is allowed ("none": -1, an ignore index); null: none. */
  allow?(attrs: Attrs): number | null;
}

/** A one-element hyperparameter input of an op (OpDef.scalarInputs). */
export interface ScalarInput {
  input: number;
  /** How errors name it ('lr'). */
  name: string;
  /** The smallest value allowed (the value must be finite too). */
  min: number;
}

export interface OpDef {
  name: string;
  /** One line: what it computes. */
  doc: string;
  /**
   * Input names; a single name starting with '...' takes any number (>= 1) of inputs; names ending
   * in '?' are optional (they come last; a node may leave out any tail of them).
   */
  inputs: readonly string[];
  outputs: readonly string[];
  attrs: Readonly<Record<string, AttrSpec>>;
  /** Output types from input types; throws a DeepwellError (SHAPE_MISMATCH / INVALID_DTYPE) on misuse. */
  infer(inputs: ValueType[], attrs: Attrs): ValueType[];
  reference(ctx: RefContext): void;
  flops?(inputs: ValueType[], outputs: ValueType[], attrs: Attrs): number;
  /**
   * Bytes the kernel reads and writes, where that is not every input and output whole (a gather
   * reads only the rows it takes); default: the sum of all of them. Used by dryrun's time estimate
   * and by profiles' GB/s.
   */
  bytes?(inputs: ValueType[], outputs: ValueType[], attrs: Attrs): number;
  /** One output element from the same-index input elements: a candidate for elementwise fusion. */
  elementwise?: boolean;
  /**
   * [output, input] pairs that may share storage (an optimizer updating a parameter in place); a
   * function of the input count for a variadic op.
   */
  inplace?: readonly (readonly [number, number])[] | ((inputs: number) => readonly (readonly [number, number])[]);
  /** Outputs that carry no gradient (indices, counts). */
  nonDifferentiable?: boolean;
  /**
   * Inputs read at their exact value whatever their float storage (f32, bf16 or f16, each widened
   * to f32 on load, the node's other types unchanged), as a function of the input count. A cast
   * that only widens (bf16 / f16 -> f32, exact) into such an input may be skipped: the elide-casts
   * pass (passes/elide-casts.ts) has the node read the narrow value, with bitwise the same result.
   * The op's dtype rule and its kernels must take any float dtype there.
   */
  anyFloatInputs?(inputs: number): readonly number[];
  /** Inputs holding indices, checked on the host before each step where they are graph inputs. */
  indexInputs?: readonly IndexInput[];
  /**
   * One-element inputs that are hyperparameters (a learning rate, a step count), as a function of
   * the input count: where such an input is a graph input, the executable checks its value before
   * each step (finite and at least `min`), so a NaN learning rate is refused, not applied.
   */
  scalarInputs?(inputs: number): readonly ScalarInput[];
  /** The gradient rule; an op without one (here or through defineGradient) is not differentiable. */
  gradient?: GradRule;
  /**
   * Fused amax (ops/amax.ts): the output whose amax the op also returns, as one more output f32[1]
   * after its own, when its bool attribute `amax` is true (the largest finite magnitude of the
   * values as stored; 0 when there are none). The fuse-amax pass sets it for a consumer that asks.
   */
  amaxOf?: number;
  /**
   * The consumer side: whether a node with these attributes reads the amax of its input 0 (an FP8
   * quantizer's tensor scale). Such an op declares an optional last input (a name ending in '?',
   * f32[1]) that the fuse-amax pass fills from input 0's producer, so the consumer need not reduce
   * the tensor itself.
   */
  takesAmax?(attrs: Attrs): boolean;
}

/** The op table: each op's definition and its gradient rule (the definition's, or defineGradient's). */
const table = new Map<string, { def: OpDef; gradient?: GradRule }>();

/** The parameters a CPU reference candidate is selected on. */
export interface KernelParams {
  op: string;
  device: string;
  inTypes: ValueType[];
  outTypes: ValueType[];
  attrs: Attrs;
}

export interface KernelCall extends KernelParams {
  inputs: NumArray[];
  outputs: NumArray[];
}

const CPU_DTYPES = new Set(['f32', 'i32', 'f16', 'bf16']);

export function defineOp(def: OpDef): OpDef {
  if (typeof def !== 'object' || def === null) invalid('an op definition', 'defineOp', def);
  if (typeof def.name !== 'string' || !/^[a-z][a-z0-9_]*$/.test(def.name)) invalid('a snake_case op name', 'the name of defineOp', def.name);
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (!strings(def.inputs) || !strings(def.outputs)) invalid('arrays of input and output names', `the inputs and outputs of op ${def.name}`, strings(def.inputs) ? def.outputs : def.inputs);
  if (typeof def.attrs !== 'object' || def.attrs === null || Array.isArray(def.attrs)) invalid('an object of attribute specs', `the attrs of op ${def.name}`, def.attrs);
  for (const k of ['infer', 'reference'] as const) if (typeof def[k] !== 'function') invalid('a function', `${k} of op ${def.name}`, def[k]);
  if (table.has(def.name)) throw new DeepwellError('INTERNAL', `op '${def.name}' is defined twice`);
  if (def.gradient !== undefined && typeof def.gradient !== 'function') throw new DeepwellError('INVALID_ARGUMENT', `Expected a function for the gradient rule of ${def.name} but received ${describe(def.gradient)}`);
  table.set(def.name, { def: Object.freeze(def), ...(def.gradient ? { gradient: def.gradient } : {}) });
  registry.register<KernelCall, void>({
    op: def.name,
    backend: 'cpu',
    name: `${def.name}_reference`,
    priority: 0,
    supports: (p) => {
      if (p.device !== 'cpu') return `runs on the CPU, not ${p.device}`;
      const bad = [...p.inTypes, ...p.outTypes].find((t) => !CPU_DTYPES.has(t.dtype));
      return bad ? `the CPU reference computes f32, f16, bf16 and i32, not ${bad.dtype}` : true;
    },
    run: (c) => def.reference({ inputs: c.inputs, outputs: c.outputs, inTypes: c.inTypes, outTypes: c.outTypes, attrs: c.attrs }),
  });
  return def;
}

/** The bytes a node of `op` reads and writes: its `bytes` rule, else every input and output whole. */
export function bytesMoved(op: string, inputs: ValueType[], outputs: ValueType[], attrs: Attrs): number {
  const rule = getOp(op).bytes;
  if (!Array.isArray(inputs) || !Array.isArray(outputs)) invalid('arrays of value types', `the inputs and outputs of bytesMoved(${op})`, Array.isArray(inputs) ? outputs : inputs);
  return rule ? rule(inputs, outputs, attrs) : [...inputs, ...outputs].reduce((a, t) => a + byteSizeOf(t), 0);
}

export function getOp(name: string): OpDef {
  const d = table.get(name)?.def;
  if (!d) throw new DeepwellError('INVALID_ARGUMENT', `Expected a known op for op name but received ${describe(name)} (known: ${[...table.keys()].sort().join(', ')})`);
  return d;
}

/**
 * Give `op`, defined elsewhere without one, its gradient rule. An op has at most one rule: a second
 * (or one for an op whose defineOp gave `gradient`) is an error, as is an op not yet defined.
 */
export function defineGradient(op: string, rule: GradRule): void {
  const entry = table.get(op);
  if (!entry) throw new DeepwellError('INVALID_ARGUMENT', `Expected an op defined with defineOp for defineGradient but received ${describe(op)}`);
  if (typeof rule !== 'function') throw new DeepwellError('INVALID_ARGUMENT', `Expected a function for the gradient rule of ${op} but received ${describe(rule)}`);
  if (entry.gradient) throw new DeepwellError('INVALID_ARGUMENT', `Expected one gradient rule for op '${op}' but received a second one (it already has a rule)`);
  entry.gradient = rule;
}

/** The gradient rule of `op`; undefined for an op that is not differentiable (or not defined). */
export function gradientRule(op: string): GradRule | undefined {
  return table.get(op)?.gradient;
}

/** The ops that have a gradient rule. */
export function differentiableOps(): string[] {
  return [...table].filter(([, e]) => e.gradient).map(([name]) => name).sort();
}

/** The [output, input] pairs of a node of `def` with `inputs` inputs that may share storage. */
export function inplacePairs(def: OpDef, inputs: number): readonly (readonly [number, number])[] {
  if (typeof def !== 'object' || def === null) invalid('an op definition (getOp(name))', 'inplacePairs', def);
  if (!Number.isSafeInteger(inputs) || inputs < 0) invalid('an input count', 'inplacePairs', inputs);
  const p = def.inplace;
  return typeof p === 'function' ? p(inputs) : (p ?? []);
}

export function listOps(): string[] {
  return [...table.keys()].sort();
}

/** Attributes checked against the schema, defaults filled in. */
export function checkAttrs(def: OpDef, attrs: Record<string, unknown> = {}): Attrs {
  if (!def || typeof def !== 'object' || typeof def.name !== 'string' || typeof def.attrs !== 'object' || def.attrs === null) invalid('an op definition (getOp(name))', 'checkAttrs', def);
  if (typeof attrs !== 'object' || attrs === null || Array.isArray(attrs)) invalid('an object of attributes', `the attributes of ${def.name}`, attrs);
  const out: Record<string, AttrValue> = {};
  for (const k of Object.keys(attrs)) {
    if (!(k in def.attrs)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${Object.keys(def.attrs).join(', ') || '(no attributes)'} for an attribute of ${def.name} but received ${describe(k)}`);
  }
  for (const [k, spec] of Object.entries(def.attrs)) {
    // Only a missing (undefined) attribute takes the default: null is not a value (a NaN written to
    // JSON comes back as null, and must not silently become the default).
    const v = attrs[k] === undefined ? spec.default : attrs[k];
    const what = `attribute '${k}' of ${def.name}`;
    if (v === undefined) throw new DeepwellError('INVALID_ARGUMENT', `Expected a value for ${what} but received none`);
    const ok =
      spec.kind === 'int' ? Number.isSafeInteger(v) :
      spec.kind === 'float' ? typeof v === 'number' && !Number.isNaN(v) :
      spec.kind === 'bool' ? typeof v === 'boolean' :
      spec.kind === 'string' ? typeof v === 'string' && (!spec.oneOf || spec.oneOf.includes(v)) :
      Array.isArray(v) && v.every((x) => Number.isSafeInteger(x));
    if (!ok) {
      // An int is a safe integer: past 2^53 a size, axis or count is not exact.
      const expect = spec.kind === 'string' && spec.oneOf ? `one of ${spec.oneOf.map((s) => `'${s}'`).join(', ')}` : `a${spec.kind === 'int' || spec.kind === 'ints' ? 'n' : ''} ${spec.kind}`;
      throw new DeepwellError('INVALID_ARGUMENT', `Expected ${expect} for ${what} but received ${describe(v)}`);
    }
    out[k] = Array.isArray(v) ? Object.freeze([...v]) : (v as AttrValue);
  }
  return Object.freeze(out);
}

// ---- helpers for shape rules ------------------------------------------------------------------
export function shapeError(op: string, message: string): never {
  const text = (v: unknown) => (typeof v === 'string' ? v : describe(v));
  throw new DeepwellError('SHAPE_MISMATCH', `${text(op)}: ${text(message)}`);
}

export function expectDtype(op: string, input: string, t: ValueType, allowed: readonly string[]): void {
  if (!allowed.includes(t.dtype)) {
    throw new DeepwellError('INVALID_DTYPE', `${op}: Expected ${allowed.join(' or ')} for input '${input}' but received ${shapeStr(t)}`);
  }
}

export function expectRank(op: string, input: string, t: ValueType, min: number, max = min): void {
  if (t.shape.length < min || t.shape.length > max) {
    const want = min === max ? `rank ${min}` : max === Infinity ? `rank >= ${min}` : `rank ${min} to ${max}`;
    shapeError(op, `Expected ${want} for input '${input}' but received ${shapeStr(t)}`);
  }
}

/** Normalise a possibly negative axis; errors name the op. */
export function axisOf(op: string, axis: number, rank: number): number {
  if (typeof op !== 'string') invalid("an op's name (a string)", 'the op of axisOf', op);
  if (!Number.isSafeInteger(rank) || rank < 0) invalid('a rank (an integer >= 0)', `the rank of axisOf`, rank);
  const a = typeof axis === 'number' && axis < 0 ? axis + rank : axis;
  if (typeof axis !== 'number' || !Number.isInteger(a) || a < 0 || a >= rank) shapeError(op, `Expected an axis in [${-rank}, ${rank - 1}] but received ${describe(axis)}`);
  return a;
}

/** Numpy-style broadcast of two shapes. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) shapeError(op, `Expected shapes that broadcast but received [${a.join(', ')}] and [${b.join(', ')}]`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Strides of a row-major shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** For each element of `out` shape, the index into an input of shape `inp` broadcast to it. */
export function broadcastIndex(out: readonly number[], inp: readonly number[]): Int32Array {
  const n = out.reduce((a, b) => a * b, 1);
  const idx = new Int32Array(n);
  const os = stridesOf(out);
  const is = stridesOf(inp);
  const off = out.length - inp.length;
  for (let i = 0; i < n; i++) {
    let rem = i;
    let j = 0;
    for (let d = 0; d < out.length; d++) {
      const c = Math.floor(rem / os[d]!);
      rem -= c * os[d]!;
      const id = d - off;
      if (id >= 0 && inp[id] !== 1) j += c * is[id]!;
    }
    idx[i] = j;
  }
  return idx;
}
