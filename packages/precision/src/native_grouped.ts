/**
 * The precision policy's native rewrite of a MoE layer's expert GEMMs (grouped_matmul,
 * grouped_matmul_wgrad) under the fp8-blockwise recipe: the forward grouped GEMM and its data
 * gradient become quantize → grouped_scaled_matmul, the FP8 blockwise grouped GEMM (DeepSeek-V3's
 * recipe on each expert: 1 × 128 activation scales, 128 × 128 weight scales), and the weight
 * gradient quantize_kgrouped → grouped_scaled_matmul_wgrad, instead of fake_quant → BF16 grouped GEMM.
 *
 * The forward:
 *   x [R, K] (the experts' rows)   quantize rowwise, fp8-block1x128 → codes [R, K], scales [K/128, R]
 *   w [E, K, N] (an expert weight) quantize columnwise, fp8-block128x128, each expert a slice →
 *                                  codes [E, N, K] (K-major, what FP8 wgmma reads), scales
 *                                  [E, ceil(N/128), L4]
 *   grouped_matmul(x, w, offsets)  → grouped_scaled_matmul(codes, scales, codes, scales, offsets),
 *                                  the same node (its output value and readers stay)
 *
 * The data gradient (grouped_matmul with transposeW: dy [R, N] · w[e]ᵀ, w [E, K, N]) runs natively
 * too: its weight operand is w itself, [E, Nout = K, Kred = N] with the reduction contiguous, so
 * w's rowwise 128 × 128 codes are the K-major operand the kernel reads (no transposed copy), and
 * dy is quantized rowwise in 1 × 128 blocks along N.
 *
 * The weight gradient (grouped_matmul_wgrad: dw[e] = x_eᵀ · dy_e, reducing over each expert's rows)
 * runs as DeepGEMM's "k-grouped" GEMM: its two operands take 1 × 128 blocks down the rows, each
 * expert's rows padded alone to whole blocks so that every block scale belongs to one expert's sum:
 *   x [R, K]                        quantize_kgrouped(x, offsets)  → codes [K, P], scales [P/128, K]
 *   dy [R, N]                       quantize_kgrouped(dy, offsets) → codes [N, P], scales [P/128, N]
 *   grouped_matmul_wgrad(x, dy, …)  → grouped_scaled_matmul_wgrad(codes, scales, codes, scales,
 *                                    offsets), the same node, P = 128 · (ceil(R/128) + E).
 * On a CUDA device it is rewritten only where the kernel registry has a kernel for both new ops'
 * calls (their candidates are new: a build without them keeps the weight gradient emulated, the
 * registry's reason recorded, rather than failing to compile). The policy still asks R to be a
 * multiple of 128, as for the emulation (its fake_quant and quant_stats read x and dy in blocks of
 * 128 rows, across experts); the numerics' quant_stats of these operands are of those blocks, not
 * of the per-expert padded ones the native quantizer makes.
 *
 * Two grouped GEMMs that quantize one value the same way share the quantize node (`shared`, one map
 * for a policy run), placed before the first of them: a SwiGLU expert MLP's gate and up GEMMs read
 * one x (rowwise 1 × 128), and their weight gradients one k-grouped x. CSE would merge the two after
 * the policy; done here so that the epilogue fusion, which runs inside the policy
 * (fuse_scaled_grouped.ts, SwiGLU's pattern C), finds both GEMMs reading one a and aScale.
 *
 * A grouped GEMM whose operands do not take the formats (a weight whose dims are not multiples of
 * 128: the recipe gives it 1 × 128 blocks, which the kernel does not read), a reduction not a
 * multiple of 128, or sizes the kernels refuse, stays emulated with the reason.
 */
import { registry } from '@deepwell/core';
import { checkAttrs, getOp, type Attrs, type Graph, type GraphBuilder, type KernelParams, type NodeDecl, type Sym, type ValueType } from '@deepwell/ir';
import type { RecipeSpec } from './policy.js';
import type { GemmRoles } from './roles.js';
import { formatOf } from './native_gemm.js';
import { checkQuantize, quantizeOutputs } from './ops/quantize.js';
import { checkQuantizeKgrouped, kgroupedTypes } from './ops/quantize_kgrouped.js';
import { checkGroupedWgrad } from './ops/grouped_scaled_matmul_wgrad.js';

/** A forward or data-gradient grouped GEMM planned to run natively. */
export interface NativeGrouped {
  kind: 'grouped';
  node: NodeDecl;
  x: number;
  w: number;
  offsets: number;
  outDtype: 'bf16' | 'f32';
  /** How w is quantized into the kernel's [E, N, K] K-major operand: columnwise (the forward's w [E, K, N]) or rowwise (the data gradient's, [E, N, K] already). */
  weightDirection: 'rowwise' | 'columnwise';
}

/** A weight gradient (grouped_matmul_wgrad(x, dy, offsets)) planned to run natively, k-grouped. */
export interface NativeGroupedWgrad {
  kind: 'wgrad';
  node: NodeDecl;
  x: number;
  dy: number;
  offsets: number;
  experts: number;
  outDtype: 'bf16' | 'f32';
}

