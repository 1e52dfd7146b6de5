// Deepwell's main job (`pnpm start`): report the hardware and check every device (write a pattern,
// read it back, compare every number); then train a small GPT through the Trainer on a synthetic
// Markov corpus on the first GPU, in bf16 with f32 master weights, or on the CPU in f32 when there is
// no GPU, printing what dryrun expects, the loss as it goes and held-out evaluations. It ends on the
// result: what was trained, the loss beside the corpus's entropy rate (the lowest loss any model can
// reach), tokens/s, and where the checkpoint, the JSONL log and the loss-curve picture are. Which
// kernel served each op goes into the log (a "kernels" record), and on screen with --kernels.
//   node examples/main/main.mjs [steps (default 300)] [output dir] [--kernels]
// The output dir defaults to a new folder per run, runs/main/<date and time>: the Trainer refuses a
// folder that holds another run's checkpoints, and nothing of an earlier run is overwritten.
import { appendFileSync, writeFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { registry } from '@deepwell/core';
import { formatDryrun } from '@deepwell/ir';
import { registerCudaBackends } from '@deepwell/kernels-native';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { printHardwareInfo, smokeTest } from '@deepwell/probe';
import { TokenLoader, Trainer, lossCurveSvg, markovShard } from '@deepwell/trainer';

const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith('-'));
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
const [stepsArg = '300', outArg = `runs/main/${stamp}`, ...extra] = args.filter((a) => !a.startsWith('-'));
const usage = 'Usage: node examples/main/main.mjs [steps] [output dir] [--kernels]';
const unknown = flags.filter((f) => f !== '--kernels');
if (unknown.length || extra.length || !/^[1-9]\d*$/.test(stepsArg)) {
  const what = unknown.length ? `unknown option ${unknown.join(', ')}` : extra.length ? `unexpected argument ${extra.join(', ')}` : `expected a whole number of steps above 0 but received '${stepsArg}'`;
  console.error(`main: ${what}\n${usage}`);
  process.exit(2);
}
const steps = Number(stepsArg);
const out = resolve(outArg);
const showKernels = flags.includes('--kernels');
const shown = (p) => (p && !relative(process.cwd(), p).startsWith('..') ? relative(process.cwd(), p) : p);

printHardwareInfo();
const gpus = registerCudaBackends();
const devices = gpus.length ? gpus : ['cpu'];
console.log(`\nDevice check (write a pattern of numbers, read it back, compare each one)${gpus.length ? '' : ': no GPU, so the CPU'}`);
let failed = false;
const smoke = [];
for (const device of devices) {
  const r = smokeTest(device, 1 << 22);
  smoke.push(r);
  failed ||= r.mismatches !== 0;
  const verdict = r.mismatches === 0 ? 'all correct' : `${r.mismatches.toLocaleString('en')} WRONG`;
  console.log(`  ${device}: ${r.elements.toLocaleString('en')} numbers (${(r.elements * 4) / 2 ** 20} MiB), ${verdict}`);
}

