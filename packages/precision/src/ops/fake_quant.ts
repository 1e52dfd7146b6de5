/**
 * fake_quant: x quantized to a low-precision format and decoded again, in x's dtype — the emulation
 * of a low-precision GEMM operand (quantize → dequantize → BF16 matmul).
 *   x: F[...] (F a float dtype); attributes format (one of FAKE_QUANT_FORMATS), scaleMode
 *   ('floor' | 'rceil', MX only), axis (the axis the blocks run along: a GEMM operand's reduction
 *   axis; negative counts from the end) -> y: F[...], the same shape.
 *
 * What is quantized as one tensor (a "group") and how it is cut into blocks:
 *   - MX formats, NVFP4, 'fp8-block1x128': each line along `axis` is a group, cut into blocks of
 *     32 / 16 / 128 consecutive elements; the line's length must be a whole number of blocks.
 *     NVFP4's FP32 tensor scale g is the whole tensor's (from the amax of all of x's finite
 *     elements), one per GEMM operand as an NVFP4 GEMM takes it, not one per line.
 *   - tensorwise FP8 ('fp8-e4m3', 'fp8-e5m2'): the whole tensor is one group and one block.
 *   - 'fp8-block128x128': each matrix of the last two axes is a group, cut into 128 × 128 tiles;
 *     both axes must be multiples of 128 and `axis` must be one of them (-1 or -2): it changes
 *     nothing, a tile being the same read either way.
 * Within a group, the codecs of quantize.ts (MX, NVFP4, tensorwise FP8) and layout.ts (blockwise
 * FP8: E4M3 elements, m = f32(448 / amax) per block, elements E4M3(f32(x · m)) saturating, the
 * FP32 decode scale s = f32(1 / m), 1 for an all-zero block, so ±Inf becomes ±448·s and NaN stays
 * NaN) define the
 * result bit for bit.
 * Compile-time only (the precision policy inserts it after autodiff), so it has no gradient rule.
 */
import { DeepwellError, describe } from '@deepwell/core';
import { axisOf, defineOp, numel, shapeError, type ValueType } from '@deepwell/ir';
import type { ElementName } from '../elements.js';
import { dequantize2d, quantize2d, type BlockFp8, type Quantized2d } from '../layout.js';
import { FORMATS, dequantize, quantize, type Format, type Quantized } from '../quantize.js';

/** Every format fake_quant (and quant_stats) accepts: quantize's formats and blockwise FP8. */
export const FAKE_QUANT_FORMATS = [...FORMATS, 'fp8-block1x128', 'fp8-block128x128'] as const;
export type FakeQuantFormat = Format | BlockFp8;

export interface FakeQuantBlocking {
  /** How scales are shared (see the file's comment). */
  kind: 'mx' | 'nvfp4' | 'tensorwise' | 'block1x128' | 'block128x128';
  /** Elements per block along the axis (32, 16, 128), the tile's side for 128 × 128, null for tensorwise. */
  block: number | null;
  /** The element format. */
  element: ElementName;
}

const BLOCKING: Readonly<Record<FakeQuantFormat, FakeQuantBlocking>> = Object.freeze({
  'mxfp8-e4m3': { kind: 'mx', block: 32, element: 'e4m3' },
  'mxfp8-e5m2': { kind: 'mx', block: 32, element: 'e5m2' },
  mxfp4: { kind: 'mx', block: 32, element: 'e2m1' },
  nvfp4: { kind: 'nvfp4', block: 16, element: 'e2m1' },
  'fp8-e4m3': { kind: 'tensorwise', block: null, element: 'e4m3' },
  'fp8-e5m2': { kind: 'tensorwise', block: null, element: 'e5m2' },
  'fp8-block1x128': { kind: 'block1x128', block: 128, element: 'e4m3' },
  'fp8-block128x128': { kind: 'block128x128', block: 128, element: 'e4m3' },
});

/** How a fake_quant format shares its scales. */
export function fakeQuantBlocking(format: FakeQuantFormat): FakeQuantBlocking {
  if (typeof format !== 'string' || !Object.hasOwn(BLOCKING, format)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a fake_quant format (${FAKE_QUANT_FORMATS.join(', ')}) but received ${describe(format)}`);
  return { ...BLOCKING[format] };
}

/**
 * A group: the elements x[start + k · stride] for k < rows · cols, read as a row-major
 * [rows, cols] matrix (rows > 1 only for 128 × 128 tiles).
 */
export interface QuantGroup {
  start: number;
  stride: number;
  rows: number;
  cols: number;
}

/** Checks shape, format and axis as fake_quant's shape rule does; returns the normalised axis. */
export function checkFakeQuant(op: string, x: ValueType, format: FakeQuantFormat, axisAttr: number): number {
  if (!['f32', 'bf16', 'f16'].includes(x.dtype)) throw new DeepwellError('INVALID_DTYPE', `${op}: Expected f32, bf16 or f16 for input 'x' but received ${x.dtype}`);
  const rank = x.shape.length;
  if (rank === 0) shapeError(op, 'Expected rank >= 1 for input x but received a scalar');
  const axis = axisOf(op, axisAttr, rank);
  const { kind, block } = fakeQuantBlocking(format);
  if (kind === 'block128x128') {
    if (rank < 2) shapeError(op, `Expected rank >= 2 for input x with fp8-block128x128 (128 × 128 tiles over the last two axes) but received [${x.shape.join(', ')}]`);
    if (axis < rank - 2) shapeError(op, `Expected axis -1 or -2 for fp8-block128x128 (its tiles cover the last two axes) but received ${axisAttr}`);
    const [R, C] = x.shape.slice(-2) as [number, number];
    if (R % 128 !== 0 || C % 128 !== 0) shapeError(op, `Expected the last two axes divisible by 128 for fp8-block128x128's tiles but received [${x.shape.join(', ')}]`);
  } else if (block !== null && x.shape[axis]! % block !== 0) {
    shapeError(op, `Expected a length along axis ${axisAttr} divisible by ${format}'s block of ${block} but received ${x.shape[axis]}`);
  }
  return axis;
}

