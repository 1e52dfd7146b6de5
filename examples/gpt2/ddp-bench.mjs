// GPT-2 124M (or GPT_CONFIG's GPT) trained data-parallel by the Trainer, one process per GPU, for
// issue 22's measurements (scripts/ddp-check.sh runs it): tokens/s per GPU against one GPU, the loss
// against a single-GPU run of the same global batch, memory per GPU with and without ZeRO-1, and a
// rank killed mid-run then resumed. ddp_torch.py beside it is PyTorch DDP on the same data and
// initial weights.
//   deepwell launch --gpus N examples/gpt2/ddp-bench.mjs [steps=60] [out=runs/ddp-bench] [batch per rank=16]
//   torchrun --standalone --nproc-per-node N --no-python node examples/gpt2/ddp-bench.mjs …   (the same)
//   node examples/gpt2/ddp-bench.mjs …                                                        (a world of one)
// Every rank builds the same data in memory (bench.mjs's Markov chain: seed 7, 256 symbols spread
// over the vocabulary), steps · B · T · accumulate · W + 1 tokens, and takes its own samples of it:
// TokenLoader without shuffling gives rank r of W the samples r, r + W, r + 2W, … (sample k = the
// tokens k·T … k·T + T), so step s's global batch is samples (s - 1)·B·W … s·B·W - 1 on any number
// of GPUs, and one GPU with DDP_ACCUMULATE=W trains on the same global batches as W GPUs. Rank 0
// also writes, for ddp_torch.py:
//   <out>/data.bin  the same tokens as an llm.c shard;  <out>/config.json  the settings;
//   <out>/init.safetensors  the initial weights (f32, Deepwell's names; a new run only)
// and its step log <out>/deepwell-ddp-w<W>[-zero][-acc<A>].jsonl (the Trainer's log). Each rank writes
// its pid to <out>/rank<r>.pid (for the kill check) and prints one JSON line of its memory
// ({ event: 'memory', rank, peakMemoryBytes, … }); rank 0 then prints the summary line
// ({ event: 'summary', impl: 'deepwell', world, zero, B, T, steps, tokensPerSecond,
// tokensPerSecondPerGpu, peakMemoryBytes, finalLoss, … }). tokensPerSecond counts every rank's tokens
// over the wall time from the end of the warm-up steps (the first 10; half of a run shorter than 20)
// to the last step, as rank 0 sees it; medianStepMs is the median of the Trainer's step times there.
// Settings (environment):
//   GPT_CONFIG      a GPT preset or a GPTConfig as JSON (default gpt2-small); T = its blockSize
//   GPT2_WARMUP     the learning rate's warm-up in steps (default 100; half a run shorter than 100)
//   GPT2_PRECISION  bf16 (default) or f32 (to check ddp_torch.py against a small CPU run)
//   GPT2_ALLOW_CPU  1: run on the CPU anyway (a world of one; sensible only with GPT_CONFIG=tiny)
//   DDP_ZERO        1: ZeRO-1 (distributed.zero: each rank keeps the AdamW moments of its shard)
//   DDP_ACCUMULATE  micro-batches per step (gradient accumulation; default 1)
//   DDP_CKPT_DIR    checkpoints there, every DDP_CKPT_EVERY steps (default 20); the run resumes
//                   from the newest one there (fit's resume 'auto'), on any number of GPUs
//   DDP_NCCL_TIMEOUT_MS  the rendezvous' and every NCCL wait's limit (initDistributed's; default 600000)
// The optimizer, schedule and clipping are bench.mjs's (AdamW lr 6e-4 → 6e-5 cosine, betas 0.9 /
// 0.95, weight decay 0.1, clip 1.0, seed 1). A world of one trains without the distributed option
// (the plain single-GPU step) unless DDP_ZERO=1.
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { GPT, GPT_PRESETS, MarkovCorpus } from '@deepwell/nn';
import { TokenLoader, Trainer, checkpointsIn, initDistributed, writeSafetensors, writeShard } from '@deepwell/trainer';
import { requireGpu } from './preflight.mjs';

const USAGE = 'Usage: deepwell launch --gpus N examples/gpt2/ddp-bench.mjs [steps=60] [out=runs/ddp-bench] [batch per rank=16]';
const fail = (message) => {
  console.error(`ddp-bench.mjs: ${message}\n${USAGE}`);
  process.exit(2);
};
const whole = (v, what) => (/^[1-9]\d*$/.test(v) ? Number(v) : fail(`expected a whole number above 0 for ${what} but received '${v}'`));
const env = (name) => process.env[name]?.trim() || undefined;
const flag = (name) => {
  const v = env(name);
  if (v !== undefined && v !== '0' && v !== '1') fail(`${name}: expected 1 (on) or 0 (off) but received '${v}'`);
  return v === '1';
};
const median = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : null);

