// Deepwell's main job (`pnpm start`): report the hardware and smoke-test every device; then train a
// small GPT through the Trainer on a synthetic Markov corpus on the embedded default — the first
// GPU, in bf16 with f32 master weights, or the CPU reference backend in f32 when there is no GPU —
// printing dryrun's figures, the loss as it goes and held-out evaluations; at the end the loss
// beside the corpus's entropy rate, and where the checkpoint, the JSONL log and the loss-curve
// picture were written.
//   node examples/main/main.mjs [steps] [output dir (default runs/main)]
import { resolve } from 'node:path';
import { registry } from '@deepwell/core';
import { formatDryrun } from '@deepwell/ir';
import { registerCudaBackends } from '@deepwell/kernels-native';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { printHardwareInfo, smokeTest } from '@deepwell/probe';
import { TokenLoader, Trainer, markovShard } from '@deepwell/trainer';

const steps = Number(process.argv[2] ?? 300);
const out = resolve(process.argv[3] ?? 'runs/main');
printHardwareInfo();
const gpus = registerCudaBackends();
const devices = gpus.length ? gpus : ['cpu'];
console.log(`\nSmoke test on ${devices.join(', ')}${gpus.length ? '' : ' (no GPU: the embedded default is the CPU)'}`);
let failed = false;
for (const device of devices) {
  const r = smokeTest(device, 1 << 22);
  failed ||= r.mismatches !== 0;
  console.log(`  ${device}: ${r.elements} elements by ${r.kernel}: ${r.mismatches === 0 ? 'all correct' : `${r.mismatches} WRONG`}`);
}

const device = gpus[0] ?? 'cpu';
const [B, T] = [8, 16];
const corpus = new MarkovCorpus({ vocab: 16, seed: 1 });
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
  schedule: { warmup: 20, minLr: 3e-4 },
  evalEvery: 100,
  evalBatches: 20,
  checkpoint: { dir: out, every: 100, keep: 1 },
  seed: 1,
  log: { jsonl: `${out}/log.jsonl`, every: 25 },
  config: { model: 'tiny', batch: [B, T], corpus: { vocab: 16, seed: 1 } },
});
console.log(`\nGPT 'tiny': ${model.parameterCount().toLocaleString('en')} parameters; training step of ${trainer.step.nodes.length} nodes, batch ${B} × ${T}, ${trainer.precision === 'f32' ? 'f32' : 'bf16 activations, f32 master weights'}`);
console.log(formatDryrun(trainer.report));
const entropy = corpus.entropyRate();
console.log(`\nTraining ${steps} steps on ${device} (corpus entropy rate ${entropy.toFixed(4)} nats/token)`);
const result = trainer.fit();
const last = result.losses.slice(-50);
const final = last.reduce((a, b) => a + b.loss, 0) / last.length;
const evalLoss = result.evals.at(-1)?.loss;
console.log(`\nFinal loss ${final.toFixed(4)} (mean of the last ${last.length} steps)${evalLoss !== undefined ? `, held-out ${evalLoss.toFixed(4)}` : ''} vs entropy rate ${entropy.toFixed(4)}: ${((100 * (final - entropy)) / entropy).toFixed(1)}% above the floor`);
console.log(`${Math.round(result.tokensPerSecond).toLocaleString('en')} tokens/s${result.mfu !== null ? `, MFU ${(100 * result.mfu).toFixed(2)}%` : ''}`);
console.log(`\nCheckpoint: ${result.checkpoint}\nLoss curve: ${result.lossCurve}\nLog:        ${out}/log.jsonl`);
console.log(`\nKernels that served the training step${result.replayed ? ' (replayed as one CUDA graph per step)' : ''}:`);
for (const row of result.kernels) console.log(`  ${row.op.padEnd(22)} ${row.kernel} [${row.backend}] × ${row.calls}`);
console.log('Kernels that served the smoke test:');
for (const row of registry.summary().filter((r) => r.op.startsWith('probe.'))) console.log(`  ${row.op} -> ${row.kernel} [${row.backend}]: ${row.calls}`);
process.exitCode = failed ? 1 : 0;
