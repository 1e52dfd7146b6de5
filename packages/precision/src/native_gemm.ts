/**
 * The precision policy's native rewrite: a GEMM of the training step (forward, data gradient or
 * weight gradient) becomes quantize → scaled_matmul, the FP8 GEMM on tensor cores, instead of
 * fake_quant → BF16 GEMM.
 *
 * A `matmul` computes C[M, N] = op(A)[M, K] · op(B)[K, N]; scaled_matmul takes both operands
 * K-major ([M, K] and [N, K]). So each operand is quantized in the direction that stores it that
 * way: A rowwise when it is not transposed (its rows are M), else columnwise (the transposed
 * codes); B rowwise when it is transposed ([N, K], a Linear's weight in the forward), else
 * columnwise. An operand of rank > 2 is viewed as [rows, last] (reshapes are free).
 *
 * One quantize node per tensor and format, writing every direction any GEMM needs from one read:
 * an activation x is quantized once in the forward, rowwise for the forward GEMM and columnwise for
 * the weight gradient, so what the backward keeps of x is its FP8 codes (and x itself dies early
 * where nothing else reads it); the gradient dy once, rowwise for the data gradient and columnwise
 * for the weight gradient; a weight once per step (its bf16 copy, as the emulation and the
 * numerics read it), rowwise for the forward and columnwise (Wᵀ) for the data gradient. Values are matched through
 * reshapes, so dy and its [B·T, N] view share a node.
 *
 * Formats by the operand's role: a gradient (a value the backward computes) takes the recipe's
 * backward format, any other operand the forward format, a weight whose two dims are multiples of
 * 128 the recipe's weight format:
 *   fp8-tensorwise: E4M3 × E4M3 forward, E5M2 gradient × E4M3 operand backward (one scale each);
 *                   the forward GEMM accumulates fast (no periodic promotion), as torchao's
 *                   default does, the backward GEMMs promote;
 *   fp8-blockwise:  1 × 128 activations and gradients (128 × 1 columnwise), 128 × 128 weights.
 *
 * A GEMM that cannot run natively (an operand that is not a 2-D view, a scaling pair cuBLASLt does
 * not have, sizes the kernels do not take) stays emulated; planNativeGemm says why.
 */
import { invalid } from '@deepwell/core';
import { reshape, type Graph, type GraphBuilder, type NodeDecl, type Sym } from '@deepwell/ir';
import { RECIPES, checkRecipe, type RecipeSpec } from './policy.js';
import { checkGraphLike } from './guards.js';
import type { GemmRoles } from './roles.js';
import { scalingPairAllowed, type ScaledMatmulDims } from './ops/scaled_matmul.js';
import type { FakeQuantFormat } from './ops/fake_quant.js';
import { checkQuantize, quantizeOutputs, scalingOf, type QuantizeDirection, type QuantizeFormat, type QuantizeOutputs } from './ops/quantize.js';
import { scaledGemmLimits } from './cuda/scaled_matmul.js';

/** One operand of a native GEMM: what is quantized ([rows, cols] view of `root`) and how. */
export interface NativeOperand {
  /** The value quantized: the operand through reshapes, or a weight's f32 master for its cast. */
  root: number;
  rows: number;
  cols: number;
  format: QuantizeFormat;
  direction: 'rowwise' | 'columnwise';
}

export interface NativeGemm {
  node: NodeDecl;
  a: NativeOperand;
  b: NativeOperand;
  M: number;
  N: number;
  K: number;
  outDtype: 'bf16' | 'f32';
  fastAccum: boolean;
  /** Whether a bias may go into the GEMM's epilogue (a forward GEMM, bf16 out, the GEMM available). */
  biasOk: boolean;
}

/** Whether this machine runs an FP8 GEMM (with the bias epilogue), else why not (scaledGemmAvailable). */
export type GemmProbe = (dims: ScaledMatmulDims, bias: boolean) => true | string;

const NATIVE_RECIPES = new Set(['fp8-tensorwise', 'fp8-blockwise']);

