/**
 * The per-layer precision policy: a GraphPass (compile's `precision` hook) that decides, for each
 * GEMM of a training step, which precision it runs in, and rewrites the chosen ones: natively, as
 * quantize → scaled_matmul (the FP8 GEMM on tensor cores; native_gemm.ts), where the device runs
 * the recipe and this build has the kernels, else emulated, both operands through `fake_quant`
 * (quantize → dequantize; the GEMM itself stays BF16). It runs after autodiff, so a layer's forward
 * GEMM and its two backward GEMMs (data and weight gradient) are rewritten alike, each operand
 * quantized along its own reduction axis (row- or columnwise). Both ways quantize an operand alike
 * (operandFormat): a gradient in the backward format, other operands in the forward format, a
 * weight in 128 × 128 tiles in the weight format.
 *
 * A layer is the scope of its GEMMs (`blocks.3.mlp.fc`: the module that made the forward GEMM; its
 * backward GEMMs keep that scope and have phase 'backward'; a GEMM made at the top of the model, as
 * a tied head is, is in layer 'head' when it is the head, else '(top)'). Default decisions, in order:
 *   1. a user rule ({ match, recipe }, first match wins) on the layer name (the fallback
 *      controller adds its demotions as rules in front);
 *   2. GEMMs without a parameter operand (attention's QKᵀ and ·V) stay BF16 (op kind);
 *   3. sensitive layers stay BF16: the output head, a mixture-of-experts router (routing stays out
 *      of low precision, as DeepSeek-V3 keeps it) and, unless `keepFirstLast: false`, the first
 *      and last transformer block. Both are found by their role in the graph, not by name
 *      (roles.ts): the head is the GEMM whose product feeds the loss (cross_entropy's logits,
 *      through reshapes and casts) or multiplies by the embedding table (tied); a block's depth
 *      comes from walking the residual stream back from the head, a block starting at each
 *      residual branch that holds an attention core (so attention + MLP, SwiGLU or MoE is one
 *      block);
 *   4. layers whose weight has fewer than `minWeightElements` elements stay BF16 (too small to gain);
 *   5. the policy's recipe; a GEMM whose reduction length is not a whole number of the format's
 *      blocks stays BF16, with the reason recorded.
 *
 * A MoE layer's expert GEMMs (grouped_matmul forward and for the input gradient, grouped_matmul_wgrad
 * for the weight gradient; the layer is the MoE module's scope, kind 'experts') are decided as a
 * linear layer's are and emulated: x along K, w [E, K, N] along K (128 × 128 tiles per expert for
 * fp8-blockwise), the weight gradient's operands along the rows. Under fp8-blockwise with the native
 * GEMMs on, all three run natively instead (native_grouped.ts): the forward grouped GEMM and its data
 * gradient as quantize → grouped_scaled_matmul, the weight gradient as quantize_kgrouped →
 * grouped_scaled_matmul_wgrad (DeepGEMM's k-grouped form: each expert's rows padded alone to blocks
 * of 128; on a CUDA device only where the kernel registry has both kernels, else emulated with the
 * registry's reason). A GELU expert MLP's activation then goes into the forward grouped GEMM's
 * epilogue and its gradient into the data gradient's, and a SwiGLU expert MLP's gate and up GEMMs
 * and their swiglu into one grouped GEMM, each with the quantization of its result for the next GEMM
 * (grouped_scaled_matmul_gelu / _dgelu / _swiglu, fuse_scaled_grouped.ts; `fuseEpilogues: false`
 * turns it off; on CUDA only where the registry has the fused kernel for the call).
 *
 * Recipes (RECIPES): bf16; fp8-tensorwise (E4M3 forward, E5M2 backward, one scale per tensor);
 * fp8-blockwise (DeepSeek-V3's: E4M3 everywhere, 1 × 128 blocks for activations and gradients,
 * 128 × 128 tiles for a weight whose two dims are multiples of 128, else 1 × 128 blocks for it
 * too); mxfp8; nvfp4.
 *
 * `numerics: true` puts a `quant_stats` node beside every fake_quant (same input, same attributes)
 * and makes it a graph output `numerics/<layer>/<k>/<a|b>` (k: the GEMM's index within its layer in
 * graph order, a/b: the operand); `PrecisionPolicy.numerics(outputs)` gathers them per layer and
 * `numericsTable` prints them. The fallback controller (fallback.ts) reads them to name the layer
 * behind a loss spike.
 *
 * Native (`native: 'auto'`, the default): fp8-tensorwise on compute capability >= 8.9 and
 * fp8-blockwise on 9.x, through cuBLASLt; a GEMM whose shape the kernels do not take stays emulated
 * and the layer's reason says why. MXFP8 and NVFP4 are emulated everywhere for now. The numerics'
 * quant_stats read the same operand with the same format the native quantizer uses, so their
 * statistics are those of the real quantized operands. `support()` says where a recipe runs
 * natively; the table's 'runs' column says what each layer did.
 */
