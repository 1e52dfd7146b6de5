/**
 * The reference interpreter: runs a graph node by node with each op's CPU reference, no memory
 * plan, every value kept. It is the definition the compiled executable is checked against, the
 * engine of eager mode, and, with `precision: 'f64'`, what gradient checks run on. Outputs are
 * poisoned (NaN, or a sentinel integer) before each op, so an element an op forgets to write shows.
 */
import { DeepwellError, checkFunction, checkKeys, checkOneOf, describe, float16Unchecked, invalid, type DTypeName } from '@deepwell/core';

// Per-element loops over typed arrays (numbers by construction): the conversions without their checks.
const { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } = float16Unchecked;
import type { Graph, NodeDecl } from './graph.js';
import { checkGraph, withNode } from './graph.js';
import { getOp } from './op.js';
import { numel, shapeStr, type NumArray, type ValueType } from './types.js';

export interface InterpretOptions {
  /** Float values as Float64Array ('f64', for gradient checks) or Float32Array (default). */
  precision?: 'f32' | 'f64';
  /** Called after each node with its outputs: for debugging. */
  onNode?: (node: NodeDecl, outputs: NumArray[]) => void;
}

export const INT_POISON = -0x7ffffff0;

/**
 * The most elements the values interpret computes may hold in all (it keeps every value): 2^28,
 * 1 GiB as f32. The reference is for small graphs and checks; a larger one is refused before
 * anything is allocated.
 */
export const MAX_INTERPRET_ELEMENTS = 2 ** 28;

export function allocFor(t: ValueType, precision: 'f32' | 'f64'): NumArray {
  const n = numel(t.shape);
  if (t.dtype === 'i32') return new Int32Array(n).fill(INT_POISON);
  // f16 and bf16 live widened in float arrays on the CPU: the values are exactly the narrow ones.
  if (t.dtype === 'f32' || t.dtype === 'bf16' || t.dtype === 'f16') return (precision === 'f64' ? new Float64Array(n) : new Float32Array(n)).fill(NaN);
  // FP8 codes (scaled_matmul's and quantize's operands) live as their byte values 0-255.
  if (t.dtype === 'f8e4m3' || t.dtype === 'f8e5m2') return new Float32Array(n).fill(NaN);
  throw new DeepwellError('INVALID_DTYPE', `The CPU reference computes f32, f16, bf16 (widened) and i32, not ${shapeStr(t)}`);
}

/** Check a binding against the value it binds; errors name the binding. */
export function checkBinding(name: string, t: ValueType, data: unknown): NumArray {
  const n = numel(t.shape);
  const ok = t.dtype === 'i32' ? data instanceof Int32Array : data instanceof Float32Array || data instanceof Float64Array;
  if (!ok) throw new DeepwellError('INVALID_DTYPE', `Expected ${t.dtype === 'i32' ? 'an Int32Array' : 'a Float32Array or Float64Array'} for '${name}' (${shapeStr(t)}) but received ${describe(data)}`);
  if ((data as NumArray).length !== n) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${n} elements for '${name}' (${shapeStr(t)}) but received ${(data as NumArray).length}`);
  return data as NumArray;
}

/**
 * Run `graph` with `bindings` for every input, parameter and state value (by name). Returns every
 * value, indexed by value id.
 */
export function interpret(graph: Graph, bindings: Record<string, NumArray>, options: InterpretOptions = {}): NumArray[] {
  checkGraph(graph, 'the graph to interpret');
  checkKeys(options, ['precision', 'onNode'], 'interpret');
  const precision = checkOneOf(options.precision === undefined ? 'f32' : options.precision, ['f32', 'f64'], 'interpret precision');
  if (options.onNode !== undefined) checkFunction(options.onNode, 'interpret onNode');
  if (typeof bindings !== 'object' || bindings === null || Array.isArray(bindings)) invalid('an object of arrays by input, parameter or state name', 'the bindings of interpret', bindings);
  let total = 0;
  for (const n of graph.nodes) {
    for (const o of n.outputs) {
      const count = numel(graph.value(o).type.shape);
      total += count;
      if (total > MAX_INTERPRET_ELEMENTS) {
        throw new DeepwellError('OUT_OF_MEMORY', `Expected at most ${MAX_INTERPRET_ELEMENTS} elements in all for the values interpret computes but received a graph computing more (${graph.describeNode(n)} alone makes ${count}); compile() the graph instead`);
      }
    }
  }
  const vals: NumArray[] = new Array(graph.values.length);
  const named = { ...graph.inputs, ...graph.params, ...graph.state };
  for (const name of Object.keys(bindings)) {
    if (!(name in named)) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected an input, parameter or state name for binding but received ${describe(name)} (unknown name)`);
    }
  }
  for (const [name, id] of Object.entries(named)) {
    if (!(name in bindings)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a value for '${name}' (${shapeStr(graph.value(id).type)}) but received none`);
    const t = graph.value(id).type;
    const data = checkBinding(name, t, bindings[name]);
    // A bf16/f16 binding holds f32 values: rounded to the format on the way in, as compile() stores
    // them (a copy: the caller's array is left as it is). Not in 'f64' gradient checks.
    if (precision === 'f32' && (t.dtype === 'bf16' || t.dtype === 'f16')) {
      const narrow = Float32Array.from(data);
      roundTo(t.dtype, narrow);
      vals[id] = narrow;
    } else vals[id] = data;
  }
  for (const n of graph.nodes) {
    const def = getOp(n.op);
    const inTypes = n.inputs.map((i) => graph.values[i]!.type);
    const outTypes = n.outputs.map((o) => graph.values[o]!.type);
    const outputs = outTypes.map((t) => allocFor(t, precision));
    try {
      def.reference({ inputs: n.inputs.map((i) => vals[i]!), outputs, inTypes, outTypes, attrs: n.attrs });
    } catch (e) {
      throw withNode(graph.describeNode(n), e);
    }
    // bf16/f16 values live widened on the CPU: round each result once to what the format holds, as
    // a kernel storing to that format does. (Not in 'f64' gradient checks: they check rules.)
    if (precision === 'f32') outTypes.forEach((t, k) => roundTo(t.dtype, outputs[k]!));
    n.outputs.forEach((o, k) => (vals[o] = outputs[k]!));
    options.onNode?.(n, outputs);
  }
  return vals;
}

/** Round every element of a widened array to `dtype` (bf16, f16) in place; f32 and i32 unchanged. */
export function roundTo(dtype: DTypeName, a: NumArray): void {
  if (dtype === 'bf16') for (let i = 0; i < a.length; i++) a[i] = bf16BitsToF32(f32ToBf16Bits(a[i]!));
  else if (dtype === 'f16') for (let i = 0; i < a.length; i++) a[i] = f16BitsToF32(f32ToF16Bits(a[i]!));
}