/** Whether a recipe has a native rewrite in this build (MXFP8 and NVFP4 GEMMs: not yet). */
export const hasNativeRewrite = (recipe: string): boolean => NATIVE_RECIPES.has(checkRecipe(recipe, 'for hasNativeRewrite'));

/** The arguments planNativeGemm and operandFormat share, checked (they are public). */
function checkPlanArgs(graph: unknown, r: unknown, roles: unknown, producers: unknown, tiles: unknown, what: string): void {
  checkGraphLike(graph, what);
  if (!Object.values(RECIPES).includes(r as RecipeSpec)) invalid('a recipe spec from RECIPES', `${what}'s recipe`, r);
  if (typeof roles !== 'object' || roles === null || typeof (roles as { paramOf?: unknown }).paramOf !== 'function') invalid("the graph's GEMM roles", what, roles);
  if (!(producers instanceof Map)) invalid('a Map of producers (producerMap(graph))', what, producers);
  if (typeof tiles !== 'function') invalid('a function (weight shape → whether it takes the weight format)', `${what}'s tiles`, tiles);
}

/** The value a value is a view of: followed back through reshapes. */
function rootOf(producers: Map<number, NodeDecl>, id: number): number {
  let v = id;
  for (let p = producers.get(v); p && p.op === 'reshape'; p = producers.get(v)) v = p.inputs[0]!;
  return v;
}

export function producerMap(graph: Graph): Map<number, NodeDecl> {
  const m = new Map<number, NodeDecl>();
  for (const n of graph.nodes) for (const o of n.outputs) m.set(o, n);
  return m;
}

/**
 * An operand's format under recipe r (null: the recipe has none for it): a gradient (a value the
 * backward computes) takes the backward format, any other operand the forward format, a weight whose
 * last two dims are multiples of 128 (`tiles`) the recipe's weight format. The emulated rewrite
 * uses the same rule, so emulation and the native GEMMs quantize alike.
 */
export function operandFormat(graph: Graph, id: number, r: RecipeSpec, roles: GemmRoles, producers: Map<number, NodeDecl>, tiles: (shape: readonly number[]) => boolean): FakeQuantFormat | null {
  checkPlanArgs(graph, r, roles, producers, tiles, 'operandFormat');
  if (!Number.isInteger(id) || id < 0 || id >= graph.values.length) invalid(`a value id in [0, ${graph.values.length})`, 'operandFormat', id);
  return formatOf(graph, id, r, roles, producers, tiles);
}

/** operandFormat without the checks: for the policy, which checked its graph once. */
export function formatOf(graph: Graph, id: number, r: RecipeSpec, roles: GemmRoles, producers: Map<number, NodeDecl>, tiles: (shape: readonly number[]) => boolean): FakeQuantFormat | null {
  const gradient = producers.get(rootOf(producers, id))?.phase === 'backward'; // not a view the backward made of x
  const base = gradient ? r.backward : r.forward;
  return base && r.weight && roles.paramOf(id) !== null && tiles(graph.values[id]!.type.shape) ? r.weight : base;
}

/**
 * How matmul node `n` runs natively under recipe `r` (`tiles`: whether a weight shape takes the
 * recipe's weight format), or why it cannot.
 */
export function planNativeGemm(graph: Graph, n: NodeDecl, r: RecipeSpec, roles: GemmRoles, producers: Map<number, NodeDecl>, tiles: (shape: readonly number[]) => boolean, probe: GemmProbe | null): NativeGemm | string {
  checkPlanArgs(graph, r, roles, producers, tiles, 'planNativeGemm');
  if (!graph.nodes.includes(n) || n.op !== 'matmul') invalid("a matmul node of the graph", 'planNativeGemm', n);
  if (probe !== null && typeof probe !== 'function') invalid('a GEMM probe function or null', 'planNativeGemm', probe);
  return planGemm(graph, n, r, roles, producers, tiles, probe);
}

