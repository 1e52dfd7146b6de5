/**
 * quantize: x quantized into FP8 GEMM operands, rowwise, columnwise or both from one read — what
 * the precision policy's native rewrite puts before each scaled_matmul.
 *
 *   x: f32 | bf16 | f16 [rows, cols] (blockwise formats also [batch, rows, cols]: each [rows, cols]
 *   slice quantized on its own, as a MoE's expert weights [E, K, N] are, every output then with the
 *   batch dimension first); optionally amax: f32[1], x's amax (tensorwise FP8 only: the
 *   largest finite |x|, from the kernel that wrote x; ir's fuse-amax pass supplies it, so the
 *   quantizer skips its own pass over x); attributes format ('fp8-e4m3' | 'fp8-e5m2' tensorwise,
 *   'fp8-block1x128', 'fp8-block128x128'), direction ('rowwise' | 'columnwise' | 'both')
 *   -> for each direction (rowwise first) the codes, f8e4m3 | f8e5m2: [rows, cols] rowwise (blocks
 *      along a row: K = cols), [cols, rows] columnwise (blocks down a column, stored transposed:
 *      K = rows); then the scales: one f32[1] for tensorwise FP8 (the tensor's, whichever
 *      direction), else each direction's f32 block scales in the layout scaled_matmul reads
 *      (scaleShape(scaling, 'gemm', R, K) of the stored [R, K] matrix).
 *   So: rowwise or columnwise -> (codes, scales); both -> (rowCodes, colCodes, scales) for
 *   tensorwise FP8, (rowCodes, rowScales, colCodes, colScales) for blockwise. quantizeOutputs()
 *   names the indices.
 *
 * Every stored [R, K] part is a K-major scaled_matmul operand as it is: the forward GEMM reads x's
 * rowwise codes, the weight-gradient GEMM its columnwise ones; a weight's columnwise codes are Wᵀ for
 * the data-gradient GEMM. The codecs are layout.ts's quantize2d (blocks.ts's fp8Scaling: m =
 * f32(max_elem / amax) over the whole tensor for tensorwise FP8, f32(448 / amax) per block for
 * blockwise, codes of f32(x · m), decode scale s = f32(1 / m)), bit for bit; scales are
 * dequantization scales (x ≈ s · decode(code)).
 *
 * On the CPU the codes are held as their byte values in a float array (scaled_matmul's convention,
 * see ops/scaled_matmul.ts), so the reference interpreter runs a natively rewritten graph; the
 * compiled CPU step does not (its reference candidate declines f8 dtypes). CUDA candidate:
 * ../cuda/quantize.ts (native/quant/quantize.cu, after quantAmax for tensorwise FP8).
 * Compile-time only (the policy inserts it after autodiff), so it has no gradient rule.
 */
import { DeepwellError, checkOneOf, describe, invalid } from '@deepwell/core';
import { defineOp, shapeError, type Attrs, type ValueType } from '@deepwell/ir';
import { gemmBlockScales, quantize2d, type BlockFp8, type Direction } from '../layout.js';
import { scaleShape, type Scaling } from './scaled_matmul.js';

export const QUANTIZE_FORMATS = ['fp8-e4m3', 'fp8-e5m2', 'fp8-block1x128', 'fp8-block128x128'] as const;
export type QuantizeFormat = (typeof QUANTIZE_FORMATS)[number];
export const QUANTIZE_DIRECTIONS = ['rowwise', 'columnwise', 'both'] as const;
export type QuantizeDirection = (typeof QUANTIZE_DIRECTIONS)[number];

/** The scaled_matmul scaling of a format's scales. */
export function scalingOf(format: QuantizeFormat): Scaling {
  checkOneOf(format, QUANTIZE_FORMATS, 'the quantize format');
  return format === 'fp8-block1x128' ? 'block1x128' : format === 'fp8-block128x128' ? 'block128x128' : 'tensor';
}

export const isTensorwise = (format: QuantizeFormat): boolean => scalingOf(format) === 'tensor';

