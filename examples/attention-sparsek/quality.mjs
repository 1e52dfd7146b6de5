// Does SparseK attention learn as well as dense attention on a long-context task? Two GPTs of the
// same shape, initial weights (the same seed: parameters are initialised by seed and name) and data,
// one with dense attention and one with sparsek attention in every layer, trained the same number
// of steps by the Trainer (AdamW, warm-up then cosine, clipping) on the copy task of copy_task.mjs:
// the second half of each sequence repeats the first, so every scored token sits T/2 positions back.
// The loss is scored on the copy only: optimum 0, chance log(V) (a model that cannot see the first
// half). The issue's bar: sparsek's final loss within 5% of dense's, at more tokens/s.
//
//   node quality.mjs [key=value ...]        (or QUALITY_<KEY>=value in the environment)
//
// steps, T, batch, device ('cuda:0' when a GPU is usable, else 'cpu'), out (default runs/sparsek-quality
// at the repository root), vocab, layers, embd, heads, kvHeads, blockSize, topK, window, first (0/1),
// lr, seed, positions ('sinusoidal' or 'normal': GPTConfig.positionInit), positionBase, switchAt (N > 0:
// the sparsek model continues the dense model's step-N checkpoint). On a GPU the defaults are the
// shape measured in docs/gpu-runs/2026-12-04-sparsek-quality (T 4096, V 1024, 4 layers, width 256,
// 4 heads over 2 key/value heads of 64, blocks of 128, top-8 with block 0 and the diagonal, 8000
// steps, bf16 activations); on the CPU a tiny model that runs in seconds (T 128, 2 layers, width
// 32, blocks of 16, top-3).
//
// Writes into out: quality.json (the config, both loss curves and step times, tokens/s, the final
// losses as the mean of the last 10% of steps, their ratio, the kernels that served attention, the
// date, the device), loss.svg (both curves and the chance level in one picture), and the Trainer's
// JSONL log of each run (dense.jsonl, sparsek.jsonl); prints a summary table.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GPT } from '@deepwell/nn';
import { Trainer, lossCurveSvg } from '@deepwell/trainer';
import { CopyTask } from './copy_task.mjs';

// ---- options ------------------------------------------------------------------------------------

/** The first usable GPU ('cuda:0') and the addon, or the CPU. */
async function findDevice() {
  try {
    const kn = await import('@deepwell/kernels-native');
    const gpu = kn.registerCudaBackends()[0];
    if (gpu) return { device: gpu, kn };
  } catch {
    // no native addon or no GPU: the CPU reference
  }
  return { device: 'cpu', kn: null };
}

/** The defaults of a device kind: the issue's shape on a GPU, a model of seconds on the CPU. */
const DEFAULTS = {
  cuda: { steps: 8000, T: 4096, batch: 8, vocab: 1024, layers: 4, embd: 256, heads: 4, kvHeads: 2, blockSize: 128, topK: 8, window: 1, first: 1, lr: 1e-3, seed: 1, positions: 'sinusoidal', positionBase: 10000, switchAt: 0 },
  cpu: { steps: 60, T: 128, batch: 4, vocab: 64, layers: 2, embd: 32, heads: 2, kvHeads: 1, blockSize: 16, topK: 3, window: 1, first: 1, lr: 3e-3, seed: 1, positions: 'sinusoidal', positionBase: 10000, switchAt: 0 },
};

