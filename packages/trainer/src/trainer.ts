/**
 * Trainer: one call (`fit`) trains a captured model with AdamW on token batches, on the first GPU
 * (bf16 activations, f32 master weights) or on the CPU reference backend.
 *
 * Each step: the loader's next batch, the schedule's learning rate, one compiled training step
 * (forward, backward, AdamW — one CUDA graph replay on a GPU). Around it: periodic evaluation on
 * held-out batches (a forward-only executable given the current weights), checkpoints (atomic
 * safetensors with the loader position), metrics (loss, tokens/s, MFU against the device's peak,
 * memory), a JSONL log, a progress display, events, and at the end a loss-curve SVG.
 *
 * Resuming (`resume: true`, or a checkpoint path) loads the newest checkpoint of the directory and
 * continues with the same data and schedule: the losses equal those of an uninterrupted run, bit
 * for bit (the compiled step is deterministic; the data position and step are in the checkpoint).
 *
 * Before allocating, dryrun's memory figure is compared with what the device has free; a model that
 * cannot fit is refused with OUT_OF_MEMORY and the figures.
 *
 * Precision (`policy`, a @deepwell/precision PrecisionPolicy, compile's precision pass) with
 * auto-fallback (`fallback`, on by default with a policy): a FallbackController looks at every
 * step's loss (and the policy's numerics outputs); on a bad step (a non-finite loss or gradient
 * norm, non-finite quantized operands, a loss spike) it demotes the layer responsible, and the
 * trainer recompiles the step with the demoted policy, rolls the weights, the AdamW moments and the
 * data position back to the newest of this run's last checkpoint and an in-memory snapshot (taken
 * every `fallback.snapshotEvery` steps; by default 25 or more, spaced so that the copies take at
 * most 2% of the steps' time), logs and emits 'fallback', and goes on from there. The demotions are
 * in the checkpoints, so a resumed run keeps them. Without a policy (or with
 * `fallback: false`) a non-finite loss throws, as before.
 */
import { freemem } from 'node:os';
import { memGetInfo, registerCudaBackends } from '@deepwell/kernels-native';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeepwellError, describe, getBackend } from '@deepwell/core';
import { autocast, capture, compile, dryrun, numel, trainingStep, type Capturable, type DryrunReport, type Executable, type HostSplit, type Graph, type KernelSummaryRow, type NodeProfile, type Phase } from '@deepwell/ir';
import { GPT, Generator } from '@deepwell/nn';
import { FallbackController, PrecisionPolicy, checkFallbackOptions, type FallbackEvent, type FallbackOptions, type LayerDecision, type LayerNumerics } from '@deepwell/precision';
import { checkpointPath, checkpointsIn, loadCheckpoint, pruneCheckpoints, saveCheckpoint } from './checkpoint.js';
import type { LoaderState, TokenLoader } from './loader.js';
import { JsonlLog, Progress } from './metrics.js';
import type { Engine } from './engine.js';
import { lossCurveSvg } from './plot.js';
import { warmupCosine, type Schedule } from './schedule.js';

export interface TrainerOptions {
  /** A model whose forward({ tokens, targets }) returns at least { loss }. */
  model: Capturable;
  train: TokenLoader;
  /** Held-out data for evaluation (same batch shape as train). */
  val?: TokenLoader;
  /** 'cuda:N' or 'cpu'; default: the first GPU when one is usable, else the CPU. */
  device?: string;
  /** Activations in bf16 with f32 master weights, or all f32. Default: bf16 on a GPU, f32 on the CPU. */
  precision?: 'bf16' | 'f32';
  optimizer?: { lr?: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number };
  /** Default: warm-up over 10% of the steps, cosine to lr/10. */
  schedule?: Schedule | { warmup?: number; minLr?: number };
  steps: number;
  /** Clip gradients to this global norm (the step then reports grad_norm). */
  clipGradNorm?: number;
  /** Micro-batches per step (gradient accumulation): each step takes this many loader batches. */
  accumulate?: number;
  evalEvery?: number;
  evalBatches?: number;
  checkpoint?: { dir: string; every: number; keep?: number };
  seed?: number;
  /** JSONL log path; progress display (default: a bar on a TTY, lines otherwise); log every n steps. */
  log?: { jsonl?: string; progress?: boolean; every?: number; svg?: string };
  /** Anything JSON the checkpoint should carry as the run's config. */
  config?: unknown;
  /** On a GPU: run this step through Executable.profile (per-node device times; same numbers). */
  profileStep?: number;
  /** A per-layer precision policy (compile's precision pass); the trainer works on a copy. */
  policy?: PrecisionPolicy;
  /** Auto-fallback with a policy (default on: the defaults of FallbackOptions); false turns it off. */
  fallback?: FallbackOptions | false;
  /**
   * At each evaluation, continue `prompt` (token ids) from the current weights and print it, as
   * nanoGPT does (`decode` turns the ids into text; default: the ids). The model must be a GPT.
   */
  sample?: { prompt: number[]; maxTokens?: number; temperature?: number; topK?: number; seed?: number; vocab?: number; decode?: (ids: number[]) => string };
}

