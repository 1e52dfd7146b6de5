/**
 * The Trainer's options, fit's options, and what fit returns and emits: every field with its
 * default. `checkTrainerOptions` checks them all before anything is captured: an unknown key, at
 * the top or inside optimizer, schedule, checkpoint, log or sample, is an error naming it with a
 * "did you mean" (a near key, or the key another trainer names so: learningRate → optimizer.lr);
 * options that would silently do nothing alone (val without evalEvery, evalEvery without val) are
 * refused; device names are checked against 'cpu' and the GPUs that are here.
 */
import { DeepwellError, checkKeys as coreCheckKeys, checkNumber, describe, parseDevice } from '@deepwell/core';
import { type Capturable, type DryrunReport, type Executable, type HostSplit, type KernelSummaryRow, type NodeProfile, type Phase } from '@deepwell/ir';
import { Communicator, cudaStatus } from '@deepwell/kernels-native';
import { GPT, checkPrompt, checkSampleOptions } from '@deepwell/nn';
import { PrecisionPolicy, checkFallbackOptions, type FallbackEvent, type FallbackOptions, type LayerDecision, type LayerNumerics } from '@deepwell/precision';
import type { TokenLoader } from './loader.js';
import type { Schedule } from './schedule.js';

/** A device name: 'cpu', or 'cuda:N' for GPU N. */
export type TrainerDevice = 'cpu' | `cuda:${number}`;

/** AdamW's constants and the peak learning rate. */
export interface OptimizerOptions {
  /** The peak learning rate (the default schedule warms up to it, then decays to lr / 10). Default 6e-4. Not used when `schedule` is a function. */
  lr?: number;
  /** AdamW's decay of the first moment (β1). Default 0.9. */
  beta1?: number;
  /** AdamW's decay of the second moment (β2). Default 0.95. */
  beta2?: number;
  /** Added to the root of the second moment (ε). Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, on matrices only (parameters of rank ≥ 2; biases, norms and 1-D weights get none). Default 0.1. */
  weightDecay?: number;
}

/** The default schedule's shape (warmupCosine over `steps`). */
export interface ScheduleOptions {
  /** Steps of linear warm-up from lr / warmup to lr. Default ceil(steps / 10). */
  warmup?: number;
  /** The learning rate the cosine reaches at the last step, and keeps after it. Default lr / 10. */
  minLr?: number;
}

export interface CheckpointOptions {
  /**
   * The run's folder: `step-00000100.safetensors` files (atomic; parameters, AdamW moments, data
   * position, the run's id and schedule) and, by default, loss.svg. A new run refuses a folder that
   * holds checkpoints (resume it, or use another folder); nothing is ever deleted but this run's own
   * older checkpoints (see keep).
   */
  dir: string;
  /** Write a checkpoint every this many steps, and at the last step (and when fitAsync is aborted). */
  every: number;
  /** Keep this run's newest `keep` checkpoints, deleting its older ones; other files are never touched. Default 3. */
  keep?: number;
}

export interface LogOptions {
  /**
   * A JSONL log (one JSON object per line: start, step, eval, sample, checkpoint, fallback, end).
   * Default: none. A new run refuses a file that already holds a log (another run's: nothing is
   * appended or overwritten); a resumed run appends to its own run's log.
   */
  jsonl?: string;
  /** The progress display on stderr: a bar with ETA on a TTY, plain lines otherwise. Default true. */
  progress?: boolean;
  /** On a non-TTY, print a progress line every this many steps (and at the first and last). Default 10. */
  every?: number;
  /** Where fit writes the loss curve (SVG, train and eval). Default: loss.svg in checkpoint.dir; none without a checkpoint directory. */
  svg?: string;
}

/** A continuation printed at each evaluation, as nanoGPT does (nn's Generator on the current weights). */
export interface TrainerSampleOptions {
  /** The token ids to continue (at least one). */
  prompt: number[];
  /** Tokens to add. Default 32. */
  maxTokens?: number;
  /** Softmax temperature; 0 takes the most likely token. Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens. Default: all. */
  topK?: number;
  /** Keep the most likely tokens whose probabilities sum to at least p. Default 1. */
  topP?: number;
  /** The sampling generator's seed (the same at every evaluation). Default 0. */
  seed?: number;
  /** Sample only ids below this (a padded vocabulary's real size). Default: the model's vocabSize. */
  vocab?: number;
  /** Stop after this token (included). Default: none. */
  stop?: number;
  /** Ids to text for the log and the display. Default: the ids joined by spaces. */
  decode?: (ids: number[]) => string;
}

