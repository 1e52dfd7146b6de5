/**
 * Trainer: one call (`fit`) trains a captured model with AdamW on token batches, on the first GPU
 * (bf16 activations, f32 master weights) or on the CPU reference backend. Its options, results
 * and events, each documented with its default, are in options.ts.
 *
 * Each step: the loader's next batch, the schedule's learning rate, one compiled training step
 * (forward, backward, AdamW — one CUDA graph replay on a GPU). Around it: periodic evaluation on a
 * fixed held-out set (the first evaluation reads evalBatches batches of val and keeps them, so
 * every evaluation measures the same data; a forward-only executable given the current weights),
 * checkpoints (atomic safetensors with the loader position, the run's id and its schedule),
 * metrics (loss, tokens/s, MFU against the device's peak, memory), a JSONL log, a progress
 * display, events, and at the end a loss-curve SVG.
 *
 * One loop, two drivers: the loop is a generator (`#run`) that yields after every step; `fit`
 * drives it to the end synchronously, `fitAsync` resumes it from setImmediate, so timers and I/O
 * run between steps, and stops it when its AbortSignal fires (after the current step, which it
 * checkpoints when there is a checkpoint directory; it then rejects with ABORTED).
 *
 * A run and its files: a run has an id (a UUID, kept by a resumed run) in its checkpoints and log.
 * A new run refuses a checkpoint directory that holds checkpoints and a log file that holds
 * records (resolveStart in checkpoint.ts decides, for the CLI too); pruning deletes only the run's
 * own older checkpoints. Nothing is deleted or overwritten that the run did not write.
 *
 * Resuming (`resume: true`, 'auto', or a checkpoint path) loads the checkpoint and continues with
 * the same data and schedule: the losses equal those of an uninterrupted run, bit for bit (the
 * compiled step is deterministic; the data position and step are in the checkpoint). Options that
 * would reshape the learning-rate schedule mid-run (another steps, lr, warmup or minLr) are refused
 * unless `extend: true`, which keeps the checkpoint's schedule (past its end, its minLr).
 *
 * A Trainer trains once: the step's executable (the 'start' event's) is disposed when fit returns,
 * after FitResult.weights has copied the parameters out, and a second fit on the same Trainer is
 * refused (it would start again from the initial weights); make a new Trainer and resume from the
 * checkpoints to train on. A fit refused before training (a bad option, a directory that holds
 * another run) does not use the Trainer up.
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
import { randomUUID } from 'node:crypto';
import { freemem } from 'node:os';
import { memGetInfo, registerCudaBackends, type Communicator } from '@deepwell/kernels-native';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeepwellError, describe, getBackend } from '@deepwell/core';
import { autocast, capture, compile, dataParallel, dryrun, numel, trainingStep, type DryrunReport, type Executable, type Graph, type HostSplit, type ZeroLayout } from '@deepwell/ir';
import { GPT, Generator as TextGenerator } from '@deepwell/nn';
import { FallbackController, PrecisionPolicy, type FallbackEvent } from '@deepwell/precision';
import { checkpointPath, loadCheckpoint, pruneCheckpoints, readMetadata, resolveStart, saveCheckpoint, type CheckpointTarget } from './checkpoint.js';
import { ncclShardGather, zeroCheckpointView, zeroLayoutOf, type ShardGather } from './distributed/zero.js';
import type { LoaderState } from './loader.js';
import { JsonlLog, LossHistory, Progress, trusted } from './metrics.js';
import { takeCompiledStep, type CompiledStep, type Engine } from './engine.js';
import { checkDevice, checkFitOptions, checkTrainerOptions, type FitAsyncOptions, type FitOptions, type FitResult, type FromEngineOptions, type StepEvent, type TrainerDevice, type TrainerEvents, type TrainerOptions } from './options.js';
import { lossCurveSvg } from './plot.js';
import { asScheduleRecord, describeSchedule, scheduleDifferences, scheduledLr, scheduleOf, uncheckedSchedule, warmupCosine, type Schedule, type ScheduleRecord } from './schedule.js';

export type { FitAsyncOptions, FitOptions, FitResult, FromEngineOptions, StepEvent, TrainerDevice, TrainerEvents, TrainerOptions } from './options.js';

function firstGpu(): TrainerDevice | null {
  try {
    return (registerCudaBackends()[0] as TrainerDevice | undefined) ?? null;
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

/** Trainer.fromEngine's offer of the engine's compiled step, to the Trainer it is constructing. */
let offeredStep: CompiledStep | null = null;