/** Trainer.fromEngine's options: the loaders as `data`, the rest as TrainerOptions less what the engine decided. */
export type FromEngineOptions = Omit<TrainerOptions, 'model' | 'train' | 'val' | 'device' | 'precision' | 'policy' | 'clipGradNorm' | 'optimizer'> & {
  data: { train: TokenLoader; val?: TokenLoader };
  /** The learning rate (default 6e-4) and any AdamW constant to change from the engine's. */
  optimizer?: TrainerOptions['optimizer'];
};

export interface StepEvent {
  step: number;
  loss: number;
  /** The global gradient norm before clipping (with clipGradNorm). */
  gradNorm?: number;
  lr: number;
  ms: number;
  tokensPerSecond: number;
  mfu: number | null;
  /** dryrun's total for the step (arena, parameters, state): the planned footprint, the same every step. */
  memoryBytes: number;
  /**
   * Host time of the step up to the wait for the device (queueing the CUDA graph and the copies),
   * in ms: present on a GPU, where steps replay one captured graph after the first two.
   */
  hostMs?: number;
  /** hostMs by part, in µs: the batch check, staging the inputs, the launch, queueing the outputs' copies (a GPU only). */
  hostSplit?: HostSplit;
  /** The device allocator's bytes in use after the step (a GPU only): constant once replaying. */
  inUseBytes?: number;
}

export interface TrainerEvents {
  /** Before the first step (after loading a checkpoint when resuming): the compiled step. */
  start: { step: number; executable: Executable };
  step: StepEvent;
  eval: { step: number; loss: number };
  /** options.sample's continuation at an evaluation. */
  sample: { step: number; tokens: number[]; text: string };
  checkpoint: { step: number; path: string };
  /**
   * A bad step was undone: layers demoted, weights, optimizer state and data position restored to
   * `restoredTo`, and a new executable compiled (the one training continues with).
   */
  fallback: { step: number; loss: number; cause: string; events: FallbackEvent[]; restoredTo: number; source: 'checkpoint' | 'snapshot'; executable: Executable };
  end: FitResult;
}

export interface FitResult {
  steps: number;
  losses: { step: number; loss: number }[];
  evals: { step: number; loss: number }[];
  tokensPerSecond: number;
  mfu: number | null;
  checkpoint: string | null;
  lossCurve: string | null;
  dryrun: DryrunReport;
  /** Which kernel served each op of the training step, and how often (this fit's calls). */
  kernels: KernelSummaryRow[];
  /** Whether the step ran as one replayed CUDA graph. */
  replayed: boolean;
  /** The device backend's peak bytes in use during the fit (allocator statistics). */
  peakMemoryBytes: number;
  /** The profiled step (options.profileStep), when there was one; each node with its phase. */
  profile: { step: number; totalMs: number; nodes: (NodeProfile & { phase: Phase })[] } | null;
  /** Every layer demoted by auto-fallback (this run's and, when resumed, the checkpoint's), oldest first. */
  fallbacks: FallbackEvent[];
  /** The policy's per-layer decisions at the end (after any fallback); null without a policy. */
  plan: LayerDecision[] | null;
  /** The last step's per-layer numerics (a policy with numerics: true), else null. */
  numerics: LayerNumerics[] | null;
  /** The trained parameters by name (a host copy: the step's executable is disposed when fit returns), for a Generator or an export. */
  weights: Map<string, Float32Array>;
}

