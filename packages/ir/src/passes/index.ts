/**
 * Graph passes, and the hook through which a precision policy rewrites a graph. The compile
 * pipeline: [precision policy] -> CSE -> DCE -> matmul + bias fusion -> elementwise fusion marks ->
 * verify.
 */
import type { Graph } from '../graph.js';
import { eliminateCommonSubexpressions } from './cse.js';
import { eliminateDeadCode } from './dce.js';
import { markElementwiseFusion } from './fusion.js';
import { autocast, type AutocastOptions } from './autocast.js';
import { fuseMatmulBias } from './fuse-matmul-bias.js';

export { autocast, eliminateCommonSubexpressions, eliminateDeadCode, fuseMatmulBias, markElementwiseFusion };
export type { AutocastOptions };

/**
 * A graph rewrite plugged into compile. @deepwell/precision implements one that rewrites matmuls
 * into quantize -> low-precision matmul per its per-layer policy.
 */
export interface GraphPass {
  readonly name: string;
  run(graph: Graph): Graph;
}

export function runPasses(graph: Graph, options: { precision?: GraphPass; fuse?: boolean } = {}): Graph {
  let g = graph;
  if (options.precision) g = options.precision.run(g).verify();
  g = eliminateCommonSubexpressions(g);
  if (options.fuse !== false) g = markElementwiseFusion(fuseMatmulBias(g));
  return g.verify();
}
