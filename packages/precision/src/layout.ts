/**
 * Two-dimensional quantization and the scale layouts GEMMs expect.
 *
 * quantize2d(x, rows, cols, { format, direction }) quantizes a row-major [rows, cols] matrix with
 * blocks along one axis: 'rowwise' (blocks of consecutive elements of a row: the forward GEMM's
 * operand, K = cols) or 'columnwise' (blocks down a column: what the backward pass needs). A
 * columnwise result is stored transposed — data [cols, rows], scales [cols, rows / block] — the
 * layout in which the backward GEMM reads it with K contiguous.
 *
 * Blockwise FP8 (E4M3 elements, one FP32 decode scale per block; blocks.ts's fp8Scaling, as
 * torchao's: m = f32(448 / amax), elements E4M3(f32(x · m)) saturating, scale = f32(1 / m); 1 for
 * an all-zero block):
 *   'fp8-block1x128'   blocks of 1 × 128 along the direction (activations);
 *   'fp8-block128x128' tiles of 128 × 128 (weights); direction then only sets the data layout.
 *
 * tileScales128x4(scales, rows, cols): a row-major [rows, cols] matrix of block-scale codes in the
 * tiled layout cuBLASLt's VEC32_UE8M0 / VEC16_UE4M3 modes read — tiles of 128 rows × 4 columns, 512
 * bytes each, tile (rb, cb) at (rb · ceil(cols / 4) + cb) · 512, row r and column c of a tile at
 * (r mod 32) · 16 + floor(r / 32) · 4 + c; padding is zero.
 *
 * gemmBlockScales(format, scales, R, K): the FP32 scales of a blockwise-FP8 stored [R, K] matrix
 * (K contiguous, blocks along K, L = K / 128) in the layouts cuBLASLt's VEC128_32F / BLK128x128_32F
 * modes read (scaledGemmLt, native/gemm/gemm_scaled.cpp):
 *   'fp8-block1x128'   f32 [L, R], R contiguous: block (r, kb) at kb · R + r;
 *   'fp8-block128x128' f32 [ceil(R / 128), L4], L4 = L rounded up to a multiple of 4: tile (rb, kb)
 *                      at rb · L4 + kb; the padding columns kb in [L, L4) are 0 (never read).
 * The plain layout is quantize2d's ([R, L] and [ceil(R / 128), L], row-major); plainBlockScales is
 * the inverse. A columnwise result's stored matrix is [cols, rows], so its R is cols and its K rows.
 */
import { DeepwellError, checkInteger, describe, invalid } from '@deepwell/core';
import { ELEMENTS, decodeCode, encodeValue } from './elements.js';
import { amaxOf, fp8Scaling } from './blocks.js';
import { FORMATS, blockSizeOf, dequantize, quantize, type Format, type Quantized } from './quantize.js';
import { F32_MAX, checkBytes, checkOptions, checkValues } from './guards.js';

export type Direction = 'rowwise' | 'columnwise';
export type BlockFp8 = 'fp8-block1x128' | 'fp8-block128x128';

export interface Quantized2d {
  format: Format | BlockFp8;
  direction: Direction;
  rows: number;
  cols: number;
  /** Element codes in the stored layout ([rows, cols] rowwise, [cols, rows] columnwise). */
  data: Uint8Array;
  /** Block scales: codes (MX, NVFP4) or FP32 values (blockwise FP8), in the stored layout. */
  scales: Uint8Array | Float32Array;
  globalScale: number | null;
}

function transpose(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = x[r * cols + c]!;
  return t;
}

const BLOCK_FP8: readonly string[] = ['fp8-block1x128', 'fp8-block128x128'];
const FORMATS_2D: readonly string[] = [...FORMATS, ...BLOCK_FP8];

function checkMatrix(x: ArrayLike<number>, rows: number, cols: number): void {
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 1 || cols < 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected positive integer rows and cols but received ${describe(rows)} and ${describe(cols)}`);
  if (x.length !== rows * cols) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${rows} × ${cols} = ${rows * cols} values but received ${x.length}`);
}