function firstGpu(): string | null {
  try {
    return registerCudaBackends()[0] ?? null;
  } catch {
    return null;
  }
}

/** Free bytes on the device, or null when unknown. */
function freeBytes(device: string): number | null {
  if (device === 'cpu') return freemem();
  try {
    return memGetInfo(Number(device.split(':')[1] ?? 0)).free;
  } catch {
    return null;
  }
}

type Listener<K extends keyof TrainerEvents> = (e: TrainerEvents[K]) => void;

/** A PrecisionPolicy, from this copy of @deepwell/precision or another (ESM / CJS). */
function isPolicy(p: unknown): p is PrecisionPolicy {
  if (p instanceof PrecisionPolicy) return true;
  const q = p as PrecisionPolicy | null;
  return typeof q === 'object' && q !== null && q.name === 'precision-policy' && typeof q.run === 'function' && typeof q.clone === 'function' && typeof q.addRule === 'function';
}

const AUTO_SNAPSHOT_EVERY = 25;
const SNAPSHOT_SHARE = 0.02;

/** `a` when it can take the value `name` of `exe` (a snapshot array to reuse), else undefined. */
function sameSize(a: Float32Array | undefined, exe: Executable, name: string): Float32Array | undefined {
  if (!a) return undefined;
  const id = exe.graph.params[name] ?? exe.graph.state[name];
  return id !== undefined && a.length === numel(exe.graph.values[id]!.type.shape) ? a : undefined;
}

/** Every parameter and optimizer-state value of an executable, copied out, with the data position. */
interface Snapshot {
  step: number;
  loader: LoaderState;
  values: Map<string, Float32Array>;
}

export class Trainer {
  readonly device: string;
  readonly precision: 'bf16' | 'f32';
  readonly schedule: Schedule;
  readonly step: Graph;
  readonly report: DryrunReport;
  readonly #options: TrainerOptions;
  readonly #listeners = new Map<keyof TrainerEvents, Listener<never>[]>();
  readonly #forward: Graph;

