/**
 * quantize / dequantize on Tensors: the same formats and results as quantize2d / dequantize2d, on
 * the tensor's device. On a GPU one fused kernel reads x once and writes the rowwise codes, the
 * columnwise (transposed) codes or both, with their scales (native/quant/quantize.cu, bit-identical
 * to the references); on the CPU the references run.
 *
 *   quantizeTensor(x, { format, scaleMode?, direction?, scaleLayout?, amax? }) -> QuantizedTensor
 *     x: f32 / bf16 / f16, rank >= 1, viewed as a [rows, cols] matrix (cols = the last dimension).
 *     direction 'rowwise' (default), 'columnwise' (stored transposed: data [cols, rows]) or 'both'.
 *     scaleLayout: the layout the GEMM reads ('plain', the default, is quantize2d's row-major one):
 *       'tiled128x4' (MX and NVFP4): cuBLASLt's 128 × 4 tiles of scale codes;
 *       'gemm' (blockwise FP8): scaledGemmLt's, for the stored [R, K] matrix (L = K / 128):
 *       1 × 128 f32 [L, R] (R contiguous), 128 × 128 f32 [ceil(R / 128), L4] with L4 = L rounded
 *       up to a multiple of 4, padding 0 (layout.ts's gemmBlockScales). A columnwise part is
 *       stored [cols, rows], so there R = cols and K = rows.
 *     amax (tensorwise FP8, NVFP4): the tensor amax to scale by (delayed scaling); default x's own,
 *     which the result reports in `amax` (push it into an AmaxHistory).
 *     out: tensors to write into instead of new ones (reused buffers, e.g. each step's), shaped and
 *     typed as a result's parts.
 *   dequantizeTensor(q, { direction?, dtype?, out? }) -> Tensor [rows, cols] (f32 by default).
 *
 * Data tensors: f8e4m3 / f8e5m2 codes, or f4e2m1 (two per byte, element 2i in the low nibble).
 * Scales: e8m0 (MX), f8e4m3 (NVFP4), f32 (blockwise FP8); tiled scales are [tiles, 512].
 * The native entries take one flag for both non-plain layouts ("the GEMM's layout of this format").
 * Shapes: cols divisible by 8 and by the block along it (rowwise), rows by the block along it
 * (columnwise; 32 for tensorwise FP8), both by 128 for fp8-block128x128.
 */
import { DeepwellError, Tensor, bf16BitsToF32, checkKeys, describe, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, invalid, type DTypeName } from '@deepwell/core';
import { DEQUANT_FLAGS, DTYPE_CODE, FORMAT_CODE, QUANT_FLAGS, SCALE_MODE_CODE, dtypeCode, nativeEntries, type NativeEntries } from '@deepwell/kernels-native';
import { amaxOf } from './blocks.js';
import { devArg, eagerScratch } from './eager.js';
import type { Format } from './quantize.js';
import { FAKE_QUANT_FORMATS } from './ops/fake_quant.js';
import { dequantize2d, gemmBlockScales, plainBlockScales, quantize2d, tileScales128x4, untileScales128x4, type BlockFp8, type Quantized2d } from './layout.js';
import { blockAlong, hasTensorScale, isFp4, isMx, scaleBytes, type AnyFormat } from './cuda/native.js';
import { checkAmax } from './guards.js';

export type TensorDirection = 'rowwise' | 'columnwise' | 'both';
export type ScaleLayout = 'plain' | 'tiled128x4' | 'gemm';

export interface QuantizeTensorOptions {
  format: AnyFormat;
  scaleMode?: 'floor' | 'rceil';
  direction?: TensorDirection;
  scaleLayout?: ScaleLayout;
  amax?: number;
  /** Destination tensors (on x's device), as a previous result of the same call holds them. */
  out?: { rowwise?: QuantizedPart; columnwise?: QuantizedPart; globalScale?: Tensor };
}

