/**
 * The one-call API: `optimize(model, { precision, seqLen, batchSize, device })` captures the model's
 * training step (forward, backward, AdamW), picks a precision per layer, and compiles it: an Engine.
 * It is a thin layer over the packages — capture, autocast and trainingStep from @deepwell/ir, the
 * PrecisionPolicy of @deepwell/precision as compile's precision pass, dryrun, Executable.profile —
 * and `Trainer.fromEngine(engine, { data, steps, … })` trains with the same settings.
 *
 *   precision 'auto' (default): on a GPU, the FP8 recipe this GPU and build run natively whose
 *     measured GEMM rate is highest (rates.ts), applied per layer by the policy (the head, the first
 *     and last blocks, attention cores and small layers stay BF16), else BF16; on the CPU, f32.
 *   a recipe ('bf16', 'fp8-tensorwise', 'fp8-blockwise', 'mxfp8', 'nvfp4'): that one, per layer by
 *     the policy, native where the device runs it and emulated (fake quantization) elsewhere.
 *   'f32': everything in f32, no policy.
 *
 * engine.dryrun() is ir's dryrun (memory, FLOPs) plus a time model from the kernels' measured rates:
 * each node of the compiled graph at its kernel family's rate (GEMMs by operand format, attention,
 * memory-bound kernels at a measured bandwidth), summed; the same for the step with every GEMM in
 * BF16 gives the expected speed-up. It ignores launch latency and overlap: a model for choosing,
 * not a measurement. engine.profile() measures: one real step, each node timed between CUDA events,
 * grouped by kernel with its TFLOP/s and GB/s.
 */
import { DeepwellError, describe, invalid } from '@deepwell/core';
import { Graph, autocast, bytesMoved, capture, compile, dryrun, getOp, runPasses, trainingStep, type Capturable, type DryrunReport, type Executable, type NodeDecl } from '@deepwell/ir';
import { deviceProperties, registerCudaBackends } from '@deepwell/kernels-native';
import { GPT } from '@deepwell/nn';
import { PrecisionPolicy, RECIPES, computeCapabilityOf, hasNativeRewrite, support, type FallbackEvent, type LayerDecision, type Recipe } from '@deepwell/precision';
import { checkDevice, type TrainerDevice } from './options.js';
import { kernelRates, type KernelRates } from './rates.js';

/** 'auto', one of @deepwell/precision's recipes, or 'f32' (no policy, f32 activations). */
export type EnginePrecision = 'auto' | 'f32' | Recipe;

export interface OptimizeOptions {
  /** Tokens per sequence of a training batch. */
  seqLen: number;
  /** Sequences per batch. */
  batchSize: number;
  /** Default 'auto' (see the module's comment). */
  precision?: EnginePrecision;
  /** 'cpu' or 'cuda:N'; default: the first GPU when one is usable, else the CPU. */
  device?: TrainerDevice;
  /** AdamW's constants (the learning rate comes from the Trainer's schedule each step). Defaults: β 0.9/0.95, eps 1e-8, weight decay 0.1. */
  optimizer?: { beta1?: number; beta2?: number; eps?: number; weightDecay?: number };
  /** Clip gradients to this global norm (default: no clipping). */
  clipGradNorm?: number;
  /** Seed of the parameters' initialisation in the engine's executable (default 1). */
  seed?: number;
}

/** What the engine's policy decided per layer, and what auto-fallback changed while training. */
export interface EnginePrecisionPolicy {
  /** The recipe the policy applies ('f32' and 'bf16' engines have none of FP8's per-layer choices, but 'bf16' still lists its layers). */
  recipe: Recipe | 'f32';
  /** The PrecisionPolicy itself (null for 'f32'). */
  policy: PrecisionPolicy | null;
  /** Each layer's recipe and why (the policy's plan for the compiled step; after fallbacks, the last training's). */
  layerPrecisions: LayerDecision[];
  /** Every layer demoted by auto-fallback while a Trainer made from this engine trained, oldest first. */
  fallbackHistory: FallbackEvent[];
}