/** planNativeGemm without the checks: for the policy, which checked its graph once (one check a matmul made planning quadratic in the graph). */
export function planGemm(graph: Graph, n: NodeDecl, r: RecipeSpec, roles: GemmRoles, producers: Map<number, NodeDecl>, tiles: (shape: readonly number[]) => boolean, probe: GemmProbe | null): NativeGemm | string {
  const [aT, bT] = n.inputs.map((id) => graph.values[id]!.type) as [Graph['values'][0]['type'], Graph['values'][0]['type']];
  const out = graph.values[n.outputs[0]!]!.type;
  const transA = n.attrs.transA === true;
  const transB = n.attrs.transB === true;
  if (bT.shape.length !== 2) return `its b operand has rank ${bT.shape.length} (a batched GEMM)`;
  if (aT.shape.length > 2 && transA) return 'its transposed a operand has rank > 2';
  if (out.dtype !== 'bf16' && out.dtype !== 'f32') return `its output is ${out.dtype} (the FP8 GEMM writes bf16 or f32)`;
  const aCols = aT.shape.at(-1)!;
  const aRows = aT.shape.reduce((x, y) => x * y, 1) / aCols;
  const [M, K] = transA ? [aCols, aRows] : [aRows, aCols];
  const N = transB ? bT.shape[0]! : bT.shape[1]!;
  // The operand as the GEMM would read it (a weight's bf16 copy, not its f32 master), so the native
  // GEMM, the emulation and the numerics quantize the same values.
  const operand = (id: number, rows: number, cols: number, direction: 'rowwise' | 'columnwise'): NativeOperand => {
    const format = formatOf(graph, id, r, roles, producers, tiles) as QuantizeFormat;
    return { root: rootOf(producers, id), rows, cols, format, direction };
  };
  const a = operand(n.inputs[0]!, aRows, aCols, transA ? 'columnwise' : 'rowwise');
  const b = operand(n.inputs[1]!, bT.shape[0]!, bT.shape[1]!, transB ? 'rowwise' : 'columnwise');
  if (a.format === 'fp8-e5m2' && b.format === 'fp8-e5m2') return 'both operands are gradients (there is no E5M2 × E5M2 GEMM)';
  if (!scalingPairAllowed(scalingOf(a.format), scalingOf(b.format))) return `cuBLASLt has no (${scalingOf(a.format)}, ${scalingOf(b.format)}) GEMM`;
  for (const [name, o] of [['a', a], ['b', b]] as const) {
    try {
      checkQuantize('quantize', { shape: [o.rows, o.cols], dtype: 'bf16' }, { format: o.format, direction: o.direction });
    } catch (e) {
      return `operand ${name}: ${(e as Error).message}`;
    }
    if (o.cols % 8 !== 0) return `operand ${name}'s rows of ${o.cols} are not a multiple of 8 elements`;
    if (o.direction === 'columnwise' && scalingOf(o.format) === 'tensor' && o.rows % 32 !== 0) return `operand ${name} has ${o.rows} rows, not a multiple of 32 (the columnwise quantizer's)`;
  }
  const outDtype = out.dtype;
  const fastAccum = scalingOf(a.format) === 'tensor' && n.phase !== 'backward';
  const fp8 = (f: QuantizeFormat) => (f === 'fp8-e5m2' ? 'e5m2' : 'e4m3') as 'e4m3' | 'e5m2';
  const dims: ScaledMatmulDims = { M, N, K, aFormat: fp8(a.format), bFormat: fp8(b.format), aScaling: scalingOf(a.format), bScaling: scalingOf(b.format), layout: 'gemm', outDtype, fastAccum };
  const ok = probe ? probe(dims, false) : scaledGemmLimits(dims);
  if (ok !== true) return `the FP8 GEMM ${ok}`;
  const biasOk = outDtype === 'bf16' && n.phase !== 'backward' && (probe ? probe(dims, true) === true : true);
  return { node: n, a, b, M, N, K, outDtype, fastAccum, biasOk };
}