export interface TrainerOptions {
  /** A model whose forward({ tokens, targets }) returns at least { loss } (e.g. nn's GPT). Required. */
  model: Capturable;
  /** The training batches (their batchSize and seqLen fix the compiled step's shape). Required. */
  train: TokenLoader;
  /**
   * Held-out data for evaluation (same batch shape as train); needs evalEvery. The first
   * evaluation reads evalBatches batches from it and keeps them: every evaluation of the run
   * (and of a resumed run, with a loader made the same way) measures those same batches, so
   * evaluations compare. Default: no evaluation.
   */
  val?: TokenLoader;
  /** 'cpu' or 'cuda:N'. Default: the first GPU when one is usable, else the CPU. */
  device?: TrainerDevice;
  /** Activations in bf16 with f32 master weights, or all f32. Default: bf16 on a GPU, f32 on the CPU. */
  precision?: 'bf16' | 'f32';
  /** The learning rate and AdamW's constants. Default: lr 6e-4, beta1 0.9, beta2 0.95, eps 1e-8, weightDecay 0.1. */
  optimizer?: OptimizerOptions;
  /**
   * The learning rate by step: a function of the 1-based step, or the default warm-up + cosine's
   * shape. Default: warm-up over ceil(steps / 10) steps to optimizer.lr, cosine to lr / 10 at `steps`.
   * A function's value at each step must be a finite number >= 0: another is refused at that step.
   * A checkpoint records it; resuming with a different one is refused unless fit's extend.
   */
  schedule?: Schedule | ScheduleOptions;
  /** Steps to train (the last step's number; a resumed run continues to it), an integer in [1, 2^31 - 1]. Required. */
  steps: number;
  /** Clip gradients to this global norm, a finite number > 0 (the step then reports gradNorm). Default: no clipping. */
  clipGradNorm?: number;
  /** Micro-batches per step (gradient accumulation): each step takes this many loader batches, in [1, 65536]. Default 1. */
  accumulate?: number;
  /** Evaluate on val every this many steps and at the last step; needs val. Default: no evaluation. */
  evalEvery?: number;
  /** Batches of val in the held-out set (read once, at the first evaluation), in [1, 100000]; needs val. Default 10. */
  evalBatches?: number;
  /** Checkpoints: where, how often, how many to keep. Default: none. */
  checkpoint?: CheckpointOptions;
  /** The seed of the parameters' initialisation, an integer in [0, 2^32). Default 1. */
  seed?: number;
  /** The JSONL log, the progress display and the loss curve. Default: progress on stderr, no log, loss.svg in checkpoint.dir. */
  log?: LogOptions;
  /** Anything JSON the checkpoints should carry as the run's config (deepwell train stores { model, tokenizer }); checked to serialise. Default null. */
  config?: unknown;
  /** On a GPU: run this step (in [1, steps]) through Executable.profile (per-node device times; the same numbers). Default: none. */
  profileStep?: number;
  /** A per-layer precision policy (compile's precision pass); the trainer works on a copy. Default: none. */
  policy?: PrecisionPolicy;
  /** Auto-fallback with a policy: FallbackOptions, or false to turn it off. Default: on (FallbackOptions' defaults) with a policy. */
  fallback?: FallbackOptions | false;
  /** At each evaluation, continue `prompt` from the current weights and print it (the model must be a GPT; needs val and evalEvery). Default: none. */
  sample?: TrainerSampleOptions;
  /**
   * Data parallelism: this process is one rank of a job (initDistributed() makes the communicator).
   * The step averages its gradients and loss with the other ranks (ir's dataParallel: bucketed NCCL
   * all-reduces inside the step's CUDA graph); the train loader must be this rank's shard (its rank
   * and worldSize the communicator's); the device defaults to the communicator's. Rank 0 alone
   * writes checkpoints, the log, the progress display and evaluates; every rank resumes from the same
   * checkpoint, each at its own place in the data. Default: one process.
   */
  distributed?: DistributedTrainingOptions;
}

