/**
 * The checks every public function of this package shares, so that a wrong argument is a typed
 * DeepwellError naming the function, never a TypeError from deep inside (the graph builder checks an
 * op's inputs only once it has them; these run before anything is read):
 *   - checkTypes: an op's input ValueTypes (an array of { shape: integers >= 0, dtype }) before its
 *     shape rule reads them;
 *   - checkAttrsObject: an attributes object, its keys among the op's;
 *   - checkSyms: the symbolic tensors a captured call takes;
 *   - checkSizes, checkStrides, checkSpan: the sizes, strides and arrays the math helpers
 *     (attention_math.ts, sparsek_math.ts) index, so that they never read past an array.
 */
import { DeepwellError, checkKeys, describe } from '@deepwell/core';
import { isSym, type NumArray, type ValueType } from '@deepwell/ir';
import type { AttentionSizes, RowStrides } from './attention_math.js';

/** The caller's name a shape rule puts in its errors: a string. */
export function checkOpName(op: unknown): string {
  if (typeof op !== 'string') throw new DeepwellError('INVALID_ARGUMENT', `Expected a string (the caller's name, for errors) for op but received ${describe(op)}`);
  return op;
}

/** `types` as `count` ValueTypes (more are the caller's business). */
export function checkTypes(op: string, types: unknown, count: number, names: readonly string[]): readonly ValueType[] {
  if (!Array.isArray(types) || types.length < count) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected ${count} input types (${names.join(', ')}) but received ${describe(types)}`);
  for (let i = 0; i < count; i++) {
    const t = types[i] as Partial<ValueType> | null;
    const ok = t !== null && typeof t === 'object' && typeof t.dtype === 'string' && Array.isArray(t.shape) && t.shape.every((d) => Number.isSafeInteger(d) && d >= 0);
    if (!ok) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected a value type { shape: integers >= 0, dtype } for input '${names[i]}' but received ${describe(t)}`);
  }
  return types as readonly ValueType[];
}

/**
 * An attributes object (absent: none); with `known`, its keys among them (without, the op's
 * checkAttrs names an unknown one when the node is made).
 */
export function checkAttrsObject(fn: string, attrs: unknown, known?: readonly string[]): Record<string, unknown> {
  if (attrs === undefined) return {};
  if (attrs === null || typeof attrs !== 'object' || Array.isArray(attrs)) throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected an attributes object but received ${describe(attrs)}`);
  if (known) checkKeys(attrs, known, fn, { noun: 'attribute' });
  return attrs as Record<string, unknown>;
}

/** Each named argument a Sym (of one graph: the builder checks that when it makes the node). */
export function checkSyms(fn: string, syms: Readonly<Record<string, unknown>>): void {
  for (const [name, s] of Object.entries(syms)) {
    if (!isSym(s)) throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected a symbolic tensor (a Sym, inside capture()) for '${name}' but received ${describe(s)}`);
  }
}

const isCount = (x: unknown, min: number) => typeof x === 'number' && Number.isSafeInteger(x) && x >= min;

/** Sizes a math helper takes: B, Sq, Sk >= 0, H, Hkv, D >= 1, H a multiple of Hkv, causal a boolean, scale finite. */
export function checkSizes(fn: string, n: unknown, extra: readonly string[] = []): AttentionSizes {
  const o = n as Record<string, unknown> | null;
  if (o === null || typeof o !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected the sizes of an attention call { B, H, Hkv, Sq, Sk, D, causal, scale } but received ${describe(n)}`);
  for (const k of ['B', 'Sq', 'Sk']) if (!isCount(o[k], 0)) throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected an integer >= 0 for size ${k} but received ${describe(o[k])}`);
  for (const k of ['H', 'Hkv', 'D', ...extra]) if (!isCount(o[k], 1)) throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected an integer >= 1 for size ${k} but received ${describe(o[k])}`);
  if ((o.H as number) % (o.Hkv as number) !== 0) throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected H (${o.H}) a multiple of Hkv (${o.Hkv}) but received Hkv ${o.Hkv}`);
  if (typeof o.causal !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected a boolean for causal but received ${describe(o.causal)}`);
  if (typeof o.scale !== 'number' || !Number.isFinite(o.scale)) throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected a finite number for scale but received ${describe(o.scale)}`);
  const elements = (o.B as number) * (o.H as number) * Math.max(o.Sq as number, o.Sk as number) * (o.D as number);
  if (!Number.isSafeInteger(elements)) throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected sizes whose element count is a safe integer but received B ${o.B}, H ${o.H}, S ${Math.max(o.Sq as number, o.Sk as number)}, D ${o.D}`);
  return o as unknown as AttentionSizes;
}

/** Row strides: integers >= 0. */
export function checkStrides(fn: string, t: unknown, name: string): RowStrides {
  const o = t as Record<string, unknown> | null;
  if (o === null || typeof o !== 'object' || !['offset', 'b', 'h', 's'].every((k) => isCount(o[k], 0))) {
    throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected row strides { offset, b, h, s } (integers >= 0) for ${name} but received ${describe(t)}`);
  }
  return o as unknown as RowStrides;
}

/** `x` an array of numbers holding every element (b, h, s, d) of `heads` heads, S rows, at `st`. */
export function checkSpan(fn: string, x: unknown, name: string, st: RowStrides, B: number, heads: number, S: number, D: number): NumArray {
  if (!(x instanceof Float32Array || x instanceof Float64Array || x instanceof Int32Array)) {
    throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected a Float32Array, Float64Array or Int32Array for ${name} but received ${describe(x)}`);
  }
  if (B === 0 || heads === 0 || S === 0) return x;
  const last = st.offset + (B - 1) * st.b + (heads - 1) * st.h + (S - 1) * st.s + D;
  if (last > x.length) throw new DeepwellError('SHAPE_MISMATCH', `${fn}: Expected at least ${last} elements for ${name} (its strides reach that far) but received ${x.length}`);
  return x;
}
