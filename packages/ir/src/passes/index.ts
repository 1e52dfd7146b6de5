/**
 * Graph passes, and the hook through which a precision policy rewrites a graph. The compile
 * pipeline: [precision policy] -> CSE (+ DCE) -> GEMM epilogue fusion (bias, GELU, bias gradient)
 * -> residual + layernorm fusion -> cross-entropy with its gradient (one op) -> multi-tensor AdamW
 * -> fused amax (an FP8 quantizer's tensor amax from the kernel that writes its input) -> stable
 * topological sort -> DCE -> elementwise fusion marks -> verify.
 */
import type { Graph } from '../graph.js';
import { eliminateCommonSubexpressions } from './cse.js';
import { eliminateDeadCode } from './dce.js';
import { markElementwiseFusion } from './fusion.js';
import { autocast, type AutocastOptions } from './autocast.js';
import { fuseBiasGradient, fuseGemmEpilogues, fuseMatmulBias, fuseMatmulGelu } from './fuse-epilogues.js';
import { fuseAddLayernorm } from './fuse-add-layernorm.js';
import { fuseCrossEntropy } from './fuse-cross-entropy.js';
import { fuseAdamW } from './fuse-adamw.js';
import { fuseAmax } from './fuse-amax.js';
import { sortNodes } from './order.js';

export { autocast, eliminateCommonSubexpressions, eliminateDeadCode, markElementwiseFusion, sortNodes };
export { fuseAdamW, fuseAddLayernorm, fuseAmax, fuseBiasGradient, fuseCrossEntropy, fuseGemmEpilogues, fuseMatmulBias, fuseMatmulGelu };
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
  const n = Object.values(fuseGemmEpilogues(graph)).reduce((a, b) => a + b, 0) + fuseAddLayernorm(graph) + fuseCrossEntropy(graph) + fuseAdamW(graph) + fuseAmax(graph);
  return n ? eliminateDeadCode(sortNodes(graph)) : graph;
}