// --- settings, checked before anything starts (every rank refuses the same way) ---
if (process.argv.length > 5) fail(`expected at most 3 arguments but received ${process.argv.length - 2}: ${process.argv.slice(2).join(' ')}`);
const steps = whole(process.argv[2] ?? '60', 'the steps');
const out = resolve(process.argv[3] ?? 'runs/ddp-bench');
const B = whole(process.argv[4] ?? '16', 'the batch per rank');
const modelSpec = env('GPT_CONFIG') ?? 'gpt2-small';
let model;
try {
  model = modelSpec.startsWith('{') ? JSON.parse(modelSpec) : Object.hasOwn(GPT_PRESETS, modelSpec) ? GPT_PRESETS[modelSpec] : undefined;
} catch (e) {
  fail(`GPT_CONFIG is not valid JSON: ${e.message}`);
}
if (!model) fail(`GPT_CONFIG: expected a preset (${Object.keys(GPT_PRESETS).join(', ')}) or a GPTConfig as JSON but received '${modelSpec}'`);
const precision = env('GPT2_PRECISION') ?? 'bf16';
if (precision !== 'bf16' && precision !== 'f32') fail(`GPT2_PRECISION: expected bf16 (the default) or f32 but received '${precision}'`);
const warmupDefault = steps >= 100 ? 100 : Math.floor(steps / 2);
const warmupEnv = env('GPT2_WARMUP');
const warmup = warmupEnv === undefined ? warmupDefault : /^\d+$/.test(warmupEnv) ? Number(warmupEnv) : NaN;
if (!(warmup <= steps)) fail(`GPT2_WARMUP: expected a whole number of steps from 0 to the ${steps} steps of this run but received '${warmupEnv}'`);
const zero = flag('DDP_ZERO');
const accumulate = env('DDP_ACCUMULATE') === undefined ? 1 : whole(env('DDP_ACCUMULATE'), 'DDP_ACCUMULATE (micro-batches per step)');
const ckptDir = env('DDP_CKPT_DIR') === undefined ? null : resolve(env('DDP_CKPT_DIR'));
if (env('DDP_CKPT_EVERY') !== undefined && !ckptDir) fail('DDP_CKPT_EVERY without DDP_CKPT_DIR: set the checkpoint directory too');
const ckptEvery = env('DDP_CKPT_EVERY') === undefined ? 20 : whole(env('DDP_CKPT_EVERY'), 'DDP_CKPT_EVERY (steps between checkpoints)');
const timeoutMs = env('DDP_NCCL_TIMEOUT_MS') === undefined ? undefined : whole(env('DDP_NCCL_TIMEOUT_MS'), 'DDP_NCCL_TIMEOUT_MS');
let gpt;
try {
  gpt = new GPT(model);
} catch (e) {
  fail(`GPT_CONFIG: ${e.message}`);
}
const T = model.blockSize;
if (process.env.GPT2_ALLOW_CPU !== '1') {
  requireGpu('ddp-bench.mjs', "each rank trains GPT-2 124M (or GPT_CONFIG's model) on its own GPU", 'GPT2_ALLOW_CPU=1 runs a world of one on the CPU anyway, e.g. with GPT_CONFIG=tiny to try the script.');
}

