/**
 * fake_quant: x quantized to a low-precision format and decoded again, in x's dtype — the emulation
 * of a low-precision GEMM operand (quantize → dequantize → BF16 matmul).
 *   x: F[...] (F a float dtype); attributes format (a @deepwell/precision format), scaleMode
 *   ('floor' | 'rceil', MX only), axis (the axis the blocks run along: a GEMM operand's reduction
 *   axis; negative counts from the end) -> y: F[...], the same shape.
 * Blocks are consecutive elements along `axis`, whose length must be a whole number of blocks.
 * Compile-time only (the precision policy inserts it after autodiff), so it has no gradient rule.
 */
import { DeepwellError } from '@deepwell/core';
import { axisOf, defineOp, numel, shapeError, type ValueType } from '@deepwell/ir';
import { FORMATS, blockSizeOf, dequantize, quantize, type Format } from '../quantize.js';

function layout(x: ValueType, axisAttr: number): { outer: number; len: number; inner: number } {
  const axis = axisOf('fake_quant', axisAttr, x.shape.length);
  return { outer: numel(x.shape.slice(0, axis)), len: x.shape[axis]!, inner: numel(x.shape.slice(axis + 1)) };
}

export const fakeQuantOp = defineOp({
  name: 'fake_quant',
  doc: 'y = dequantize(quantize(x)) with blocks along `axis`: an emulated low-precision operand',
  inputs: ['x'],
  outputs: ['y'],
  attrs: {
    format: { kind: 'string', oneOf: FORMATS },
    scaleMode: { kind: 'string', default: 'floor', oneOf: ['floor', 'rceil'] },
    axis: { kind: 'int', default: -1 },
  },
  infer: ([x], attrs) => {
    if (!['f32', 'bf16', 'f16'].includes(x!.dtype)) throw new DeepwellError('INVALID_DTYPE', `fake_quant: Expected f32, bf16 or f16 for input 'x' but received ${x!.dtype}`);
    if (x!.shape.length === 0) shapeError('fake_quant', 'Expected rank >= 1 for input x but received a scalar');
    const { len } = layout(x!, attrs.axis as number);
    const block = blockSizeOf(attrs.format as Format);
    if (block !== null && len % block !== 0) shapeError('fake_quant', `Expected a length along axis ${attrs.axis} divisible by ${attrs.format}'s block of ${block} but received ${len}`);
    return [x!];
  },
  reference: ({ inputs: [x], outputs: [y], inTypes, attrs }) => {
    const { outer, len, inner } = layout(inTypes[0]!, attrs.axis as number);
    const format = attrs.format as Format;
    const mode = format.startsWith('mx') ? { scaleMode: attrs.scaleMode as 'floor' | 'rceil' } : {};
    if (blockSizeOf(format) === null) {
      y!.set(dequantize(quantize(Float64Array.from(x!), { format })));
      return;
    }
    // Gather each line along the axis, quantize it, scatter it back.
    const line = new Float64Array(len);
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < inner; i++) {
        for (let k = 0; k < len; k++) line[k] = x![(o * len + k) * inner + i]!;
        const d = dequantize(quantize(line, { format, ...mode }));
        for (let k = 0; k < len; k++) y![(o * len + k) * inner + i] = d[k]!;
      }
  },
  flops: ([x]) => 4 * numel(x!.shape),
});
