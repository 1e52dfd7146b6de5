/**
 * Delayed scaling for tensorwise FP8 (as Transformer Engine's): the scale a step uses comes from
 * the amax values of earlier steps, so quantizing needs no pass over the tensor first. An
 * AmaxHistory keeps the last `length` amaxes; `scale()` is the decode scale fp8Scaling gives for
 * max(history) (f32(1 / f32(max_elem / amax))), 1 while the history is empty or all zero. Non-finite amaxes are refused: they mark a step to skip, not a scale.
 */
import { DeepwellError, describe } from '@deepwell/core';
import { ELEMENTS, decodeElement, encodeElement, type ElementFormat } from './elements.js';
import { amaxOf, fp8Scaling } from './blocks.js';

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

  /** The decode scale for the next step: f32(1 / m), m = f32(max_elem / max(history)), or 1. */
  scale(): number {
    return this.#scaling().scale;
  }

  #scaling(): { mul: number; scale: number } {
    return fp8Scaling(Math.max(0, ...this.#values), this.element.max);
  }

  /**
   * Quantize x with the history's current scale (saturating: values above the delayed amax clamp),
   * then record x's own amax. Returns the codes and the scale they were made with.
   */
  quantize(x: ArrayLike<number>): { data: Uint8Array; scale: number } {
    const { mul, scale: s } = this.#scaling();
    const data = new Uint8Array(x.length);
    for (let i = 0; i < x.length; i++) data[i] = encodeElement(this.element, Math.fround(x[i]! * mul));
    const { amax, special } = amaxOf(x, 0, x.length);
    if (!special) this.push(amax);
    return { data, scale: s };
  }

  dequantize(q: { data: Uint8Array; scale: number }): Float32Array {
    return Float32Array.from(q.data, (c) => decodeElement(this.element, c) * q.scale);
  }
}
