/**
 * scaled_matmul: the FP8 GEMM on quantized operands, D = (a·sa) · (b·sb)ᵀ.
 *
 *   a: f8e4m3 | f8e5m2 [M, K] (codes), aScale: f32 (layout below), b: f8e4m3 | f8e5m2 [N, K] (codes),
 *   bScale: f32; attributes aScaling, bScaling ('tensor' | 'row' | 'block1x128' | 'block128x128'),
 *   scaleLayout ('plain' | 'gemm'), outDtype ('bf16' | 'f32'), fastAccum (default false)
 *   -> d: outDtype [M, N],  d[m, n] = Σ_k a(m, k)·sa(m, k) · b(n, k)·sb(n, k)
 *
 * Both operands are K-major ([rows, K], K contiguous): a Linear's activations and its weight as
 * stored, or, for the backward GEMMs, the columnwise (transposed) copies quantizeTensor writes. It is
 * the one form cuBLASLt's FP8 kernels take ("TN"), so the op has no transpose flags.
 *
 * Scales are dequantization scales (x ≈ s · decode(code)), as quantizeTensor gives them (tensorwise
 * FP8's globalScale s = amax / max_elem; blockwise FP8's f32(amax / 448) per block). For an operand
 * of R rows, L = K / 128 blocks along K, RB = ceil(R / 128) and L4 = L rounded up to a multiple of 4:
 *
 *   scaling        'plain' (quantizeTensor's default)    'gemm' (what scaledGemmLt reads)
 *   tensor         [1]                                     [1]
 *   row            [R]                                     [R]
 *   block1x128     [R, L]   (K-blocks contiguous)         [L, R]   (rows contiguous: VEC128_32F)
 *   block128x128   [RB, L]                                 [RB, L4] (BLK128x128_32F; padding unread)
 *
 * The CPU reference reads either layout (scaleIndex below); the CUDA candidate takes 'gemm' only for
 * block scaling (quantizeTensor's `scaleLayout: 'gemm'`), since re-laying scales on every call would
 * be a kernel of its own. With tensor and row scaling the layouts are the same.
 *
 * Pairs (aScaling, bScaling): (tensor, tensor), (row, row), (block1x128, block1x128),
 * (block1x128, block128x128), (block128x128, block1x128) — what cuBLASLt offers on Hopper (DeepSeek-V3's
 * recipe: 1 × 128 activations and gradients, 128 × 128 weights; no 2D × 2D). Not both operands
 * e5m2 (no such GEMM: E5M2 is for gradients, multiplied by E4M3 operands). With block scaling K is
 * a whole number of 128-blocks and fastAccum is false (block scales are applied at each promotion of
 * the partial sums, so there is no unpromoted mode). fastAccum only lets a kernel skip the periodic
 * promotion of its partial sums; the reference, which is exact, ignores it.
 *
 * Reference: each operand dequantized exactly in float64 (an FP8 value times an f32 scale has at most
 * 28 significant bits), products summed in float64 in ascending k, the sum rounded once to outDtype
 * (to nearest even; bf16 directly from the float64 sum, not through f32). A NaN code or scale gives
 * NaN where it is read, ±Inf codes (E5M2) give ±Inf or NaN as IEEE arithmetic does.
 *
 * On the CPU an FP8 operand is held as its codes: the byte values 0–255 in a float array, the same
 * bytes a GPU tensor holds (the IR's CPU storage knows f32, i32 and widened bf16 / f16 only, so this
 * is the op's own convention; a value that is not such a code is refused). The IR's compiled CPU step
 * therefore cannot run it (its reference candidate declines f8 dtypes); `scaledMatmul`
 * (../scaled_matmul.ts) and the reference interpreter call this reference directly.
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
import { DeepwellError, describe } from '@deepwell/core';
import { defineOp, shapeError, type Attrs, type NumArray, type ValueType } from '@deepwell/ir';
import { ELEMENTS, decodeElement, ilog2, type ElementFormat } from '../elements.js';

export const SCALINGS = ['tensor', 'row', 'block1x128', 'block128x128'] as const;
export type Scaling = (typeof SCALINGS)[number];
export const GEMM_SCALE_LAYOUTS = ['plain', 'gemm'] as const;
export type GemmScaleLayout = (typeof GEMM_SCALE_LAYOUTS)[number];
export const SCALED_OUT_DTYPES = ['bf16', 'f32'] as const;
export type ScaledOutDtype = (typeof SCALED_OUT_DTYPES)[number];
export const FP8_DTYPES = ['f8e4m3', 'f8e5m2'] as const;

export const isBlockScaling = (s: Scaling): boolean => s === 'block1x128' || s === 'block128x128';

/** Whether cuBLASLt (and so this op) has a GEMM for the pair (see the file's comment). */
export function scalingPairAllowed(a: Scaling, b: Scaling): boolean {
  if (a === 'tensor' || a === 'row') return b === a;
  return isBlockScaling(b) && !(a === 'block128x128' && b === 'block128x128');
}

