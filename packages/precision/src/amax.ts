/**
 * Delayed scaling for tensorwise FP8 (as Transformer Engine's): the scale a step uses comes from
 * the amax values of earlier steps, so quantizing needs no pass over the tensor first. An
 * AmaxHistory keeps the last `length` amaxes; `scale()` is f32(max(history) / max_elem), 1 while the
 * history is empty or all zero. Non-finite amaxes are refused: they mark a step to skip, not a scale.
 */
import { DeepwellError, describe } from '@deepwell/core';
import { ELEMENTS, decodeElement, encodeElement, type ElementFormat } from './elements.js';
import { amaxOf } from './blocks.js';

export class AmaxHistory {
  readonly #values: number[] = [];
  constructor(readonly length = 16, readonly element: ElementFormat = ELEMENTS.e4m3) {
    if (!Number.isInteger(length) || length < 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected a positive integer history length but received ${describe(length)}`);
  }

  /** Record one step's amax (the oldest drops out past `length`). */
  push(amax: number): void {
    if (!Number.isFinite(amax) || amax < 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a finite amax >= 0 for the history but received ${describe(amax)}`);
    this.#values.push(amax);
    if (this.#values.length > this.length) this.#values.shift();
  }

  get values(): readonly number[] {
    return this.#values;
  }

  /** The decode scale for the next step: f32(max(history) / max_elem), or 1. */
  scale(): number {
    const m = Math.max(0, ...this.#values);
    return m === 0 ? 1 : Math.fround(m / this.element.max);
  }

  /**
   * Quantize x with the history's current scale (saturating: values above the delayed amax clamp),
   * then record x's own amax. Returns the codes and the scale they were made with.
   */
  quantize(x: ArrayLike<number>): { data: Uint8Array; scale: number } {
    const s = this.scale();
    const data = new Uint8Array(x.length);
    for (let i = 0; i < x.length; i++) data[i] = encodeElement(this.element, Math.fround(x[i]! / s));
    const { amax, special } = amaxOf(x, 0, x.length);
    if (!special) this.push(amax);
    return { data, scale: s };
  }

  dequantize(q: { data: Uint8Array; scale: number }): Float32Array {
    return Float32Array.from(q.data, (c) => decodeElement(this.element, c) * q.scale);
  }
}