const sameGraph = (a: Graph, b: Graph) => a === b || JSON.stringify(a.toJSON()) === JSON.stringify(b.toJSON());

const AUTO_SNAPSHOT_EVERY = 25;
const SNAPSHOT_SHARE = 0.02;
/** dispose()'s note for the step and evaluation executables: a later use's error says it. */
const DISPOSED_AT_END = 'when fit() returned (the Trainer disposes its executables when fit or fitAsync ends; FitResult.weights holds the trained parameters)';

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

const fmtLr = (x: number) => x.toExponential(2);

export class Trainer {
  /** The device it trains on: options.device, or the first usable GPU, else 'cpu'. */
  readonly device: TrainerDevice;
  /** Activations' precision: options.precision, or bf16 on a GPU and f32 on the CPU. */
  readonly precision: 'bf16' | 'f32';
  /** The learning rate by step from the options (a fit resumed with extend uses the checkpoint's instead). */
  readonly schedule: Schedule;
  /** The training step's graph (forward, backward, AdamW; with `distributed`, the all-reduces between). */
  readonly step: Graph;
  /** This process's rank in a distributed run (options.distributed), else 0. Rank 0 writes checkpoints and logs. */
  readonly rank: number;
  /** Ranks in the run (1 without options.distributed). */
  readonly worldSize: number;
  /** dryrun's report for the training step. */
  readonly report: DryrunReport;
  readonly #options: TrainerOptions;
  readonly #listeners = new Map<keyof TrainerEvents, Listener<never>[]>();
  readonly #forward: Graph;
  /** The schedule as a checkpoint records it. */
  readonly #scheduleRecord: ScheduleRecord;
  /** Whether a fit has started training (a Trainer trains once). */
  #used = false;
  /** The engine's compiled step (Trainer.fromEngine), when it is this Trainer's step exactly: the fit's first executable. */
  #adopted: CompiledStep | null = null;
  /** ZeRO-1's layout (distributed.zero), else null. */
  readonly #zero: ZeroLayout | null;
  readonly #comm: Communicator | null;

