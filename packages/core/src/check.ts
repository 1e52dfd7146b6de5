/** Option checks shared by every package, all worded "Expected X for Y but received Z". */
import { invalid } from './errors.js';

export function checkInteger(value: unknown, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    invalid(`an integer ${range}`, what, value);
  }
  return value;
}

export function checkShape(shape: unknown, what = 'shape'): readonly number[] {
  if (!Array.isArray(shape)) invalid('an array of non-negative integers', what, shape);
  shape.forEach((d, i) => checkInteger(d, `${what}[${i}]`));
  const numel = shape.reduce((a: number, b: number) => a * b, 1);
  if (!Number.isSafeInteger(numel)) invalid('a shape whose element count is a safe integer', what, shape);
  return Object.freeze([...shape]);
}

export function checkOneOf<T extends string>(value: unknown, allowed: readonly T[], what: string): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    invalid(`one of ${allowed.map((a) => `'${a}'`).join(', ')}`, what, value);
  }
  return value as T;
}

export function checkFunction(value: unknown, what: string): (...args: never[]) => unknown {
  if (typeof value !== 'function') invalid('a function', what, value);
  return value as (...args: never[]) => unknown;
}