/** key=value arguments over QUALITY_<KEY> variables over the device's defaults, checked. */
function readOptions(argv, env, detected) {
  const given = {};
  const known = ['device', 'out', ...Object.keys(DEFAULTS.cuda)];
  for (const key of known) {
    const v = env[`QUALITY_${key.toUpperCase()}`];
    if (v !== undefined && v !== '') given[key] = v;
  }
  for (const arg of argv) {
    const m = /^(?:--)?([A-Za-z]+)=(.*)$/.exec(arg);
    if (!m) throw new Error(`Expected key=value arguments (keys: ${known.join(', ')}) but received '${arg}'`);
    if (!known.includes(m[1])) throw new Error(`Expected one of ${known.join(', ')} for an option but received '${m[1]}'`);
    given[m[1]] = m[2];
  }
  const device = given.device ?? detected;
  if (device !== 'cpu' && !/^cuda:\d+$/.test(device)) throw new Error(`Expected 'cpu' or 'cuda:N' for device but received '${device}'`);
  const o = { ...DEFAULTS[device === 'cpu' ? 'cpu' : 'cuda'], device };
  for (const [key, v] of Object.entries(given)) {
    if (key === 'device' || key === 'out') continue;
    if (key === 'positions') {
      if (v !== 'normal' && v !== 'sinusoidal') throw new Error(`Expected 'normal' or 'sinusoidal' for positions but received '${v}'`);
      o.positions = v;
      continue;
    }
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`Expected a number for ${key} but received '${v}'`);
    o[key] = n;
  }
  for (const key of ['steps', 'T', 'batch', 'vocab', 'layers', 'embd', 'heads', 'kvHeads', 'blockSize', 'topK', 'window']) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new Error(`Expected a positive integer for ${key} but received ${o[key]}`);
  }
  if (o.first !== 0 && o.first !== 1) throw new Error(`Expected 0 or 1 for first but received ${o.first}`);
  if (!Number.isInteger(o.switchAt) || o.switchAt < 0 || o.switchAt >= o.steps) throw new Error(`Expected an integer in [0, steps) for switchAt (0: sparsek from the start) but received ${o.switchAt}`);
  if (!(o.positionBase > 1)) throw new Error(`Expected a number above 1 for positionBase but received ${o.positionBase}`);
  if (!(o.lr > 0)) throw new Error(`Expected a positive learning rate for lr but received ${o.lr}`);
  if (!Number.isInteger(o.seed) || o.seed < 0) throw new Error(`Expected a non-negative integer for seed but received ${o.seed}`);
  // Each copy block's source must be one whole key block (see copy_task.mjs), and the always-on
  // blocks must leave room for the selection to reach back at all.
  if (o.T % (2 * o.blockSize) !== 0) throw new Error(`Expected T a multiple of 2 · blockSize (${2 * o.blockSize}), so that each block of the copy reads one block of the first half, but received T ${o.T}`);
  if (o.window + o.first >= o.topK) throw new Error(`Expected window + first (${o.window + o.first}) below topK (${o.topK}), leaving a block to select beyond them, but received topK ${o.topK}`);
  if (o.topK > o.T / o.blockSize) throw new Error(`Expected topK at most the ${o.T / o.blockSize} blocks of T but received ${o.topK}`);
  if (o.embd % o.heads !== 0 || o.heads % o.kvHeads !== 0) throw new Error(`Expected heads dividing embd and kvHeads dividing heads but received embd ${o.embd}, heads ${o.heads}, kvHeads ${o.kvHeads}`);
  const root = fileURLToPath(new URL('../../', import.meta.url));
  o.out = resolve(given.out ?? join(root, 'runs', 'sparsek-quality'));
  return o;
}

// ---- one training run -----------------------------------------------------------------------------

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The GPT config of the run, with `attention` the kind under test. */
function gptConfig(o, attention, task) {
  return {
    // The V symbols and the separator, padded to a multiple of 64 (the extra logits are never targets).
    vocabSize: Math.ceil(task.tokens / 64) * 64,
    blockSize: o.T,
    nLayer: o.layers,
    nHead: o.heads,
    nKvHead: o.kvHeads,
    nEmbd: o.embd,
    positionInit: o.positions,
    ...(o.positions === 'sinusoidal' ? { positionBase: o.positionBase } : {}),
    attention,
  };
}

/**
 * Train one model; per step its loss and time. The step time is the Trainer's (the compiled step's
 * run, the loss read back, so the device has finished); tokens/s is B·T over the median step time
 * after the warm-up steps (the first steps compile, and on a GPU run eagerly and capture the graph).
 */
