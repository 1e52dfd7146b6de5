/**
 * scaled_matmul: the FP8 GEMM on quantized operands, D = (a·sa) · (b·sb)ᵀ, and Blackwell's MXFP8 and
 * NVFP4 GEMMs.
 *
 *   a: [M, K] codes, aScale (layout below), b: [N, K] codes, bScale, and with nv16 scaling also
 *   aGlobal, bGlobal (f32[1] each: NVFP4's tensor scales); attributes aScaling, bScaling ('tensor' |
 *   'row' | 'block1x128' | 'block128x128' | 'mx32' | 'nv16'), scaleLayout ('plain' | 'gemm'),
 *   outDtype ('bf16' | 'f32'), fastAccum (default false)
 *   -> d: outDtype [M, N],  d[m, n] = g · Σ_k a(m, k)·sa(m, k) · b(n, k)·sb(n, k),
 *      g = aGlobal · bGlobal with nv16, else 1
 *
 * Both operands are K-major ([rows, K], K contiguous): a Linear's activations and its weight as
 * stored, or, for the backward GEMMs, the columnwise (transposed) copies quantizeTensor writes. It is
 * the one form cuBLASLt's FP8 kernels take ("TN"), so the op has no transpose flags.
 *
 *   scaling        codes               scales
 *   tensor, row,   f8e4m3 | f8e5m2     f32 dequantization scales (x ≈ s · decode(code)), as
 *   block1x128,                        quantizeTensor gives them (tensorwise FP8's globalScale
 *   block128x128                       s = amax / max_elem; blockwise FP8's f32(amax / 448) per block)
 *   mx32 (MXFP8)   f8e4m3 | f8e5m2     e8m0 codes, one per 32 of K: scale 2^(code − 127), 0xFF NaN
 *   nv16 (NVFP4)   f4e2m1              f8e4m3 codes, one per 16 of K, read unsigned (UE4M3, as
 *                                      cuBLASLt does: the sign bit is ignored; the quantizer never
 *                                      sets it), and the two f32 tensor scales as inputs 4 and 5
 *
 * NVFP4's tensor scales are inputs, not attributes: they are device values (a quantize in the same
 * step computes them from its amax), so the GEMM must read them where they are. The op takes four
 * inputs, or six with nv16 (it is variadic for that; checkScaledMatmul counts).
 *
 * Scale layouts, for an operand of R rows, L = K / 128 blocks along K, RB = ceil(R / 128),
 * L4 = L rounded up to a multiple of 4, and for mx32 / nv16 n = K / 32 or K / 16 scale codes a row:
 *
 *   scaling        'plain' (quantizeTensor's default)    'gemm' (what scaledGemmLt reads)
 *   tensor         [1]                                     [1]
 *   row            [R]                                     [R]
 *   block1x128     [R, L]   (K-blocks contiguous)         [L, R]   (rows contiguous: VEC128_32F)
 *   block128x128   [RB, L]                                 [RB, L4] (BLK128x128_32F; padding unread)
 *   mx32, nv16     [R, n]                                  [RB · ceil(n / 4), 512]: cuBLASLt's 128 × 4
 *                                                          tiles (VEC32_UE8M0, VEC16_UE4M3), as
 *                                                          quantizeTensor's scaleLayout 'tiled128x4'
 *
 * The CPU reference reads either layout (scaleIndex below; mx32 / nv16 tiles through layout.ts's
 * untileScales128x4); the CUDA candidate takes 'gemm' only for block scaling (quantizeTensor's
 * `scaleLayout: 'gemm'` or 'tiled128x4'), since re-laying scales on every call would be a kernel of
 * its own. With tensor and row scaling the layouts are the same.
 *
 * Pairs (aScaling, bScaling): (tensor, tensor), (row, row), (block1x128, block1x128),
 * (block1x128, block128x128), (block128x128, block1x128) — what cuBLASLt offers on Hopper (DeepSeek-V3's
 * recipe: 1 × 128 activations and gradients, 128 × 128 weights; no 2D × 2D); (mx32, mx32) and
 * (nv16, nv16) — Blackwell's block-scaled tensor cores (cuBLASLt from sm_100 on; on Hopper the CUDA
 * candidate declines with the addon's reason). Not both operands e5m2 (no such GEMM: E5M2 is for
 * gradients, multiplied by E4M3 operands). K is a whole number of the scaling's blocks (128, 32 or
 * 16). With block scaling of any kind fastAccum is false (block scales are applied at each promotion
 * of the partial sums, so there is no unpromoted mode). fastAccum only lets a kernel skip the
 * periodic promotion of its partial sums; the reference, which is exact, ignores it.
 *
 * Reference: each operand dequantized exactly in float64 (an FP8 value times an f32 scale has at most
 * 28 significant bits; E2M1 times UE4M3 at most 6), products summed in float64 in ascending k, with
 * nv16 the sum multiplied by aGlobal · bGlobal (exact in float64: two f32 values), the result rounded
 * once to outDtype (to nearest even; bf16 directly from the float64 value, not through f32). A NaN
 * code or scale gives NaN where it is read, ±Inf codes (E5M2) give ±Inf or NaN as IEEE arithmetic
 * does.
 *
 * On the CPU an operand is held as its codes: FP8 codes and scale codes as the byte values 0–255 in
 * a float array, the same bytes a GPU tensor holds; FP4 (f4e2m1) codes one per element, 0–15, where a
 * GPU tensor packs two per byte (element 2i in the low nibble; `scaledMatmul` unpacks). The IR's CPU
 * storage knows f32, i32 and widened bf16 / f16 only, so this is the op's own convention; a value
 * that is not such a code is refused. The IR's compiled CPU step therefore cannot run it (its
 * reference candidate declines these dtypes); `scaledMatmul` (../scaled_matmul.ts) and the reference
 * interpreter call this reference directly.
 *
 * No gradient rule, deliberately. A gradient with respect to FP8 codes does not exist, and one with
 * respect to the scales is not what training wants. FP8 training is a composition the precision
 * policy's rewrite will build (a later step): the forward quantizes x (E4M3, 1 × 128) and w
 * (E4M3, 128 × 128) and calls this op; the backward quantizes dy (E5M2 tensorwise, or E4M3 1 × 128)
 * and calls it again on the operands' columnwise copies (dx = dy · w, dw = dyᵀ · x). Without a rule,
 * autodiff refuses, naming the node, any graph in which a differentiable value reaches this op, and
 * passes over it where its inputs are data (graph inputs): no silent zero gradient either way.
 * (`nonDifferentiable` would make autodiff treat d as independent of everything: a silent zero.)
 *
 * CUDA candidate: ../cuda/scaled_matmul.ts over kernels-native's scaledGemmLt (native/gemm/
 * gemm_scaled.cpp). Tests: test/scaled_matmul.test.ts (CPU), test/scaled_matmul_gpu.test.ts.
 */