// --- the job ---
const dist = await initDistributed(timeoutMs === undefined ? {} : { timeoutMs });
const { rank, worldSize: W } = dist;
const lead = rank === 0;
const say = (line) => lead && console.log(line);
try {
  mkdirSync(out, { recursive: true });
  writeFileSync(`${out}/rank${rank}.pid`, `${process.pid}\n`);
  const name = `deepwell-ddp-w${W}${zero ? '-zero' : ''}${accumulate > 1 ? `-acc${accumulate}` : ''}`;
  const logPath = `${out}/${name}.jsonl`;
  const resuming = ckptDir !== null && checkpointsIn(ckptDir).length > 0;
  // A new run's log only (the Trainer refuses a file that holds another run's log; a resumed run appends to its own).
  if (lead && !resuming) rmSync(logPath, { force: true });

  // The same tokens on every rank, made here rather than read back from rank 0's file (no race).
  const config = { steps, B, T, world: W, accumulate, zero, model, precision, lr: 6e-4, minLr: 6e-5, warmup, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, clip: 1.0, seed: 1, symbols: 256, spread: 193, sharding: 'rank r of W takes samples r, r + W, r + 2W, ... (sample k: tokens k*T .. k*T + T)' };
  const count = steps * B * T * accumulate * W + 1;
  const t0 = performance.now();
  const corpus = new MarkovCorpus({ vocab: config.symbols, seed: 7 });
  const tokens = new Uint16Array(count);
  for (let at = 0; at < count; at += 1 << 24) {
    const part = corpus.sample(Math.min(1 << 24, count - at)); // the chain continues across calls
    for (let i = 0; i < part.length; i++) tokens[at + i] = (part[i] * config.spread) % model.vocabSize;
  }
  if (lead) {
    writeFileSync(`${out}/config.json`, JSON.stringify(config, null, 1));
    writeShard(`${out}/data.bin`, tokens);
  }
  say(`${W} rank(s), ${steps} steps, batch ${B} × ${T} per rank${accumulate > 1 ? ` × ${accumulate} micro-batches` : ''} (global ${B * accumulate * W} × ${T}), ${precision}${zero ? ', ZeRO-1' : ''}, warm-up ${warmup}; data ${count} tokens (entropy rate ${corpus.entropyRate().toFixed(4)} nats/token) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const trainer = new Trainer({
    model: gpt,
    train: new TokenLoader({ shards: [{ name: 'markov(seed 7)', tokens }], batchSize: B, seqLen: T, shuffle: false, rank, worldSize: W }),
    precision,
    steps,
    accumulate,
    optimizer: { lr: config.lr, beta1: config.beta1, beta2: config.beta2, eps: config.eps, weightDecay: config.weightDecay },
    schedule: { warmup: config.warmup, minLr: config.minLr },
    clipGradNorm: config.clip,
    seed: config.seed,
    log: { jsonl: logPath, every: 10 },
    ...(ckptDir ? { checkpoint: { dir: ckptDir, every: ckptEvery } } : {}),
    ...(W > 1 || zero ? { distributed: { communicator: dist.communicator, zero } } : {}),
  });
  say(`device ${trainer.device}; ${trainer.report.parameters.toLocaleString('en')} parameters; dryrun total ${(trainer.report.totalBytes / 2 ** 30).toFixed(2)} GiB per rank`);
  let resumedFrom = null;
  trainer.on('start', ({ step, executable }) => {
    if (step > 1) resumedFrom = step - 1;
    if (!lead || step > 1) return;
    const weights = {};
    for (const p of executable.parameterNames()) {
      weights[p] = { dtype: 'F32', shape: [...executable.graph.values[executable.graph.params[p]].type.shape], data: executable.get(p) };
    }
    writeSafetensors(`${out}/init.safetensors`, weights, { format: 'deepwell-init', seed: String(config.seed) });
  });
  // Throughput after the warm-up: the wall time between step events (the whole loop: data, step, log).
  const skip = (n) => (n >= 20 ? 10 : Math.floor(n / 2));
  const marks = [];
  const stepMs = [];
  trainer.on('step', (e) => {
    marks.push(performance.now());
    stepMs.push(e.ms);
  });
  const r = trainer.fit({ resume: ckptDir ? 'auto' : false });
  const ran = marks.length;
  const k = skip(ran);
  const timed = ran - 1 - k; // steps k + 2 … ran, timed from the end of step k + 1
  const tokensPerStep = B * T * accumulate * W;
  const tokensPerSecond = timed > 0 ? (timed * tokensPerStep) / ((marks[ran - 1] - marks[k]) / 1000) : null;
  const memory = { event: 'memory', impl: 'deepwell', rank, world: W, zero, device: trainer.device, peakMemoryBytes: r.peakMemoryBytes, plannedBytes: trainer.report.totalBytes, optimizerStateBytes: trainer.report.optimizerStateBytes };
  console.log(JSON.stringify(memory));
  if (lead) {
    appendFileSync(logPath, `${JSON.stringify(memory)}\n`);
    const summary = {
      event: 'summary', impl: 'deepwell', world: W, zero, B, T, accumulate, steps, ranSteps: ran, timedSteps: timed, resumedFrom,
      tokensPerSecond, tokensPerSecondPerGpu: tokensPerSecond === null ? null : tokensPerSecond / W,
      medianStepMs: median(stepMs.slice(k + 1)), fitTokensPerSecond: r.tokensPerSecond,
      peakMemoryBytes: r.peakMemoryBytes, finalLoss: r.losses.at(-1)?.loss ?? null, log: logPath,
    };
    console.log(JSON.stringify(summary));
    appendFileSync(logPath, `${JSON.stringify(summary)}\n`);
  }
} catch (e) {
  // A failed rank leaves at once: its peers' NCCL waits end with PEER_FAILED (or the launcher stops them).
  dist.communicator?.abort();
  throw e;
}
dist.communicator?.destroy();
// Done: should anything native keep the process alive, it ends anyway (the launcher waits for every rank).
setTimeout(() => {
  console.error(`ddp-bench.mjs: rank ${rank} was still running 30 s after its run ended; exiting`);
  process.exit(0);
}, 30_000).unref();