export interface QuantizedPart {
  /** Codes: [rows, cols] rowwise, [cols, rows] columnwise. */
  data: Tensor;
  /** Block scales (null for tensorwise FP8). */
  scales: Tensor | null;
}

export interface QuantizedTensor {
  format: AnyFormat;
  scaleMode: 'floor' | 'rceil' | null;
  scaleLayout: ScaleLayout;
  rows: number;
  cols: number;
  rowwise: QuantizedPart | null;
  columnwise: QuantizedPart | null;
  /** f32[1]: the FP32 tensor scale (tensorwise FP8: s; NVFP4: g), else null. */
  globalScale: Tensor | null;
  /** f32[1]: the amax the tensor scale came from (tensorwise FP8 and NVFP4), else null. */
  amax: Tensor | null;
  dispose(): void;
}

const ALL_FORMATS: readonly AnyFormat[] = FAKE_QUANT_FORMATS;
const FLOAT_INPUTS: readonly DTypeName[] = ['f32', 'bf16', 'f16'];

const codeDtype = (f: AnyFormat): DTypeName => (isFp4(f) ? 'f4e2m1' : f.endsWith('e5m2') ? 'f8e5m2' : 'f8e4m3');
const scaleDtype = (f: AnyFormat): DTypeName => (isMx(f) ? 'e8m0' : f === 'nvfp4' ? 'f8e4m3' : 'f32');

interface Checked {
  format: AnyFormat;
  scaleMode: 'floor' | 'rceil' | null;
  directions: ('rowwise' | 'columnwise')[];
  layout: ScaleLayout;
  /** A layout other than plain: the GEMM's for this format (the native flag). */
  gemm: boolean;
  rows: number;
  cols: number;
}

/** The non-plain scale layout a format has: the one its GEMM reads (null: tensorwise FP8). */
function gemmLayoutOf(f: AnyFormat): ScaleLayout | null {
  if (isMx(f) || f === 'nvfp4') return 'tiled128x4';
  if (f === 'fp8-block1x128' || f === 'fp8-block128x128') return 'gemm';
  return null;
}

function check(x: unknown, options: QuantizeTensorOptions): Checked {
  if (!(x instanceof Tensor)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a Tensor to quantize but received ${describe(x)}`);
  if (typeof options !== 'object' || options === null) invalid('quantizeTensor options ({ format, scaleMode?, direction?, scaleLayout?, amax?, out? })', 'quantizeTensor', options);
  checkKeys(options, ['format', 'scaleMode', 'direction', 'scaleLayout', 'amax', 'out'], 'quantizeTensor');
  if (!FLOAT_INPUTS.includes(x.dtype)) throw new DeepwellError('INVALID_DTYPE', `Expected an f32, bf16 or f16 tensor to quantize but received ${x.dtype}`);
  if (x.shape.length === 0) throw new DeepwellError('SHAPE_MISMATCH', 'Expected a tensor of rank >= 1 to quantize but received a scalar');
  const format = options?.format;
  if (!ALL_FORMATS.includes(format)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a format (${ALL_FORMATS.join(', ')}) but received ${describe(format)}`);
  if (options.scaleMode !== undefined && options.scaleMode !== 'floor' && options.scaleMode !== 'rceil') throw new DeepwellError('INVALID_ARGUMENT', `Expected scaleMode 'floor' or 'rceil' but received ${describe(options.scaleMode)}`);
  if (options.scaleMode !== undefined && !isMx(format)) throw new DeepwellError('INVALID_ARGUMENT', `Expected no scaleMode for ${format} (its scales are not powers of two) but received ${describe(options.scaleMode)}`);
  const direction = options.direction ?? 'rowwise';
  if (!['rowwise', 'columnwise', 'both'].includes(direction)) throw new DeepwellError('INVALID_ARGUMENT', `Expected direction 'rowwise', 'columnwise' or 'both' but received ${describe(options.direction)}`);
  const layout = options.scaleLayout ?? 'plain';
  if (layout !== 'plain' && layout !== 'tiled128x4' && layout !== 'gemm') throw new DeepwellError('INVALID_ARGUMENT', `Expected scaleLayout 'plain', 'tiled128x4' or 'gemm' but received ${describe(options.scaleLayout)}`);
  const gemmLayout = gemmLayoutOf(format);
  if (layout !== 'plain' && layout !== gemmLayout) {
    const why = gemmLayout === null ? 'one tensor scale: no layout to choose' : `its GEMM layout is '${gemmLayout}'; ${layout === 'gemm' ? "'gemm' is blockwise FP8's" : "'tiled128x4' holds MX and NVFP4 scale codes"}`;
    throw new DeepwellError('INVALID_ARGUMENT', `Expected scaleLayout 'plain'${gemmLayout ? ` or '${gemmLayout}'` : ''} for ${format} (${why}) but received '${layout}'`);
  }
  if (options.amax !== undefined) {
    if (!hasTensorScale(format)) throw new DeepwellError('INVALID_ARGUMENT', `Expected no amax for ${format} (its scales come from each block) but received ${describe(options.amax)}`);
    checkAmax(options.amax);
  }
  const cols = x.shape.at(-1)!;
  const rows = x.numel / Math.max(cols, 1);
  const directions = direction === 'both' ? (['rowwise', 'columnwise'] as const) : [direction as 'rowwise' | 'columnwise'];
  checkSizes(format, rows, cols, directions, `[${x.shape.join(', ')}] (${rows} × ${cols})`);
  const c: Checked = { format, scaleMode: isMx(format) ? (options.scaleMode ?? 'floor') : null, directions: [...directions], layout, gemm: layout !== 'plain', rows, cols };
  checkOut(c, options.out, x.device);
  return c;
}