import { DeepwellError, checkKeys, describe, invalid, parseDevice } from '@deepwell/core';
import { GraphBuilder, eliminateDeadCode, type Graph, type GraphPass, type NodeDecl, type PassContext, type Sym } from '@deepwell/ir';
import { nativeEntries } from '@deepwell/kernels-native';
import { computeCapabilityOf } from './device.js';
import { scaledGemmAvailable } from './cuda/scaled_matmul.js';
import { fakeQuantBlocking, type FakeQuantFormat } from './ops/fake_quant.js';
import { planGroupedGemm, registryProbe, rewriteGrouped } from './native_grouped.js';
import { fuseScaledGroupedEpilogues } from './fuse_scaled_grouped.js';
import { formatOf, hasNativeRewrite, planGemm, producerMap, rewriteNative, type NativeGemm } from './native_gemm.js';
import { QUANT_STATS } from './ops/quant_stats.js';
import { ATTENTION_OPS, gemmRoles, type GemmRoles } from './roles.js';
import { checkGraphLike } from './guards.js';

export type Recipe = 'bf16' | 'fp8-tensorwise' | 'fp8-blockwise' | 'mxfp8' | 'nvfp4';

export interface RecipeSpec {
  /** The operands' format in forward GEMMs and in backward GEMMs (null: BF16). */
  forward: FakeQuantFormat | null;
  backward: FakeQuantFormat | null;
  /** The weight operand's format, when its last two dims are multiples of 128 (else the operands'). */
  weight: FakeQuantFormat | null;
  /** The compute capabilities that run it natively: nativeFrom <= cc (< nativeBelow when set). */
  nativeFrom: number | null;
  nativeBelow: number | null;
  about: string;
}

export const RECIPES: Readonly<Record<Recipe, RecipeSpec>> = Object.freeze({
  bf16: { forward: null, backward: null, weight: null, nativeFrom: 8.0, nativeBelow: null, about: 'BF16 operands, FP32 accumulation' },
  'fp8-tensorwise': { forward: 'fp8-e4m3', backward: 'fp8-e5m2', weight: null, nativeFrom: 8.9, nativeBelow: null, about: 'FP8 with one scale per tensor: E4M3 forward, E5M2 backward' },
  // cuBLASLt's blockwise FP8 (A scales CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F, B scales
  // BLK128x128_32F) came with cuBLAS 12.9 and runs on Hopper (sm_90) only, as NVIDIA answered in
  // NVIDIA/CUDALibrarySamples issue 310 (2026-04); Blackwell's block-scaled path is MXFP8.
  'fp8-blockwise': { forward: 'fp8-block1x128', backward: 'fp8-block1x128', weight: 'fp8-block128x128', nativeFrom: 9.0, nativeBelow: 10.0, about: 'FP8 E4M3 with FP32 scales per 1×128 block (activations, gradients) and per 128×128 tile (weights); cuBLAS >= 12.9 on sm_90' },
  mxfp8: { forward: 'mxfp8-e4m3', backward: 'mxfp8-e4m3', weight: null, nativeFrom: 10.0, nativeBelow: null, about: 'MXFP8 (E4M3, blocks of 32, E8M0 scales)' },
  nvfp4: { forward: 'nvfp4', backward: 'nvfp4', weight: null, nativeFrom: 10.0, nativeBelow: null, about: 'NVFP4 (E2M1, blocks of 16, E4M3 scales, FP32 tensor scale)' },
});