/** Which output holds what (null: not written by this direction). */
export interface QuantizeOutputs {
  rowCodes: number | null;
  rowScales: number | null;
  colCodes: number | null;
  colScales: number | null;
}

export function quantizeOutputs(format: QuantizeFormat, direction: QuantizeDirection): QuantizeOutputs {
  checkOneOf(format, QUANTIZE_FORMATS, 'the quantize format');
  checkOneOf(direction, QUANTIZE_DIRECTIONS, 'the quantize direction');
  if (direction === 'rowwise') return { rowCodes: 0, rowScales: 1, colCodes: null, colScales: null };
  if (direction === 'columnwise') return { rowCodes: null, rowScales: null, colCodes: 0, colScales: 1 };
  return isTensorwise(format) ? { rowCodes: 0, colCodes: 1, rowScales: 2, colScales: 2 } : { rowCodes: 0, rowScales: 1, colCodes: 2, colScales: 3 };
}

const directionsOf = (d: QuantizeDirection): Direction[] => (d === 'both' ? ['rowwise', 'columnwise'] : [d]);

/** The slices of a quantize input: x.shape[0] for a batch [batch, rows, cols], else 1 (after checkQuantize). */
export const batchOf = (x: ValueType): number => (x.shape.length === 3 ? x.shape[0]! : 1);

/** Checks x and the attributes as the shape rule does; returns [rows, cols] (of each slice of a batch). */
export function checkQuantize(op: string, x: ValueType, attrs: Attrs): [number, number] {
  if (typeof op !== 'string') invalid('an op name', 'checkQuantize', op);
  if (typeof attrs !== 'object' || attrs === null) invalid('an attributes object', `${op}'s attributes`, attrs);
  const ok = typeof x === 'object' && x !== null && typeof x.dtype === 'string' && Array.isArray(x.shape) && x.shape.every((d: number) => Number.isSafeInteger(d) && d >= 0);
  if (!ok) invalid("an input type ({ shape: non-negative integers, dtype })", `${op}'s input 'x'`, x);
  const format = attrs.format as QuantizeFormat;
  const direction = attrs.direction as QuantizeDirection;
  if (!(QUANTIZE_FORMATS as readonly unknown[]).includes(format)) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected one of ${QUANTIZE_FORMATS.join(', ')} for attribute 'format' but received ${describe(format)}`);
  if (!(QUANTIZE_DIRECTIONS as readonly unknown[]).includes(direction)) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected one of ${QUANTIZE_DIRECTIONS.join(', ')} for attribute 'direction' but received ${describe(direction)}`);
  if (!['f32', 'bf16', 'f16'].includes(x.dtype)) throw new DeepwellError('INVALID_DTYPE', `${op}: Expected f32, bf16 or f16 for input 'x' but received ${x.dtype}`);
  const batched = x.shape.length === 3 && !isTensorwise(format);
  if (x.shape.length !== 2 && !batched) shapeError(op, `Expected a rank-2 tensor [rows, cols]${isTensorwise(format) ? '' : ' or a batch of them [batch, rows, cols]'} for input 'x' but received [${x.shape.join(', ')}]`);
  const [rows, cols] = x.shape.slice(-2) as [number, number];
  const batch = batched ? x.shape[0]! : 1;
  if (batch < 1) shapeError(op, `Expected a batch >= 1 but received [${x.shape.join(', ')}]`);
  if (rows < 1 || cols < 1) shapeError(op, `Expected rows and cols >= 1 but received [${rows}, ${cols}]`);
  if (format === 'fp8-block128x128' && (rows % 128 !== 0 || cols % 128 !== 0)) shapeError(op, `Expected rows and cols divisible by 128 for fp8-block128x128's tiles but received [${rows}, ${cols}]`);
  if (format === 'fp8-block1x128') {
    for (const d of directionsOf(direction)) {
      const along = d === 'rowwise' ? cols : rows;
      if (along % 128 !== 0) shapeError(op, `Expected a length along the blocks (${d === 'rowwise' ? 'cols' : 'rows'}) divisible by 128 for fp8-block1x128 (${d}) but received [${rows}, ${cols}]`);
    }
  }
  return [rows, cols];
}

