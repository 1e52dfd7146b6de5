/**
 * The sizes nn refuses before it builds anything, and the small checks its modules share.
 *
 * A module only declares its parameters (shapes, no memory), but a GPT of 2^31 layers would still
 * build 2^31 blocks until V8 ran out of heap, and a model of 10^13 parameters would get as far as
 * compile before failing to allocate. So every size is bounded up front, and a GPT's parameter count
 * is worked out from its config (arithmetic only) and refused, dryrun-style, when it exceeds what one
 * GPU could hold as f32 weights (MAX_PARAMETERS: 2^35, 128 GiB; the largest GPU Deepwell targets
 * has 141 GB, and data parallelism keeps a whole copy on each).
 */
import { DeepwellError, checkNumber, describe } from '@deepwell/core';
import { checkSym as irCheckSym, type Sym } from '@deepwell/ir';

/** Largest size of any one dimension: a vocabulary, a context, a width, a hidden size (2^24). */
export const MAX_SIZE = 2 ** 24;
/** Most transformer blocks in a GPT. */
export const MAX_LAYERS = 1024;
/** Most experts in an MoE layer. */
export const MAX_EXPERTS = 4096;
/** Most parameters of a model (or of one parameter tensor): 2^35, 128 GiB as f32. */
export const MAX_PARAMETERS = 2 ** 35;
/** The smallest normal f32 (2^-126): a norm's eps below it is 0 (or subnormal) in an f32 kernel. */
export const MIN_EPS = 2 ** -126;

const GB = 1e9;

/** Refuses `count` parameters above MAX_PARAMETERS, saying how many bytes they would take as f32. */
export function checkParameterCount(count: number, what: string): void {
  if (count > MAX_PARAMETERS) {
    throw new DeepwellError(
      'INVALID_ARGUMENT',
      `Expected at most ${MAX_PARAMETERS.toLocaleString('en')} parameters (${((4 * MAX_PARAMETERS) / GB).toFixed(1)} GB as f32, what one GPU holds) for ${what} but received one of ${count.toLocaleString('en', { maximumFractionDigits: 0 })} parameters (${((4 * count) / GB).toLocaleString('en', { maximumFractionDigits: 1 })} GB as f32); nothing was built`,
      { details: { parameters: count, bytes: 4 * count, limit: MAX_PARAMETERS } },
    );
  }
}

/** An optional boolean option, or its default. */
export function optionalBoolean(value: unknown, what: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `Expected a boolean for ${what} but received ${describe(value)}`);
  return value;
}

/** An initialisation's standard deviation: a finite number >= 0 (0 starts the weights at zero), or the default. */
export function optionalStd(value: unknown, what: string, fallback: number): number {
  return value === undefined ? fallback : checkNumber(value, what, { min: 0, max: 1e6 });
}

/** An options argument: undefined (no options) or a plain object. */
export function optionsObject<T extends object>(value: T | undefined, what: string): T {
  if (value === undefined) return {} as T;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new DeepwellError('INVALID_ARGUMENT', `Expected an options object for ${what} but received ${describe(value)}`);
  return value;
}

/** A symbolic tensor of the graph being captured (a module's forward takes nothing else): ir's one Sym check. */
export const checkSym: (value: unknown, what: string) => Sym = irCheckSym;
