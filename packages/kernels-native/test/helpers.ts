import { DeepwellError } from '@deepwell/core';

/** The DeepwellError `fn` throws; fails the test if it throws something else or nothing. */
export function errorOf(fn: () => unknown): DeepwellError {
  try {
    fn();
  } catch (e) {
    if (DeepwellError.is(e)) return e;
    throw new Error(`expected a DeepwellError, got ${String(e)}`);
  }
  throw new Error('expected a throw, but the call returned');
}
