/** The few types every part of the IR shares. */
import { invalid, type DTypeName } from '@deepwell/core';

/** Host arrays the CPU reference computes on: f32 (f64 in gradient checks) and i32. */
export type NumArray = Float32Array | Float64Array | Int32Array;

export interface ValueType {
  readonly shape: readonly number[];
  readonly dtype: DTypeName;
}

export type AttrValue = number | string | boolean | readonly number[];
export type Attrs = Readonly<Record<string, AttrValue>>;

export function numel(shape: readonly number[]): number {
  if (!Array.isArray(shape)) invalid('an array of sizes', 'numel', shape);
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(t: ValueType): string {
  return `${t.dtype}[${t.shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
