/**
 * Graph passes, and the hook through which a precision policy rewrites a graph. The compile
 * pipeline: [precision policy] -> CSE (+ DCE) -> GEMM epilogue fusion (bias, GELU, GELU backward,
 * bias gradient) -> grouped GEMM epilogue fusion (GELU, GELU backward, SwiGLU) -> residual + layernorm fusion -> the residual gradient into layernorm_backward
 * -> cross-entropy with its gradient (one op) -> widening gradient casts skipped (the optimizer
 * and sum_squares read bf16 gradients directly) -> multi-tensor AdamW -> fused amax (an FP8
 * quantizer's tensor amax from the kernel that writes its input) -> multi-tensor weight casts ->
 * stable topological sort -> DCE -> elementwise fusion marks -> verify.
 */
import { checkKeys, invalid } from '@deepwell/core';
import { checkGraph, type Graph } from '../graph.js';
import { eliminateCommonSubexpressions } from './cse.js';
import { eliminateDeadCode } from './dce.js';
import { markElementwiseFusion } from './fusion.js';
import { autocast, type AutocastOptions } from './autocast.js';
import { fuseBiasGradient, fuseGemmEpilogues, fuseMatmulBias, fuseMatmulDgelu, fuseMatmulGelu } from './fuse-epilogues.js';
import { fuseGroupedEpilogues } from './fuse-grouped.js';
import { fuseAddLayernorm } from './fuse-add-layernorm.js';
import { fuseNormResidual } from './fuse-norm-residual.js';
import { fuseCrossEntropy } from './fuse-cross-entropy.js';
import { fuseAdamW } from './fuse-adamw.js';
import { fuseAmax } from './fuse-amax.js';
import { elideWideningCasts } from './elide-casts.js';
import { fuseParamCasts } from './fuse-casts.js';
import { sortNodes } from './order.js';
import { DEFAULT_BUCKET_BYTES, dataParallel, type DataParallelOptions } from './data-parallel.js';
import { ZERO_ALIGN, checkZeroLayout, zeroLayout, zeroPieces, type ZeroGroup, type ZeroLayout, type ZeroPiece } from './zero.js';

export { autocast, eliminateCommonSubexpressions, eliminateDeadCode, markElementwiseFusion, sortNodes };
export { elideWideningCasts, fuseAdamW, fuseAddLayernorm, fuseAmax, fuseBiasGradient, fuseCrossEntropy, fuseGemmEpilogues, fuseMatmulBias, fuseMatmulDgelu, fuseMatmulGelu, fuseNormResidual, fuseParamCasts };
export { fuseGroupedEpilogues };
export { DEFAULT_BUCKET_BYTES, dataParallel, ZERO_ALIGN, checkZeroLayout, zeroLayout, zeroPieces };
export type { ZeroGroup, ZeroLayout, ZeroPiece };
export type { AutocastOptions, DataParallelOptions };

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

/**
 * `p` if it is a GraphPass (an object with a string name and run(graph)), else INVALID_ARGUMENT: a
 * precision given by name ('fp16', 'bf16') is refused rather than silently ignored (make the pass:
 * autocast, or @deepwell/precision's policy).
 */
export function checkPass(p: unknown, what: string): GraphPass {
  const ok = typeof p === 'object' && p !== null && typeof (p as GraphPass).run === 'function' && typeof (p as GraphPass).name === 'string';
  if (!ok) invalid(`a GraphPass (an object with name and run(graph)${typeof p === 'string' ? '; a precision is a pass such as a @deepwell/precision policy, not a name' : ''})`, what, p);
  return p as GraphPass;
}

export function runPasses(graph: Graph, options: { precision?: GraphPass; fuse?: boolean; device?: string } = {}): Graph {
  checkGraph(graph, 'the graph of runPasses');
  checkKeys(options, ['precision', 'fuse', 'device'], 'runPasses');
  if (options.precision !== undefined) checkPass(options.precision, 'precision');
  if (options.fuse !== undefined && typeof options.fuse !== 'boolean') invalid('a boolean', 'fuse', options.fuse);
  if (options.device !== undefined && typeof options.device !== 'string') invalid("a device name ('cpu', 'cuda:N')", 'device', options.device);
  let g = graph;
  if (options.precision) {
    const out = options.precision.run(g, { device: options.device ?? 'cpu' });
    g = checkGraph(out, `the result of precision pass '${options.precision.name}'`).verify();
  }
  g = eliminateCommonSubexpressions(g);
  if (options.fuse !== false) g = markElementwiseFusion(fuse(g));
  return g.verify();
}

/** Every fusion of the compile pipeline, then the sort and DCE they need. */
export function fuse(graph: Graph): Graph {
  checkGraph(graph, 'the graph of fuse');
  const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
  const epilogues = sum(fuseGemmEpilogues(graph)) + sum(fuseGroupedEpilogues(graph)) + fuseAddLayernorm(graph) + fuseNormResidual(graph) + fuseCrossEntropy(graph);
  // Order matters: the cast elision before AdamW's grouping (by gradient dtype), the weight casts
  // after fuse-amax (a cast returning its amax keeps its own kernel).
  const n = epilogues + elideWideningCasts(graph) + fuseAdamW(graph) + fuseAmax(graph) + fuseParamCasts(graph);
  return n ? eliminateDeadCode(sortNodes(graph)) : graph;
}