const recipeList = () => Object.keys(RECIPES).join(', ');

/** Other libraries' and near names of recipes, said in place of "did you mean" when refused. */
const RECIPE_HINTS: Readonly<Record<string, string>> = {
  fp8: "'fp8-tensorwise' or 'fp8-blockwise'",
  fp16: "'bf16' (FP16 is not a recipe: the policy's GEMMs run BF16 or lower)",
  f16: "'bf16' (FP16 is not a recipe: the policy's GEMMs run BF16 or lower)",
  f32: "'bf16' (FP32 GEMMs are not a recipe: leave the policy out)",
  fp32: "'bf16' (FP32 GEMMs are not a recipe: leave the policy out)",
  mxfp4: "'nvfp4' or 'mxfp8' (MXFP4 is a format, not a recipe)",
};

/** A recipe name (an unknown one is refused, never taken for another); `what` reads "for X" or "in X". */
export function checkRecipe(recipe: unknown, what: string): Recipe {
  if (typeof recipe === 'string' && Object.hasOwn(RECIPES, recipe)) return recipe as Recipe;
  const hint = typeof recipe === 'string' ? (RECIPE_HINTS[recipe.toLowerCase()] ?? Object.keys(RECIPES).find((r) => r.toLowerCase() === recipe.toLowerCase() || r.startsWith(recipe.toLowerCase()))) : undefined;
  throw new DeepwellError('INVALID_ARGUMENT', `Expected a recipe (${recipeList()}) ${what} but received ${describe(recipe)}${hint ? ` (did you mean ${hint.startsWith("'") ? hint : `'${hint}'`}?)` : ''}`);
}

/** Whether a GPU of compute capability `cc` ('9.0', '10.0', …) runs a recipe's GEMMs natively. */
export function support(recipe: Recipe, cc: string | null): 'native' | 'emulated' {
  const r = RECIPES[checkRecipe(recipe, 'for support()')];
  if (cc !== null && (typeof cc !== 'string' || !/^\d+\.\d+$/.test(cc))) invalid("a compute capability ('9.0', '10.0') or null", 'support()', cc);
  if (cc === null || r.nativeFrom === null) return 'emulated';
  const v = Number(cc);
  return v >= r.nativeFrom && (r.nativeBelow === null || v < r.nativeBelow) ? 'native' : 'emulated';
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
  /** Add a quant_stats output beside every quantized GEMM operand (default false). */
  numerics?: boolean;
  /**
   * Run chosen GEMMs natively (quantize → scaled_matmul, FP8 on tensor cores): 'auto' (default)
   * where the device the step is compiled for runs the recipe natively (support()) and this build
   * has the rewrite (fp8-tensorwise, fp8-blockwise); true always (a CPU step then cannot run: the
   * reference interpreter can); false never (emulate: fake_quant → BF16 GEMM).
   */
  native?: 'auto' | boolean;
  /**
   * Where a MoE layer's expert GEMMs run natively (fp8-blockwise), fuse their GELU, GELU backward or
   * SwiGLU (the gate and up GEMMs both) with the quantization of the result into the grouped GEMM's
   * epilogue (grouped_scaled_matmul_gelu, _dgelu and _swiglu; fuse_scaled_grouped.ts), on a CUDA
   * device only where the kernel registry has a kernel for the fused call (default true). false keeps
   * gelu, gelu_backward, swiglu and quantize as their own nodes: the same values, bit for bit on the
   * CPU reference.
   */
  fuseEpilogues?: boolean;
}

export interface LayerDecision {
  layer: string;
  kind: 'linear' | 'attention' | 'head' | 'router' | 'experts';
  /** The weight's [out, in] (linear layers and the head). */
  weight: number[] | null;
  recipe: Recipe;
  reason: string;
  /** The GEMM nodes of the layer (forward and backward), how many were rewritten, how many of those natively. */
  gemms: number;
  rewritten: number;
  native: number;
}