/** engine.dryrun(): ir's dryrun report plus the time model. */
export interface EngineDryrun extends DryrunReport {
  time: {
    /** The modelled step time with this engine's precision, and with every GEMM in BF16 (f32 on an 'f32' engine). */
    ms: number;
    baselineMs: number;
    /** baselineMs / ms: the expected speed-up over BF16. */
    speedupOverBf16: number;
    tokensPerSecond: number;
    /** Modelled ms by kernel family, with this engine's precision and in the baseline. */
    byFamily: Record<'gemm' | 'attention' | 'memory', number>;
    baselineByFamily: Record<'gemm' | 'attention' | 'memory', number>;
    rates: KernelRates;
  };
}

/** One kernel's share of a profiled step (engine.profile()). */
export interface KernelProfileRow {
  kernel: string;
  op: string;
  /** Nodes this kernel ran in the step. */
  calls: number;
  ms: number;
  /** Share of the step's summed node times. */
  share: number;
  tflops: number;
  gbps: number;
}

export interface KernelProfile {
  device: string;
  /** The step from before its first node to after its last, on the device. */
  stepMs: number;
  rows: KernelProfileRow[];
}

const GEMM_OPS = new Set(['matmul', 'matmul_bias', 'matmul_bias_gelu', 'matmul_bgrad', 'matmul_dgelu', 'scaled_matmul', 'scaled_matmul_bias',
  // A MoE's expert GEMMs (and their fused epilogues): modelled at the BF16 GEMM rate.
  'grouped_matmul', 'grouped_matmul_wgrad', 'grouped_matmul_gelu', 'grouped_matmul_dgelu', 'grouped_matmul_swiglu']);
const ATTENTION_OPS = new Set(['sdpa', 'sdpa_backward', 'sdpa_qkv', 'sdpa_qkv_backward', 'sparsek_attention', 'sparsek_attention_backward']);
const FP8_RECIPES: Recipe[] = ['fp8-tensorwise', 'fp8-blockwise'];

function firstGpu(): string | null {
  try {
    return registerCudaBackends()[0] ?? null;
  } catch {
    return null;
  }
}

function gpuName(device: string): string | null {
  if (device === 'cpu') return null;
  try {
    return deviceProperties(Number(device.split(':')[1] ?? 0)).name;
  } catch {
    return null;
  }
}

/** Which of the measured GEMM rates a recipe's native GEMMs run at. */
function rateKey(recipe: Recipe): keyof KernelRates['gemmTflops'] {
  return recipe === 'fp8-tensorwise' ? 'tensor' : recipe === 'fp8-blockwise' ? 'block' : 'bf16';
}

/** The node's modelled time in ms and its family. */
function nodeMs(g: Graph, n: NodeDecl, rates: KernelRates): { ms: number; family: 'gemm' | 'attention' | 'memory' } {
  if (n.op === 'reshape') return { ms: 0, family: 'memory' }; // aliased: runs nothing
  const ins = n.inputs.map((i) => g.values[i]!.type);
  const outs = n.outputs.map((o) => g.values[o]!.type);
  const flops = getOp(n.op).flops?.(ins, outs, n.attrs) ?? 0;
  const bytes = bytesMoved(n.op, ins, outs, n.attrs);
  const memMs = bytes / (rates.memoryGBps * 1e6);
  if (GEMM_OPS.has(n.op)) {
    const s = String(n.attrs.aScaling ?? '');
    const key = !n.op.startsWith('scaled_') ? 'bf16' : s === 'tensor' ? 'tensor' : s === 'row' ? 'row' : 'block';
    return { ms: Math.max(flops / (rates.gemmTflops[key] * 1e9), memMs), family: 'gemm' };
  }
  if (ATTENTION_OPS.has(n.op)) return { ms: Math.max(flops / (rates.attentionTflops * 1e9), memMs), family: 'attention' };
  return { ms: memMs, family: 'memory' };
}