/**
 * Rewrites the planned GEMMs: one quantize node per (tensor, view, format) with the directions the
 * GEMMs ask of it, before the first GEMM that reads it; each GEMM node becomes a reshape (free: an
 * alias) of a new scaled_matmul to its own shape, so its output value and every reader stay. A
 * forward GEMM whose only reader is a bias_add takes the bias into its epilogue (scaled_matmul_bias)
 * and the bias_add becomes the reshape. Returns the new nodes to put before each node (by node id).
 */
export function rewriteNative(graph: Graph, b: GraphBuilder, gemms: readonly NativeGemm[]): Map<number, NodeDecl[]> {
  const before = new Map<number, NodeDecl[]>();
  const place = (at: NodeDecl, from: number) => before.set(at.id, [...(before.get(at.id) ?? []), ...graph.nodes.slice(from)]);
  const key = (o: NativeOperand) => `${o.root}|${o.rows}x${o.cols}|${o.format}`;
  const requests = new Map<string, { o: NativeOperand; directions: Set<NativeOperand['direction']>; first: NodeDecl }>();
  for (const g of gemms) {
    for (const o of [g.a, g.b]) {
      const r = requests.get(key(o)) ?? { o, directions: new Set(), first: g.node };
      r.directions.add(o.direction);
      requests.set(key(o), r);
    }
  }
  const made = new Map<string, { outs: Sym[]; at: QuantizeOutputs }>();
  for (const [k, { o, directions, first }] of requests) {
    const from = graph.nodes.length;
    const direction: QuantizeDirection = directions.size === 2 ? 'both' : [...directions][0]!;
    const outs = b.like(first, () => {
      const root = b.sym(o.root);
      const x = root.shape.length === 2 && root.shape[0] === o.rows ? root : reshape(root, [o.rows, o.cols]);
      return b.op('quantize', [x], { format: o.format, direction });
    });
    made.set(k, { outs, at: quantizeOutputs(o.format, direction) });
    place(first, from);
  }
  const pick = (o: NativeOperand): [Sym, Sym] => {
    const { outs, at } = made.get(key(o))!;
    return o.direction === 'rowwise' ? [outs[at.rowCodes!]!, outs[at.rowScales!]!] : [outs[at.colCodes!]!, outs[at.colScales!]!];
  };
  // Readers of each value (nodes, and the graph's outputs, updates and gradients as null).
  const readers = new Map<number, (NodeDecl | null)[]>();
  for (const n of graph.nodes) for (const i of n.inputs) readers.set(i, [...(readers.get(i) ?? []), n]);
  for (const v of [...Object.values(graph.outputs), ...Object.values(graph.updates), ...Object.values(graph.gradients)]) readers.set(v, [...(readers.get(v) ?? []), null]);
  for (const g of gemms) {
    const from = graph.nodes.length;
    const product = g.node.outputs[0]!;
    const attrs = { aScaling: scalingOf(g.a.format), bScaling: scalingOf(g.b.format), scaleLayout: 'gemm', outDtype: g.outDtype, fastAccum: g.fastAccum };
    // A forward product whose one reader adds a bias: the bias goes into the GEMM's epilogue, and
    // the bias_add node becomes the reshape (the matmul node is left unread, for DCE).
    const only = readers.get(product)?.length === 1 ? readers.get(product)![0] : null;
    const biasT = only?.op === 'bias_add' && only.inputs[0] === product ? graph.values[only.inputs[1]!]!.type : null;
    const bias = biasT && g.biasOk && biasT.dtype === 'bf16' && biasT.shape.length === 1 && biasT.shape[0] === g.N ? only! : null;
    const operands = [...pick(g.a), ...pick(g.b)];
    const d = b.like(g.node, () => (bias ? b.op1('scaled_matmul_bias', [...operands, b.sym(bias.inputs[1]!)], attrs) : b.op1('scaled_matmul', operands, attrs)));
    const target = bias ?? g.node;
    place(target, from);
    target.op = 'reshape';
    target.inputs = [d.id];
    target.attrs = { shape: [...graph.values[target.outputs[0]!]!.type.shape] };
  }
  return before;
}
