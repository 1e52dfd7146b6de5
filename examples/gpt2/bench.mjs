// GPT-2 124M (12 layers, 12 heads, width 768, T = 1024, vocab 50304, tied embeddings; or another GPT,
// below) trained by the Trainer in bf16 with f32 master weights on the first GPU. Writes, for bench_torch.py to use:
//   <out>/data.bin      an llm.c shard: a Markov chain over 256 symbols spread over the GPT-2
//                       vocabulary (its entropy rate is known), steps · B · T + 1 tokens, read in order
//   <out>/init.safetensors   the initial weights (f32, Deepwell's parameter names)
// and <out>/deepwell.jsonl (the Trainer's log). Settings shared with the PyTorch side are in
// <out>/config.json, the precision policy's per-layer plan in <out>/plan.json, and the kernel
// chosen for each op of the step in <out>/kernels.json.
//   node bench.mjs [steps=200] [out=runs/gpt2] [batch=16]
// Needs an NVIDIA GPU (it stops, saying why, without one; GPT2_ALLOW_CPU=1 runs on the CPU anyway,
// which is only sensible with a small GPT_CONFIG such as tiny, to try the script).
//   GPT2_WARMUP  the learning rate's warm-up in steps (default 100, as in the published GPT-2 runs;
//                half the run when it is shorter than 100 steps); at most the steps
// Other models and recipes (the FP8 end-to-end runs):
//   GPT_CONFIG   a GPT preset name or a GPTConfig as JSON (default gpt2-small); T = its blockSize.
//                A mixture of experts (a config with moe, e.g. the preset moe-8x: 8 experts, top-2,
//                width 1024, 12 layers) trains with 'dropless' routing, the one bench_torch.py
//                reproduces: a moe without routing gets it, one with another routing is refused.
//                config.json's moe holds the resolved MoE settings (null for a dense GPT)
//   RECIPE       a @deepwell/precision recipe (RECIPES: bf16, fp8-tensorwise, fp8-blockwise, ...);
//                anything but bf16 trains under a PrecisionPolicy of that recipe (natively where the
//                GPU runs it: fp8-tensorwise and fp8-blockwise on an H100 / H200)
//   KEEP_FIRST_LAST  0: the policy's recipe also for the first and last block (default 1: they
//                stay BF16, the policy's default); the head stays BF16 either way
//   GPT2_FALLBACK  0: the Trainer's precision auto-fallback off (default on with a policy: it
//                watches every step and keeps in-memory snapshots, logged as 'snapshot' events)
//   GPT2_PRECISION  the activations' precision: bf16 (the default; every published run) or f32,
//                for checking bench_torch.py against a small run on the CPU (BENCH_TORCH_DEVICE=cpu
//                there), where f32 makes the two sides' losses agree to f32 rounding
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { GPT, GPT_PRESETS, MarkovCorpus, MoE } from '@deepwell/nn';
import { PrecisionPolicy, RECIPES, computeCapabilityOf } from '@deepwell/precision';
import { TokenLoader, Trainer, writeSafetensors, writeShard } from '@deepwell/trainer';
import { requireGpu } from './preflight.mjs';