export interface DistributedTrainingOptions {
  /** This rank's NCCL communicator (kernels-native's Communicator; initDistributed() in this package). Without one: a world of one, no NCCL. */
  communicator?: Communicator;
  /** About how many bytes of gradients one all-reduce moves (ir's dataParallel; default 25 MiB). */
  bucketBytes?: number;
  /**
   * ZeRO-1 (default false): each rank keeps the AdamW moments of its shard of the parameters only
   * (ir's dataParallel `zero`); checkpoints still hold them whole, so a run resumes on any number of
   * GPUs, with or without it.
   */
  zero?: boolean;
}

/** Trainer.fromEngine's options: the loaders as `data`, the rest as TrainerOptions less what the engine decided. */
export type FromEngineOptions = Omit<TrainerOptions, 'model' | 'train' | 'val' | 'device' | 'precision' | 'policy' | 'clipGradNorm' | 'optimizer'> & {
  /** The loaders (their batch shape must be the engine's). */
  data: { train: TokenLoader; val?: TokenLoader };
  /** The learning rate (default 6e-4) and any AdamW constant to change from the engine's. */
  optimizer?: OptimizerOptions;
};

export interface FitOptions {
  /**
   * Where the run starts. false (the default): a new run from step 1, refused when
   * checkpoint.dir already holds checkpoints (nothing is deleted). true: the newest checkpoint of
   * checkpoint.dir (which must hold some, of one run). 'auto': as true when checkpoint.dir holds
   * checkpoints, else a new run. A path: that checkpoint file (checkpoint.dir, when set, must hold
   * no other run's checkpoints). A resumed run continues the checkpoint's run: the same run id, data
   * position, losses and schedule.
   */
  resume?: boolean | 'auto' | string;
  /**
   * With resume, when this Trainer's schedule differs from the one the checkpoint records (more
   * steps, another lr, warmup or minLr): keep the checkpoint's schedule rather than refuse. Steps
   * past its end run at its minLr (warmupCosine is flat after its total). Default false.
   */
  extend?: boolean;
}

export interface FitAsyncOptions extends FitOptions {
  /**
   * Abort the run: it stops after the current step, writes that step's checkpoint when
   * checkpoint.dir is set, and fitAsync rejects with a DeepwellError of code 'ABORTED' whose
   * details are { step, checkpoint } (the path, or null). Resume from that checkpoint to go on.
   */
  signal?: AbortSignal;
}

export interface StepEvent {
  /** The step's number (1-based; after a resume, continuing the checkpoint's). */
  step: number;
  /** The step's training loss (the mean over its micro-batches). */
  loss: number;
  /** The global gradient norm before clipping (present with clipGradNorm). */
  gradNorm?: number;
  /** The learning rate of the step. */
  lr: number;
  /** Wall time of the step (the compiled step's run, the loss read back), in ms. */
  ms: number;
  /** Tokens of the step (batch × seqLen × accumulate) over its time. */
  tokensPerSecond: number;
  /** Model FLOPs utilisation (dryrun's FLOPs over the step time and the GPU's dense bf16 peak); null on the CPU. */
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
  /** Before the first step (after loading a checkpoint when resuming): the compiled step, disposed when fit returns. */
  start: { step: number; executable: Executable };
  /** After each step. */
  step: StepEvent;
  /** After each evaluation: the mean loss over the held-out batches. */
  eval: { step: number; loss: number };
  /** options.sample's continuation at an evaluation. */
  sample: { step: number; tokens: number[]; text: string };
  /** After each checkpoint is written. */
  checkpoint: { step: number; path: string };
  /**
   * A bad step was undone: layers demoted, weights, optimizer state and data position restored to
   * `restoredTo`, and a new executable compiled (the one training continues with).
   */
  fallback: { step: number; loss: number; cause: string; events: FallbackEvent[]; restoredTo: number; source: 'checkpoint' | 'snapshot'; executable: Executable };
  /** The result, before fit returns it. */
  end: FitResult;
}