export type GroupedPlan = NativeGrouped | NativeGroupedWgrad;

/**
 * Whether a kernel on the device the step is compiled for takes a call of `op` with these input
 * types and attributes (true), or why not. null: do not ask (the CPU, or planning without a device).
 */
export type KernelProbe = ((op: string, inTypes: ValueType[], attrs: Attrs) => true | string) | null;

/** The kernel registry's answer for calls on `device` (the op's shape rule gives the outputs). */
export function registryProbe(device: string): NonNullable<KernelProbe> {
  return (op, inTypes, attrs) => {
    const def = getOp(op);
    const checked = checkAttrs(def, attrs);
    const params: KernelParams = { op, device, inTypes, outTypes: def.infer(inTypes, checked), attrs: checked };
    const e = registry.explain(op, params);
    return e.selected !== null ? true : e.rows.length > 0 ? e.rows.map((row) => `${row.name}: ${row.verdict}`).join('; ') : `no kernel is registered for ${op}`;
  };
}

const MAX_INT = 2 ** 31 - 1;

/** How grouped GEMM node `n` runs natively under recipe `r`, or why it stays emulated. */
export function planGroupedGemm(graph: Graph, n: NodeDecl, r: RecipeSpec, roles: GemmRoles, producers: Map<number, NodeDecl>, tiles: (shape: readonly number[]) => boolean, kernels: KernelProbe): GroupedPlan | string {
  if (n.op === 'grouped_matmul_wgrad') return planGroupedWgrad(graph, n, r, roles, producers, tiles, kernels);
  if (n.op !== 'grouped_matmul') return `${n.op} is not a grouped GEMM`;
  const transposed = n.attrs.transposeW === true;
  const [x, w, offsets] = n.inputs as [number, number, number];
  const fx = formatOf(graph, x, r, roles, producers, tiles);
  const fw = formatOf(graph, w, r, roles, producers, tiles);
  if (fx !== 'fp8-block1x128' || fw !== 'fp8-block128x128') return `the FP8 grouped GEMM takes 1 × 128 activations and 128 × 128 weights, not ${fx} and ${fw}`;
  const xT = graph.values[x]!.type;
  const wT = graph.values[w]!.type;
  const out = graph.values[n.outputs[0]!]!.type;
  if (xT.shape.length !== 2 || wT.shape.length !== 3) return `its operands are not x [R, K] and w [E, ${transposed ? 'N, K' : 'K, N'}]`;
  const [R, K] = xT.shape as [number, number];
  // The weight as the kernel reads it: [E, N, K] K-major. The forward's w [E, K, N] is quantized
  // columnwise into that; the data gradient's (transposeW) is that already, quantized rowwise.
  const [E, N] = transposed ? (wT.shape as [number, number, number]) : [wT.shape[0]!, wT.shape[2]!];
  if (out.dtype !== 'bf16' && out.dtype !== 'f32') return `its output is ${out.dtype} (the FP8 grouped GEMM writes bf16 or f32)`;
  if (K % 128 !== 0) return `its reduction length ${K} is not a multiple of 128`;
  if (Math.max(R, K, N) > MAX_INT || Math.ceil(N / 64) > 65535 || E > 8192) return `the FP8 grouped GEMM does not take R ${R}, K ${K}, N ${N}, E ${E}`;
  try {
    checkQuantize('quantize', { shape: [R, K], dtype: 'bf16' }, { format: fx, direction: 'rowwise' });
    checkQuantize('quantize', { shape: wT.shape as number[], dtype: 'bf16' }, { format: fw, direction: transposed ? 'rowwise' : 'columnwise' });
  } catch (e) {
    return (e as Error).message;
  }
  return { kind: 'grouped', node: n, x, w, offsets, outDtype: out.dtype, weightDirection: transposed ? 'rowwise' : 'columnwise' };
}

/**
 * The weight gradient dw = grouped_matmul_wgrad(x, dy, offsets): natively (k-grouped) where both
 * operands take 1 × 128 blocks, x and dy are bf16 or f32 [R, K] and [R, N], dw bf16 or f32, and on
 * a device (`kernels`) where both quantize_kgrouped and grouped_scaled_matmul_wgrad have a kernel.
 */