/** The sizes quantizeTensor takes (and dequantizeTensor, of a part it reads). */
function checkSizes(format: AnyFormat, rows: number, cols: number, directions: readonly ('rowwise' | 'columnwise')[], shape: string): void {
  if (rows < 1 || cols < 1) throw new DeepwellError('SHAPE_MISMATCH', `Expected at least one row and one column to quantize but received ${shape}`);
  if (cols % 8 !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected a last dimension divisible by 8 to quantize but received ${shape}`);
  const block = blockAlong(format);
  for (const d of directions) {
    const along = d === 'rowwise' ? cols : rows;
    const need = block ?? (d === 'columnwise' ? 32 : 8);
    if (along % need !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected a length along the blocks divisible by ${need} for ${format} (${d}) but received ${shape}`);
  }
  if (format === 'fp8-block128x128' && (rows % 128 !== 0 || cols % 128 !== 0)) throw new DeepwellError('SHAPE_MISMATCH', `Expected rows and cols divisible by 128 for fp8-block128x128 but received ${shape}`);
}

/** A part's data and scales as a call writes (or reads) them: [dtype, shape] each, scales null when the format has none. */
function partTypes(c: Pick<Checked, 'format' | 'rows' | 'cols' | 'gemm'>, d: 'rowwise' | 'columnwise'): { data: [DTypeName, number[]]; scales: [DTypeName, number[]] | null } {
  const [R, C] = d === 'rowwise' ? [c.rows, c.cols] : [c.cols, c.rows];
  return { data: [codeDtype(c.format), [R, C]], scales: scaleBytes(c.format, R, C, c.gemm) > 0 ? [scaleDtype(c.format), scaleShape(c.format, R, C, c.gemm)] : null };
}

/**
 * Every destination in `out`, checked before anything is written (nothing is half-applied): the
 * parts of the directions asked for, their tensors' dtypes, shapes and device; no part of a
 * direction not asked for, no key but rowwise, columnwise and globalScale.
 */