/** One quant_stats output of the last run(), in graph order. */
export interface NumericsOutput {
  /** `numerics/<layer>/<gemm>/<operand>` */
  name: string;
  layer: string;
  gemm: number;
  operand: 'a' | 'b';
  pass: 'forward' | 'backward';
  format: FakeQuantFormat;
}

/** A layer's quant_stats, the worst of its operands: largest amax and shares, widest scale range. */
export interface LayerNumerics {
  layer: string;
  operands: number;
  amax: number;
  nonfinite: number;
  underflow: number;
  saturated: number;
  log2ScaleMin: number;
  log2ScaleMax: number;
}

const isBackward = (n: NodeDecl) => n.phase === 'backward';
/** The GEMM ops the policy decides: dense, and a MoE layer's grouped expert GEMMs. */
const GEMM_OPS: ReadonlySet<string> = new Set(['matmul', 'grouped_matmul', 'grouped_matmul_wgrad']);

/** Each quantized operand's axis (its reduction axis) for GEMM node n; offsets are not quantized. */
function reductionAxes(n: NodeDecl): number[] {
  if (n.op === 'grouped_matmul') return [-1, n.attrs.transposeW ? -1 : -2];
  if (n.op === 'grouped_matmul_wgrad') return [0, 0];
  return [n.attrs.transA ? -2 : -1, n.attrs.transB ? -1 : -2];
}
export const NUMERICS_PREFIX = 'numerics/';

const POLICY_OPTIONS = ['recipe', 'rules', 'keepFirstLast', 'minWeightElements', 'scaleMode', 'numerics', 'native', 'fuseEpilogues'];

function checkOptions(options: PolicyOptions): void {
  const bad = (what: string, got: unknown) => new DeepwellError('INVALID_ARGUMENT', `Expected ${what} but received ${describe(got)}`);
  if (!options || typeof options !== 'object' || Array.isArray(options)) throw bad(`precision policy options ({ recipe: ${recipeList()}, … })`, options);
  checkKeys(options, POLICY_OPTIONS, 'precision policy', { aliases: { precision: 'recipe', format: 'recipe', keepFirstAndLast: 'keepFirstLast', minWeight: 'minWeightElements' } });
  checkRecipe(options.recipe, 'for the precision policy');
  if (options.rules !== undefined && !Array.isArray(options.rules)) throw bad('an array of { match, recipe } for the policy rules', options.rules);
  for (const r of options.rules ?? []) checkRule(r);
  if (options.keepFirstLast !== undefined && typeof options.keepFirstLast !== 'boolean') throw bad('a boolean for keepFirstLast', options.keepFirstLast);
  if (options.minWeightElements !== undefined && !(Number.isSafeInteger(options.minWeightElements) && options.minWeightElements >= 0)) throw bad('a non-negative integer for minWeightElements', options.minWeightElements);
  if (options.scaleMode !== undefined && options.scaleMode !== 'floor' && options.scaleMode !== 'rceil') throw bad("'floor' or 'rceil' for scaleMode", options.scaleMode);
  if (options.numerics !== undefined && typeof options.numerics !== 'boolean') throw bad('a boolean for numerics', options.numerics);
  if (options.native !== undefined && options.native !== 'auto' && typeof options.native !== 'boolean') throw bad("'auto' or a boolean for native", options.native);
  if (options.fuseEpilogues !== undefined && typeof options.fuseEpilogues !== 'boolean') throw bad('a boolean for fuseEpilogues', options.fuseEpilogues);
}

function checkRule(r: PolicyRule): void {
  if (!r || typeof r !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `Expected a { match, recipe } policy rule but received ${describe(r)}`);
  checkKeys(r, ['match', 'recipe'], 'policy rule', { noun: 'key' });
  checkRecipe(r.recipe, 'in a policy rule');
  if (!(r.match instanceof RegExp) && typeof r.match !== 'string') throw new DeepwellError('INVALID_ARGUMENT', `Expected a RegExp or a layer-name prefix for a policy rule's match but received ${describe(r.match)}`);
}

export class PrecisionPolicy implements GraphPass {
  readonly name = 'precision-policy';
  readonly options: Required<Omit<PolicyOptions, 'rules'>> & { rules: PolicyRule[] };