/** The shape of the scales of an operand of R rows and K columns (the table in the file's comment). */
export function scaleShape(scaling: Scaling, layout: GemmScaleLayout, R: number, K: number): number[] {
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
  }
}

/** The index into the scales (of `scaleShape`) of the scale of element (r, k). */
export function scaleIndex(scaling: Scaling, layout: GemmScaleLayout, R: number, K: number): (r: number, k: number) => number {
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
  }
}

/** What a valid call is: sizes, formats and attributes. */
export interface ScaledMatmulDims {
  M: number;
  N: number;
  K: number;
  aFormat: 'e4m3' | 'e5m2';
  bFormat: 'e4m3' | 'e5m2';
  aScaling: Scaling;
  bScaling: Scaling;
  layout: GemmScaleLayout;
  outDtype: ScaledOutDtype;
  fastAccum: boolean;
}

const str = (t: ValueType) => `${t.dtype}[${t.shape.join(', ')}]`;

/**
 * Checks a call (input types and attributes) as the op's shape rule does; every error names the
 * argument and reads "Expected X for Y but received Z". Returns the call's sizes.
 */
export function checkScaledMatmul(op: string, inTypes: readonly ValueType[], attrs: Attrs): ScaledMatmulDims {
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
  for (const [name, t] of [['a', a], ['b', b]] as const) {
    if (!(FP8_DTYPES as readonly string[]).includes(t.dtype)) throw new DeepwellError('INVALID_DTYPE', `${op}: Expected f8e4m3 or f8e5m2 codes for input '${name}' but received ${str(t)}`);
    if (t.shape.length !== 2) shapeError(op, `Expected a rank-2 tensor ([rows, K], K contiguous) for input '${name}' but received ${str(t)}`);
  }
  for (const [name, t] of [['aScale', aScale], ['bScale', bScale]] as const) {
    if (t.dtype !== 'f32') throw new DeepwellError('INVALID_DTYPE', `${op}: Expected f32 for input '${name}' but received ${str(t)}`);
  }
  const [M, K] = a.shape as [number, number];
  const [N, Kb] = b.shape as [number, number];
  if (Kb !== K) shapeError(op, `Expected input 'b' with K = ${K} columns (a's) but received ${str(b)}`);
  if (M < 1 || N < 1 || K < 1) shapeError(op, `Expected M, N and K >= 1 but received ${M}, ${N} and ${K}`);
  if (a.dtype === 'f8e5m2' && b.dtype === 'f8e5m2') throw new DeepwellError('INVALID_DTYPE', `${op}: Expected at most one f8e5m2 operand (there is no E5M2 × E5M2 GEMM: E5M2 gradients multiply E4M3 operands) but received f8e5m2 for both 'a' and 'b'`);
  if (!scalingPairAllowed(aScaling, bScaling)) {
    throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected (aScaling, bScaling) of (tensor, tensor), (row, row), (block1x128, block1x128), (block1x128, block128x128) or (block128x128, block1x128) but received (${aScaling}, ${bScaling})`);
  }
  const block = isBlockScaling(aScaling);
  if (block && K % 128 !== 0) shapeError(op, `Expected K a whole number of 128-element blocks with ${aScaling} / ${bScaling} scaling but received K = ${K} (inputs 'a' ${str(a)} and 'b' ${str(b)})`);
  if (block && fastAccum) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected fastAccum false with block scaling (block scales are applied as the partial sums are promoted) but received true`);
  for (const [name, t, scaling, R] of [['aScale', aScale, aScaling, M], ['bScale', bScale, bScaling, N]] as const) {
    const want = scaleShape(scaling, layout, R, K);
    if (t.shape.join() !== want.join()) {
      const other = scaling === 'tensor' || scaling === 'row' ? '' : ` (the '${layout === 'plain' ? 'gemm' : 'plain'}' layout would be [${scaleShape(scaling, layout === 'plain' ? 'gemm' : 'plain', R, K).join(', ')}])`;
      shapeError(op, `Expected f32[${want.join(', ')}] for input '${name}' (${scaling} scaling, scaleLayout '${layout}', ${R} rows, K = ${K})${other} but received ${str(t)}`);
    }
  }
  const fmt = (t: ValueType) => (t.dtype === 'f8e5m2' ? 'e5m2' : 'e4m3') as 'e4m3' | 'e5m2';
  return { M, N, K, aFormat: fmt(a), bFormat: fmt(b), aScaling, bScaling, layout, outDtype, fastAccum };
}