function planGroupedWgrad(graph: Graph, n: NodeDecl, r: RecipeSpec, roles: GemmRoles, producers: Map<number, NodeDecl>, tiles: (shape: readonly number[]) => boolean, kernels: KernelProbe): NativeGroupedWgrad | string {
  const [x, dy, offsets] = n.inputs as [number, number, number];
  const fx = formatOf(graph, x, r, roles, producers, tiles);
  const fg = formatOf(graph, dy, r, roles, producers, tiles);
  if (fx !== 'fp8-block1x128' || fg !== 'fp8-block1x128') return `the FP8 k-grouped weight gradient takes 1 × 128 blocks down the rows of both operands, not ${fx} and ${fg}`;
  const [xT, gT, oT] = [x, dy, offsets].map((id) => graph.values[id]!.type) as [ValueType, ValueType, ValueType];
  const out = graph.values[n.outputs[0]!]!.type;
  for (const t of [xT, gT]) if (t.dtype !== 'bf16' && t.dtype !== 'f32') return `its operands are ${xT.dtype} and ${gT.dtype} (the k-grouped quantizer is used on bf16 or f32)`;
  if (out.dtype !== 'bf16' && out.dtype !== 'f32') return `its output is ${out.dtype} (the FP8 weight gradient writes bf16 or f32)`;
  const experts = n.attrs.experts as number;
  const calls: [string, ValueType[], Attrs][] = [];
  try {
    const xq = checkQuantizeKgrouped([xT, oT], { experts });
    const gq = checkQuantizeKgrouped([gT, oT], { experts });
    const wgrad: ValueType[] = [...kgroupedTypes(xq.C, xq.P), ...kgroupedTypes(gq.C, gq.P), oT];
    checkGroupedWgrad(wgrad, { experts, outDtype: out.dtype });
    if (Math.max(xq.C, gq.C, xq.P) > MAX_INT || experts > 8192) return `the FP8 weight gradient does not take K ${xq.C}, N ${gq.C}, P ${xq.P}, E ${experts}`;
    calls.push(['quantize_kgrouped', [xT, oT], { experts }], ['quantize_kgrouped', [gT, oT], { experts }], ['grouped_scaled_matmul_wgrad', wgrad, { experts, outDtype: out.dtype }]);
  } catch (e) {
    return (e as Error).message;
  }
  for (const [op, inTypes, attrs] of kernels ? calls : []) {
    const ok = kernels!(op, inTypes, attrs);
    if (ok !== true) return `no kernel here for its ${op}: ${ok}`;
  }
  return { kind: 'wgrad', node: n, x, dy, offsets, experts, outDtype: out.dtype };
}

/**
 * Rewrites a planned grouped GEMM in place, its output value and readers kept: the forward or data
 * gradient's quantize nodes for x (rowwise) and w (plan.weightDirection), the node then
 * grouped_scaled_matmul of their codes and scales; the weight gradient's quantize_kgrouped nodes for
 * x and dy, the node then grouped_scaled_matmul_wgrad. A quantization an earlier call made of the same
 * value with the same attributes (`shared`, kept by the caller across the calls of one rewrite) is
 * read rather than made again. Returns the new nodes, to put before it.
 */
export function rewriteGrouped(graph: Graph, b: GraphBuilder, plan: GroupedPlan, shared: Map<string, Sym[]> = new Map()): NodeDecl[] {
  const once = (op: string, inputs: number[], attrs: Attrs): Sym[] => {
    const key = `${op}|${inputs.join(',')}|${JSON.stringify(attrs)}`;
    const made = shared.get(key) ?? b.op(op, inputs.map((id) => b.sym(id)), attrs);
    shared.set(key, made);
    return made;
  };
  if (plan.kind === 'wgrad') {
    return replaceNode(graph, b, plan.node, 'grouped_scaled_matmul_wgrad', { experts: plan.experts, outDtype: plan.outDtype }, plan.offsets, () => {
      const attrs = { experts: plan.experts };
      return [...once('quantize_kgrouped', [plan.x, plan.offsets], attrs), ...once('quantize_kgrouped', [plan.dy, plan.offsets], attrs)];
    });
  }
  return replaceNode(graph, b, plan.node, 'grouped_scaled_matmul', { scaleLayout: 'gemm', outDtype: plan.outDtype }, plan.offsets, () => {
    const xq = once('quantize', [plan.x], { format: 'fp8-block1x128', direction: 'rowwise' });
    const wq = once('quantize', [plan.w], { format: 'fp8-block128x128', direction: plan.weightDirection });
    const xa = quantizeOutputs('fp8-block1x128', 'rowwise');
    const wa = quantizeOutputs('fp8-block128x128', plan.weightDirection);
    const [wc, ws] = plan.weightDirection === 'rowwise' ? [wa.rowCodes!, wa.rowScales!] : [wa.colCodes!, wa.colScales!];
    return [xq[xa.rowCodes!]!, xq[xa.rowScales!]!, wq[wc]!, wq[ws]!];
  });
}

/** Node `n` becomes `op` (attributes `attrs`) of the operands `quantized` makes (in n's scope and phase), then `offsets`; returns the new nodes. */
function replaceNode(graph: Graph, b: GraphBuilder, n: NodeDecl, op: string, attrs: Attrs, offsets: number, quantized: () => Sym[]): NodeDecl[] {
  const from = graph.nodes.length;
  const operands = b.like(n, quantized);
  n.op = op;
  n.inputs = [...operands.map((s) => s.id), offsets];
  n.attrs = attrs;
  return graph.nodes.slice(from);
}