import { DeepwellError, checkOneOf, describe, invalid } from '@deepwell/core';
import { defineOp, shapeError, type Attrs, type NumArray, type ValueType } from '@deepwell/ir';
import { ELEMENTS, decodeCode, decodeE8m0, ilog2, type ElementFormat } from '../elements.js';
import { tiledIndex } from '../layout.js';

export const SCALINGS = ['tensor', 'row', 'block1x128', 'block128x128', 'mx32', 'nv16'] as const;
export type Scaling = (typeof SCALINGS)[number];
export const GEMM_SCALE_LAYOUTS = ['plain', 'gemm'] as const;
export type GemmScaleLayout = (typeof GEMM_SCALE_LAYOUTS)[number];
export const SCALED_OUT_DTYPES = ['bf16', 'f32'] as const;
export type ScaledOutDtype = (typeof SCALED_OUT_DTYPES)[number];
export const FP8_DTYPES = ['f8e4m3', 'f8e5m2'] as const;
export type ScaledElement = 'e4m3' | 'e5m2' | 'e2m1';

export const isBlockScaling = (s: Scaling): boolean => s === 'block1x128' || s === 'block128x128';
/** Blackwell's block-scaled modes: a scale code per 32 (MXFP8) or 16 (NVFP4) elements along K. */
export const isMicroScaling = (s: Scaling): boolean => s === 'mx32' || s === 'nv16';
/** Elements along K per scale of a micro-scaling (mx32, nv16). */
export const microBlock = (s: Scaling): number => {
  if (s !== 'mx32' && s !== 'nv16') invalid("a micro-scaling ('mx32' or 'nv16')", 'microBlock', s);
  return s === 'mx32' ? 32 : 16;
};

/** A scaling, a layout and an operand's R rows and K columns (positive integers). */
function checkScaleArgs(scaling: unknown, layout: unknown, R: unknown, K: unknown, what: string): void {
  checkOneOf(scaling, SCALINGS, `the scaling of ${what}`);
  checkOneOf(layout, GEMM_SCALE_LAYOUTS, `the scale layout of ${what}`);
  for (const [name, v] of [['R', R], ['K', K]] as const) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) invalid('a positive integer', `${what}'s ${name}`, v);
  }
}

