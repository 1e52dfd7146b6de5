/**
 * Fused amax: an op that writes a tensor an FP8 quantizer will read can also return that tensor's
 * amax, so the tensorwise scale costs no second pass over it. The op declares `amaxOf` (which
 * output) and the bool attribute `amax` (AMAX_ATTR); with `amax: true` its outputs gain one f32[1]
 * after its own: the largest finite magnitude of that output's values as stored (rounded to its
 * dtype; NaN and ±Inf ignored, 0 when there are none), as the quantizer's own reduction computes
 * it. The fuse-amax pass (passes/fuse-amax.ts) sets the attribute where a consumer asks
 * (OpDef.takesAmax) and wires the new output to that consumer.
 */
import { float16Unchecked, invalid } from '@deepwell/core';

// Per element of a typed array (numbers by construction): the conversions without their checks.
const { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } = float16Unchecked;
import type { AttrSpec } from '../op.js';
import type { Attrs, NumArray, ValueType } from '../types.js';

export const AMAX_ATTR: Readonly<Record<'amax', AttrSpec>> = { amax: { kind: 'bool', default: false } };

/** An op's output types with the amax output appended when its `amax` attribute is set. */
export function withAmax(types: ValueType[], attrs: Attrs): ValueType[] {
  if (!Array.isArray(types)) invalid('an array of value types', 'withAmax', types);
  if (typeof attrs !== 'object' || attrs === null) invalid('an object of attributes', 'withAmax', attrs);
  return attrs.amax === true ? [...types, { shape: [1], dtype: 'f32' }] : types;
}

/** The largest finite magnitude of `values` stored as `dtype` (each value rounded to it first). */
export function storedAmax(values: ArrayLike<number>, dtype: string): number {
  if (typeof values !== 'object' || values === null || typeof values.length !== 'number') invalid('an array of numbers', 'storedAmax', values);
  const round = dtype === 'bf16' ? (v: number) => bf16BitsToF32(f32ToBf16Bits(v)) : dtype === 'f16' ? (v: number) => f16BitsToF32(f32ToF16Bits(v)) : Math.fround;
  let m = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(round(values[i]!));
    if (a > m && a !== Infinity) m = a;
  }
  return m;
}

/** A reference's last step: the amax output (the last one) of output `of`, when asked for. */
export function writeAmax(outputs: NumArray[], outTypes: ValueType[], of: number, attrs: Attrs): void {
  if (typeof attrs !== 'object' || attrs === null) invalid('an object of attributes', 'writeAmax', attrs);
  if (attrs.amax !== true) return;
  if (!Array.isArray(outputs) || !Array.isArray(outTypes) || !Number.isSafeInteger(of) || !outputs[of] || !outTypes[of] || outputs.length < 2) {
    invalid('the outputs and output types of a node with an amax output', 'writeAmax', outputs);
  }
  outputs.at(-1)![0] = storedAmax(outputs[of]!, outTypes[of]!.dtype);
}