function checkOut(c: Checked, out: unknown, device: string): void {
  if (out === undefined) return;
  if (typeof out !== 'object' || out === null) invalid('an object ({ rowwise?, columnwise?, globalScale? })', 'quantizeTensor out', out);
  checkKeys(out, ['rowwise', 'columnwise', 'globalScale'], 'quantizeTensor out');
  const o = out as NonNullable<QuantizeTensorOptions['out']>;
  for (const d of ['rowwise', 'columnwise'] as const) {
    const part = o[d];
    if (part === undefined || part === null) continue;
    if (!c.directions.includes(d)) invalid(`no out.${d} (the call quantizes ${c.directions.join(' and ')})`, 'quantizeTensor out', part);
    if (typeof part !== 'object') invalid('{ data?, scales? } of Tensors', `out.${d}`, part);
    checkKeys(part, ['data', 'scales'], `quantizeTensor out.${d}`);
    const t = partTypes(c, d);
    if (part.data != null) expectTensor(part.data, t.data[1], t.data[0], device, `out.${d}.data`);
    if (part.scales != null) {
      if (!t.scales) invalid(`no scales for ${c.format} (one tensor scale: out.globalScale)`, `out.${d}.scales`, part.scales);
      expectTensor(part.scales, t.scales[1], t.scales[0], device, `out.${d}.scales`);
    }
  }
  if (o.globalScale != null) {
    if (!hasTensorScale(c.format)) invalid(`no globalScale for ${c.format} (its scales are per block)`, 'out.globalScale', o.globalScale);
    expectTensor(o.globalScale, [1], 'f32', device, 'out.globalScale');
  }
}

function hostValues(x: Tensor): Float32Array {
  const h = x.toHost();
  if (x.dtype === 'f32') return h as Float32Array;
  const conv = x.dtype === 'bf16' ? bf16BitsToF32 : f16BitsToF32;
  return Float32Array.from(h as Uint16Array, (b) => conv(b));
}

/** The scale matrix of a stored [R, C] result: its shape (plain, or the GEMM's layout). */
function scaleShape(f: AnyFormat, R: number, C: number, gemm: boolean): number[] {
  if (f === 'fp8-block1x128') return gemm ? [C / 128, R] : [R, C / 128];
  if (f === 'fp8-block128x128') return [Math.ceil(R / 128), gemm ? Math.ceil(C / 128 / 4) * 4 : C / 128]; // [R/128, L4 or L]
  const n = C / blockAlong(f)!;
  return gemm ? [Math.ceil(R / 128) * Math.ceil(n / 4), 512] : [R, n];
}

function cudaOps(device: string): NativeEntries {
  const n = nativeEntries();
  if (!n.entries) throw new DeepwellError('CUDA_UNAVAILABLE', `Expected CUDA for a tensor on ${device} but ${n.why}`);
  const missing = (['quantAmax', 'quantize', 'dequantize'] as const).find((e) => typeof n.entries![e] !== 'function');
  if (missing) throw new DeepwellError('CUDA_UNAVAILABLE', `Expected the loaded @deepwell/kernels-native to have '${missing}' (rebuild it)`);
  return n.entries;
}

/**
 * The workspace of one quantize call: MXFP8 from bf16 / f16 with plain scales stages each
 * direction's scales in the tiled layout first (a whole-line pass then writes the plain matrix).
 */
export function quantizeWorkspaceBytes(f: AnyFormat, dtype: DTypeName, rows: number, cols: number, rowwise: boolean, columnwise: boolean, gemm: boolean): number {
  const staged = (f === 'mxfp8-e4m3' || f === 'mxfp8-e5m2') && (dtype === 'bf16' || dtype === 'f16') && !gemm;
  if (!staged) return 0;
  return (rowwise ? scaleBytes(f, rows, cols, true) : 0) + (columnwise ? scaleBytes(f, cols, rows, true) : 0);
}