  constructor(options: PolicyOptions) {
    checkOptions(options);
    this.options = { keepFirstLast: true, minWeightElements: 1 << 14, scaleMode: 'floor', numerics: false, native: 'auto', ...options, fuseEpilogues: options.fuseEpilogues ?? true, rules: [...(options.rules ?? [])] };
  }

  /** A new policy with these options changed (rules included: the copy has its own list). */
  clone(over: Partial<PolicyOptions> = {}): PrecisionPolicy {
    if (typeof over !== 'object' || over === null || Array.isArray(over)) invalid('an object of policy options to change', 'clone()', over);
    return new PrecisionPolicy({ ...this.options, ...over });
  }

  /** Add a rule: at the end (after the user's), or `first` (it then wins over every other). */
  addRule(rule: PolicyRule, options: { first?: boolean } = {}): this {
    checkRule(rule);
    if (typeof options !== 'object' || options === null) invalid('{ first?: boolean }', 'addRule options', options);
    checkKeys(options, ['first'], 'addRule');
    if (options.first !== undefined && typeof options.first !== 'boolean') invalid('a boolean', 'addRule first', options.first);
    if (options.first) this.options.rules.unshift(rule);
    else this.options.rules.push(rule);
    return this;
  }

  /** The decision for every layer that has GEMMs (in graph order), without changing the graph. */
  plan(graph: Graph): LayerDecision[] {
    checkGraphLike(graph, 'PrecisionPolicy.plan');
    return this.#plan(graph, gemmRoles(graph));
  }

