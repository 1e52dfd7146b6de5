/**
 * Delayed scaling for tensorwise FP8 (as Transformer Engine's): the scale a step uses comes from
 * the amax values of earlier steps, so quantizing needs no pass over the tensor first. An
 * AmaxHistory keeps the last `length` amaxes; `scale()` is the decode scale fp8Scaling gives for
 * max(history) (f32(1 / f32(max_elem / amax))), 1 while the history is empty or all zero. Non-finite
 * amaxes are refused: they mark a step to skip, not a scale; so are amaxes beyond float32's range
 * (their scale would overflow to Infinity). A history holds at most 65536 amaxes.
 */
import { DeepwellError, describe, invalid } from '@deepwell/core';
import { ELEMENTS, decodeCode, encodeValue, type ElementFormat } from './elements.js';
import { amaxOf, fp8Scaling } from './blocks.js';
import { F32_MAX, checkAmax, checkElement, checkValues } from './guards.js';

export class AmaxHistory {
  readonly #values: number[] = [];
  constructor(readonly length = 16, readonly element: ElementFormat = ELEMENTS.e4m3) {
    if (!Number.isInteger(length) || length < 1 || length > 65536) throw new DeepwellError('INVALID_ARGUMENT', `Expected a positive integer history length (at most 65536) but received ${describe(length)}`);
    checkElement(element, 'the AmaxHistory element format');
  }

  /** Record one step's amax (the oldest drops out past `length`). */
  push(amax: number): void {
    checkAmax(amax, 'an amax for the history');
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
    let amax = 0;
    for (const v of this.#values) amax = Math.max(amax, v);
    return fp8Scaling(amax, this.element.max);
  }

  /**
   * Quantize x with the history's current scale (saturating: values above the delayed amax clamp),
   * then record x's own amax. Returns the codes and the scale they were made with.
   */
  quantize(x: ArrayLike<number>): { data: Uint8Array; scale: number } {
    checkValues(x, 'the values to quantize');
    const { mul, scale: s } = this.#scaling();
    const data = new Uint8Array(x.length);
    for (let i = 0; i < x.length; i++) data[i] = encodeValue(this.element, Math.fround(x[i]! * mul), true);
    const { amax, special } = amaxOf(x, 0, x.length);
    if (!special) this.push(amax);
    return { data, scale: s };
  }

  dequantize(q: { data: Uint8Array; scale: number }): Float32Array {
    if (typeof q !== 'object' || q === null || !(q.data instanceof Uint8Array)) invalid('{ data: Uint8Array, scale } from AmaxHistory.quantize', 'AmaxHistory.dequantize', q);
    const s = q.scale;
    if (typeof s !== 'number' || !(s > 0 && s <= F32_MAX) || Math.fround(s) !== s) invalid('a float32 decode scale > 0', 'the scale to dequantize with', s);
    return Float32Array.from(q.data, (c) => decodeCode(this.element, c) * s);
  }
}