  constructor(options: TrainerOptions) {
    if (!options || typeof options !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `Expected trainer options but received ${describe(options)}`);
    if (!Number.isInteger(options.steps) || options.steps < 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected a positive integer for steps but received ${describe(options.steps)}`);
    if (!options.train || typeof options.train.next !== 'function') throw new DeepwellError('INVALID_ARGUMENT', `Expected a TokenLoader for train but received ${describe(options.train)}`);
    if (options.val && (options.val.batchSize !== options.train.batchSize || options.val.seqLen !== options.train.seqLen)) {
      throw new DeepwellError('SHAPE_MISMATCH', `Expected the val loader's batch shape [${options.train.batchSize}, ${options.train.seqLen}] (the train loader's) but received [${options.val.batchSize}, ${options.val.seqLen}]`);
    }
    if (options.policy !== undefined && !isPolicy(options.policy)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a PrecisionPolicy (from @deepwell/precision) for policy but received ${describe(options.policy)}`);
    if (options.fallback !== undefined && options.fallback !== false) {
      checkFallbackOptions(options.fallback);
      if (!options.policy) throw new DeepwellError('INVALID_ARGUMENT', `Expected a policy for fallback (it demotes the policy's layers) but received ${describe(options.policy)}`);
    }
    if (options.sample !== undefined) {
      if (!(options.model instanceof GPT)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a GPT model for sample (it generates with nn's Generator) but received ${describe(options.model)}`);
      if (!options.val || !options.evalEvery) throw new DeepwellError('INVALID_ARGUMENT', 'Expected val and evalEvery for sample (it samples at each evaluation) but received none');
      if (!Array.isArray(options.sample.prompt) || options.sample.prompt.length === 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a non-empty array of token ids for sample.prompt but received ${describe(options.sample.prompt)}`);
    }
    this.#options = options;
    this.device = options.device ?? firstGpu() ?? 'cpu';
    this.precision = options.precision ?? (this.device === 'cpu' ? 'f32' : 'bf16');
    const o = options.optimizer ?? {};
    const lr = o.lr ?? 6e-4;
    const sch = options.schedule;
    this.schedule = typeof sch === 'function' ? sch : warmupCosine({ lr, total: options.steps, warmup: sch?.warmup ?? Math.ceil(options.steps / 10), minLr: sch?.minLr ?? lr / 10 });

    const { batchSize: B, seqLen: T } = options.train;
    const captured = capture(options.model, { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
    if (captured.outputs.loss === undefined) throw new DeepwellError('INVALID_ARGUMENT', `Expected the model's forward to return a 'loss' but it returned ${Object.keys(captured.outputs).join(', ') || 'nothing'}`);
    // Only the loss leaves the device each step (a GPT's logits would be B·T·V values).
    for (const name of Object.keys(captured.outputs)) if (name !== 'loss') delete captured.outputs[name];
    this.#forward = this.precision === 'bf16' ? autocast(captured) : captured;
    this.step = trainingStep(this.#forward, {
      optimizer: { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay },
      clipGradNorm: options.clipGradNorm,
      accumulate: options.accumulate,
    });
    this.report = dryrun(this.step, { device: this.device, precision: options.policy?.clone() });
    // Refuse what cannot fit before anything is allocated (an eval executable adds the forward's share).
    const free = freeBytes(this.device);
    if (free !== null && this.report.totalBytes > free) {
      const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
      throw new DeepwellError(
        'OUT_OF_MEMORY',
        `The training step needs ${gib(this.report.totalBytes)} on ${this.device} (parameters ${gib(this.report.parameterBytes)}, optimizer state ${gib(this.report.optimizerStateBytes)}, arena ${gib(this.report.arenaBytes)}: dryrun) but ${gib(free)} is free; use a smaller batch or model`,
      );
    }
  }

  /**
   * A Trainer with an Engine's settings (optimize() in engine.ts): its model, device, activations'
   * precision, precision policy (a copy), AdamW constants and clipping; `data` the loaders (their
   * batch shape must be the engine's), the rest as TrainerOptions. The engine's own executable is
   * released (the Trainer compiles its step when fit() starts); at the end of each fit the engine's
   * precisionPolicy records the run's fallbacks and final per-layer plan.
   */
  static fromEngine(engine: Engine, options: FromEngineOptions): Trainer {
    if (!options || typeof options !== 'object' || !options.data?.train) throw new DeepwellError('INVALID_ARGUMENT', `Expected { data: { train, val? }, steps, … } for Trainer.fromEngine but received ${describe(options)}`);
    const { data, optimizer, ...rest } = options;
    for (const [name, loader] of Object.entries(data)) {
      if (loader && (loader.batchSize !== engine.batchSize || loader.seqLen !== engine.seqLen)) {
        throw new DeepwellError('SHAPE_MISMATCH', `Expected data.${name}'s batch shape [${engine.batchSize}, ${engine.seqLen}] (the engine's) but received [${loader.batchSize}, ${loader.seqLen}]`);
      }
    }
    engine.release();
    const t = new Trainer({
      ...rest,
      model: engine.model,
      train: data.train,
      ...(data.val ? { val: data.val } : {}),
      device: engine.device,
      precision: engine.activations,
      optimizer: { ...engine.optimizer, ...optimizer },
      ...(engine.clipGradNorm !== undefined ? { clipGradNorm: engine.clipGradNorm } : {}),
      ...(engine.policyCopy() ? { policy: engine.policyCopy()! } : {}),
      seed: rest.seed ?? engine.seed,
    });
    t.on('end', (r) => engine.recordTraining(r.fallbacks, r.plan));
    return t;
  }

  /** One step's data: `accumulate` loader batches stacked along the batch dimension. */
  #batch(): { tokens: Int32Array; targets: Int32Array } {
    const k = this.#options.accumulate ?? 1;
    if (k === 1) return this.#options.train.next();
    const parts = Array.from({ length: k }, () => this.#options.train.next());
    const n = parts[0]!.tokens.length;
    const tokens = new Int32Array(k * n);
    const targets = new Int32Array(k * n);
    parts.forEach((p, i) => {
      tokens.set(p.tokens, i * n);
      targets.set(p.targets, i * n);
    });
    return { tokens, targets };
  }

  on<K extends keyof TrainerEvents>(event: K, fn: Listener<K>): this {
    const list = this.#listeners.get(event) ?? [];
    list.push(fn as Listener<never>);
    this.#listeners.set(event, list);
    return this;
  }

  #emit<K extends keyof TrainerEvents>(event: K, e: TrainerEvents[K]): void {
    for (const fn of this.#listeners.get(event) ?? []) (fn as Listener<K>)(e);
  }

  /**
   * Train for `steps` steps (from step 1, or after the checkpoint when resuming). `resume`: true
   * for the newest checkpoint of options.checkpoint.dir (a fresh start when there is none), or a
   * checkpoint path.
   */
  fit(options: { resume?: boolean | string } = {}): FitResult {
    const o = this.#options;
    const { batchSize: B, seqLen: T } = o.train;
    const seed = o.seed ?? 1;
    // The run's own copy of the policy: fallbacks add rules to it.
    const policy = o.policy?.clone();
    const controller = policy ? new FallbackController(policy, o.fallback || undefined) : null;
    const autoFallback = controller !== null && o.fallback !== false;
    const compileStep = () => compile(this.step, { device: this.device, seed, precision: policy });
    let exe = compileStep();
    let evalExe: Executable | null = null;
    const log = o.log?.jsonl ? new JsonlLog(o.log.jsonl) : null;
    const progress = o.log?.progress === false ? null : new Progress(process.stderr, o.log?.every ?? 10);
    const losses: { step: number; loss: number }[] = [];
    const evals: { step: number; loss: number }[] = [];
    let start = 1;
    let lastCheckpoint: string | null = null;
    let lastCheckpointStep = -1;
    let profile: FitResult['profile'] = null;
    let snapshot: Snapshot | null = null;
    let lastOut: Record<string, Float32Array | Int32Array> = {};
    const stateNames = () => [...Object.keys(exe.graph.params), ...Object.keys(exe.graph.state)];
    // A snapshot reads every value into the previous snapshot's arrays (no allocation after the
    // first). With snapshotEvery 'auto' they are at least AUTO_SNAPSHOT_EVERY steps apart, and
    // further where one copy would cost more than SNAPSHOT_SHARE of the steps' time (a 1B model's
    // copy is about 11 GB, seconds against a step of tenths of one).
    let snapshotMs = 0;
    let stepMsMean = 0;
    const takeSnapshot = (step: number): Snapshot => {
      const t = performance.now();
      const old = snapshot?.values;
      const values = new Map(stateNames().map((n) => [n, exe.get(n, sameSize(old?.get(n), exe, n))]));
      snapshotMs = performance.now() - t;
      return { step, loader: o.train.state, values };
    };
    const snapshotDue = (s: number): boolean => {
      const every = controller!.options.snapshotEvery;
      if (every !== 'auto') return s % every === 0;
      return s - snapshot!.step >= Math.max(AUTO_SNAPSHOT_EVERY, Math.ceil(snapshotMs / (SNAPSHOT_SHARE * Math.max(stepMsMean, 1e-3))));
    };
    try {
      const resumeFrom = options.resume === true ? (o.checkpoint ? checkpointsIn(o.checkpoint.dir).at(-1)?.path : undefined) : options.resume || undefined;
      if (options.resume === true && !o.checkpoint) throw new DeepwellError('INVALID_ARGUMENT', 'Expected options.checkpoint.dir to resume from but the trainer has no checkpoint directory');
      if (resumeFrom) {
        const meta = loadCheckpoint(resumeFrom, exe);
        o.train.restore(meta.loader as LoaderState);
        const extra = meta.extra as { losses?: { step: number; loss: number }[]; evals?: { step: number; loss: number }[]; fallbacks?: FallbackEvent[] } | null;
        losses.push(...(extra?.losses ?? []));
        evals.push(...(extra?.evals ?? []));
        start = meta.step + 1;
        lastCheckpoint = resumeFrom;
        lastCheckpointStep = meta.step;
        if (controller && extra?.fallbacks?.length) {
          // Keep the run's demotions: recompile with them and carry the loaded values over.
          controller.replay(extra.fallbacks);
          const next = compileStep();
          for (const name of stateNames()) next.set(name, exe.get(name));
          exe.dispose();
          exe = next;
          progress?.line(`kept ${extra.fallbacks.length} precision fallback(s): ${extra.fallbacks.map((e) => `${e.layer} ${e.from} → ${e.to}`).join(', ')}`);
        }
        progress?.line(`resumed from ${resumeFrom} at step ${meta.step}`);
        log?.write({ event: 'resume', step: meta.step, path: resumeFrom });
      }
      log?.write({ event: 'start', device: this.device, precision: this.precision, recipe: policy?.options.recipe ?? null, batch: [B, T], steps: o.steps, parameters: this.report.parameters, flopsPerStep: this.report.flopsPerStep, totalBytes: this.report.totalBytes });
      this.#emit('start', { step: start, executable: exe });
      if (autoFallback) snapshot = takeSnapshot(start - 1);
      const peak = this.device === 'cpu' ? null : this.report.estimate.peakTflops;
      const t0 = performance.now();
      let tokensDone = 0;
      for (let s = start; s <= o.steps; s++) {
        const batch = this.#batch();
        const lr = this.schedule(s);
        const ts = performance.now();
        const inputs = { ...batch, lr: Float32Array.of(lr), step: Float32Array.of(s) };
        let out;
        if (s === o.profileStep && this.device !== 'cpu') {
          const p = exe.profile(inputs);
          out = p.outputs;
          profile = { step: s, totalMs: p.totalMs, nodes: p.nodes.map((n) => ({ ...n, phase: exe.graph.nodes[n.index]!.phase })) };
          log?.write({ event: 'profile', ...profile });
        } else out = exe.run(inputs);
        const ms = performance.now() - ts;
        const loss = out.loss![0]!;
        const gradNorm = out.grad_norm?.[0];
        lastOut = out;
        if (autoFallback) {
          const decision = controller!.observe(s, loss, out); // throws when nothing is left to demote
          if (decision) {
            // Undo the step: a step compiled with the demoted policy, the state from before it.
            exe.dispose();
            exe = compileStep();
            evalExe?.dispose();
            evalExe = null;
            let restoredTo: number;
            let source: 'checkpoint' | 'snapshot';
            if (lastCheckpoint && lastCheckpointStep >= snapshot!.step) {
              const meta = loadCheckpoint(lastCheckpoint, exe);
              o.train.restore(meta.loader as LoaderState);
              (restoredTo = meta.step), (source = 'checkpoint');
            } else {
              for (const [name, v] of snapshot!.values) exe.set(name, v);
              o.train.restore(snapshot!.loader);
              (restoredTo = snapshot!.step), (source = 'snapshot');
            }
            losses.splice(0, losses.length, ...losses.filter((l) => l.step <= restoredTo));
            evals.splice(0, evals.length, ...evals.filter((l) => l.step <= restoredTo));
            controller!.rewind(restoredTo);
            const f = { step: s, loss, cause: decision.cause, events: decision.events, restoredTo, source };
            log?.write({ event: 'fallback', ...f });
            progress?.line(`fallback at step ${s} (${decision.cause}): ${decision.events.map((e) => `${e.layer} ${e.from} → ${e.to}`).join(', ')}; back to step ${restoredTo} (${source})`);
            this.#emit('fallback', { ...f, executable: exe });
            s = restoredTo;
            continue;
          }
          stepMsMean = stepMsMean === 0 ? ms : 0.9 * stepMsMean + 0.1 * ms;
          if (snapshotDue(s)) snapshot = takeSnapshot(s);
        } else if (!Number.isFinite(loss)) throw new DeepwellError('INTERNAL', `The loss is ${loss} at step ${s} (diverged: lower the learning rate, or check the data)`);
        const tokens = B * T * (o.accumulate ?? 1);
        tokensDone += tokens;
        const elapsed = (performance.now() - t0) / 1000;
        const tokensPerSecond = tokens / (ms / 1000);
        const mfu = peak ? this.report.flopsPerStep / (ms / 1000) / (peak * 1e12) : null;
        const device = this.device === 'cpu' ? {} : { hostMs: (exe as { lastHostMs?: number }).lastHostMs, hostSplit: (exe as { lastHostSplit?: HostSplit }).lastHostSplit, inUseBytes: getBackend(this.device).memoryStats().inUse };
        const ev: StepEvent = { step: s, loss, ...(gradNorm !== undefined ? { gradNorm } : {}), lr, ms, tokensPerSecond, mfu, memoryBytes: this.report.totalBytes, ...device };
        losses.push({ step: s, loss });
        log?.write({ event: 'step', ...ev });
        progress?.step({ step: s, total: o.steps, loss, lr, tokensPerSecond, mfu, elapsed });
        this.#emit('step', ev);

        if (o.val && o.evalEvery && (s % o.evalEvery === 0 || s === o.steps)) {
          evalExe ??= compile(this.#forward, { device: this.device, seed, precision: policy?.clone({ numerics: false }) });
          for (const name of evalExe.parameterNames()) evalExe.set(name, exe.get(name));
          let sum = 0;
          const n = o.evalBatches ?? 10;
          for (let k = 0; k < n; k++) sum += evalExe.run(o.val.next()).loss![0]!;
          const e = { step: s, loss: sum / n };
          evals.push(e);
          log?.write({ event: 'eval', ...e });
          progress?.line(`eval at step ${s}: loss ${e.loss.toFixed(4)}`);
          this.#emit('eval', e);
          if (o.sample) {
            const { prompt, decode, maxTokens = 32, ...rest } = o.sample;
            const g = new Generator(o.model as GPT, new Map(exe.parameterNames().map((n) => [n, exe.get(n)] as const)), { device: this.device, precision: this.precision });
            try {
              const tokens = g.generate(prompt, { maxTokens, ...rest });
              const text = decode ? decode([...prompt, ...tokens]) : [...prompt, ...tokens].join(' ');
              log?.write({ event: 'sample', step: s, tokens, text });
              progress?.line(`sample at step ${s}: ${JSON.stringify(text)}`);
              this.#emit('sample', { step: s, tokens, text });
            } finally {
              g.dispose();
            }
          }
        }
        if (o.checkpoint && (s % o.checkpoint.every === 0 || s === o.steps)) {
          const path = checkpointPath(o.checkpoint.dir, s);
          saveCheckpoint(path, exe, { step: s, loader: o.train.state, seed, config: o.config ?? null, extra: { losses, evals, fallbacks: controller?.history ?? [] } });
          pruneCheckpoints(o.checkpoint.dir, o.checkpoint.keep ?? 3);
          lastCheckpoint = path;
          lastCheckpointStep = s;
          log?.write({ event: 'checkpoint', step: s, path });
          this.#emit('checkpoint', { step: s, path });
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      const ran = o.steps - start + 1;
      const tokensPerSecond = ran > 0 ? tokensDone / seconds : 0;
      const mfu = peak && ran > 0 ? (this.report.flopsPerStep * ran) / seconds / (peak * 1e12) : null;
      let lossCurve: string | null = null;
      const svg = o.log?.svg ?? (o.checkpoint ? join(o.checkpoint.dir, 'loss.svg') : null);
      if (svg) {
        mkdirSync(join(svg, '..'), { recursive: true });
        const series = [{ name: 'train loss', points: losses.map((l) => [l.step, l.loss] as const), color: '#1f77b4' }];
        if (evals.length) series.push({ name: 'eval loss', points: evals.map((l) => [l.step, l.loss] as const), color: '#d62728' });
        writeFileSync(svg, lossCurveSvg(series, { title: `loss (${this.device}, ${this.precision}, batch ${B}×${T})` }));
        lossCurve = svg;
      }
      const result: FitResult = {
        steps: o.steps,
        losses,
        evals,
        tokensPerSecond,
        mfu,
        checkpoint: lastCheckpoint,
        lossCurve,
        dryrun: this.report,
        kernels: exe.kernelSummary(),
        replayed: exe.replaying,
        peakMemoryBytes: getBackend(this.device).memoryStats().peak,
        profile,
        fallbacks: controller ? [...controller.history] : [],
        plan: policy?.lastPlan ?? null,
        numerics: policy?.options.numerics ? PrecisionPolicy.numerics(lastOut) : null,
        weights: new Map(exe.parameterNames().map((name) => [name, exe.get(name)] as const)),
      };
      log?.write({ event: 'end', tokensPerSecond, mfu, checkpoint: lastCheckpoint, lossCurve });
      this.#emit('end', result);
      return result;
    } finally {
      exe.dispose();
      evalExe?.dispose();
    }
  }
}