/** Whether cuBLASLt (and so this op) has a GEMM for the pair (see the file's comment). */
export function scalingPairAllowed(a: Scaling, b: Scaling): boolean {
  if (a === 'tensor' || a === 'row' || isMicroScaling(a)) return b === a;
  return isBlockScaling(b) && !(a === 'block128x128' && b === 'block128x128');
}

/** The shape of the scales of an operand of R rows and K columns (the table in the file's comment). */
export function scaleShape(scaling: Scaling, layout: GemmScaleLayout, R: number, K: number): number[] {
  checkScaleArgs(scaling, layout, R, K, 'scaleShape');
  const L = Math.ceil(K / 128);
  const RB = Math.ceil(R / 128);
  switch (scaling) {
    case 'tensor':
      return [1];
    case 'row':
      return [R];
    case 'block1x128':
      return layout === 'plain' ? [R, L] : [L, R];
    case 'block128x128':
      return layout === 'plain' ? [RB, L] : [RB, Math.ceil(L / 4) * 4];
    case 'mx32':
    case 'nv16': {
      const n = Math.ceil(K / microBlock(scaling));
      return layout === 'plain' ? [R, n] : [RB * Math.ceil(n / 4), 512];
    }
  }
}

/** The index into the scales (of `scaleShape`) of the scale of element (r, k). */
export function scaleIndex(scaling: Scaling, layout: GemmScaleLayout, R: number, K: number): (r: number, k: number) => number {
  checkScaleArgs(scaling, layout, R, K, 'scaleIndex');
  const L = Math.ceil(K / 128);
  switch (scaling) {
    case 'tensor':
      return () => 0;
    case 'row':
      return (r) => r;
    case 'block1x128':
      return layout === 'plain' ? (r, k) => r * L + Math.floor(k / 128) : (r, k) => Math.floor(k / 128) * R + r;
    case 'block128x128': {
      const stride = layout === 'plain' ? L : Math.ceil(L / 4) * 4;
      return (r, k) => Math.floor(r / 128) * stride + Math.floor(k / 128);
    }
    case 'mx32':
    case 'nv16': {
      const block = microBlock(scaling);
      const n = Math.ceil(K / block);
      return layout === 'plain' ? (r, k) => r * n + Math.floor(k / block) : (r, k) => tiledIndex(r, Math.floor(k / block), n);
    }
  }
}

/** What a valid call is: sizes, formats and attributes. */
export interface ScaledMatmulDims {
  M: number;
  N: number;
  K: number;
  aFormat: ScaledElement;
  bFormat: ScaledElement;
  aScaling: Scaling;
  bScaling: Scaling;
  layout: GemmScaleLayout;
  outDtype: ScaledOutDtype;
  fastAccum: boolean;
}

/** A ScaledMatmulDims as checkScaledMatmul returns it (for the kernels' limit checks, which are public). */
export function checkScaledMatmulDims(n: unknown, what: string): ScaledMatmulDims {
  const d = n as ScaledMatmulDims;
  if (typeof d !== 'object' || d === null) invalid('the sizes of a scaled_matmul call ({ M, N, K, aFormat, bFormat, aScaling, bScaling, layout, outDtype, fastAccum })', what, n);
  for (const k of ['M', 'N', 'K'] as const) if (!Number.isSafeInteger(d[k]) || d[k] < 1) invalid('a positive integer', `${what}'s ${k}`, d[k]);
  for (const k of ['aFormat', 'bFormat'] as const) checkOneOf(d[k], ['e4m3', 'e5m2', 'e2m1'], `${what}'s ${k}`);
  for (const k of ['aScaling', 'bScaling'] as const) checkOneOf(d[k], SCALINGS, `${what}'s ${k}`);
  checkOneOf(d.layout, GEMM_SCALE_LAYOUTS, `${what}'s layout`);
  checkOneOf(d.outDtype, SCALED_OUT_DTYPES, `${what}'s outDtype`);
  if (typeof d.fastAccum !== 'boolean') invalid('a boolean', `${what}'s fastAccum`, d.fastAccum);
  return d;
}

const str = (t: ValueType) => `${t.dtype}[${t.shape.join(', ')}]`;

