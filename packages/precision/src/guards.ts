/**
 * The checks the public entry points of this package share, all worded "Expected X for Y but
 * received Z" (core's helpers underneath). Each entry point checks everything it reads, sizes
 * before values, before it allocates or loops; the codecs behind them trust what they are given.
 */
import { DeepwellError, checkKeys, checkNumber, describe, invalid } from '@deepwell/core';
import { ELEMENTS, type ElementFormat } from './elements.js';

/** The largest finite float32. */
export const F32_MAX = 3.4028234663852886e38;

/** One of ELEMENTS' formats (by identity: a look-alike object could claim any bias or max). */
export function checkElement(fmt: unknown, what: string): ElementFormat {
  // Read at call time: elements.ts imports this module too.
  if (!Object.values(ELEMENTS).includes(fmt as ElementFormat)) invalid('an element format from ELEMENTS (e4m3, e5m2, e2m1)', what, fmt);
  return fmt as ElementFormat;
}

/**
 * Values to quantize: a Float32Array, a Float64Array or an array of numbers. NaN and ±Inf are
 * values the formats define (a NaN block scale, saturation); a finite value beyond float32's range
 * is not an input any GPU operand can hold, so it is refused, with its index, rather than left to
 * overflow a scale.
 */
export function checkValues(x: unknown, what: string): ArrayLike<number> {
  if (x instanceof Float32Array) return x;
  if (!(x instanceof Float64Array) && !(Array.isArray(x) && x.every((v) => typeof v === 'number'))) {
    throw new DeepwellError('INVALID_DTYPE', `Expected a Float32Array, Float64Array or array of numbers for ${what} but received ${describe(x)}`);
  }
  const xs = x as ArrayLike<number>;
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i]!;
    if (v > F32_MAX || v < -F32_MAX) {
      if (Number.isFinite(v)) invalid(`values within float32's range (|x| <= ${F32_MAX})`, `${what}[${i}]`, v);
    }
  }
  return xs;
}

/** A Uint8Array of exactly `length` bytes. */
export function checkBytes(x: unknown, length: number, what: string): Uint8Array {
  if (!(x instanceof Uint8Array)) invalid(`a Uint8Array of ${length} bytes`, what, x);
  if (x.length !== length) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${length} bytes for ${what} but received ${x.length}`, { details: { expected: length, received: x.length } });
  return x;
}

/** An options object with only `known` keys (undefined: none given). */
export function checkOptions<T extends object>(options: unknown, known: readonly string[], what: string): Partial<T> {
  if (options === undefined) return {};
  checkKeys(options, known, what);
  return options as Partial<T>;
}

export function checkScaleMode(mode: unknown, what = 'scaleMode'): 'floor' | 'rceil' {
  if (mode !== 'floor' && mode !== 'rceil') invalid("'floor' or 'rceil'", what, mode);
  return mode;
}

/** A tensor amax: finite, >= 0 and within float32's range (the scales are float32). */
export function checkAmax(amax: unknown, what = 'amax'): number {
  return checkNumber(amax, `${what} (a finite amax, at most float32's largest)`, { min: 0, max: F32_MAX });
}

/**
 * What graph passes read of an ir Graph: its nodes (each with an op, inputs and outputs) and values
 * (each with a type). Structural, so that a Graph from another copy of @deepwell/ir passes too.
 */
export function checkGraphLike(graph: unknown, what: string): void {
  const g = graph as { nodes?: unknown; values?: unknown; params?: unknown } | null;
  if (typeof g !== 'object' || g === null || !Array.isArray(g.nodes) || !Array.isArray(g.values) || typeof g.params !== 'object' || g.params === null) {
    invalid('an ir Graph (nodes, values, params)', what, graph);
  }
  const badNode = g.nodes.findIndex((n) => typeof n !== 'object' || n === null || typeof n.op !== 'string' || !Array.isArray(n.inputs) || !Array.isArray(n.outputs));
  if (badNode >= 0) invalid('a graph node ({ op, inputs, outputs, … })', `${what}: node ${badNode}`, g.nodes[badNode]);
  const badValue = g.values.findIndex((v) => typeof v !== 'object' || v === null || typeof v.type !== 'object' || v.type === null || !Array.isArray(v.type.shape));
  if (badValue >= 0) invalid('a graph value ({ kind, type: { shape, dtype } })', `${what}: value ${badValue}`, g.values[badValue]);
}
