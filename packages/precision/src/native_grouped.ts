/**
 * The precision policy's native rewrite of a MoE layer's expert GEMM (grouped_matmul) under the
 * fp8-blockwise recipe: the forward grouped GEMM becomes quantize → grouped_scaled_matmul, the FP8
 * blockwise grouped GEMM (DeepSeek-V3's recipe on each expert: 1 × 128 activation scales, 128 × 128
 * weight scales), instead of fake_quant → BF16 grouped GEMM.
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
 * dy is quantized rowwise in 1 × 128 blocks along N. The weight gradient (grouped_matmul_wgrad)
 * reduces over each expert's rows, which needs 128 × 1 scales along tokens and rows padded per
 * expert (DeepGEMM's k-grouped layout); it stays emulated (planGroupedGemm says so). A grouped GEMM
 * whose operands do not take the formats (a weight whose dims are not multiples of 128: the recipe
 * gives it 1 × 128 blocks, which the kernel does not read), a reduction not a multiple of 128, or
 * sizes the kernel refuses, stays emulated with the reason.
 */
import type { Graph, GraphBuilder, NodeDecl } from '@deepwell/ir';
import type { RecipeSpec } from './policy.js';
import type { GemmRoles } from './roles.js';
import { formatOf } from './native_gemm.js';
import { checkQuantize, quantizeOutputs } from './ops/quantize.js';

/** A forward grouped GEMM planned to run natively. */
export interface NativeGrouped {
  node: NodeDecl;
  x: number;
  w: number;
  offsets: number;
  outDtype: 'bf16' | 'f32';
  /** How w is quantized into the kernel's [E, N, K] K-major operand: columnwise (the forward's w [E, K, N]) or rowwise (the data gradient's, [E, N, K] already). */
  weightDirection: 'rowwise' | 'columnwise';
}

const MAX_INT = 2 ** 31 - 1;

/** How grouped GEMM node `n` runs natively under recipe `r`, or why it stays emulated. */
export function planGroupedGemm(graph: Graph, n: NodeDecl, r: RecipeSpec, roles: GemmRoles, producers: Map<number, NodeDecl>, tiles: (shape: readonly number[]) => boolean): NativeGrouped | string {
  if (n.op === 'grouped_matmul_wgrad') return 'the expert weight gradient has no native FP8 form yet (k-grouped: 128 × 1 scales along each expert\'s rows)';
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
  return { node: n, x, w, offsets, outDtype: out.dtype, weightDirection: transposed ? 'rowwise' : 'columnwise' };
}

/**
 * Rewrites a planned grouped GEMM in place: quantize nodes for x (rowwise) and w (g.weightDirection), then
 * the node becomes grouped_scaled_matmul of their codes and scales. Returns the new nodes, to put
 * before the GEMM.
 */
export function rewriteGrouped(graph: Graph, b: GraphBuilder, g: NativeGrouped): NodeDecl[] {
  const from = graph.nodes.length;
  const [xCodes, xScales, wCodes, wScales] = b.like(g.node, () => {
    const xq = b.op('quantize', [b.sym(g.x)], { format: 'fp8-block1x128', direction: 'rowwise' });
    const wq = b.op('quantize', [b.sym(g.w)], { format: 'fp8-block128x128', direction: g.weightDirection });
    const xa = quantizeOutputs('fp8-block1x128', 'rowwise');
    const wa = quantizeOutputs('fp8-block128x128', g.weightDirection);
    const [wc, ws] = g.weightDirection === 'rowwise' ? [wa.rowCodes!, wa.rowScales!] : [wa.colCodes!, wa.colScales!];
    return [xq[xa.rowCodes!]!, xq[xa.rowScales!]!, wq[wc]!, wq[ws]!];
  });
  g.node.op = 'grouped_scaled_matmul';
  g.node.inputs = [xCodes!.id, xScales!.id, wCodes!.id, wScales!.id, g.offsets];
  g.node.attrs = { scaleLayout: 'gemm', outDtype: g.outDtype };
  return graph.nodes.slice(from);
}