/** The operand (codes), scale and tensor-scale dtypes a scaling takes. */
function dtypesOf(s: Scaling): { codes: readonly string[]; codesText: string; scale: string } {
  if (s === 'nv16') return { codes: ['f4e2m1'], codesText: 'f4e2m1 codes (NVFP4)', scale: 'f8e4m3' };
  if (s === 'mx32') return { codes: FP8_DTYPES, codesText: 'f8e4m3 or f8e5m2 codes (MXFP8)', scale: 'e8m0' };
  return { codes: FP8_DTYPES, codesText: 'f8e4m3 or f8e5m2 codes', scale: 'f32' };
}

/**
 * Checks a call (input types and attributes) as the op's shape rule does; every error names the
 * argument and reads "Expected X for Y but received Z". Returns the call's sizes. inTypes: the four
 * inputs, or six with nv16 (a, aScale, b, bScale, aGlobal, bGlobal).
 */
export function checkScaledMatmul(op: string, inTypes: readonly ValueType[], attrs: Attrs): ScaledMatmulDims {
  if (typeof op !== 'string') invalid('an op name', 'checkScaledMatmul', op);
  if (typeof attrs !== 'object' || attrs === null) invalid('an attributes object', `${op}'s attributes`, attrs);
  if (!Array.isArray(inTypes)) invalid('an array of input types ({ shape, dtype })', `${op}'s inputs`, inTypes);
  inTypes.forEach((t, i) => {
    const ok = typeof t === 'object' && t !== null && typeof t.dtype === 'string' && Array.isArray(t.shape) && t.shape.every((d: number) => Number.isSafeInteger(d) && d >= 0);
    if (!ok) invalid('an input type ({ shape: non-negative integers, dtype })', `${op}'s input ${i}`, t);
  });
  const [a, aScale, b, bScale] = inTypes as [ValueType, ValueType, ValueType, ValueType];
  const aScaling = attrs.aScaling as Scaling;
  const bScaling = attrs.bScaling as Scaling;
  const layout = attrs.scaleLayout as GemmScaleLayout;
  const outDtype = attrs.outDtype as ScaledOutDtype;
  const fastAccum = attrs.fastAccum === true;
  for (const [name, v, list] of [
    ['aScaling', aScaling, SCALINGS],
    ['bScaling', bScaling, SCALINGS],
    ['scaleLayout', layout, GEMM_SCALE_LAYOUTS],
    ['outDtype', outDtype, SCALED_OUT_DTYPES],
  ] as const) {
    if (!(list as readonly unknown[]).includes(v)) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected one of ${list.map((s) => `'${s}'`).join(', ')} for attribute '${name}' but received ${describe(v)}`);
  }
  if (!scalingPairAllowed(aScaling, bScaling)) {
    throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected (aScaling, bScaling) of (tensor, tensor), (row, row), (block1x128, block1x128), (block1x128, block128x128), (block128x128, block1x128), (mx32, mx32) or (nv16, nv16) but received (${aScaling}, ${bScaling})`);
  }
  const nv = aScaling === 'nv16';
  const count = nv ? 6 : 4;
  if (inTypes.length !== count) {
    const names = nv ? 'a, aScale, b, bScale, aGlobal, bGlobal: NVFP4 has a tensor scale per operand' : 'a, aScale, b, bScale';
    throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected ${count} inputs (${names}) with ${aScaling} scaling but received ${inTypes.length}`);
  }
  const want = dtypesOf(aScaling);
  const withScaling = isMicroScaling(aScaling) ? ` with ${aScaling} scaling` : '';
  for (const [name, t] of [['a', a], ['b', b]] as const) {
    if (!want.codes.includes(t.dtype)) throw new DeepwellError('INVALID_DTYPE', `${op}: Expected ${want.codesText} for input '${name}'${withScaling} but received ${str(t)}`);
    if (t.shape.length !== 2) shapeError(op, `Expected a rank-2 tensor ([rows, K], K contiguous) for input '${name}' but received ${str(t)}`);
  }
  for (const [name, t] of [['aScale', aScale], ['bScale', bScale]] as const) {
    if (t.dtype !== want.scale) throw new DeepwellError('INVALID_DTYPE', `${op}: Expected ${want.scale}${isMicroScaling(aScaling) ? ' scale codes' : ''} for input '${name}'${withScaling} but received ${str(t)}`);
  }
  for (const [name, t] of nv ? ([['aGlobal', inTypes[4]!], ['bGlobal', inTypes[5]!]] as const) : []) {
    if (t.dtype !== 'f32' || t.shape.join() !== '1') throw new DeepwellError(t.dtype !== 'f32' ? 'INVALID_DTYPE' : 'SHAPE_MISMATCH', `${op}: Expected f32[1] (NVFP4's tensor scale) for input '${name}' but received ${str(t)}`);
  }
  const [M, K] = a.shape as [number, number];
  const [N, Kb] = b.shape as [number, number];
  if (Kb !== K) shapeError(op, `Expected input 'b' with K = ${K} columns (a's) but received ${str(b)}`);
  if (M < 1 || N < 1 || K < 1) shapeError(op, `Expected M, N and K >= 1 but received ${M}, ${N} and ${K}`);
  if (a.dtype === 'f8e5m2' && b.dtype === 'f8e5m2') throw new DeepwellError('INVALID_DTYPE', `${op}: Expected at most one f8e5m2 operand (there is no E5M2 × E5M2 GEMM: E5M2 gradients multiply E4M3 operands) but received f8e5m2 for both 'a' and 'b'`);
  const block = isBlockScaling(aScaling) ? 128 : isMicroScaling(aScaling) ? microBlock(aScaling) : null;
  if (block !== null && K % block !== 0) shapeError(op, `Expected K a whole number of ${block}-element blocks with ${aScaling} / ${bScaling} scaling but received K = ${K} (inputs 'a' ${str(a)} and 'b' ${str(b)})`);
  if (block !== null && fastAccum) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected fastAccum false with block scaling (block scales are applied as the partial sums are promoted) but received true`);
  for (const [name, t, scaling, R] of [['aScale', aScale, aScaling, M], ['bScale', bScale, bScaling, N]] as const) {
    const shape = scaleShape(scaling, layout, R, K);
    if (t.shape.join() !== shape.join()) {
      const other = scaling === 'tensor' || scaling === 'row' ? '' : ` (the '${layout === 'plain' ? 'gemm' : 'plain'}' layout would be [${scaleShape(scaling, layout === 'plain' ? 'gemm' : 'plain', R, K).join(', ')}])`;
      shapeError(op, `Expected ${want.scale}[${shape.join(', ')}] for input '${name}' (${scaling} scaling, scaleLayout '${layout}', ${R} rows, K = ${K})${other} but received ${str(t)}`);
    }
  }
  const fmt = (t: ValueType): ScaledElement => (t.dtype === 'f4e2m1' ? 'e2m1' : t.dtype === 'f8e5m2' ? 'e5m2' : 'e4m3');
  return { M, N, K, aFormat: fmt(a), bFormat: fmt(b), aScaling, bScaling, layout, outDtype, fastAccum };
}

/** Each of the 256 codes of an element format, decoded (E2M1: the low 16). */
const DECODED = new Map<string, Float64Array>();
function decodeTable(f: ElementFormat): Float64Array {
  let t = DECODED.get(f.name);
  if (!t) {
    t = Float64Array.from({ length: 256 }, (_, c) => decodeCode(f, c));
    DECODED.set(f.name, t);
  }
  return t;
}

/** Scale codes as scales: E8M0 2^(c − 127) (0xFF NaN) for mx32, unsigned E4M3 for nv16. */
const SCALE_CODES: Partial<Record<Scaling, Float64Array>> = {};
function scaleTable(s: 'mx32' | 'nv16'): Float64Array {
  return (SCALE_CODES[s] ??= Float64Array.from({ length: 256 }, (_, c) => (s === 'mx32' ? decodeE8m0(c) : decodeCode(ELEMENTS.e4m3, c & 0x7f))));
}

const isCode = (c: number, max: number) => Number.isInteger(c) && c >= 0 && c <= max;

/** An operand's values, decoded and scaled, as a row-major float64 [R, K] matrix (exact). Not exported from the package (grouped_scaled_matmul shares it). */
export function dequantizeOperand(op: string, name: string, codes: NumArray, scales: NumArray, format: ScaledElement, scaling: Scaling, layout: GemmScaleLayout, R: number, K: number): Float64Array {
  const table = decodeTable(ELEMENTS[format]);
  const maxCode = format === 'e2m1' ? 15 : 255;
  const at = scaleIndex(scaling, layout, R, K);
  const micro = isMicroScaling(scaling) ? scaleTable(scaling as 'mx32' | 'nv16') : null;
  const scaleOf = (r: number, k: number): number => {
    const s = scales[at(r, k)]!;
    if (!micro) return s;
    if (!isCode(s, 255)) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected scale codes (integers 0 to 255) in input '${name}Scale' but received ${s} for element (${r}, ${k})`);
    return micro[s]!;
  };
  const out = new Float64Array(R * K);
  for (let r = 0; r < R; r++)
    for (let k = 0; k < K; k++) {
      const c = codes[r * K + k]!;
      if (!isCode(c, maxCode)) {
        const what = format === 'e2m1' ? 'FP4 codes (integers 0 to 15, one per element' : 'FP8 codes (integers 0 to 255';
        throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected ${what}: on the CPU the operand holds its codes, not their values) in input '${name}' but received ${c} at element (${r}, ${k})`);
      }
      out[r * K + k] = table[c]! * scaleOf(r, k);
    }
  return out;
}

/** Round half to even of a non-negative number. */
function roundHalfEven(r: number): number {
  const f = Math.floor(r);
  const d = r - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/**
 * x (a float64) rounded once to the nearest bf16 value, ties to even; beyond the largest finite
 * bf16 value, where rounding reaches 2^128, ±Infinity; NaN stays NaN, zeros keep their sign.
 */
export function roundToBf16(x: number): number {
  if (typeof x !== 'number') invalid('a number', 'roundToBf16', x);
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  const q = 2 ** (Math.max(ilog2(a), -126) - 7); // the spacing of bf16 values around a (8 significant bits)
  const v = roundHalfEven(a / q) * q; // a / q is exact: q is a power of two and a / q < 2^8
  const r = v >= 2 ** 128 ? Infinity : v;
  return x < 0 ? -r : r;
}

/**
 * The reference of scaled_matmul (and of scaled_matmul_bias, with `bias`: f32-widened values of
 * outDtype [N], added to the exact float64 sum before the one rounding, as the GEMM's epilogue adds
 * it to the FP32 accumulator). `inputs`: a, aScale, b, bScale, and with nv16 aGlobal, bGlobal.
 */
export function scaledMatmulReference(op: string, inputs: readonly NumArray[], d: NumArray, inTypes: readonly ValueType[], attrs: Attrs, bias: NumArray | null): void {
  const n = checkScaledMatmul(op, inTypes, attrs);
  const [a, aScale, b, bScale] = inputs;
  const { M, N, K } = n;
  const A = dequantizeOperand(op, 'a', a!, aScale!, n.aFormat, n.aScaling, n.layout, M, K);
  const B = dequantizeOperand(op, 'b', b!, bScale!, n.bFormat, n.bScaling, n.layout, N, K);
  // NVFP4's tensor scales multiply the sum (as cuBLASLt's alpha does); their product is exact.
  const g = n.aScaling === 'nv16' ? inputs[4]![0]! * inputs[5]![0]! : 1;
  const round = n.outDtype === 'f32' ? Math.fround : roundToBf16;
  for (let m = 0; m < M; m++)
    for (let j = 0; j < N; j++) {
      let s = bias ? bias[j]! : 0;
      for (let k = 0; k < K; k++) s += A[m * K + k]! * B[j * K + k]!;
      d[m * N + j] = round(g === 1 ? s : s * g);
    }
}

export const scaledMatmulOp = defineOp({
  name: 'scaled_matmul',
  doc: 'd = (a·aScale) · (b·bScale)ᵀ: the FP8 / MXFP8 / NVFP4 GEMM on K-major codes with tensor, row or block scales (and NVFP4 tensor scales), rounded once to outDtype',
  // a, aScale, b, bScale, and with nv16 aGlobal, bGlobal (checkScaledMatmul counts).
  inputs: ['...a_aScale_b_bScale_then_aGlobal_bGlobal_with_nv16'],
  outputs: ['d'],
  attrs: {
    aScaling: { kind: 'string', oneOf: SCALINGS },
    bScaling: { kind: 'string', oneOf: SCALINGS },
    scaleLayout: { kind: 'string', oneOf: GEMM_SCALE_LAYOUTS },
    outDtype: { kind: 'string', oneOf: SCALED_OUT_DTYPES },
    fastAccum: { kind: 'bool', default: false },
  },
  infer: (inTypes, attrs) => {
    const n = checkScaledMatmul('scaled_matmul', inTypes, attrs);
    return [{ shape: [n.M, n.N], dtype: n.outDtype }];
  },
  reference: ({ inputs, outputs: [d], inTypes, attrs }) => scaledMatmulReference('scaled_matmul', inputs, d!, inTypes, attrs, null),
  flops: ([a, , b]) => 2 * a!.shape[0]! * b!.shape[0]! * a!.shape[1]!,
});