const fail = (message) => {
  console.error(`bench.mjs: ${message}\nUsage: node bench.mjs [steps=200] [out=runs/gpt2] [batch=16]`);
  process.exit(2);
};
const whole = (v, what) => (/^[1-9]\d*$/.test(v) ? Number(v) : fail(`expected a whole number above 0 for ${what} but received '${v}'`));
const steps = whole(process.argv[2] ?? '200', 'the steps');
const out = resolve(process.argv[3] ?? 'runs/gpt2');
const B = whole(process.argv[4] ?? '16', 'the batch');
const modelSpec = (process.env.GPT_CONFIG ?? 'gpt2-small').trim();
let model;
try {
  model = modelSpec.startsWith('{') ? JSON.parse(modelSpec) : GPT_PRESETS[modelSpec];
} catch (e) {
  fail(`GPT_CONFIG is not valid JSON: ${e.message}`);
}
if (!model) fail(`GPT_CONFIG: expected a preset (${Object.keys(GPT_PRESETS).join(', ')}) or a GPTConfig as JSON but received '${modelSpec}'`);
// A mixture of experts routes dropless here (MoE's default; 'capacity' drops choices past an
// expert's capacity, which the PyTorch reference does not reproduce).
if (model.moe) {
  const routing = model.moe.routing ?? 'dropless';
  if (routing !== 'dropless') fail(`GPT_CONFIG: expected moe.routing 'dropless' (or none: bench.mjs then sets it; bench_torch.py reproduces dropless routing only) but received '${routing}'`);
  model = { ...model, moe: { ...model.moe, routing } };
}
let gpt;
try {
  gpt = new GPT(model);
} catch (e) {
  fail(`GPT_CONFIG: ${e.message}`);
}
const recipe = process.env.RECIPE ?? 'bf16';
const precision = process.env.GPT2_PRECISION?.trim() || 'bf16';
if (precision !== 'bf16' && precision !== 'f32') fail(`GPT2_PRECISION: expected bf16 (the default) or f32 but received '${precision}'`);
if (!Object.hasOwn(RECIPES, recipe)) fail(`RECIPE: expected one of ${Object.keys(RECIPES).join(', ')} but received '${recipe}'`);
// The warm-up: 100 steps, as the published GPT-2 124M runs since gpt2-run2 (200 and 110 steps); a
// run shorter than 100 steps, which the schedule would refuse, warms up over its first half.
const warmupDefault = steps >= 100 ? 100 : Math.floor(steps / 2);
const warmupEnv = process.env.GPT2_WARMUP?.trim() || undefined;
const warmup = warmupEnv === undefined ? warmupDefault : /^\d+$/.test(warmupEnv) ? Number(warmupEnv) : NaN;
if (!(warmup <= steps)) fail(`GPT2_WARMUP: expected a whole number of steps from 0 to the ${steps} steps of this run but received '${warmupEnv}' (unset, it is ${warmupDefault}: 100, or half a run shorter than 100 steps)`);
if (process.env.GPT2_ALLOW_CPU !== '1') {
  requireGpu('bench.mjs', "it trains GPT-2 124M (or GPT_CONFIG's model), and one GPT-2 step on the CPU's reference kernels takes hours", 'GPT2_ALLOW_CPU=1 runs it on the CPU anyway, e.g. with GPT_CONFIG=tiny to try the script.');
}
const T = model.blockSize;
mkdirSync(out, { recursive: true });
// This run's log only (the Trainer appends to a log it finds, as a resumed run wants).
rmSync(`${out}/deepwell.jsonl`, { force: true });
// The MoE settings as the model resolved them (defaults filled in), for bench_torch.py: the blocks
// that have a MoE in place of the MLP, and the weight of the summed load-balancing losses in the
// training loss (GPT's default 0.01, as packages/nn/src/gpt.ts adds it).
const moeBlocks = gpt.blocks.map((b, i) => [i, b.mlp]).filter(([, m]) => m instanceof MoE);
const first = moeBlocks[0]?.[1];
const moe = first ? { layers: moeBlocks.map(([i]) => i), experts: first.experts, topK: first.topK, routing: first.routing, activation: first.activation, sharedExperts: first.sharedExperts, hidden: first.hidden, auxLossWeight: model.moe.auxLossWeight ?? 0.01 } : null;
const config = { steps, B, T, model, moe, recipe, precision, lr: 6e-4, minLr: 6e-5, warmup, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, clip: 1.0, seed: 1, symbols: 256, spread: 193 };
writeFileSync(`${out}/config.json`, JSON.stringify(config, null, 1));

