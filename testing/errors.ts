// Shared by every package's tests: the DeepwellError a call throws. It imports core's types only,
// so a test of core's own sources does not load a second (built) copy of core beside them.
import type { DeepwellError } from '@deepwell/core';

const BRAND = Symbol.for('deepwell.error');

/** The DeepwellError `fn` throws; fails if it throws something else or nothing. */
export function errorOf(fn: () => unknown): DeepwellError {
  try {
    fn();
  } catch (e) {
    if (typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true) return e as DeepwellError;
    throw new Error(`expected a DeepwellError, got ${String(e)}`);
  }
  throw new Error('expected a throw, but the call returned');
}
