/**
 * The per-layer precision policy: a GraphPass (compile's `precision` hook) that decides, for each
 * GEMM of a training step, which precision it runs in, and rewrites the chosen ones so that both
 * operands pass through `fake_quant` (quantize → dequantize; the GEMM itself stays BF16). It runs
 * after autodiff, so a layer's forward GEMM and its two backward GEMMs (data and weight gradient)
 * are rewritten alike, each operand quantized along its own reduction axis (row- or columnwise).
 *
 * Layers are named by the scope of their forward GEMM (`blocks.3.mlp.fc`; backward GEMMs are in
 * `<layer>.grad`). Default decisions, in order:
 *   1. a user rule ({ match, recipe }, first match wins) on the layer name;
 *   2. GEMMs without a parameter operand (attention's QKᵀ and ·V) stay BF16 (op kind);
 *   3. sensitive layers stay BF16: the output head (the tied-embedding GEMM) and, unless
 *      `keepFirstLast: false`, the first and last transformer block;
 *   4. layers whose weight has fewer than `minWeightElements` elements stay BF16 (too small to gain);
 *   5. the policy's recipe; a GEMM whose reduction length is not a whole number of the format's
 *      blocks stays BF16, with the reason recorded.
 *
 * Emulated only for now: every recipe runs as quantize → dequantize → BF16 GEMM on every device
 * (the low-precision GEMM kernels and fused quantization kernels are still to come). `support()`
 * says where a recipe would run natively.
 */
import { DeepwellError, describe } from '@deepwell/core';
import { GraphBuilder, eliminateDeadCode, type Graph, type GraphPass, type NodeDecl } from '@deepwell/ir';
import { blockSizeOf, type Format } from './quantize.js';

export type Recipe = 'bf16' | 'fp8-tensorwise' | 'mxfp8' | 'nvfp4';

export const RECIPES: Readonly<Record<Recipe, { forward: Format | null; backward: Format | null; nativeFrom: number | null; about: string }>> = Object.freeze({
  bf16: { forward: null, backward: null, nativeFrom: 8.0, about: 'BF16 operands, FP32 accumulation' },
  'fp8-tensorwise': { forward: 'fp8-e4m3', backward: 'fp8-e5m2', nativeFrom: 8.9, about: 'FP8 with one scale per tensor: E4M3 forward, E5M2 backward' },
  mxfp8: { forward: 'mxfp8-e4m3', backward: 'mxfp8-e4m3', nativeFrom: 10.0, about: 'MXFP8 (E4M3, blocks of 32, E8M0 scales)' },
  nvfp4: { forward: 'nvfp4', backward: 'nvfp4', nativeFrom: 10.0, about: 'NVFP4 (E2M1, blocks of 16, E4M3 scales, FP32 tensor scale)' },
});

/** Whether a GPU of compute capability `cc` ('9.0', '10.0', …) runs a recipe's GEMMs natively. */
export function support(recipe: Recipe, cc: string | null): 'native' | 'emulated' {
  const from = RECIPES[recipe]?.nativeFrom;
  return cc !== null && from !== null && from !== undefined && Number(cc) >= from ? 'native' : 'emulated';
}

export interface PolicyRule {
  /** A RegExp, or a string matched as a prefix of the layer name. */
  match: RegExp | string;
  recipe: Recipe;
}

export interface PolicyOptions {
  recipe: Recipe;
  rules?: PolicyRule[];
  keepFirstLast?: boolean;
  minWeightElements?: number;
  scaleMode?: 'floor' | 'rceil';
}

export interface LayerDecision {
  layer: string;
  kind: 'linear' | 'attention' | 'head';
  /** The weight's [out, in] (linear layers and the head). */
  weight: number[] | null;
  recipe: Recipe;
  reason: string;
  /** The GEMM nodes of the layer (forward and backward) and how many were rewritten. */
  gemms: number;
  rewritten: number;
}

const layerOf = (scope: string) => scope.replace(/\.grad$/, '') || 'head';

export class PrecisionPolicy implements GraphPass {
  readonly name = 'precision-policy';
  readonly options: Required<Omit<PolicyOptions, 'rules'>> & { rules: PolicyRule[] };

