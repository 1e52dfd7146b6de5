/**
 * The float dtype rule the ops share (not an op). A float input may be f32, bf16 or f16; unless an
 * op says otherwise, the float inputs of one op share one dtype and its float outputs take it, so
 * mixed precision is always explicit in the graph (a cast node), never an implicit promotion. On
 * the CPU bf16 and f16 values live widened in float arrays, so the references compute the same way
 * for every float dtype; rounding a narrow output is the interpreter's job, not the op's.
 */
import { DeepwellError } from '@deepwell/core';
import { expectDtype } from '../op.js';
import { shapeStr, type ValueType } from '../types.js';

export const FLOAT_DTYPES = ['f32', 'bf16', 'f16'] as const;
export type FloatDType = (typeof FLOAT_DTYPES)[number];

export function isFloat(dtype: string): dtype is FloatDType {
  return (FLOAT_DTYPES as readonly string[]).includes(dtype);
}

/** Input `name` must be f32, bf16 or f16; returns its dtype. */
export function expectFloat(op: string, name: string, t: ValueType): FloatDType {
  expectDtype(op, name, t, FLOAT_DTYPES);
  return t.dtype as FloatDType;
}

/**
 * The named inputs must all be floats of one dtype; returns it. The dtype to match is that of the
 * first float input; an error names the input that differs, the one it must match, and both dtypes.
 */
export function sameFloat(op: string, inputs: readonly (readonly [name: string, t: ValueType])[]): FloatDType {
  const ref = inputs.find(([, t]) => isFloat(t.dtype));
  if (!ref) return expectFloat(op, inputs[0]![0], inputs[0]![1]);
  const [refName, refType] = ref;
  for (const [name, t] of inputs) {
    if (t.dtype === refType.dtype) continue;
    const why = isFloat(t.dtype)
      ? `the dtype of input '${refName}' ${shapeStr(refType)}; the float inputs of ${op} share one dtype`
      : `a float dtype, the same as input '${refName}' ${shapeStr(refType)}`;
    throw new DeepwellError('INVALID_DTYPE', `${op}: Expected ${refType.dtype} for input '${name}' but received ${shapeStr(t)} (${why})`);
  }
  return refType.dtype as FloatDType;
}