function modelMs(g: Graph, rates: KernelRates): { ms: number; byFamily: Record<'gemm' | 'attention' | 'memory', number> } {
  const byFamily = { gemm: 0, attention: 0, memory: 0 };
  for (const n of g.nodes) {
    const t = nodeMs(g, n, rates);
    byFamily[t.family] += t.ms;
  }
  return { ms: byFamily.gemm + byFamily.attention + byFamily.memory, byFamily };
}

function checkOptions(o: OptimizeOptions): void {
  if (!o || typeof o !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `Expected optimize options { seqLen, batchSize, precision, device } but received ${describe(o)}`);
  const known = ['seqLen', 'batchSize', 'precision', 'device', 'optimizer', 'clipGradNorm', 'seed'];
  for (const k of Object.keys(o)) if (!known.includes(k)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${known.join(', ')} for an optimize option but received '${k}'`);
  for (const k of ['seqLen', 'batchSize'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected a positive integer for ${k} but received ${describe(o[k])}`);
  }
  const p = o.precision;
  if (p !== undefined && p !== 'auto' && p !== 'f32' && !Object.hasOwn(RECIPES, p)) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected 'auto', 'f32' or a recipe (${Object.keys(RECIPES).join(', ')}) for precision but received ${describe(p)}`);
  }
}

/**
 * For Trainer.fromEngine (internal, not exported from the package): the step the engine compiled,
 * with what its compile decided, handed over once so that the Trainer need not compile it again.
 */
export interface CompiledStep {
  exe: Executable;
  /** The graph compiled (the Trainer's own must equal it for the hand-over to hold). */
  step: Graph;
  seed: number;
  device: string;
  /** The policy's state after that compile (a Trainer's copy of the policy takes it). */
  lastPlan: LayerDecision[] | null;
  lastNumerics: PrecisionPolicy['lastNumerics'];
}

let handOver: (engine: Engine) => CompiledStep | null;

/**
 * The engine's compiled step when nothing has run it or seen it yet (it is then exactly what a new
 * compile of the same graph, seed and policy gives), detached from the engine (which compiles again
 * on demand, as after release()); otherwise null, and the engine's executable is released.
 */
export function takeCompiledStep(engine: Engine): CompiledStep | null {
  return handOver(engine);
}

export class Engine {
  readonly model: Capturable;
  readonly device: TrainerDevice;
  readonly seqLen: number;
  readonly batchSize: number;
  /** Activations' dtype: bf16 with a recipe, f32 for 'f32'. */
  readonly activations: 'bf16' | 'f32';
  readonly optimizer: NonNullable<OptimizeOptions['optimizer']>;
  readonly clipGradNorm: number | undefined;
  readonly seed: number;
  /** The training step as captured (before the policy, which compile applies). */
  readonly step: Graph;
  readonly #recipe: Recipe | 'f32';
  readonly #policy: PrecisionPolicy | null;
  readonly #fallbacks: FallbackEvent[] = [];
  #plan: LayerDecision[] = [];
  #exe: Executable | null;
  /** Whether `executable` handed the executable out (it may have run: no longer a fresh compile). */
  #handedOut = false;
  #disposed = false;

  static {
    handOver = (e) => {
      const exe = e.#exe;
      if (!exe || e.#handedOut || e.#disposed) {
        e.release();
        return null;
      }
      e.#exe = null;
      return { exe, step: e.step, seed: e.seed, device: e.device, lastPlan: e.#policy?.lastPlan ? [...e.#policy.lastPlan] : null, lastNumerics: [...(e.#policy?.lastNumerics ?? [])] };
    };
  }

  constructor(model: Capturable, options: OptimizeOptions) {
    checkOptions(options);
    this.model = model;
    this.device = checkDevice(options.device, () => (firstGpu() ?? 'cpu') as TrainerDevice); // the Trainer's check
    this.seqLen = options.seqLen;
    this.batchSize = options.batchSize;
    this.optimizer = { ...options.optimizer };
    this.clipGradNorm = options.clipGradNorm;
    this.seed = options.seed ?? 1;
    const want = options.precision ?? 'auto';
    this.#recipe = want === 'auto' ? autoRecipe(this.device) : want;
    this.activations = this.#recipe === 'f32' ? 'f32' : 'bf16';
    this.#policy = this.#recipe === 'f32' ? null : new PrecisionPolicy({ recipe: this.#recipe });
    const B = this.batchSize;
    const T = this.seqLen;
    const captured = capture(model, { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
    if (captured.outputs.loss === undefined) throw new DeepwellError('INVALID_ARGUMENT', `Expected the model's forward to return a 'loss' but it returned ${Object.keys(captured.outputs).join(', ') || 'nothing'}`);
    for (const name of Object.keys(captured.outputs)) if (name !== 'loss') delete captured.outputs[name];
    const forward = this.activations === 'bf16' ? autocast(captured) : captured;
    this.step = trainingStep(forward, { optimizer: this.optimizer, clipGradNorm: this.clipGradNorm });
    this.#exe = compile(this.step, { device: this.device, seed: this.seed, precision: this.#policy ?? undefined });
    this.#plan = this.#policy?.lastPlan ? [...this.#policy.lastPlan] : [];
  }

  /**
   * The compiled training step (inputs tokens, targets, lr, step; output loss), its weights the
   * initialisation's. Compiled again if release() freed it.
   */
  get executable(): Executable {
    if (this.#disposed) throw new DeepwellError('INVALID_ARGUMENT', 'Expected a live engine but this one was disposed (engine.dispose())');
    this.#exe ??= compile(this.step, { device: this.device, seed: this.seed, precision: this.#policy?.clone() });
    this.#handedOut = true;
    return this.#exe;
  }

  /** Frees the executable's device memory; the engine stays usable (it compiles again on demand). */
  release(): void {
    this.#exe?.dispose();
    this.#exe = null;
  }

  /** The policy Trainer.fromEngine trains with (a copy: the engine's stays as decided), or null for 'f32'. */
  policyCopy(): PrecisionPolicy | null {
    return this.#policy?.clone() ?? null;
  }

  get precisionPolicy(): EnginePrecisionPolicy {
    return { recipe: this.#recipe, policy: this.#policy, layerPrecisions: [...this.#plan], fallbackHistory: [...this.#fallbacks] };
  }

  /** Called by Trainer.fromEngine's run at its end: the fallbacks it took and the plan it ended on. */
  recordTraining(fallbacks: FallbackEvent[], plan: LayerDecision[] | null): void {
    for (const f of fallbacks) if (!this.#fallbacks.some((g) => g.step === f.step && g.layer === f.layer && g.to === f.to)) this.#fallbacks.push(f);
    if (plan) this.#plan = [...plan];
  }

  dryrun(): EngineDryrun {
    const report = dryrun(this.step, { device: this.device, precision: this.#policy?.clone() });
    const rates = kernelRates(gpuName(this.device), report.estimate);
    const passes = (precision?: PrecisionPolicy) => runPasses(Graph.fromJSON(this.step.toJSON()), { precision, device: this.device });
    const mine = modelMs(passes(this.#policy?.clone()), rates);
    const base = this.#policy ? modelMs(passes(), rates) : mine;
    return {
      ...report,
      time: { ms: mine.ms, baselineMs: base.ms, speedupOverBf16: base.ms / mine.ms, tokensPerSecond: (this.batchSize * this.seqLen) / (mine.ms / 1000), byFamily: mine.byFamily, baselineByFamily: base.byFamily, rates },
    };
  }

  /**
   * One real step of the engine's executable (at lr 0: the weights do not move; AdamW's moments do),
   * each node timed on the device, grouped by kernel, slowest first. `batch`: the tokens and targets
   * ([batchSize, seqLen] each); default random tokens below a GPT's vocabulary. GPU only.
   */
  profile(batch?: { tokens: Int32Array; targets: Int32Array }): KernelProfile {
    const exe = this.executable;
    const data = batch ?? this.#randomBatch();
    const p = exe.profile({ ...data, lr: Float32Array.of(0), step: Float32Array.of(1) });
    const g = exe.graph;
    const rows = new Map<string, KernelProfileRow & { flops: number; bytes: number }>();
    let sum = 0;
    for (const n of p.nodes) {
      if (n.kernel === 'alias') continue;
      const node = g.nodes[n.index]!;
      const ins = node.inputs.map((i) => g.values[i]!.type);
      const outs = node.outputs.map((o) => g.values[o]!.type);
      const r = rows.get(n.kernel) ?? { kernel: n.kernel, op: n.op, calls: 0, ms: 0, share: 0, tflops: 0, gbps: 0, flops: 0, bytes: 0 };
      r.calls++;
      r.ms += n.ms;
      r.flops += getOp(node.op).flops?.(ins, outs, node.attrs) ?? 0;
      r.bytes += bytesMoved(node.op, ins, outs, node.attrs);
      rows.set(n.kernel, r);
      sum += n.ms;
    }
    const out = [...rows.values()].map(({ flops, bytes, ...r }) => ({ ...r, share: r.ms / sum, tflops: r.ms > 0 ? flops / (r.ms * 1e9) : 0, gbps: r.ms > 0 ? bytes / (r.ms * 1e6) : 0 }));
    return { device: this.device, stepMs: p.totalMs, rows: out.sort((a, b) => b.ms - a.ms) };
  }

  #randomBatch(): { tokens: Int32Array; targets: Int32Array } {
    if (!(this.model instanceof GPT)) throw new DeepwellError('INVALID_ARGUMENT', 'Expected a batch { tokens, targets } for profile() (random tokens need a GPT, whose vocabulary is known)');
    const V = this.model.config.vocabSize;
    const n = this.batchSize * this.seqLen;
    const rand = () => Int32Array.from({ length: n }, () => Math.floor(Math.random() * V));
    return { tokens: rand(), targets: rand() };
  }

  dispose(): void {
    this.release();
    this.#disposed = true;
  }
}

/** 'auto' on a device: the fastest natively-run FP8 recipe by the measured rates, else bf16 (a GPU) or f32 (the CPU). */
function autoRecipe(device: string): Recipe | 'f32' {
  if (device === 'cpu') return 'f32';
  const cc = computeCapabilityOf(device);
  const rates = kernelRates(gpuName(device), { peakTflops: 1, memoryGBps: 1, source: '' });
  const native = FP8_RECIPES.filter((r) => hasNativeRewrite(r) && support(r, cc) === 'native');
  const best = native.sort((a, b) => rates.gemmTflops[rateKey(b)] - rates.gemmTflops[rateKey(a)])[0];
  return best && rates.gemmTflops[rateKey(best)] > rates.gemmTflops.bf16 ? best : 'bf16';
}

/** The one call: capture, choose the precision, compile. See the module's comment. */
export function optimize(model: Capturable, options: OptimizeOptions): Engine {
  return new Engine(model, options);
}

/** A profile as a Markdown table. */
export function formatProfile(p: KernelProfile): string {
  const ok = typeof p === 'object' && p !== null && Number.isFinite(p.stepMs) && Array.isArray(p.rows) && p.rows.every((r) => typeof r === 'object' && r !== null && ['ms', 'share', 'tflops', 'gbps', 'calls'].every((k) => typeof (r as unknown as Record<string, unknown>)[k] === 'number'));
  if (!ok) invalid('a profile from engine.profile()', 'formatProfile', p);
  const lines = [`step ${p.stepMs.toFixed(3)} ms on ${p.device}`, '', '| kernel | op | calls | ms | share | TFLOP/s | GB/s |', '|---|---|---:|---:|---:|---:|---:|'];
  for (const r of p.rows) lines.push(`| ${r.kernel} | ${r.op} | ${r.calls} | ${r.ms.toFixed(3)} | ${(100 * r.share).toFixed(1)}% | ${r.tflops.toFixed(1)} | ${r.gbps.toFixed(0)} |`);
  return lines.join('\n');
}