  constructor(options: PolicyOptions) {
    if (!options || !(options.recipe in RECIPES)) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a recipe (${Object.keys(RECIPES).join(', ')}) for the precision policy but received ${describe(options?.recipe)}`);
    }
    for (const r of options.rules ?? []) {
      if (!(r.recipe in RECIPES)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a recipe (${Object.keys(RECIPES).join(', ')}) in a policy rule but received ${describe(r.recipe)}`);
    }
    this.options = { keepFirstLast: true, minWeightElements: 1 << 14, scaleMode: 'floor', ...options, rules: options.rules ?? [] };
  }

  /** Which parameter (if any) a value comes from, through casts. */
  #paramOf(graph: Graph, id: number): string | null {
    const v = graph.values[id]!;
    if (v.kind === 'param') return v.name!;
    const p = v.producer !== undefined ? graph.nodes.find((n) => n.id === v.producer) : undefined;
    return p && p.op === 'cast' ? this.#paramOf(graph, p.inputs[0]!) : null;
  }

  /** The decision for every layer that has GEMMs, without changing the graph. */
  plan(graph: Graph): LayerDecision[] {
    const o = this.options;
    const gemms = graph.nodes.filter((n) => n.op === 'matmul');
    const layers = new Map<string, NodeDecl[]>();
    for (const n of gemms) layers.set(layerOf(n.scope), [...(layers.get(layerOf(n.scope)) ?? []), n]);
    const blockIds = [...layers.keys()].map((l) => /^blocks\.(\d+)\./.exec(l)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1]));
    const last = blockIds.length ? Math.max(...blockIds) : -1;
    const out: LayerDecision[] = [];
    for (const [layer, nodes] of layers) {
      const fwd = nodes.find((n) => !n.scope.endsWith('.grad')) ?? nodes[0]!;
      const param = fwd.inputs.map((i) => this.#paramOf(graph, i)).find((p) => p !== null) ?? null;
      const kind: LayerDecision['kind'] = param === null ? 'attention' : layer === 'head' || /(^|\.)wte\.weight$/.test(param) ? 'head' : 'linear';
      const weight = param !== null ? [...graph.values[graph.params[param]!]!.type.shape] : null;
      const rule = o.rules.find((r) => (typeof r.match === 'string' ? layer.startsWith(r.match) : r.match.test(layer)));
      const block = /^blocks\.(\d+)\./.exec(layer);
      let recipe: Recipe = o.recipe;
      let reason: string;
      if (rule) (recipe = rule.recipe), (reason = `rule ${String(rule.match)}`);
      else if (kind === 'attention') (recipe = 'bf16'), (reason = 'attention core (no weight operand) stays BF16');
      else if (kind === 'head') (recipe = 'bf16'), (reason = 'sensitive: output head');
      else if (o.keepFirstLast && block && (Number(block[1]) === 0 || Number(block[1]) === last)) (recipe = 'bf16'), (reason = `sensitive: ${Number(block[1]) === 0 ? 'first' : 'last'} block`);
      else if (weight && weight.reduce((a, b) => a * b, 1) < o.minWeightElements) (recipe = 'bf16'), (reason = `too small to gain (< ${o.minWeightElements} weight elements)`);
      else reason = 'policy recipe';
      out.push({ layer, kind, weight, recipe, reason, gemms: nodes.length, rewritten: 0 });
    }
    return out;
  }

  run(graph: Graph): Graph {
    const decisions = new Map(this.plan(graph).map((d) => [d.layer, d]));
    const b = GraphBuilder.extend(graph);
    const before = new Map<number, NodeDecl[]>(); // node id -> the fake_quant nodes to put before it
    const original = graph.nodes.slice();
    for (const n of original) {
      if (n.op !== 'matmul') continue;
      const d = decisions.get(layerOf(n.scope))!;
      const r = RECIPES[d.recipe];
      const format = n.scope.endsWith('.grad') ? r.backward : r.forward;
      if (!format) continue;
      const a = graph.values[n.inputs[0]!]!.type;
      const axes = [n.attrs.transA ? -2 : -1, n.attrs.transB ? -1 : -2];
      const K = a.shape.at(axes[0]!)!;
      const block = blockSizeOf(format);
      if (block !== null && K % block !== 0) {
        d.reason += `; a GEMM with reduction length ${K} (not a multiple of ${block}) stays BF16`;
        continue;
      }
      const first = graph.nodes.length;
      const attrs = { format, axis: 0, ...(format.startsWith('mx') ? { scaleMode: this.options.scaleMode } : {}) };
      n.inputs = n.inputs.map((id, k) => b.within(n.scope, () => b.op1('fake_quant', [b.sym(id)], { ...attrs, axis: axes[k]! })).id);
      before.set(n.id, graph.nodes.slice(first));
      d.rewritten++;
    }
    // Each fake_quant goes right before its GEMM (so the quantized copies live only briefly).
    const added = new Set([...before.values()].flat());
    graph.nodes = original.flatMap((n) => [...(before.get(n.id) ?? []), n]).concat(graph.nodes.filter((n) => !added.has(n) && !original.includes(n)));
    this.lastPlan = [...decisions.values()];
    return eliminateDeadCode(graph);
  }

  /** The decisions of the last run() (or null before one). */
  lastPlan: LayerDecision[] | null = null;

  /** The per-layer table, for a person. */
  static table(plan: LayerDecision[], cc: string | null = null): string {
    const rows = [['layer', 'kind', 'weight', 'precision', cc ? `on sm ${cc}` : 'runs', 'why']];
    for (const d of plan) rows.push([d.layer, d.kind, d.weight ? d.weight.join('×') : '-', d.recipe, d.recipe === 'bf16' ? 'native' : `emulated${support(d.recipe, cc) === 'native' ? ' (native-capable)' : ''}`, d.reason]);
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
  }
}