  constructor(options: TrainerOptions) {
    checkTrainerOptions(options);
    this.#options = options;
    const comm = options.distributed?.communicator;
    this.device = checkDevice(options.device, () => (comm ? `cuda:${comm.device}` : (firstGpu() ?? 'cpu')));
    this.rank = comm?.rank ?? 0;
    this.worldSize = comm?.worldSize ?? 1;
    this.precision = options.precision ?? (this.device === 'cpu' ? 'f32' : 'bf16');
    const o = options.optimizer ?? {};
    const lr = o.lr ?? 6e-4;
    const sch = options.schedule;
    if (typeof sch === 'function') {
      this.schedule = sch;
      this.#scheduleRecord = { kind: 'custom' };
    } else {
      const shape = { lr, total: options.steps, warmup: sch?.warmup ?? Math.ceil(options.steps / 10), minLr: sch?.minLr ?? lr / 10 };
      this.schedule = warmupCosine(shape);
      this.#scheduleRecord = { kind: 'warmupCosine', ...shape };
    }

    const { batchSize: B, seqLen: T } = options.train;
    const captured = capture(options.model, { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
    if (captured.outputs.loss === undefined) throw new DeepwellError('INVALID_ARGUMENT', `Expected the model's forward to return a 'loss' but it returned ${Object.keys(captured.outputs).join(', ') || 'nothing'}`);
    // Only the loss leaves the device each step (a GPT's logits would be B·T·V values).
    for (const name of Object.keys(captured.outputs)) if (name !== 'loss') delete captured.outputs[name];
    this.#forward = this.precision === 'bf16' ? autocast(captured) : captured;
    const step = trainingStep(this.#forward, {
      optimizer: { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay },
      clipGradNorm: options.clipGradNorm,
      accumulate: options.accumulate,
    });
    // Data parallelism: the gradients and the loss averaged with the other ranks inside the step;
    // with zero, ZeRO-1 (each rank's AdamW moments of its shard only; checkpoints hold them whole).
    const d = options.distributed;
    this.#zero = d?.zero === true ? zeroLayoutOf(step, this.worldSize) : null;
    this.#comm = comm ?? null;
    this.step = d
      ? dataParallel(step, { worldSize: this.worldSize, ...(comm ? { comm: comm.handle } : {}), ...(d.bucketBytes !== undefined ? { bucketBytes: d.bucketBytes } : {}), ...(this.#zero ? { zero: { rank: this.rank } } : {}) })
      : step;
    this.report = dryrun(this.step, { device: this.device, precision: options.policy?.clone() });
    // Trainer.fromEngine's offer: kept when it is this step compiled as fit would (the same graph,
    // device and seed; the engine's policy), else freed before the memory check.
    const offered = offeredStep;
    offeredStep = null;
    if (offered) {
      if (offered.device === this.device && offered.seed === (options.seed ?? 1) && sameGraph(offered.step, this.step)) this.#adopted = offered;
      else offered.exe.dispose();
    }
    // Refuse what cannot fit before anything is allocated (an eval executable adds the forward's share);
    // an adopted step is allocated already.
    const free = this.#adopted ? null : freeBytes(this.device);
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
   * batch shape must be the engine's), the rest as TrainerOptions. The step the engine compiled is
   * handed to the Trainer, which trains it instead of compiling the same step again, when nothing
   * has run it (engine.executable was not asked for) and the Trainer's step is the same graph with
   * the same seed; otherwise the engine's executable is released and fit() compiles its own. Either
   * way the engine compiles again on demand. At the end of each fit the engine's precisionPolicy
   * records the run's fallbacks and final per-layer plan.
   */
  static fromEngine(engine: Engine, options: FromEngineOptions): Trainer {
    if (!options || typeof options !== 'object' || !options.data?.train) throw new DeepwellError('INVALID_ARGUMENT', `Expected { data: { train, val? }, steps, … } for Trainer.fromEngine but received ${describe(options)}`);
    for (const key of ['model', 'train', 'val', 'device', 'precision', 'policy', 'clipGradNorm'] as const) {
      if ((options as Record<string, unknown>)[key] !== undefined) {
        throw new DeepwellError('INVALID_ARGUMENT', `Expected no ${key} for Trainer.fromEngine (${key === 'train' || key === 'val' ? 'the loaders go in data' : "the engine's is used"}) but received ${describe((options as Record<string, unknown>)[key])}`);
      }
    }
    const { data, optimizer, ...rest } = options;
    for (const [name, loader] of Object.entries(data)) {
      if (loader && (loader.batchSize !== engine.batchSize || loader.seqLen !== engine.seqLen)) {
        throw new DeepwellError('SHAPE_MISMATCH', `Expected data.${name}'s batch shape [${engine.batchSize}, ${engine.seqLen}] (the engine's) but received [${loader.batchSize}, ${loader.seqLen}]`);
      }
    }
    offeredStep = takeCompiledStep(engine);
    let t: Trainer;
    try {
      t = new Trainer({
      ...rest,
      model: engine.model,
      train: data.train,
      ...(data.val ? { val: data.val } : {}),
      device: engine.device as TrainerDevice,
      precision: engine.activations,
      optimizer: { ...engine.optimizer, ...optimizer },
      ...(engine.clipGradNorm !== undefined ? { clipGradNorm: engine.clipGradNorm } : {}),
      ...(engine.policyCopy() ? { policy: engine.policyCopy()! } : {}),
      seed: rest.seed ?? engine.seed,
      });
    } finally {
      // Not taken (the constructor refused the options first): freed, as release() would have.
      offeredStep?.exe.dispose();
      offeredStep = null;
    }
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
   * Train to step options.steps: from step 1 (a new run), or after a checkpoint (`resume`: true,
   * 'auto' or a path; see FitOptions). Synchronous: nothing else on the event loop runs until it
   * returns (fitAsync yields between steps). A Trainer fits once; a second call throws DISPOSED.
   */
  fit(options: FitOptions = {}): FitResult {
    const run = this.#run(checkFitOptions(options, 'fit'));
    for (;;) {
      const r = run.next(false);
      if (r.done) return r.value;
    }
  }

  /**
   * fit's loop, yielding to the event loop (setImmediate) before every step, so timers, I/O and
   * other work run while it trains; the losses are fit's, bit for bit. `signal` aborts it: the run
   * stops after the current step, writes that step's checkpoint when checkpoint.dir is set, and
   * the promise rejects with a DeepwellError of code 'ABORTED' (details: { step, checkpoint }).
   * An already aborted signal rejects before anything runs (the Trainer is not used up).
   */
  async fitAsync(options: FitAsyncOptions = {}): Promise<FitResult> {
    const { signal, ...rest } = checkFitOptions(options, 'fitAsync');
    const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
    await tick();
    if (signal?.aborted) throw new DeepwellError('ABORTED', 'fitAsync was aborted before training (the signal was already aborted); nothing ran', { cause: signal.reason, details: { step: null, checkpoint: null } });
    const run = this.#run(rest, signal);
    for (let r = run.next(false); ; r = run.next(signal?.aborted === true)) {
      if (r.done) return r.value;
      await tick();
    }
  }

  /** The learning rate each way at `step`, for the schedule-mismatch error. */
  #lrs(step: number, saved: ScheduleRecord): string {
    const old = scheduleOf(saved);
    return old ? `; at step ${step} the lr would be ${fmtLr(this.schedule(step))} instead of ${fmtLr(old(step))}` : '';
  }

  /**
   * The schedule a resumed run follows: this Trainer's when it matches the checkpoint's record
   * (or there is none), the checkpoint's with `extend`, otherwise an error saying what differs.
   * Returns the schedule, its record, and what extend means here (null without extend's effect).
   */
  #resumedSchedule(from: string, extend: boolean): { schedule: Schedule; record: ScheduleRecord; note: string | null } {
    const md = readMetadata(from);
    let saved: ScheduleRecord | null = null;
    try {
      saved = md?.schedule ? asScheduleRecord(JSON.parse(md.schedule)) : null;
    } catch {
      saved = null;
    }
    const mine = { schedule: this.schedule, record: this.#scheduleRecord, note: null };
    if (!saved) return mine; // a checkpoint from before schedules were recorded: nothing to compare
    const diff = scheduleDifferences(saved, this.#scheduleRecord);
    if (!diff.length) return mine;
    const next = Number(md?.step) + 1;
    if (!extend) {
      throw new DeepwellError(
        'INVALID_ARGUMENT',
        `Expected this run's learning-rate schedule to be the checkpoint's (${from}: ${describeSchedule(saved)}) on resume but it differs: ${diff.join(', ')}${this.#lrs(next, saved)}. Resume with the original options, or pass extend: true with resume to keep the checkpoint's schedule (past its end it stays at its minLr)`,
        { details: { differences: diff } },
      );
    }
    const fn = scheduleOf(saved);
    if (!fn) throw new DeepwellError('INVALID_ARGUMENT', `Expected the checkpoint's schedule function as schedule to extend ${from} (its schedule was a function, which a checkpoint cannot hold) but received ${describeSchedule(this.#scheduleRecord)}`);
    const o = this.#options;
    const past = saved.kind === 'warmupCosine' && saved.total < o.steps ? `; steps ${Math.max(next, saved.total + 1)}–${o.steps} run at its minLr ${fmtLr(saved.minLr)}` : saved.kind === 'warmupCosine' && saved.total > o.steps ? `; the run stops at step ${o.steps}, before its end at step ${saved.total}` : '';
    return { schedule: fn, record: saved, note: `extend: keeping the checkpoint's schedule (${describeSchedule(saved)}) instead of this run's (${diff.join(', ')})${past}` };
  }

  /**
   * The training loop, as a generator: it yields after every step (the step's number) and is
   * resumed with `stop` — true to end the run there (fitAsync's abort: the step is checkpointed
   * when there is a checkpoint directory, then ABORTED is thrown). fit and fitAsync both drive it.
   */
  /**
   * What checkpoints read and write of `exe`: itself, or with ZeRO-1 its view with whole moments
   * (distributed/zero.ts). For a save (`gather`), every rank's moments are gathered: a collective.
   */
  #checkpointTarget(exe: Executable, gather: boolean): CheckpointTarget {
    if (!this.#zero) return exe;
    const all: ShardGather | null = !gather ? null : this.#comm ? ncclShardGather(this.#comm, this.#comm.device) : (shard) => shard.slice();
    return zeroCheckpointView(exe, this.#zero, this.rank, all);
  }

  *#run(options: FitOptions, signal?: AbortSignal): Generator<number, FitResult, boolean> {
    const o = this.#options;
    if (this.#used) {
      throw new DeepwellError('DISPOSED', 'Expected a Trainer that has not trained yet but fit() already ran on this Trainer: a Trainer trains once (a second fit would start again from the initial weights). FitResult.weights holds the trained parameters; to train on, make a new Trainer and fit({ resume: true }) from the checkpoints');
    }
    // Everything that can refuse the run is decided before anything is written or compiled.
    const begin = resolveStart(o.checkpoint?.dir ?? null, options.resume ?? false);
    const { schedule, record: scheduleRecord, note: extendNote } = begin.from ? this.#resumedSchedule(begin.from, options.extend === true) : { schedule: this.schedule, record: this.#scheduleRecord, note: null };
    const run = begin.run ?? randomUUID();
    // Rank 0 alone writes the log, the progress display, checkpoints and the loss curve, and evaluates.
    const lead = this.rank === 0;
    const log = o.log?.jsonl && lead ? trusted(new JsonlLog(o.log.jsonl, { run, resume: begin.from !== null })) : null;
    this.#used = true;
    const adopted = this.#adopted;
    this.#adopted = null;
    // Newer checkpoints that failed their check: said (a warning and the log), then replaced when the run reaches their step.
    try {
      for (const k of begin.skipped) {
        process.emitWarning(`checkpoint ${k.path} (step ${k.step}) fails its check, so the run resumes from ${begin.from}: ${k.reason}`, { type: 'DeepwellWarning', code: 'DEEPWELL_CHECKPOINT_DAMAGED' });
        log?.write({ event: 'warning', kind: 'damaged checkpoint', step: k.step, path: k.path, reason: k.reason, resumedFrom: begin.from });
      }
    } catch (e) {
      adopted?.exe.dispose();
      throw e;
    }
    const damaged = new Set(begin.skipped.map((k) => k.path));

    const { batchSize: B, seqLen: T } = o.train;
    const seed = o.seed ?? 1;
    // The run's own copy of the policy: fallbacks add rules to it.
    const policy = o.policy?.clone();
    const controller = policy ? new FallbackController(policy, o.fallback || undefined) : null;
    const autoFallback = controller !== null && o.fallback !== false;
    const compileStep = () => compile(this.step, { device: this.device, seed, precision: policy });
    // The engine's step (Trainer.fromEngine) is this compile's result already: trained as it is, its
    // policy's plan and numerics outputs carried over to this run's copy of the policy.
    let exe = adopted ? adopted.exe : compileStep();
    if (adopted && policy) {
      policy.lastPlan = adopted.lastPlan ? [...adopted.lastPlan] : null;
      policy.lastNumerics = [...adopted.lastNumerics];
    }
    let evalExe: Executable | null = null;
    /** The held-out set: the first evaluation's evalBatches batches of val, used by every evaluation. */
    let heldOut: { tokens: Int32Array; targets: Int32Array }[] | null = null;
    const progress = o.log?.progress === false || !lead ? null : trusted(new Progress(process.stderr, o.log?.every ?? 10));
    const losses = new LossHistory();
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
      // In the log: when a snapshot is taken depends on measured times, so it is the one thing a
      // policy's run does at steps that differ from run to run.
      log?.write({ event: 'snapshot', step, ms: snapshotMs });
      return { step, loader: o.train.state, values };
    };
    const snapshotDue = (s: number): boolean => {
      const every = controller!.options.snapshotEvery;
      if (every !== 'auto') return s % every === 0;
      return s - snapshot!.step >= Math.max(AUTO_SNAPSHOT_EVERY, Math.ceil(snapshotMs / (SNAPSHOT_SHARE * Math.max(stepMsMean, 1e-3))));
    };
    const saveAt = (s: number, target: CheckpointTarget = exe): string => {
      const c = o.checkpoint!;
      const path = checkpointPath(c.dir, s, run, damaged);
      saveCheckpoint(path, target, { step: s, loader: o.train.state, seed, config: o.config ?? null, run, schedule: scheduleRecord, lossHistory: losses.series(), extra: { evals, fallbacks: controller?.history ?? [] } });
      pruneCheckpoints(c.dir, c.keep ?? 3, run, path);
      lastCheckpoint = path;
      lastCheckpointStep = s;
      log?.write({ event: 'checkpoint', step: s, path });
      this.#emit('checkpoint', { step: s, path });
      return path;
    };
    try {
      if (begin.from) {
        const meta = loadCheckpoint(begin.from, this.#checkpointTarget(exe, false));
        // Rank 0 wrote the checkpoint at its own place in the data; rank r is r samples further on.
        const at = meta.loader as LoaderState;
        o.train.restore(this.rank === 0 ? at : { ...at, sample: at.sample + this.rank });
        const extra = meta.extra as { evals?: { step: number; loss: number }[]; fallbacks?: FallbackEvent[] } | null;
        losses.pushSeries(meta.lossHistory!);
        evals.push(...(extra?.evals ?? []));
        start = meta.step + 1;
        lastCheckpoint = begin.from;
        lastCheckpointStep = meta.step;
        if (controller && extra?.fallbacks?.length) {
          // Keep the run's demotions: recompile with them and carry the loaded values over.
          controller.replay(extra.fallbacks);
          const next = compileStep();
          for (const name of stateNames()) next.set(name, exe.get(name));
          exe.dispose('when the Trainer recompiled the resumed step with the checkpoint\'s precision fallbacks');
          exe = next;
          progress?.line(`kept ${extra.fallbacks.length} precision fallback(s): ${extra.fallbacks.map((e) => `${e.layer} ${e.from} → ${e.to}`).join(', ')}`);
        }
        progress?.line(`resumed from ${begin.from} at step ${meta.step}`);
        log?.write({ event: 'resume', run, step: meta.step, path: begin.from });
        if (extendNote) {
          progress?.line(extendNote);
          log?.write({ event: 'extend', step: meta.step, note: extendNote, schedule: scheduleRecord });
        }
      }
      log?.write({ event: 'start', run, device: this.device, precision: this.precision, recipe: policy?.options.recipe ?? null, batch: [B, T], steps: o.steps, parameters: this.report.parameters, flopsPerStep: this.report.flopsPerStep, totalBytes: this.report.totalBytes });
      this.#emit('start', { step: start, executable: exe });
      if (autoFallback) snapshot = takeSnapshot(start - 1);
      const peak = this.device === 'cpu' ? null : this.report.estimate.peakTflops;
      const t0 = performance.now();
      let tokensDone = 0;
      let stepsHere = 0; // steps run by this process (the ETA's count; a resumed run's start late)
      // Per step, the schedule, the log and the progress line (trusted above) without their argument
      // checks (the loop's steps, records and lines are well formed by construction); scheduledLr still checks the rate.
      const lrAt = uncheckedSchedule(schedule);
      for (let s = start; s <= o.steps; s++) {
        const batch = this.#batch();
        const lr = scheduledLr(lrAt, s);
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
            exe.dispose("after a precision fallback (the 'fallback' event carries the executable training continues with)");
            exe = compileStep();
            evalExe?.dispose('after a precision fallback');
            evalExe = null;
            let restoredTo: number;
            let source: 'checkpoint' | 'snapshot';
            if (lastCheckpoint && lastCheckpointStep >= snapshot!.step) {
              const meta = loadCheckpoint(lastCheckpoint, this.#checkpointTarget(exe, false));
              o.train.restore(meta.loader as LoaderState);
              (restoredTo = meta.step), (source = 'checkpoint');
            } else {
              for (const [name, v] of snapshot!.values) exe.set(name, v);
              o.train.restore(snapshot!.loader);
              (restoredTo = snapshot!.step), (source = 'snapshot');
            }
            losses.truncateAfter(restoredTo);
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
        // Every rank's tokens: the job's throughput (each rank trains its own B × T a step).
        const tokens = B * T * (o.accumulate ?? 1) * this.worldSize;
        tokensDone += tokens;
        stepsHere++;
        const elapsed = (performance.now() - t0) / 1000;
        const tokensPerSecond = tokens / (ms / 1000);
        const mfu = peak ? this.report.flopsPerStep / (ms / 1000) / (peak * 1e12) : null;
        const device = this.device === 'cpu' ? {} : { hostMs: (exe as { lastHostMs?: number }).lastHostMs, hostSplit: (exe as { lastHostSplit?: HostSplit }).lastHostSplit, inUseBytes: getBackend(this.device).memoryStats().inUse };
        const ev: StepEvent = { step: s, loss, ...(gradNorm !== undefined ? { gradNorm } : {}), lr, ms, tokensPerSecond, mfu, memoryBytes: this.report.totalBytes, ...device };
        losses.push(s, loss);
        log?.write({ event: 'step', ...ev });
        progress?.step({ step: s, total: o.steps, done: stepsHere, loss, lr, tokensPerSecond, mfu, elapsed });
        this.#emit('step', ev);

        if (lead && o.val && o.evalEvery && (s % o.evalEvery === 0 || s === o.steps)) {
          evalExe ??= compile(this.#forward, { device: this.device, seed, precision: policy?.clone({ numerics: false }) });
          for (const name of evalExe.parameterNames()) evalExe.set(name, exe.get(name));
          heldOut ??= Array.from({ length: o.evalBatches ?? 10 }, () => o.val!.next());
          let sum = 0;
          for (const b of heldOut) sum += evalExe.run(b).loss![0]!;
          const e = { step: s, loss: sum / heldOut.length };
          evals.push(e);
          log?.write({ event: 'eval', ...e });
          progress?.line(`eval at step ${s}: loss ${e.loss.toFixed(4)}`);
          this.#emit('eval', e);
          if (o.sample) {
            const { prompt, decode, maxTokens = 32, ...rest } = o.sample;
            const g = new TextGenerator(o.model as GPT, new Map(exe.parameterNames().map((n) => [n, exe.get(n)] as const)), { device: this.device, precision: this.precision });
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
          // With ZeRO-1 every rank takes part in gathering the moments; rank 0 writes.
          const target = this.#checkpointTarget(exe, true);
          if (lead) saveAt(s, target);
        }
        if (yield s) {
          // Aborted (fitAsync): this step is done; keep it, then stop.
          // (An abort is this process's alone: ZeRO-1's gather needs every rank, so across several
          // ranks only a checkpoint already written at this step is kept.)
          const canSave = !this.#zero || this.worldSize === 1 || lastCheckpointStep === s;
          const path = o.checkpoint && lead && canSave ? (lastCheckpointStep === s ? lastCheckpoint : saveAt(s, this.#checkpointTarget(exe, true))) : null;
          log?.write({ event: 'abort', step: s, checkpoint: path });
          progress?.line(`aborted after step ${s}${path ? `; checkpoint ${path}` : ''}`);
          throw new DeepwellError(
            'ABORTED',
            `fitAsync was aborted after step ${s} of ${o.steps} ${path ? `(${path} holds that step: fit({ resume: true }) with a new Trainer continues from it)` : '(no checkpoint directory: nothing was saved)'}`,
            { cause: signal?.reason, details: { step: s, checkpoint: path } },
          );
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      const ran = o.steps - start + 1;
      const tokensPerSecond = ran > 0 ? tokensDone / seconds : 0;
      const mfu = peak && ran > 0 ? (this.report.flopsPerStep * ran) / seconds / (peak * 1e12) : null;
      let lossCurve: string | null = null;
      const svg = lead ? (o.log?.svg ?? (o.checkpoint ? join(o.checkpoint.dir, 'loss.svg') : null)) : null;
      if (svg) {
        mkdirSync(join(svg, '..'), { recursive: true });
        const series = [{ name: 'train loss', points: losses.points(), color: '#1f77b4' }];
        if (evals.length) series.push({ name: 'eval loss', points: evals.map((l) => [l.step, l.loss] as const), color: '#d62728' });
        writeFileSync(svg, lossCurveSvg(series, { title: `loss (${this.device}, ${this.precision}, batch ${B}×${T})` }));
        lossCurve = svg;
      }
      const result: FitResult = {
        run,
        steps: o.steps,
        losses: losses.list(),
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
      exe.dispose(DISPOSED_AT_END);
      evalExe?.dispose(DISPOSED_AT_END);
    }
  }
}