function train(o, name, attention, { checkpointDir = null, resume = null } = {}) {
  const task = new CopyTask({ T: o.T, batch: o.batch, vocab: o.vocab, seed: o.seed });
  const config = gptConfig(o, attention, task);
  const jsonl = join(o.out, `${name}.jsonl`);
  rmSync(jsonl, { force: true }); // the Trainer appends to a log it finds
  const trainer = new Trainer({
    model: new GPT(config),
    train: task,
    device: o.device,
    steps: o.steps,
    optimizer: { lr: o.lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 },
    schedule: { warmup: Math.ceil(o.steps / 10), minLr: o.lr / 10 },
    clipGradNorm: 1,
    seed: o.seed,
    log: { jsonl, every: Math.max(1, Math.round(o.steps / 20)) },
    // The dense run of a switch keeps its checkpoint at switchAt for the sparsek run to start from.
    ...(checkpointDir ? { checkpoint: { dir: checkpointDir, every: o.switchAt, keep: Math.ceil(o.steps / o.switchAt) + 1 } } : {}),
  });
  // The initial weights' checksum: equal for both models when they start from the same weights.
  let initChecksum = null;
  trainer.on('start', ({ executable }) => {
    let sum = 0;
    for (const p of executable.parameterNames()) {
      const w = executable.get(p);
      for (let i = 0; i < w.length; i += 97) sum += w[i] * ((i % 7) + 1);
    }
    initChecksum = sum;
  });
  const steps = [];
  trainer.on('step', (e) => steps.push({ step: e.step, loss: e.loss, ms: e.ms }));
  const t0 = performance.now();
  const r = trainer.fit(resume ? { resume } : {});
  const seconds = (performance.now() - t0) / 1000;
  const first = resume ? o.switchAt + 1 : 1;
  if (steps.length !== o.steps - first + 1) throw new Error(`Expected steps ${first} to ${o.steps} of ${name} but the Trainer reported ${steps.length}`);
  // A resumed run's earlier losses come from the checkpoint (the dense phase).
  if (resume) steps.unshift(...r.losses.filter((l) => l.step < first).map((l) => ({ step: l.step, loss: l.loss, ms: NaN })));
  if (steps.length !== o.steps) throw new Error(`Expected ${o.steps} losses of ${name} but have ${steps.length}`);
  // Step times after the compile and graph capture; with a switch, of the steps after it (both models).
  const timed = o.switchAt ? steps.slice(o.switchAt) : steps;
  const warmup = Math.min(timed.length - 1, Math.max(3, Math.ceil(timed.length / 10)));
  const medianMs = median(timed.slice(warmup).map((s) => s.ms));
  const last = steps.slice(-Math.max(1, Math.round(o.steps / 10)));
  return {
    name,
    attention,
    model: config,
    precision: trainer.precision,
    parameters: trainer.report.parameters,
    flopsPerStep: trainer.report.flopsPerStep,
    initChecksum,
    steps: steps.map((s) => s.step),
    loss: steps.map((s) => s.loss),
    stepMs: steps.map((s) => s.ms),
    warmupSteps: o.switchAt + warmup,
    medianStepMs: medianMs,
    tokensPerSecond: (o.batch * o.T) / (medianMs / 1000),
    finalLoss: mean(last.map((s) => s.loss)),
    finalLossSteps: [last[0].step, last.at(-1).step],
    seconds,
    // Which kernel served attention (forward and backward) in the step: the evidence of what ran.
    attentionKernels: r.kernels.filter((k) => /sdpa|sparsek/.test(k.op)),
  };
}

// ---- main ---------------------------------------------------------------------------------------

const { device: detected, kn } = await findDevice();
const o = readOptions(process.argv.slice(2), process.env, detected);
mkdirSync(o.out, { recursive: true });
const deviceName = o.device === 'cpu' ? `CPU (${cpus()[0]?.model ?? 'unknown'}, reference backend)` : kn.deviceProperties(Number(o.device.split(':')[1])).name;
const chance = Math.log(o.vocab);
const sparse = { kind: 'sparsek', blockSize: o.blockSize, topK: o.topK, first: o.first === 1, window: o.window };
console.log(`copy task: T ${o.T}, batch ${o.batch}, ${o.vocab} symbols (chance ${chance.toFixed(3)} nats, optimum 0); ${o.steps} steps on ${o.device} (${deviceName})`);
console.log(`model: ${o.layers} layers, width ${o.embd}, ${o.heads} heads over ${o.kvHeads} key/value heads of ${o.embd / o.heads}; sparsek: blocks of ${o.blockSize}, top-${o.topK}, first ${sparse.first}, window ${o.window} (of ${o.T / o.blockSize} blocks)`);

