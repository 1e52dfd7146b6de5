/**
 * Graph passes, and the hook through which a precision policy rewrites a graph. The compile
 * pipeline: [precision policy] -> CSE (+ DCE) -> GEMM epilogue fusion (bias, GELU, GELU backward,
 * bias gradient) -> residual + layernorm fusion -> the residual gradient into layernorm_backward
 * -> cross-entropy with its gradient (one op) -> widening gradient casts skipped (the optimizer
 * and sum_squares read bf16 gradients directly) -> multi-tensor AdamW -> fused amax (an FP8
 * quantizer's tensor amax from the kernel that writes its input) -> multi-tensor weight casts ->
 * stable topological sort -> DCE -> elementwise fusion marks -> verify.
 */
import type { Graph } from '../graph.js';
import { eliminateCommonSubexpressions } from './cse.js';
import { eliminateDeadCode } from './dce.js';
import { markElementwiseFusion } from './fusion.js';
import { autocast, type AutocastOptions } from './autocast.js';
import { fuseBiasGradient, fuseGemmEpilogues, fuseMatmulBias, fuseMatmulDgelu, fuseMatmulGelu } from './fuse-epilogues.js';
import { fuseAddLayernorm } from './fuse-add-layernorm.js';
import { fuseNormResidual } from './fuse-norm-residual.js';
import { fuseCrossEntropy } from './fuse-cross-entropy.js';
import { fuseAdamW } from './fuse-adamw.js';
import { fuseAmax } from './fuse-amax.js';
import { elideWideningCasts } from './elide-casts.js';
import { fuseParamCasts } from './fuse-casts.js';
import { sortNodes } from './order.js';

export { autocast, eliminateCommonSubexpressions, eliminateDeadCode, markElementwiseFusion, sortNodes };
export { elideWideningCasts, fuseAdamW, fuseAddLayernorm, fuseAmax, fuseBiasGradient, fuseCrossEntropy, fuseGemmEpilogues, fuseMatmulBias, fuseMatmulDgelu, fuseMatmulGelu, fuseNormResidual, fuseParamCasts };
export type { AutocastOptions };

/**
 * A graph rewrite plugged into compile. @deepwell/precision implements one that rewrites matmuls
 * into quantize -> low-precision matmul per its per-layer policy.
 */
export interface GraphPass {
  readonly name: string;
  run(graph: Graph, context?: PassContext): Graph;
}

/** What a pass may know of the compile it runs in: the device the step is compiled for. */
export interface PassContext {
  device: string;
}

export function runPasses(graph: Graph, options: { precision?: GraphPass; fuse?: boolean; device?: string } = {}): Graph {
  let g = graph;
  if (options.precision) g = options.precision.run(g, { device: options.device ?? 'cpu' }).verify();
  g = eliminateCommonSubexpressions(g);
  if (options.fuse !== false) g = markElementwiseFusion(fuse(g));
  return g.verify();
}

/** Every fusion of the compile pipeline, then the sort and DCE they need. */
export function fuse(graph: Graph): Graph {
  const epilogues = Object.values(fuseGemmEpilogues(graph)).reduce((a, b) => a + b, 0) + fuseAddLayernorm(graph) + fuseNormResidual(graph) + fuseCrossEntropy(graph);
  // Order matters: the cast elision before AdamW's grouping (by gradient dtype), the weight casts
  // after fuse-amax (a cast returning its amax keeps its own kernel).
  const n = epilogues + elideWideningCasts(graph) + fuseAdamW(graph) + fuseAmax(graph) + fuseParamCasts(graph);
  return n ? eliminateDeadCode(sortNodes(graph)) : graph;
}