const device = gpus[0] ?? 'cpu';
const [B, T] = [8, 16];
const vocab = 16;
const corpus = new MarkovCorpus({ vocab, seed: 1 });
const train = new TokenLoader({ shards: [markovShard(corpus, 400_000, 'markov train')], batchSize: B, seqLen: T, seed: 1 });
const val = new TokenLoader({ shards: [markovShard(corpus, 40_000, 'markov val')], batchSize: B, seqLen: T, shuffle: false });
const model = new GPT('tiny');
const trainer = new Trainer({
  model,
  train,
  val,
  device,
  steps,
  optimizer: { lr: 3e-3, weightDecay: 0 },
  schedule: { warmup: Math.min(20, steps), minLr: 3e-4 },
  evalEvery: 100,
  evalBatches: 20,
  checkpoint: { dir: out, every: 100, keep: 1 },
  seed: 1,
  log: { jsonl: `${out}/log.jsonl`, every: 25 },
  config: { model: 'tiny', batch: [B, T], corpus: { vocab, seed: 1 } },
});
const { nLayer, nHead, nEmbd } = model.config;
const precision = trainer.precision === 'f32' ? 'f32' : 'bf16 activations, f32 master weights';
const what = `GPT 'tiny' (${nLayer} layers, ${nHead} heads, width ${nEmbd}; ${model.parameterCount().toLocaleString('en')} parameters)`;
console.log(`\nModel: ${what}, batch ${B} sequences × ${T} tokens, ${precision}`);
console.log(formatDryrun(trainer.report));
const entropy = corpus.entropyRate();
console.log(`\nTraining ${steps} steps on ${device}: a synthetic Markov corpus over ${vocab} symbols whose entropy rate, ${entropy.toFixed(4)} nats/token, is the lowest loss any model can reach`);
const t0 = performance.now();
const result = trainer.fit();
const seconds = (performance.now() - t0) / 1000;
const last = result.losses.slice(-50);
const final = last.reduce((a, b) => a + b.loss, 0) / last.length;
const evalLoss = result.evals.at(-1)?.loss;

// The Trainer's picture, drawn again with the floor it does not know about.
if (result.lossCurve) {
  const series = [{ name: 'train loss', points: result.losses.map((l) => [l.step, l.loss]), color: '#1f77b4' }];
  if (result.evals.length) series.push({ name: 'eval loss', points: result.evals.map((l) => [l.step, l.loss]), color: '#d62728' });
  const floor = { value: entropy, label: `entropy rate of the corpus, ${entropy.toFixed(3)}: the lowest loss a model can reach` };
  writeFileSync(result.lossCurve, lossCurveSvg(series, { title: `GPT 'tiny' on a Markov corpus (${device}, ${trainer.precision}, batch ${B}×${T})`, floor }));
}

// Which kernel served each op: into the log always, on screen with --kernels.
const smokeKernels = registry.summary().filter((r) => r.op.startsWith('probe.'));
appendFileSync(`${out}/log.jsonl`, `${JSON.stringify({ event: 'kernels', replayed: result.replayed, step: result.kernels, smokeTest: smokeKernels })}\n`);
if (showKernels) {
  console.log(`\nKernels that served the training step${result.replayed ? ' (replayed as one CUDA graph per step)' : ''}:`);
  for (const row of result.kernels) console.log(`  ${row.op.padEnd(24)} ${row.kernel} [${row.backend}] × ${row.calls}`);
  console.log('Kernels that served the device check:');
  for (const row of smokeKernels) console.log(`  ${row.op.padEnd(24)} ${row.kernel} [${row.backend}] × ${row.calls}`);
}

const above = (100 * (final - entropy)) / entropy;
console.log(`\nResult`);
console.log(`  trained    ${what}, ${steps} steps on ${device} in ${seconds < 60 ? `${seconds.toFixed(1)} s` : `${(seconds / 60).toFixed(1)} min`}`);
console.log(`  loss       ${final.toFixed(4)} nats/token (mean of the last ${last.length} steps)${evalLoss !== undefined ? `, held-out ${evalLoss.toFixed(4)}` : ''}`);
console.log(`  floor      ${entropy.toFixed(4)} (the corpus's entropy rate): the loss is ${above.toFixed(1)}% above it`);
console.log(`  speed      ${Math.round(result.tokensPerSecond).toLocaleString('en')} tokens/s${result.mfu !== null ? `, ${(100 * result.mfu).toFixed(2)}% of the GPU's peak (MFU)` : ''}`);
console.log(`  checkpoint ${shown(result.checkpoint)}`);
console.log(`  loss curve ${shown(result.lossCurve)}`);
console.log(`  log        ${shown(`${out}/log.jsonl`)}${showKernels ? '' : ' (which kernel ran each op: its "kernels" record, or --kernels)'}`);
if (failed) console.log(`\nThe device check FAILED on ${smoke.filter((r) => r.mismatches).map((r) => r.device).join(', ')}: some numbers came back wrong.`);
process.exitCode = failed ? 1 : 0;