/** Checks quantize's optional amax input: f32[1], for tensorwise FP8 only. */
export function checkAmaxInput(op: string, amax: ValueType, attrs: Attrs): void {
  if (!isTensorwise(attrs.format as QuantizeFormat)) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected no 'amax' input for ${String(attrs.format)} (only tensorwise FP8 takes the tensor's amax) but received one`);
  if (amax.dtype !== 'f32' || amax.shape.length !== 1 || amax.shape[0] !== 1) shapeError(op, `Expected f32[1] for input 'amax' but received ${amax.dtype}[${amax.shape.join(', ')}]`);
}

export const quantizeOp = defineOp({
  name: 'quantize',
  doc: 'x quantized into K-major FP8 GEMM operands (tensorwise or blockwise scales), rowwise, columnwise (transposed) or both from one read',
  inputs: ['x', 'amax?'],
  outputs: ['codes...', 'scales...'],
  attrs: {
    format: { kind: 'string', oneOf: QUANTIZE_FORMATS },
    direction: { kind: 'string', default: 'rowwise', oneOf: QUANTIZE_DIRECTIONS },
  },
  takesAmax: (attrs) => isTensorwise(attrs.format as QuantizeFormat),
  infer: ([x, amax], attrs) => {
    const [rows, cols] = checkQuantize('quantize', x!, attrs);
    if (amax) checkAmaxInput('quantize', amax, attrs);
    const format = attrs.format as QuantizeFormat;
    const dtype = format === 'fp8-e5m2' ? 'f8e5m2' : 'f8e4m3';
    const lead = x!.shape.slice(0, -2); // [batch] or []
    const parts = directionsOf(attrs.direction as QuantizeDirection).map((d) => (d === 'rowwise' ? [rows, cols] : [cols, rows]) as [number, number]);
    const codes: ValueType[] = parts.map((shape) => ({ shape: [...lead, ...shape], dtype }));
    const scales: ValueType[] = isTensorwise(format) ? [{ shape: [1], dtype: 'f32' }] : parts.map(([R, K]) => ({ shape: [...lead, ...scaleShape(scalingOf(format), 'gemm', R, K)], dtype: 'f32' }));
    const o = quantizeOutputs(format, attrs.direction as QuantizeDirection);
    const out: ValueType[] = [];
    if (o.rowCodes !== null) out[o.rowCodes] = codes[0]!;
    if (o.colCodes !== null) out[o.colCodes] = codes.at(-1)!;
    if (o.rowScales !== null) out[o.rowScales] = scales[0]!;
    if (o.colScales !== null) out[o.colScales] = scales.at(-1)!;
    return out;
  },
  reference: ({ inputs: [x, amax], outputs, inTypes, attrs }) => {
    const [rows, cols] = checkQuantize('quantize', inTypes[0]!, attrs);
    const batch = batchOf(inTypes[0]!);
    const format = attrs.format as QuantizeFormat;
    const o = quantizeOutputs(format, attrs.direction as QuantizeDirection);
    const values = Float64Array.from(x!, (v) => Math.fround(v)); // x's float32 values (the interpreter may hold f64)
    for (let b = 0; b < batch; b++) {
      const slice = values.subarray(b * rows * cols, (b + 1) * rows * cols);
      for (const d of directionsOf(attrs.direction as QuantizeDirection)) {
        const q = quantize2d(slice, rows, cols, { format, direction: d, ...(amax ? { amax: amax[0]! } : {}) });
        const [codesAt, scalesAt] = d === 'rowwise' ? [o.rowCodes!, o.rowScales!] : [o.colCodes!, o.colScales!];
        outputs[codesAt]!.set(q.data, b * rows * cols);
        const [R, K] = d === 'rowwise' ? [rows, cols] : [cols, rows];
        if (isTensorwise(format)) outputs[scalesAt]![0] = q.globalScale!;
        else {
          const sc = gemmBlockScales(format as BlockFp8, q.scales as Float32Array, R, K);
          outputs[scalesAt]!.set(sc, b * sc.length);
        }
      }
    }
  },
});