export function quantize2d(x: Float32Array | Float64Array, rows: number, cols: number, options: { format: Format | BlockFp8; direction?: Direction; scaleMode?: 'floor' | 'rceil'; amax?: number }): Quantized2d {
  if (!(x instanceof Float32Array) && !(x instanceof Float64Array)) throw new DeepwellError('INVALID_DTYPE', `Expected a Float32Array or Float64Array to quantize2d but received ${describe(x)}`);
  checkMatrix(x, rows, cols);
  if (typeof options !== 'object' || options === null) invalid('quantize2d options ({ format, direction?, scaleMode?, amax? })', 'quantize2d', options);
  checkOptions(options, ['format', 'direction', 'scaleMode', 'amax'], 'quantize2d');
  if (!FORMATS_2D.includes(options.format)) invalid(`a format (${FORMATS_2D.join(', ')})`, 'quantize2d', options.format);
  checkValues(x, 'the values to quantize2d');
  if (BLOCK_FP8.includes(options.format)) {
    for (const k of ['scaleMode', 'amax'] as const) if (options[k] !== undefined) invalid(`no ${k} for ${options.format} (its scales come from each block)`, 'quantize2d', options[k]);
  }
  const direction = options.direction ?? 'rowwise';
  if (direction !== 'rowwise' && direction !== 'columnwise') throw new DeepwellError('INVALID_ARGUMENT', `Expected direction 'rowwise' or 'columnwise' but received ${describe(options.direction)}`);
  // The stored matrix: rows along which blocks run are its rows.
  const [R, C] = direction === 'rowwise' ? [rows, cols] : [cols, rows];
  const m = direction === 'rowwise' ? x : transpose(x, rows, cols);
  if (options.format === 'fp8-block1x128' || options.format === 'fp8-block128x128') {
    const tile = options.format === 'fp8-block128x128' ? 128 : 1;
    if (C % 128 !== 0 || R % tile !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${tile === 1 ? '' : 'rows and '}a length along the blocks divisible by 128 for ${options.format} but received ${rows} × ${cols} (${direction})`);
    const scales = new Float32Array((R / tile) * (C / 128));
    const data = new Uint8Array(R * C);
    for (let br = 0; br < R / tile; br++)
      for (let bc = 0; bc < C / 128; bc++) {
        let amax = 0;
        for (let r = br * tile; r < (br + 1) * tile; r++) amax = Math.max(amax, amaxOf(m, r * C + bc * 128, r * C + bc * 128 + 128).amax);
        const { mul, scale } = fp8Scaling(amax, 448);
        scales[br * (C / 128) + bc] = scale;
        for (let r = br * tile; r < (br + 1) * tile; r++)
          for (let c = bc * 128; c < bc * 128 + 128; c++) data[r * C + c] = encodeValue(ELEMENTS.e4m3, Math.fround(m[r * C + c]! * mul), true);
      }
    return { format: options.format, direction, rows, cols, data, scales, globalScale: null };
  }
  const block = blockSizeOf(options.format);
  if (block !== null && C % block !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected a length along the blocks divisible by ${block} for ${options.format} but received ${rows} × ${cols} (${direction})`);
  const q = quantize(m, { format: options.format, ...(options.scaleMode ? { scaleMode: options.scaleMode } : {}), ...(options.amax !== undefined ? { amax: options.amax } : {}) });
  return { format: options.format, direction, rows, cols, data: q.data, scales: q.scales, globalScale: q.globalScale };
}

/** The row-major [rows, cols] values of a quantize2d result. */
/**
 * The row-major [rows, cols] values of a quantize2d result. Every field is checked before any is
 * read: format, direction, sizes, the codes' byte count; blockwise FP8's f32 scales (their count,
 * finite and >= 0); the rest as dequantize checks a Quantized.
 */
export function dequantize2d(q: Quantized2d): Float32Array {
  if (typeof q !== 'object' || q === null) invalid('a quantize2d result ({ format, direction, rows, cols, data, scales, globalScale })', 'dequantize2d', q);
  if (!FORMATS_2D.includes(q.format)) invalid(`a format (${FORMATS_2D.join(', ')})`, 'dequantize2d', q.format);
  if (q.direction !== 'rowwise' && q.direction !== 'columnwise') invalid("'rowwise' or 'columnwise'", 'the direction to dequantize2d', q.direction);
  checkInteger(q.rows, 'the rows to dequantize2d', 1);
  checkInteger(q.cols, 'the cols to dequantize2d', 1);
  if (!Number.isSafeInteger(q.rows * q.cols)) invalid('rows × cols a safe integer', 'dequantize2d', q.rows * q.cols);
  const [R, C] = q.direction === 'rowwise' ? [q.rows, q.cols] : [q.cols, q.rows];
  let m: Float32Array;
  if (q.format === 'fp8-block1x128' || q.format === 'fp8-block128x128') {
    const tile = q.format === 'fp8-block128x128' ? 128 : 1;
    if (C % 128 !== 0 || R % tile !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${tile === 1 ? '' : 'rows and '}a length along the blocks divisible by 128 for ${q.format} but received ${q.rows} × ${q.cols} (${q.direction})`);
    checkBytes(q.data, R * C, 'the codes to dequantize2d');
    const s = q.scales;
    const count = (R / tile) * (C / 128);
    if (!(s instanceof Float32Array) || s.length !== count) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${count} f32 scales of ${q.format} for ${q.rows} × ${q.cols} but received ${describe(s)}`);
    const bad = s.findIndex((v) => !(v >= 0 && v <= F32_MAX));
    if (bad >= 0) invalid('finite block scales >= 0', `the scales to dequantize2d [${bad}]`, s[bad]);
    m = new Float32Array(R * C);
    for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) m[r * C + c] = decodeCode(ELEMENTS.e4m3, q.data[r * C + c]!) * s[Math.floor(r / tile) * (C / 128) + Math.floor(c / 128)]!;
  } else {
    const block = blockSizeOf(q.format);
    if (block !== null && C % block !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected a length along the blocks divisible by ${block} for ${q.format} but received ${q.rows} × ${q.cols} (${q.direction})`);
    const flat: Quantized = { format: q.format, scaleMode: null, length: R * C, blockSize: blockSizeOf(q.format) ?? R * C, data: q.data, scales: q.scales as Uint8Array, globalScale: q.globalScale };
    m = dequantize(flat);
  }
  return q.direction === 'rowwise' ? m : Float32Array.from(transpose(m, R, C));
}

/** Where block scale (r, c) of a [rows, cols] matrix of them lies in the 128 × 4 tiled layout. */
export function tiledScaleIndex128x4(r: number, c: number, cols: number): number {
  checkInteger(r, 'the scale row', 0);
  checkInteger(cols, 'the scale columns', 1);
  checkInteger(c, 'the scale column', 0);
  if (c >= cols) invalid(`a column < ${cols}`, 'tiledScaleIndex128x4', c);
  return tiledIndex(r, c, cols);
}

/** tiledScaleIndex128x4 without the checks, for the loops over checked sizes. */
export function tiledIndex(r: number, c: number, cols: number): number {
  const rr = r % 128;
  return (Math.floor(r / 128) * Math.ceil(cols / 4) + Math.floor(c / 4)) * 512 + (rr % 32) * 16 + Math.floor(rr / 32) * 4 + (c % 4);
}

/** Block-scale codes [rows, cols] (row-major) in cuBLASLt's 128 × 4 tiled layout, zero-padded. */
export function tileScales128x4(scales: Uint8Array, rows: number, cols: number): Uint8Array {
  if (!(scales instanceof Uint8Array)) invalid('a Uint8Array of scale codes', 'tileScales128x4', scales);
  checkMatrix(scales, rows, cols);
  const out = new Uint8Array(Math.ceil(rows / 128) * Math.ceil(cols / 4) * 512);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[tiledIndex(r, c, cols)] = scales[r * cols + c]!;
  return out;
}

/** The inverse of tileScales128x4. */
export function untileScales128x4(tiled: Uint8Array, rows: number, cols: number): Uint8Array {
  if (!(tiled instanceof Uint8Array)) invalid('a Uint8Array of tiled scale codes', 'untileScales128x4', tiled);
  checkInteger(rows, 'the rows of untileScales128x4', 1);
  checkInteger(cols, 'the cols of untileScales128x4', 1);
  const tilesC = Math.ceil(cols / 4);
  const need = Math.ceil(rows / 128) * tilesC * 512;
  if (tiled.length !== need) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${need} bytes of tiled scales for ${rows} × ${cols} but received ${tiled.length}`);
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = tiled[tiledIndex(r, c, cols)]!;
  return out;
}

function blockGrid(format: BlockFp8, R: number, K: number): { rowBlocks: number; L: number; L4: number } {
  if (format !== 'fp8-block1x128' && format !== 'fp8-block128x128') throw new DeepwellError('INVALID_ARGUMENT', `Expected format 'fp8-block1x128' or 'fp8-block128x128' but received ${describe(format)}`);
  if (!Number.isInteger(R) || !Number.isInteger(K) || R < 1 || K < 1 || K % 128 !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected a stored [R, K] matrix with R >= 1 and K a positive multiple of 128 for ${format} but received ${describe(R)} × ${describe(K)}`);
  const L = K / 128;
  return { rowBlocks: format === 'fp8-block1x128' ? R : Math.ceil(R / 128), L, L4: Math.ceil(L / 4) * 4 };
}

/** The plain blockwise-FP8 scales of a stored [R, K] matrix in the GEMM's layout (see above). */
export function gemmBlockScales(format: BlockFp8, scales: Float32Array, R: number, K: number): Float32Array {
  const { rowBlocks, L, L4 } = blockGrid(format, R, K);
  if (!(scales instanceof Float32Array) || scales.length !== rowBlocks * L) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${rowBlocks} × ${L} = ${rowBlocks * L} f32 scales of ${format} for ${R} × ${K} but received ${describe(scales)}`);
  if (format === 'fp8-block1x128') {
    const out = new Float32Array(L * R);
    for (let r = 0; r < R; r++) for (let kb = 0; kb < L; kb++) out[kb * R + r] = scales[r * L + kb]!;
    return out;
  }
  const out = new Float32Array(rowBlocks * L4); // the padding stays 0
  for (let rb = 0; rb < rowBlocks; rb++) out.set(scales.subarray(rb * L, (rb + 1) * L), rb * L4);
  return out;
}

/** The inverse of gemmBlockScales: the GEMM layout's scales back in the plain layout. */
export function plainBlockScales(format: BlockFp8, gemm: Float32Array, R: number, K: number): Float32Array {
  const { rowBlocks, L, L4 } = blockGrid(format, R, K);
  const need = format === 'fp8-block1x128' ? L * R : rowBlocks * L4;
  if (!(gemm instanceof Float32Array) || gemm.length !== need) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${need} f32 scales of ${format} in the GEMM layout for ${R} × ${K} but received ${describe(gemm)}`);
  const out = new Float32Array(rowBlocks * L);
  if (format === 'fp8-block1x128') {
    for (let r = 0; r < R; r++) for (let kb = 0; kb < L; kb++) out[r * L + kb] = gemm[kb * R + r]!;
  } else {
    for (let rb = 0; rb < rowBlocks; rb++) out.set(gemm.subarray(rb * L4, rb * L4 + L), rb * L);
  }
  return out;
}