/** Each of the 256 codes of an element format, decoded. */
const DECODED = new Map<string, Float64Array>();
function decodeTable(f: ElementFormat): Float64Array {
  let t = DECODED.get(f.name);
  if (!t) {
    t = Float64Array.from({ length: 256 }, (_, c) => decodeElement(f, c));
    DECODED.set(f.name, t);
  }
  return t;
}

/** An operand's values, decoded and scaled, as a row-major float64 [R, K] matrix (exact). */
function dequantizeOperand(op: string, name: string, codes: NumArray, scales: NumArray, format: 'e4m3' | 'e5m2', scaling: Scaling, layout: GemmScaleLayout, R: number, K: number): Float64Array {
  const table = decodeTable(ELEMENTS[format]);
  const at = scaleIndex(scaling, layout, R, K);
  const out = new Float64Array(R * K);
  for (let r = 0; r < R; r++)
    for (let k = 0; k < K; k++) {
      const c = codes[r * K + k]!;
      if (!(Number.isInteger(c) && c >= 0 && c <= 255)) {
        throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected FP8 codes (integers 0 to 255: on the CPU the operand holds its codes, not their values) in input '${name}' but received ${c} at element (${r}, ${k})`);
      }
      out[r * K + k] = table[c]! * scales[at(r, k)]!;
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
 * it to the FP32 accumulator).
 */
export function scaledMatmulReference(op: string, [a, aScale, b, bScale]: readonly NumArray[], d: NumArray, inTypes: readonly ValueType[], attrs: Attrs, bias: NumArray | null): void {
  const n = checkScaledMatmul(op, inTypes, attrs);
  const { M, N, K } = n;
  const A = dequantizeOperand(op, 'a', a!, aScale!, n.aFormat, n.aScaling, n.layout, M, K);
  const B = dequantizeOperand(op, 'b', b!, bScale!, n.bFormat, n.bScaling, n.layout, N, K);
  const round = n.outDtype === 'f32' ? Math.fround : roundToBf16;
  for (let m = 0; m < M; m++)
    for (let j = 0; j < N; j++) {
      let s = bias ? bias[j]! : 0;
      for (let k = 0; k < K; k++) s += A[m * K + k]! * B[j * K + k]!;
      d[m * N + j] = round(s);
    }
}

export const scaledMatmulOp = defineOp({
  name: 'scaled_matmul',
  doc: 'd = (a·aScale) · (b·bScale)ᵀ: the FP8 GEMM on K-major codes with tensor, row or block scales, rounded once to outDtype',
  inputs: ['a', 'aScale', 'b', 'bScale'],
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
  reference: ({ inputs: [a, aScale, b, bScale], outputs: [d], inTypes, attrs }) => scaledMatmulReference('scaled_matmul', [a!, aScale!, b!, bScale!], d!, inTypes, attrs, null),
  flops: ([a, , b]) => 2 * a!.shape[0]! * b!.shape[0]! * a!.shape[1]!,
});