// switchAt N: the sparsek model is the dense one until step N (its checkpoint there), then sparsek;
// DeepSeek-V3.2's DSA, too, starts sparse training from a dense model.
const checkpointDir = o.switchAt ? join(o.out, 'dense-checkpoints') : null;
if (checkpointDir) rmSync(checkpointDir, { recursive: true, force: true });
console.log('\ndense:');
const dense = train(o, 'dense', { kind: 'dense' }, { checkpointDir });
console.log(o.switchAt ? `\nsparsek from the dense model's step ${o.switchAt}:` : '\nsparsek:');
const sparsek = train(o, 'sparsek', sparse, { resume: checkpointDir ? join(checkpointDir, `step-${String(o.switchAt).padStart(8, '0')}.safetensors`) : null });
if (!o.switchAt && dense.initChecksum !== sparsek.initChecksum) throw new Error(`Expected the same initial weights for both models but their checksums differ: ${dense.initChecksum} and ${sparsek.initChecksum}`);
if (checkpointDir) rmSync(checkpointDir, { recursive: true, force: true });

const ratio = sparsek.finalLoss / dense.finalLoss;
const speedup = sparsek.tokensPerSecond / dense.tokensPerSecond;
const result = {
  task: { name: 'copy', T: o.T, vocab: o.vocab, scoredTokensPerSequence: o.T / 2, optimumLoss: 0, chanceLoss: chance, generator: 'copy_task.mjs', seed: o.seed },
  config: { ...o, out: undefined, optimizer: 'AdamW lr, beta1 0.9, beta2 0.95, eps 1e-8, weight decay 0.1; warm-up 10% of steps, cosine to lr/10; clip 1' },
  device: o.device,
  deviceName,
  date: new Date().toISOString(),
  runs: { dense, sparsek },
  finalLoss: { dense: dense.finalLoss, sparsek: sparsek.finalLoss, ratio },
  tokensPerSecond: { dense: dense.tokensPerSecond, sparsek: sparsek.tokensPerSecond, ratio: speedup },
  // The issue's bar. The ratio of losses is ill-conditioned near the optimum (0): read it with the
  // losses themselves and the chance level. It is informative only once dense has learnt the copy
  // (here: below half the chance level); before that both sit near log V and their ratio near 1.
  bar: { lossWithin5Percent: ratio <= 1.05, fasterTokensPerSecond: speedup > 1, informative: dense.finalLoss < chance / 2 },
};
writeFileSync(join(o.out, 'quality.json'), `${JSON.stringify(result, null, 1)}\n`);

const curve = (r) => r.steps.map((s, i) => [s, r.loss[i]]);
const svg = lossCurveSvg(
  [
    { name: `dense (${dense.finalLoss.toFixed(3)})`, points: curve(dense), color: '#1f77b4' },
    { name: `sparsek top-${o.topK}${o.switchAt ? ` from step ${o.switchAt}` : ''} (${sparsek.finalLoss.toFixed(3)})`, points: curve(sparsek).slice(o.switchAt), color: '#d62728' },
    { name: `chance log ${o.vocab}`, points: [[1, chance], [o.steps, chance]], color: '#999999' },
  ],
  { title: `copy task, T ${o.T}: loss on the copy (${deviceName}, ${dense.precision}, batch ${o.batch})` },
);
writeFileSync(join(o.out, 'loss.svg'), svg);

const row = (r) => `| ${r.name} | ${r.finalLoss.toFixed(4)} | ${(r.finalLoss / chance).toFixed(3)} | ${r.medianStepMs.toFixed(1)} | ${Math.round(r.tokensPerSecond).toLocaleString('en')} | ${r.attentionKernels.map((k) => k.kernel).join(', ')} |`;
console.log(`\n| attention | final loss (mean of steps ${dense.finalLossSteps.join('-')}) | / chance | median step (ms, after ${dense.warmupSteps}) | tokens/s | attention kernels |`);
console.log('| --- | --- | --- | --- | --- | --- |');
console.log(row(dense));
console.log(row(sparsek));
console.log(`\nsparsek / dense: loss ${ratio.toFixed(3)} (bar: at most 1.05: ${result.bar.lossWithin5Percent ? 'met' : 'not met'}), tokens/s ${speedup.toFixed(2)}× (bar: above 1: ${result.bar.fasterTokensPerSecond ? 'met' : 'not met'})`);
if (!result.bar.informative) {
  console.log(`\nWARNING: dense attention did not learn the copy (final loss ${dense.finalLoss.toFixed(3)}, chance ${chance.toFixed(3)}): the comparison says nothing about SparseK yet; train longer (steps=) or with another lr`);
}
console.log(`wrote ${join(o.out, 'quality.json')} and ${join(o.out, 'loss.svg')}`);