/** `given` is a live Tensor of this dtype and shape on this device. */
function expectTensor(given: unknown, shape: readonly number[], dtype: DTypeName, device: string, what: string): Tensor {
  if (!(given instanceof Tensor)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a Tensor for ${what} but received ${describe(given)}`);
  if (given.dtype !== dtype || given.shape.join() !== shape.join() || given.device !== device) {
    throw new DeepwellError('SHAPE_MISMATCH', `Expected ${dtype}[${shape.join(', ')}] on ${device} for ${what} but received ${given.dtype}[${given.shape.join(', ')}] on ${given.device}`);
  }
  if (given.disposed) throw new DeepwellError('DISPOSED', `Expected a live Tensor for ${what} but received a disposed one`);
  return given;
}

/** The destination tensor: `given` (checked against what the call writes) or a new one. */
function dest(given: Tensor | null | undefined, shape: number[], dtype: DTypeName, device: string, what: string): Tensor {
  if (given === undefined || given === null) return Tensor.empty(shape, dtype, { device });
  return expectTensor(given, shape, dtype, device, what);
}

/** A host result copied into a destination tensor. */
function filled(data: ArrayBufferView, shape: number[], dtype: DTypeName, given: Tensor | null | undefined, what: string): Tensor {
  if (given === undefined || given === null) return Tensor.from(data as never, shape, dtype);
  const t = dest(given, shape, dtype, 'cpu', what);
  t.backend.write(t.buffer, data);
  return t;
}

function result(c: Checked, parts: Partial<Record<'rowwise' | 'columnwise', QuantizedPart>>, globalScale: Tensor | null, amax: Tensor | null): QuantizedTensor {
  const q: QuantizedTensor = {
    format: c.format,
    scaleMode: c.scaleMode,
    scaleLayout: c.layout,
    rows: c.rows,
    cols: c.cols,
    rowwise: parts.rowwise ?? null,
    columnwise: parts.columnwise ?? null,
    globalScale,
    amax,
    dispose() {
      for (const p of [q.rowwise, q.columnwise]) {
        p?.data.dispose();
        p?.scales?.dispose();
      }
      q.globalScale?.dispose();
      q.amax?.dispose();
    },
  };
  return q;
}

export function quantizeTensor(x: Tensor, options: QuantizeTensorOptions): QuantizedTensor {
  const c = check(x, options);
  const f = c.format;
  const parts: Partial<Record<'rowwise' | 'columnwise', QuantizedPart>> = {};
  const dims = (d: 'rowwise' | 'columnwise') => (d === 'rowwise' ? [c.rows, c.cols] : [c.cols, c.rows]) as [number, number];
  if (x.device === 'cpu') {
    const v = hostValues(x);
    let g: number | null = null;
    for (const d of c.directions) {
      const q = quantize2d(v, c.rows, c.cols, { format: f, direction: d, ...(c.scaleMode ? { scaleMode: c.scaleMode } : {}), ...(options.amax !== undefined ? { amax: options.amax } : {}) });
      const [R, C] = dims(d);
      let scales: Tensor | null = null;
      if (q.scales.length) {
        const sc = c.layout === 'tiled128x4' ? tileScales128x4(q.scales as Uint8Array, R, C / blockAlong(f)!) : c.layout === 'gemm' ? gemmBlockScales(f as BlockFp8, q.scales as Float32Array, R, C) : q.scales;
        scales = filled(sc, scaleShape(f, R, C, c.gemm), scaleDtype(f), options.out?.[d]?.scales, `out.${d}.scales`);
      }
      parts[d] = { data: filled(q.data, [R, C], codeDtype(f), options.out?.[d]?.data, `out.${d}.data`), scales };
      g = q.globalScale;
    }
    const amax = hasTensorScale(f) ? Tensor.from([options.amax ?? amaxOf(v, 0, v.length).amax], [1]) : null;
    return result(c, parts, g === null ? null : filled(Float32Array.of(g), [1], 'f32', options.out?.globalScale, 'out.globalScale'), amax);
  }
  const ops = cudaOps(x.device);
  const code = dtypeCode(x);
  let amax: Tensor | null = null;
  let globalScale: Tensor | null = null;
  const made: Tensor[] = [];
  try {
    if (hasTensorScale(f)) {
      amax = made[made.push(options.amax !== undefined ? Tensor.from([options.amax], [1], 'f32', { device: x.device }) : Tensor.empty([1], 'f32', { device: x.device })) - 1]!;
      if (options.amax === undefined) ops.quantAmax(0, code, x.numel, devArg(x), devArg(amax));
      globalScale = dest(options.out?.globalScale, [1], 'f32', x.device, 'out.globalScale');
      if (globalScale !== options.out?.globalScale) made.push(globalScale);
    }
    for (const d of c.directions) {
      const [R, C] = dims(d);
      const given = options.out?.[d];
      const data = dest(given?.data, [R, C], codeDtype(f), x.device, `out.${d}.data`);
      if (data !== given?.data) made.push(data);
      let scales: Tensor | null = null;
      if (scaleBytes(f, R, C, c.gemm) > 0) {
        scales = dest(given?.scales, scaleShape(f, R, C, c.gemm), scaleDtype(f), x.device, `out.${d}.scales`);
        if (scales !== given?.scales) made.push(scales);
      }
      parts[d] = { data, scales };
    }
    const flags = (parts.rowwise ? QUANT_FLAGS.rowwise : 0) | (parts.columnwise ? QUANT_FLAGS.columnwise : 0) | (c.gemm ? QUANT_FLAGS.gemm : 0);
    const opt = (t: Tensor | null | undefined) => (t ? devArg(t) : null);
    const wsBytes = quantizeWorkspaceBytes(f, x.dtype, c.rows, c.cols, !!parts.rowwise, !!parts.columnwise, c.gemm);
    ops.quantize(0, FORMAT_CODE[f], SCALE_MODE_CODE[c.scaleMode ?? 'floor'], code, c.rows, c.cols, flags, devArg(x), opt(amax), opt(parts.rowwise?.data), opt(parts.rowwise?.scales), opt(parts.columnwise?.data), opt(parts.columnwise?.scales), opt(globalScale), eagerScratch(x.device, wsBytes));
  } catch (e) {
    for (const t of made) t.dispose();
    throw e;
  }
  return result(c, parts, globalScale, amax);
}

export function dequantizeTensor(q: QuantizedTensor, options: { direction?: 'rowwise' | 'columnwise'; dtype?: 'f32' | 'bf16' | 'f16'; out?: Tensor } = {}): Tensor {
  if (!q || typeof q !== 'object' || !ALL_FORMATS.includes(q.format)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a QuantizedTensor from quantizeTensor but received ${describe(q)}`);
  if (typeof options !== 'object' || options === null) invalid('dequantizeTensor options ({ direction?, dtype?, out? })', 'dequantizeTensor', options);
  checkKeys(options, ['direction', 'dtype', 'out'], 'dequantizeTensor');
  const direction = options.direction ?? (q.rowwise ? 'rowwise' : 'columnwise');
  const part = direction === 'rowwise' ? q.rowwise : direction === 'columnwise' ? q.columnwise : undefined;
  if (part === undefined) throw new DeepwellError('INVALID_ARGUMENT', `Expected direction 'rowwise' or 'columnwise' but received ${describe(options.direction)}`);
  if (!part) throw new DeepwellError('INVALID_ARGUMENT', `Expected a ${direction} part to dequantize but this result was quantized ${q.rowwise ? 'rowwise' : 'columnwise'} only`);
  const dtype = options.dtype ?? 'f32';
  if (!FLOAT_INPUTS.includes(dtype)) throw new DeepwellError('INVALID_DTYPE', `Expected dtype f32, bf16 or f16 but received ${describe(options.dtype)}`);
  const f = q.format;
  if (q.scaleLayout !== 'plain' && q.scaleLayout !== gemmLayoutOf(f)) throw new DeepwellError('INVALID_ARGUMENT', `Expected scaleLayout 'plain'${gemmLayoutOf(f) ? ` or '${gemmLayoutOf(f)}'` : ''} for ${f} but received ${describe(q.scaleLayout)}`);
  checkPart(q, part, direction);
  const [R, C] = direction === 'rowwise' ? [q.rows, q.cols] : [q.cols, q.rows];
  const device = part.data.device;
  if (device === 'cpu') {
    let scales: Uint8Array | Float32Array = part.scales ? (part.scales.toHost() as Uint8Array | Float32Array) : new Uint8Array(0);
    if (q.scaleLayout === 'tiled128x4') scales = untileScales128x4(scales as Uint8Array, R, C / blockAlong(f)!);
    else if (q.scaleLayout === 'gemm') scales = plainBlockScales(f as BlockFp8, scales as Float32Array, R, C);
    const stored: Quantized2d = { format: f as Format | BlockFp8, direction, rows: q.rows, cols: q.cols, data: part.data.toHost() as Uint8Array, scales, globalScale: q.globalScale ? (q.globalScale.toHost() as Float32Array)[0]! : null };
    const v = dequantize2d(stored);
    if (dtype === 'f32') return filled(v, [q.rows, q.cols], 'f32', options.out, 'out');
    const conv = dtype === 'bf16' ? f32ToBf16Bits : f32ToF16Bits;
    return filled(Uint16Array.from(v, (x) => conv(x)), [q.rows, q.cols], dtype, options.out, 'out');
  }
  const ops = cudaOps(device);
  const out = dest(options.out, [q.rows, q.cols], dtype, device, 'out');
  try {
    const flags = (direction === 'columnwise' ? DEQUANT_FLAGS.transpose : 0) | (q.scaleLayout !== 'plain' ? DEQUANT_FLAGS.gemm : 0);
    ops.dequantize(0, FORMAT_CODE[f], DTYPE_CODE[dtype], R, C, flags, devArg(part.data), part.scales ? devArg(part.scales) : null, q.globalScale ? devArg(q.globalScale) : null, devArg(out));
  } catch (e) {
    if (out !== options.out) out.dispose();
    throw e;
  }
  return out;
}