  /** A GEMM's layer: its scope; at the top of the model, 'head' for the head, else '(top)'. */
  #layerOf(roles: GemmRoles): (n: NodeDecl) => string {
    const topHead = [...roles.heads].some((n) => n.scope === '');
    return (n) => n.scope || (topHead ? 'head' : '(top)');
  }

  #plan(graph: Graph, roles: GemmRoles): LayerDecision[] {
    const o = this.options;
    const layerOf = this.#layerOf(roles);
    const layers = new Map<string, NodeDecl[]>();
    for (const n of graph.nodes.filter((m) => GEMM_OPS.has(m.op) || ATTENTION_OPS.has(m.op))) layers.set(layerOf(n), [...(layers.get(layerOf(n)) ?? []), n]);
    const out: LayerDecision[] = [];
    for (const [layer, nodes] of layers) {
      const fwd = nodes.find((n) => !isBackward(n)) ?? nodes[0]!;
      const param = fwd.inputs.map((i) => roles.paramOf(i)).find((p) => p !== null) ?? null;
      const kind: LayerDecision['kind'] =
        param === null ? 'attention' : nodes.some((n) => roles.heads.has(n)) ? 'head' : nodes.some((n) => roles.routers.has(n)) ? 'router' : nodes.some((n) => n.op !== 'matmul' && GEMM_OPS.has(n.op)) ? 'experts' : 'linear';
      const weight = param !== null ? [...graph.values[graph.params[param]!]!.type.shape] : null;
      const rule = o.rules.find((r) => (typeof r.match === 'string' ? layer.startsWith(r.match) : r.match.test(layer)));
      const block = roles.blockOf.get(fwd);
      const edge = block === 0 ? 'first' : block === roles.blocks - 1 ? 'last' : null;
      let recipe: Recipe = o.recipe;
      let reason: string;
      const fused = nodes.some((n) => ATTENTION_OPS.has(n.op));
      if (fused) (recipe = 'bf16'), (reason = 'attention core (a fused attention op, its own kernels) stays BF16');
      else if (rule) (recipe = rule.recipe), (reason = `rule ${String(rule.match)}`);
      else if (kind === 'attention') (recipe = 'bf16'), (reason = 'attention core (no weight operand) stays BF16');
      else if (kind === 'head') (recipe = 'bf16'), (reason = 'sensitive: output head');
      else if (kind === 'router') (recipe = 'bf16'), (reason = 'sensitive: MoE router (routing stays BF16)');
      else if (o.keepFirstLast && edge) (recipe = 'bf16'), (reason = `sensitive: ${edge} block`);
      else if (weight && weight.reduce((a, b) => a * b, 1) < o.minWeightElements) (recipe = 'bf16'), (reason = `too small to gain (< ${o.minWeightElements} weight elements)`);
      else reason = 'policy recipe';
      if (RECIPES[recipe].weight && weight) reason += this.#tiles(weight) ? '; weight in 128×128 tiles' : '; weight in 1×128 blocks (its dims are not both multiples of 128)';
      out.push({ layer, kind, weight, recipe, reason, gemms: nodes.length, rewritten: 0, native: 0 });
    }
    return out;
  }

  #tiles(shape: readonly number[]): boolean {
    return shape.length >= 2 && shape.at(-1)! % 128 === 0 && shape.at(-2)! % 128 === 0;
  }

  run(graph: Graph, context?: PassContext): Graph {
    checkGraphLike(graph, 'PrecisionPolicy.run');
    if (context !== undefined && (typeof context !== 'object' || context === null)) invalid('a pass context ({ device? })', 'PrecisionPolicy.run', context);
    if (context?.device !== undefined && typeof context.device !== 'string') invalid('a device name', 'the pass context device', context.device);
    const roles = gemmRoles(graph);
    const layerOf = this.#layerOf(roles);
    const decisions = new Map(this.#plan(graph, roles).map((d) => [d.layer, d]));
    const cc = this.options.native === 'auto' ? computeCapabilityOf(context?.device) : null;
    const producers = producerMap(graph);
    const tiles = (shape: readonly number[]) => this.#tiles(shape);
    // On a CUDA device, what the kernels take is asked of this machine before a GEMM is rewritten
    // (cuBLASLt's answer for the shape, the addon's entries), so a GEMM it would refuse stays emulated.
    const onCuda = context?.device !== undefined && parseDevice(context.device) !== 'cpu';
    const probe = onCuda ? scaledGemmAvailable : null;
    const kernels = onCuda ? registryProbe(context!.device!) : null;
    const entries = onCuda ? nativeEntries().entries : null;
    const nativeWhyNot = onCuda && !(entries && typeof entries.quantize === 'function' && typeof entries.quantAmax === 'function') ? 'the loaded @deepwell/kernels-native has no quantize (rebuild it)' : null;
    const b = GraphBuilder.extend(graph);
    const before = new Map<number, NodeDecl[]>(); // node id -> the nodes to put before it
    const original = graph.nodes.slice();
    const gemmIndex = new Map<string, number>();
    const numerics: NumericsOutput[] = [];
    const natives: NativeGemm[] = [];
    let groupedNative = false; // a forward or data-gradient grouped GEMM rewritten to grouped_scaled_matmul
    const groupedQuantized = new Map<string, Sym[]>(); // the grouped GEMMs' quantize nodes, one per value and form
    const why = (d: LayerDecision, text: string) => {
      if (!d.reason.includes(text)) d.reason += text;
    };
    for (const n of original) {
      if (!GEMM_OPS.has(n.op)) continue;
      const grouped = n.op !== 'matmul';
      const layer = layerOf(n);
      const k = gemmIndex.get(layer) ?? 0;
      gemmIndex.set(layer, k + 1);
      const d = decisions.get(layer)!;
      const r = RECIPES[d.recipe];
      const backward = isBackward(n);
      if (!(backward ? r.backward : r.forward)) continue;
      const types = n.inputs.map((id) => graph.values[id]!.type);
      const axes = reductionAxes(n);
      const K = types[0]!.shape.at(axes[0]!)!;
      const quantized = n.inputs.slice(0, 2); // a grouped GEMM's offsets stay as they are
      const formats = quantized.map((id) => formatOf(graph, id, r, roles, producers, tiles)!);
      const short = formats.map((f) => fakeQuantBlocking(f)).find((bl) => bl.kind !== 'block128x128' && bl.block !== null && K % bl.block !== 0);
      if (short) {
        why(d, `; a GEMM with reduction length ${K} (not a multiple of ${short.block}) stays BF16`);
        continue;
      }
      const wantNative = hasNativeRewrite(d.recipe) && (this.options.native === true || (cc !== null && support(d.recipe, cc) === 'native'));
      const native = wantNative ? (nativeWhyNot ?? (grouped ? planGroupedGemm(graph, n, r, roles, producers, tiles, kernels) : planGemm(graph, n, r, roles, producers, tiles, probe))) : null;
      if (typeof native === 'string') why(d, `; a ${backward ? 'backward' : 'forward'} GEMM stays emulated: ${native}`);
      else if (native === null && this.options.native !== false && cc !== null && support(d.recipe, cc) === 'native') why(d, `; emulated: no native ${d.recipe} GEMM in this build`);
      const first = graph.nodes.length;
      const operands = quantized.map((id, i) => {
        const format = formats[i]!;
        const attrs = { format, axis: axes[i]!, ...(format.startsWith('mx') ? { scaleMode: this.options.scaleMode } : {}) };
        return b.like(n, () => {
          if (this.options.numerics) {
            const name = `${NUMERICS_PREFIX}${layer}/${k}/${'ab'[i]}`;
            b.output(name, b.op1('quant_stats', [b.sym(id)], attrs));
            numerics.push({ name, layer, gemm: k, operand: i === 0 ? 'a' : 'b', pass: backward ? 'backward' : 'forward', format });
          }
          return native && typeof native !== 'string' ? id : b.op1('fake_quant', [b.sym(id)], attrs).id;
        });
      });
      if (native && typeof native !== 'string') {
        // A dense GEMM is rewritten below, with the others (they share quantize nodes); a grouped one
        // here, in place (its quantize nodes go before it with the rest).
        if ('M' in native) natives.push(native);
        else {
          rewriteGrouped(graph, b, native, groupedQuantized);
          groupedNative ||= native.kind === 'grouped';
        }
        d.native++;
      } else n.inputs = [...operands, ...n.inputs.slice(2)];
      before.set(n.id, graph.nodes.slice(first));
      d.rewritten++;
    }
    for (const [id, nodes] of rewriteNative(graph, b, natives)) before.set(id, [...(before.get(id) ?? []), ...nodes]);
    // Each fake_quant or quantize goes right before its (first) GEMM, so the quantized copies live
    // only as long as they must.
    const added = new Set([...before.values()].flat());
    graph.nodes = original.flatMap((n) => [...(before.get(n.id) ?? []), n]).concat(graph.nodes.filter((n) => !added.has(n) && !original.includes(n)));
    // A GELU expert MLP's activation (and its gradient), or a SwiGLU one's two GEMMs and activation,
    // with the next GEMM's quantization, into the native grouped GEMM's epilogue; on CUDA only where
    // the registry has the fused kernel.
    if (groupedNative && this.options.fuseEpilogues) fuseScaledGroupedEpilogues(graph, kernels);
    this.lastPlan = [...decisions.values()];
    this.lastNumerics = numerics;
    return eliminateDeadCode(graph);
  }

  /** The decisions of the last run() (or null before one). */
  lastPlan: LayerDecision[] | null = null;
  /** The quant_stats outputs the last run() added, in graph order (empty without `numerics`). */
  lastNumerics: NumericsOutput[] = [];

  /** The per-layer table, for a person. */
  static table(plan: LayerDecision[], cc: string | null = null): string {
    if (!Array.isArray(plan)) invalid("an array of layer decisions (a policy's lastPlan)", 'PrecisionPolicy.table', plan);
    plan.forEach((d, i) => {
      const ok = typeof d === 'object' && d !== null && typeof d.layer === 'string' && typeof d.kind === 'string' && typeof d.reason === 'string' && Object.hasOwn(RECIPES, d.recipe) && (d.weight === null || Array.isArray(d.weight)) && [d.native, d.rewritten].every(Number.isInteger);
      if (!ok) invalid('a layer decision ({ layer, kind, weight, recipe, reason, gemms, rewritten, native })', `PrecisionPolicy.table plan[${i}]`, d);
    });
    if (cc !== null && typeof cc !== 'string') invalid("a compute capability ('9.0') or null", 'PrecisionPolicy.table', cc);
    const rows = [['layer', 'kind', 'weight', 'precision', cc ? `on sm ${cc}` : 'runs', 'why']];
    const runs = (d: LayerDecision) => {
      if (d.recipe === 'bf16') return 'native';
      if (d.native > 0) return d.native === d.rewritten ? 'native' : `native ${d.native}/${d.rewritten} GEMMs`;
      return `emulated${support(d.recipe, cc) === 'native' ? ' (native-capable)' : ''}`;
    };
    for (const d of plan) rows.push([d.layer, d.kind, d.weight ? d.weight.join('×') : '-', d.recipe, runs(d), d.reason]);
    return formatRows(rows);
  }

  /**
   * The quant_stats outputs of a step (`exe.run(...)`'s result, or any record holding them) per
   * layer, in the order the outputs come (graph order): the worst operand of each.
   */
  static numerics(outputs: Record<string, ArrayLike<number>>): LayerNumerics[] {
    if (!outputs || typeof outputs !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `Expected a step's outputs (a record of arrays) but received ${describe(outputs)}`);
    const layers = new Map<string, LayerNumerics>();
    for (const [name, v] of Object.entries(outputs)) {
      if (!name.startsWith(NUMERICS_PREFIX)) continue;
      if (!v || v.length !== QUANT_STATS.length) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${QUANT_STATS.length} values (${QUANT_STATS.join(', ')}) for output '${name}' but received ${describe(v)}`);
      if (!Array.from(v).every((x) => typeof x === 'number')) invalid('numbers', `the values of output '${name}'`, v);
      const layer = name.slice(NUMERICS_PREFIX.length).split('/').slice(0, -2).join('/');
      const l = layers.get(layer) ?? { layer, operands: 0, amax: 0, nonfinite: 0, underflow: 0, saturated: 0, log2ScaleMin: NaN, log2ScaleMax: NaN };
      const [amax, nonfinite, underflow, saturated, lo, hi] = Array.from(v);
      l.operands++;
      l.amax = Math.max(l.amax, amax!);
      l.nonfinite = Math.max(l.nonfinite, nonfinite!);
      l.underflow = Math.max(l.underflow, underflow!);
      l.saturated = Math.max(l.saturated, saturated!);
      if (!Number.isNaN(lo)) l.log2ScaleMin = Number.isNaN(l.log2ScaleMin) ? lo! : Math.min(l.log2ScaleMin, lo!);
      if (!Number.isNaN(hi)) l.log2ScaleMax = Number.isNaN(l.log2ScaleMax) ? hi! : Math.max(l.log2ScaleMax, hi!);
      layers.set(layer, l);
    }
    return [...layers.values()];
  }

  /** The per-layer numerics as a table, for a person. */
  static numericsTable(numerics: Record<string, ArrayLike<number>> | LayerNumerics[]): string {
    const rows = Array.isArray(numerics) ? numerics : PrecisionPolicy.numerics(numerics);
    rows.forEach((l, i) => {
      const ok = typeof l === 'object' && l !== null && typeof l.layer === 'string' && (['operands', 'amax', 'underflow', 'saturated', 'nonfinite', 'log2ScaleMin', 'log2ScaleMax'] as const).every((k) => typeof l[k] === 'number');
      if (!ok) invalid('layer numerics ({ layer, operands, amax, nonfinite, underflow, saturated, log2ScaleMin, log2ScaleMax })', `numericsTable[${i}]`, l);
    });
    const pct = (x: number) => (x === 0 ? '0' : `${(100 * x).toPrecision(2)}%`);
    const range = (l: LayerNumerics) => (Number.isNaN(l.log2ScaleMin) ? '-' : `2^${l.log2ScaleMin.toFixed(1)} .. 2^${l.log2ScaleMax.toFixed(1)}`);
    return formatRows([['layer', 'operands', 'amax', 'scales', 'underflow', 'saturated', 'non-finite'], ...rows.map((l) => [l.layer, String(l.operands), l.amax.toPrecision(3), range(l), pct(l.underflow), pct(l.saturated), pct(l.nonfinite)])]);
  }
}

function formatRows(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}