export interface FitResult {
  /** The run's id (recorded in its checkpoints and log; a resumed run keeps it). */
  run: string;
  /** The last step (options.steps). */
  steps: number;
  /** Every step's loss, the checkpoint's record first when resumed. */
  losses: { step: number; loss: number }[];
  /** Every evaluation's loss, the checkpoint's record first when resumed. */
  evals: { step: number; loss: number }[];
  /** Tokens per second over this fit's steps (0 when it ran none). */
  tokensPerSecond: number;
  /** Model FLOPs utilisation over this fit's steps; null on the CPU. */
  mfu: number | null;
  /** The newest checkpoint's path (this fit's, or the one it resumed from), or null. */
  checkpoint: string | null;
  /** The loss curve's path, or null. */
  lossCurve: string | null;
  /** dryrun's report for the training step. */
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

const TRAINER_KEYS = ['model', 'train', 'val', 'device', 'precision', 'optimizer', 'schedule', 'steps', 'clipGradNorm', 'accumulate', 'evalEvery', 'evalBatches', 'checkpoint', 'seed', 'log', 'config', 'profileStep', 'policy', 'fallback', 'sample', 'distributed'];
const NESTED: Record<string, string[]> = {
  optimizer: ['lr', 'beta1', 'beta2', 'eps', 'weightDecay'],
  schedule: ['warmup', 'minLr'],
  checkpoint: ['dir', 'every', 'keep'],
  log: ['jsonl', 'progress', 'every', 'svg'],
  sample: ['prompt', 'maxTokens', 'temperature', 'topK', 'topP', 'seed', 'vocab', 'stop', 'decode'],
  distributed: ['communicator', 'bucketBytes', 'zero'],
};
/** Other trainers' names (nanoGPT, Hugging Face, PyTorch Lightning) for our keys, by where they appear. */
const ALIASES: Record<string, Record<string, string>> = {
  Trainer: {
    learningRate: 'optimizer.lr', learning_rate: 'optimizer.lr', lr: 'optimizer.lr', weightDecay: 'optimizer.weightDecay', weight_decay: 'optimizer.weightDecay',
    beta1: 'optimizer.beta1', beta2: 'optimizer.beta2', betas: 'optimizer.beta1 and optimizer.beta2', eps: 'optimizer.eps',
    warmup: 'schedule.warmup', warmupSteps: 'schedule.warmup', warmup_steps: 'schedule.warmup', warmup_iters: 'schedule.warmup', minLr: 'schedule.minLr', min_lr: 'schedule.minLr',
    maxSteps: 'steps', max_steps: 'steps', max_iters: 'steps', numSteps: 'steps', totalSteps: 'steps', iterations: 'steps',
    evalInterval: 'evalEvery', eval_interval: 'evalEvery', evalSteps: 'evalBatches', evalIters: 'evalBatches', eval_iters: 'evalBatches',
    gradClip: 'clipGradNorm', grad_clip: 'clipGradNorm', maxGradNorm: 'clipGradNorm', max_grad_norm: 'clipGradNorm',
    gradientAccumulationSteps: 'accumulate', gradient_accumulation_steps: 'accumulate', gradAccum: 'accumulate',
    checkpointDir: 'checkpoint.dir', outDir: 'checkpoint.dir', out_dir: 'checkpoint.dir', saveEvery: 'checkpoint.every', checkpointEvery: 'checkpoint.every',
    dtype: 'precision', data: 'train (and val)', trainLoader: 'train', valLoader: 'val', resume: "fit({ resume }) (resume is fit's option)", extend: "fit({ extend }) (extend is fit's option)",
  },
  optimizer: { learningRate: 'lr', learning_rate: 'lr', betas: 'beta1 and beta2', epsilon: 'eps', weight_decay: 'weightDecay' },
  schedule: { warmupSteps: 'warmup', warmup_steps: 'warmup', warmup_iters: 'warmup', min_lr: 'minLr', lr: 'optimizer.lr (the schedule peaks at it)', total: 'steps (the schedule ends at the last step)' },
  checkpoint: { path: 'dir', directory: 'dir', interval: 'every', keepLast: 'keep' },
  log: { path: 'jsonl', file: 'jsonl', interval: 'every', lossCurve: 'svg' },
  sample: { max_tokens: 'maxTokens', maxNewTokens: 'maxTokens', max_new_tokens: 'maxTokens', top_k: 'topK', top_p: 'topP', temp: 'temperature' },
  fit: { signal: "fitAsync's signal (fit runs synchronously; fitAsync can be aborted)" },
};

/** The keys of `obj` not in `known` are an error naming the first, with a suggestion. `what`: 'Trainer', 'optimizer', … */
export function checkKeys(obj: object, known: string[], what: string): void {
  coreCheckKeys(obj, known, what, { aliases: ALIASES[what] });
}

const plainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
function check(ok: boolean, expected: string, what: string, received: unknown): void {
  if (!ok) throw new DeepwellError('INVALID_ARGUMENT', `Expected ${expected} for ${what} but received ${describe(received)}`);
}
/** The most steps (and step counts: evalEvery, checkpoint.every, …) an option may say. */
const MAX_STEPS = 2 ** 31 - 1;
const positiveInt = (v: unknown, what: string, max = MAX_STEPS) => check(Number.isInteger(v) && (v as number) >= 1 && (v as number) <= max, max === MAX_STEPS ? 'a positive integer' : `an integer in [1, ${max}]`, what, v);
const optional = (v: unknown, test: () => void) => v !== undefined && test();
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
export const PRECISIONS = ['bf16', 'f32'] as const;
/** Micro-batches per step at most, and held-out batches at most. */
const MAX_ACCUMULATE = 65536;
const MAX_EVAL_BATCHES = 100_000;

/** A loader, from this copy of the trainer or another (ESM / CJS): next, restore, state and an integer batch shape. */
function checkLoader(l: unknown, what: string): void {
  const x = l as { next?: unknown; restore?: unknown; batchSize?: unknown; seqLen?: unknown } | null;
  const ok = typeof x === 'object' && x !== null && typeof x.next === 'function' && typeof x.restore === 'function' && Number.isInteger(x.batchSize) && (x.batchSize as number) >= 1 && Number.isInteger(x.seqLen) && (x.seqLen as number) >= 1;
  check(ok, 'a TokenLoader', what, l);
}

/**
 * sample's options, checked by nn's own check of generate's (checkPrompt, checkSampleOptions), before
 * any step runs (their first use is at the first evaluation); maxTokens defaults to 32 and is at
 * most 65536 here (each evaluation pays for it).
 */
function checkSample(s: TrainerSampleOptions, model: { vocabSize: number; blockSize: number }): void {
  const at = { vocabSize: model.vocabSize, blockSize: model.blockSize, prefix: 'sample.', maxTokens: MAX_SAMPLE_TOKENS };
  check(Array.isArray(s.prompt), 'a non-empty array of token ids', 'sample.prompt', s.prompt); // number[] here (generate takes typed arrays too)
  checkPrompt(s.prompt, at);
  const { prompt: _prompt, decode, ...sampling } = s;
  checkSampleOptions({ ...sampling, maxTokens: s.maxTokens === undefined ? 32 : s.maxTokens }, at);
  optional(decode, () => check(typeof decode === 'function', 'a function of the ids', 'sample.decode', decode));
}
/** The most tokens sample may add at each evaluation. */
const MAX_SAMPLE_TOKENS = 65536;

/** A PrecisionPolicy, from this copy of @deepwell/precision or another (ESM / CJS). */
export function isPolicy(p: unknown): p is PrecisionPolicy {
  if (p instanceof PrecisionPolicy) return true;
  const q = p as PrecisionPolicy | null;
  return typeof q === 'object' && q !== null && q.name === 'precision-policy' && typeof q.run === 'function' && typeof q.clone === 'function' && typeof q.addRule === 'function';
}

/**
 * The device to train on: options.device checked ('cpu', or 'cuda:N' for a GPU that is here), or
 * the default `fallback` (the first usable GPU, else the CPU).
 */
export function checkDevice(device: unknown, fallback: () => TrainerDevice): TrainerDevice {
  if (typeof fallback !== 'function') throw new DeepwellError('INVALID_ARGUMENT', `Expected a function giving the default device for checkDevice's fallback but received ${describe(fallback)}`);
  if (device === undefined) return fallback();
  const status = cudaStatus();
  const count = status.available ? status.deviceCount : 0;
  const here = ['cpu', ...Array.from({ length: count }, (_, i) => `cuda:${i}`)].join(', ');
  let d: TrainerDevice;
  try {
    d = parseDevice(device); // the devices' one parser (Tensor.from's): 'cpu', 'cuda:N' ('cuda' is cuda:0)
  } catch (cause) {
    const s = typeof device === 'string' ? device.trim().toLowerCase() : '';
    const guess = s === 'cpu' ? 'cpu' : /^(gpu|cuda|nvidia)[:_-]?(\d*)$/.test(s) ? `cuda:${/\d+$/.exec(s)?.[0] ?? 0}` : null;
    throw new DeepwellError('INVALID_ARGUMENT', `Expected 'cpu' or 'cuda:N' (N a GPU's index) for device (valid here: ${here}) but received ${describe(device)}${guess ? ` (did you mean '${guess}'?)` : ''}`, { cause });
  }
  if (d === 'cpu') return d;
  const index = Number(d.slice(5));
  if (!status.available) throw new DeepwellError('CUDA_UNAVAILABLE', `${d} is not available here (${status.reason}); valid here: ${here}`);
  if (index >= count) throw new DeepwellError('INVALID_ARGUMENT', `Expected a GPU that is here for device (cuda:0 to cuda:${count - 1}; valid here: ${here}) but received ${d}`);
  return d;
}

/**
 * The Trainer's settings that are plain data (what `deepwell train`'s run config can say), as the
 * Trainer checks them: the one check of these values, used by checkTrainerOptions and by the CLI
 * before it reads any data.
 */
export type TrainerSettings = Pick<TrainerOptions, 'steps' | 'precision' | 'optimizer' | 'schedule' | 'clipGradNorm' | 'accumulate' | 'evalEvery' | 'evalBatches' | 'checkpoint' | 'seed' | 'log' | 'profileStep'>;

/** The nested option objects named (those present): plain objects with known keys; a function is a schedule too. */
function checkNested(o: object, keys: readonly string[]): void {
  for (const key of keys) {
    const v = (o as Record<string, unknown>)[key];
    if (v === undefined || (key === 'schedule' && typeof v === 'function')) continue;
    check(plainObject(v), key === 'schedule' ? 'a function of the step or { warmup, minLr }' : `an object { ${NESTED[key]!.join(', ')} }`, key, v);
    checkKeys(v as object, NESTED[key]!, key);
  }
}

/** TrainerSettings checked (nested objects' keys too); the pairing of val with evalEvery is checkTrainerOptions'. */
export function checkTrainerSettings(settings: TrainerSettings): void {
  check(plainObject(settings), 'trainer settings { steps, optimizer?, schedule?, … }', 'the Trainer settings', settings);
  const o = settings;
  checkNested(o, ['optimizer', 'schedule', 'checkpoint', 'log']);
  positiveInt(o.steps, 'steps');
  optional(o.evalEvery, () => positiveInt(o.evalEvery, 'evalEvery'));
  optional(o.evalBatches, () => positiveInt(o.evalBatches, 'evalBatches', MAX_EVAL_BATCHES));
  optional(o.accumulate, () => positiveInt(o.accumulate, 'accumulate', MAX_ACCUMULATE));
  optional(o.clipGradNorm, () => check(finite(o.clipGradNorm) && o.clipGradNorm > 0, 'a finite number > 0', 'clipGradNorm', o.clipGradNorm));
  optional(o.precision, () => check((PRECISIONS as readonly unknown[]).includes(o.precision), `one of ${PRECISIONS.map((p) => `'${p}'`).join(', ')}`, 'precision', o.precision));
  optional(o.seed, () => check(Number.isInteger(o.seed) && o.seed! >= 0 && o.seed! <= 2 ** 32 - 1, 'an integer in [0, 2^32)', 'seed', o.seed));
  optional(o.profileStep, () => positiveInt(o.profileStep, 'profileStep', o.steps));
  const opt = o.optimizer ?? {};
  optional(opt.lr, () => check(finite(opt.lr) && opt.lr > 0, 'a positive number', 'optimizer.lr', opt.lr));
  for (const k of ['beta1', 'beta2'] as const) optional(opt[k], () => check(finite(opt[k]) && opt[k]! >= 0 && opt[k]! < 1, 'a number in [0, 1)', `optimizer.${k}`, opt[k]));
  optional(opt.eps, () => check(finite(opt.eps) && opt.eps > 0, 'a positive number', 'optimizer.eps', opt.eps));
  optional(opt.weightDecay, () => check(finite(opt.weightDecay) && opt.weightDecay >= 0, 'a non-negative number', 'optimizer.weightDecay', opt.weightDecay));
  if (o.schedule !== undefined && typeof o.schedule !== 'function') {
    const sch = o.schedule;
    const lr = opt.lr ?? 6e-4;
    optional(sch.warmup, () => check(Number.isInteger(sch.warmup) && sch.warmup! >= 0 && sch.warmup! <= o.steps, `an integer in [0, ${o.steps}] (steps)`, 'schedule.warmup', sch.warmup));
    optional(sch.minLr, () => check(finite(sch.minLr) && sch.minLr >= 0 && sch.minLr <= lr, `a number in [0, ${lr}] (optimizer.lr)`, 'schedule.minLr', sch.minLr));
  }
  if (o.checkpoint !== undefined) {
    const c = o.checkpoint;
    check(typeof c.dir === 'string' && c.dir.length > 0, 'a directory path', 'checkpoint.dir', c.dir);
    positiveInt(c.every, 'checkpoint.every');
    optional(c.keep, () => positiveInt(c.keep, 'checkpoint.keep'));
  }
  if (o.log !== undefined) {
    const l = o.log;
    for (const k of ['jsonl', 'svg'] as const) optional(l[k], () => check(typeof l[k] === 'string' && l[k]!.length > 0, 'a file path', `log.${k}`, l[k]));
    optional(l.progress, () => check(typeof l.progress === 'boolean', 'a boolean', 'log.progress', l.progress));
    optional(l.every, () => positiveInt(l.every, 'log.every'));
  }
}

/** Every option of the Trainer checked, nested objects too, before anything is captured. */
export function checkTrainerOptions(options: TrainerOptions): void {
  check(plainObject(options), 'trainer options { model, train, steps, … }', 'the Trainer', options);
  const o = options;
  checkKeys(o, TRAINER_KEYS, 'Trainer');
  checkNested(o, Object.keys(NESTED));
  check(typeof (o.model as { forward?: unknown } | null)?.forward === 'function', 'a model with forward({ tokens, targets }) (e.g. a GPT from @deepwell/nn)', 'model', o.model);
  positiveInt(o.steps, 'steps');
  checkLoader(o.train, 'train');
  optional(o.val, () => checkLoader(o.val, 'val'));
  if (o.val && (o.val.batchSize !== o.train.batchSize || o.val.seqLen !== o.train.seqLen)) {
    throw new DeepwellError('SHAPE_MISMATCH', `Expected the val loader's batch shape [${o.train.batchSize}, ${o.train.seqLen}] (the train loader's) but received [${o.val.batchSize}, ${o.val.seqLen}]`);
  }
  // Evaluation needs both: either alone would silently do nothing.
  const alone = (expected: string) => {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected ${expected} but received undefined`);
  };
  if (o.val !== undefined && o.evalEvery === undefined) alone('evalEvery with val (how often to evaluate on it)');
  if (o.evalEvery !== undefined && o.val === undefined) alone('a val loader with evalEvery (the held-out data to evaluate on)');
  if (o.evalBatches !== undefined && o.val === undefined) alone('a val loader with evalBatches (the held-out batches it reads)');
  checkTrainerSettings(o);
  if (o.config !== undefined) {
    // The checkpoints carry it as JSON: a value JSON cannot hold would fail at the first checkpoint, mid-run.
    let json: string | undefined;
    try {
      json = JSON.stringify(o.config);
    } catch (cause) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a JSON value for config (the checkpoints carry it) but received ${describe(o.config)}: ${(cause as Error).message}`, { cause });
    }
    check(json !== undefined, 'a JSON value', 'config', o.config);
  }
  if (o.policy !== undefined && !isPolicy(o.policy)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a PrecisionPolicy (from @deepwell/precision) for policy but received ${describe(o.policy)}`);
  if (o.fallback !== undefined && o.fallback !== false) {
    checkFallbackOptions(o.fallback);
    if (!o.policy) throw new DeepwellError('INVALID_ARGUMENT', `Expected a policy for fallback (it demotes the policy's layers) but received ${describe(o.policy)}`);
  }
  if (o.distributed !== undefined) checkDistributed(o);
  if (o.sample !== undefined) {
    if (!(o.model instanceof GPT)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a GPT model for sample (it generates with nn's Generator) but received ${describe(o.model)}`);
    if (!o.val || !o.evalEvery) throw new DeepwellError('INVALID_ARGUMENT', 'Expected val and evalEvery for sample (it samples at each evaluation) but received none');
    checkSample(o.sample, o.model.config);
  }
}

/** The distributed option against the rest: a live communicator, the loader's shard its rank's, no per-rank fallback. */
function checkDistributed(o: TrainerOptions): void {
  const d = o.distributed!;
  check(plainObject(d), 'distributed options { communicator, bucketBytes, zero }', 'distributed', d);
  const comm = d.communicator;
  if (comm !== undefined && !(comm instanceof Communicator)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a Communicator (kernels-native; initDistributed() makes one) for distributed.communicator but received ${describe(comm)}`);
  if (comm) void comm.handle; // DISPOSED for a destroyed or aborted one
  if (d.bucketBytes !== undefined) checkNumber(d.bucketBytes, 'distributed.bucketBytes', { min: 1, max: 2 ** 40 });
  if (d.zero !== undefined && typeof d.zero !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `Expected a boolean for distributed.zero but received ${describe(d.zero)}`);
  const [rank, world] = comm ? [comm.rank, comm.worldSize] : [0, 1];
  if (o.train.rank !== rank || o.train.worldSize !== world) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected the train loader of rank ${rank} of ${world} (TokenLoader's rank and worldSize: each rank reads its own shard) but received one of rank ${o.train.rank} of ${o.train.worldSize}`);
  }
  if (o.policy !== undefined && o.fallback !== false) {
    throw new DeepwellError('INVALID_ARGUMENT', 'Expected fallback: false with a policy in a distributed run (a precision fallback decided from one rank\'s numbers would leave the ranks training different steps) but received fallback on');
  }
  if (comm && o.device !== undefined && o.device !== `cuda:${comm.device}`) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected device cuda:${comm.device} (the communicator's) for a distributed run but received ${describe(o.device)}`);
  }
}

/** fit's (and fitAsync's) options checked. */
export function checkFitOptions<T extends FitAsyncOptions>(options: T, method: 'fit' | 'fitAsync'): T {
  check(plainObject(options), `${method} options { resume?, extend?${method === 'fitAsync' ? ', signal?' : ''} }`, method, options);
  checkKeys(options, method === 'fit' ? ['resume', 'extend'] : ['resume', 'extend', 'signal'], 'fit');
  const { resume, extend, signal } = options;
  optional(resume, () => check(typeof resume === 'boolean' || (typeof resume === 'string' && resume.length > 0), "true, false, 'auto' or a checkpoint path", 'resume', resume));
  optional(extend, () => check(typeof extend === 'boolean', 'a boolean', 'extend', extend));
  if (extend && !resume) throw new DeepwellError('INVALID_ARGUMENT', `Expected resume with extend (it keeps a resumed checkpoint's schedule) but received resume ${describe(resume)}`);
  optional(signal, () => check(typeof signal === 'object' && signal !== null && typeof (signal as AbortSignal).aborted === 'boolean' && typeof (signal as AbortSignal).addEventListener === 'function', 'an AbortSignal', 'signal', signal));
  return options;
}