/**
 * The part of a QuantizedTensor that dequantizeTensor reads, checked against its own header before
 * a byte is read (on a GPU the kernel trusts these sizes): rows and cols the quantizer takes, codes
 * of the format's dtype and [R, C], scales of the layout's shape (none for tensorwise FP8), an f32[1]
 * globalScale where the format has one, all live and on one device.
 */
function checkPart(q: QuantizedTensor, part: QuantizedPart, direction: 'rowwise' | 'columnwise'): void {
  for (const k of ['rows', 'cols'] as const) if (!Number.isSafeInteger(q[k]) || q[k] < 1) invalid('a positive integer', `the QuantizedTensor's ${k}`, q[k]);
  checkSizes(q.format, q.rows, q.cols, [direction], `${q.rows} × ${q.cols}`);
  if (typeof part !== 'object') invalid('{ data, scales } of Tensors', `the ${direction} part`, part);
  const t = partTypes({ format: q.format, rows: q.rows, cols: q.cols, gemm: q.scaleLayout !== 'plain' }, direction);
  const data = expectTensor(part.data, t.data[1], t.data[0], (part.data as Tensor | undefined)?.device ?? 'cpu', `the ${direction} codes`);
  if (t.scales) expectTensor(part.scales, t.scales[1], t.scales[0], data.device, `the ${direction} scales`);
  else if (part.scales != null) invalid(`no scales for ${q.format} (one tensor scale)`, `the ${direction} scales`, part.scales);
  if (hasTensorScale(q.format)) expectTensor(q.globalScale, [1], 'f32', data.device, 'the globalScale');
  else if (q.globalScale != null) invalid(`no globalScale for ${q.format}`, 'the globalScale', q.globalScale);
}