const corpus = new MarkovCorpus({ vocab: config.symbols, seed: 7 });
const t0 = performance.now();
const symbols = corpus.sample(steps * B * T + 1);
const tokens = Uint16Array.from(symbols, (x) => (x * config.spread) % model.vocabSize);
writeShard(`${out}/data.bin`, tokens);
if (moe) console.log(`MoE in blocks ${moe.layers.join(', ')}: ${moe.experts} experts (${moe.activation}, ${moe.hidden} wide), top-${moe.topK}, ${moe.routing} routing${moe.sharedExperts ? `, ${moe.sharedExperts} shared` : ''}; load-balancing loss weight ${moe.auxLossWeight}`);
console.log(`${steps} steps, batch ${B} × ${T}, recipe ${recipe}${precision === 'bf16' ? '' : `, ${precision} activations`}, warm-up ${warmup} steps (${warmupEnv === undefined ? 'the default: 100, or half a run shorter than 100 steps; GPT2_WARMUP sets it' : 'GPT2_WARMUP'})`);
console.log(`data: ${tokens.length} tokens (Markov chain over ${config.symbols} symbols, entropy rate ${corpus.entropyRate().toFixed(4)} nats/token) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

const trainer = new Trainer({
  model: gpt,
  ...(recipe === 'bf16' ? {} : { policy: new PrecisionPolicy({ recipe, keepFirstLast: process.env.KEEP_FIRST_LAST !== '0' }) }),
  ...(process.env.GPT2_FALLBACK === '0' ? { fallback: false } : {}),
  train: new TokenLoader({ shards: [`${out}/data.bin`], batchSize: B, seqLen: T, shuffle: false }),
  precision: config.precision,
  steps,
  optimizer: { lr: config.lr, beta1: config.beta1, beta2: config.beta2, eps: config.eps, weightDecay: config.weightDecay },
  schedule: { warmup: config.warmup, minLr: config.minLr },
  clipGradNorm: config.clip,
  seed: config.seed,
  // Step 50 profiled node by node (the last step of a shorter run: the Trainer refuses a step past the end).
  profileStep: Math.min(50, steps),
  log: { jsonl: `${out}/deepwell.jsonl`, every: 10, svg: `${out}/deepwell-loss.svg` },
});
console.log(`device ${trainer.device}; ${trainer.report.parameters.toLocaleString('en')} parameters; ${trainer.step.nodes.length} nodes; dryrun total ${(trainer.report.totalBytes / 2 ** 30).toFixed(2)} GiB; ${(trainer.report.flopsPerStep / 1e12).toFixed(2)} TFLOP per step`);
trainer.on('start', ({ executable }) => {
  const tensors = {};
  for (const name of executable.parameterNames()) {
    const id = executable.graph.params[name];
    tensors[name] = { dtype: 'F32', shape: [...executable.graph.values[id].type.shape], data: executable.get(name) };
  }
  writeSafetensors(`${out}/init.safetensors`, tensors, { format: 'deepwell-init', seed: String(config.seed) });
});
const r = trainer.fit();
const times = r.losses.length;
console.log(JSON.stringify({ impl: 'deepwell', tokensPerSecond: r.tokensPerSecond, mfu: r.mfu, peakMemoryBytes: r.peakMemoryBytes, steps: times, finalLoss: r.losses.at(-1).loss }));
// Which layers ran which recipe (bench_torch.py's fp8 mode quantizes the same linear layers), and
// which kernel the registry chose for each op of the step (and how often it ran).
writeFileSync(`${out}/plan.json`, JSON.stringify(r.plan ?? [], null, 1));
writeFileSync(`${out}/kernels.json`, JSON.stringify(r.kernels, null, 1));
if (r.plan) console.log(`per-layer precision (${recipe}):\n${PrecisionPolicy.table(r.plan, computeCapabilityOf(trainer.device))}`);
// The peak beside the step log, where compare.mjs reads both sides' peaks.
appendFileSync(`${out}/deepwell.jsonl`, `${JSON.stringify({ event: 'memory', peakMemoryBytes: r.peakMemoryBytes })}\n`);