/** The groups of a tensor of `shape` (see the file's comment), each quantized as one tensor. */
export function quantGroups(shape: readonly number[], format: FakeQuantFormat, axis: number): QuantGroup[] {
  const { kind } = fakeQuantBlocking(format);
  const n = numel(shape);
  if (kind === 'tensorwise') return [{ start: 0, stride: 1, rows: 1, cols: n }];
  if (kind === 'block128x128') {
    const [R, C] = shape.slice(-2) as [number, number];
    return Array.from({ length: n / (R * C) }, (_, m) => ({ start: m * R * C, stride: 1, rows: R, cols: C }));
  }
  const outer = numel(shape.slice(0, axis));
  const len = shape[axis]!;
  const inner = numel(shape.slice(axis + 1));
  const groups: QuantGroup[] = [];
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) groups.push({ start: o * len * inner + i, stride: inner, rows: 1, cols: len });
  return groups;
}

/**
 * A group's values, as the float32 values x holds (the reference interpreter may hold x in float64
 * unrounded; a value beyond float32's range is then the ±Inf a float32 tensor would hold).
 */
export function gather(x: ArrayLike<number>, g: QuantGroup): Float64Array {
  const out = new Float64Array(g.rows * g.cols);
  for (let k = 0; k < out.length; k++) out[k] = Math.fround(x[g.start + k * g.stride]!);
  return out;
}

/** The largest finite |x| over x's float32 values (NVFP4's tensor amax). */
export function tensorAmaxOf(x: ArrayLike<number>): number {
  let amax = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(Math.fround(x[i]!));
    if (a > amax && a !== Infinity) amax = a;
  }
  return amax;
}

/** One group quantized: the codec's result (1-D or 2-D) and its decoded values. */
export type QuantizedGroup = { kind: 'flat'; q: Quantized; y: Float32Array } | { kind: '2d'; q: Quantized2d; y: Float32Array };

/** `tensorAmax`: NVFP4's tensor amax (the whole x's, see the file's comment). */
export function quantizeGroup(values: Float64Array, group: QuantGroup, format: FakeQuantFormat, scaleMode: 'floor' | 'rceil', tensorAmax?: number): QuantizedGroup {
  if (format === 'fp8-block1x128' || format === 'fp8-block128x128') {
    const q = quantize2d(values, group.rows, group.cols, { format });
    return { kind: '2d', q, y: dequantize2d(q) };
  }
  const q = quantize(values, { format, ...(format.startsWith('mx') ? { scaleMode } : {}), ...(format === 'nvfp4' && tensorAmax !== undefined ? { amax: tensorAmax } : {}) });
  return { kind: 'flat', q, y: dequantize(q) };
}

/** The attributes of fake_quant, which quant_stats takes too. */
export const FAKE_QUANT_ATTRS = {
  format: { kind: 'string', oneOf: FAKE_QUANT_FORMATS },
  scaleMode: { kind: 'string', default: 'floor', oneOf: ['floor', 'rceil'] },
  axis: { kind: 'int', default: -1 },
} as const;

export const fakeQuantOp = defineOp({
  name: 'fake_quant',
  doc: 'y = dequantize(quantize(x)) with blocks along `axis` (or 128 × 128 tiles): an emulated low-precision operand',
  inputs: ['x'],
  outputs: ['y'],
  attrs: FAKE_QUANT_ATTRS,
  infer: ([x], attrs) => {
    checkFakeQuant('fake_quant', x!, attrs.format as FakeQuantFormat, attrs.axis as number);
    return [x!];
  },
  reference: ({ inputs: [x], outputs: [y], inTypes, attrs }) => {
    const format = attrs.format as FakeQuantFormat;
    const axis = checkFakeQuant('fake_quant', inTypes[0]!, format, attrs.axis as number);
    // Gather each group, quantize and decode it, scatter it back.
    const tensorAmax = format === 'nvfp4' ? tensorAmaxOf(x!) : undefined;
    for (const g of quantGroups(inTypes[0]!.shape, format, axis)) {
      const d = quantizeGroup(gather(x!, g), g, format, attrs.scaleMode as 'floor' | 'rceil', tensorAmax).y;
      for (let k = 0; k < d.length; k++) y![g.start + k * g.stride] = d[k]!;
    }
  },
  flops: ([x]) => 4 * numel(x!.shape),
});
