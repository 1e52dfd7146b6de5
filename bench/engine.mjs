// The one-call API on a GPU (issue 19): GPT-2 124M through optimize() with a recipe and with BF16,
// each engine's dryrun (memory, the modelled step time and expected speed-up over BF16) and its
// kernel profile (one real step, every node timed between CUDA events, grouped by kernel), then
// Trainer.fromEngine trains it on a Markov source (vocabulary 512 inside GPT-2's 50257, entropy rate
// known) for STEPS steps: the measured step time beside the model's.
//
//   node bench/engine.mjs <out-dir>      PRECISION=auto (default) STEPS=60 BATCH=16 SEQ=1024
//
// Writes <out-dir>/engine.json and <out-dir>/profile-<precision>.md. Needs a GPU.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { TokenLoader, Trainer, formatProfile, markovShard, optimize } from '@deepwell/trainer';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node bench/engine.mjs <out-dir>');
  process.exit(2);
}
mkdirSync(dir, { recursive: true });
const STEPS = Number(process.env.STEPS ?? 60);
const B = Number(process.env.BATCH ?? 16);
const T = Number(process.env.SEQ ?? 1024);
const t0 = performance.now();
const log = (m) => console.log(`[engine.mjs ${((performance.now() - t0) / 1000).toFixed(1)}s] ${m}`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const corpus = new MarkovCorpus({ vocab: 512, seed: 7 });
const shard = markovShard(corpus, 4_000_000, 'markov(512)');
log(`Markov source: entropy rate ${corpus.entropyRate().toFixed(4)} nats/token`);

const results = [];
for (const precision of [process.env.PRECISION ?? 'auto', 'bf16']) {
  const engine = optimize(new GPT('gpt2-small'), { seqLen: T, batchSize: B, precision, device: 'cuda:0' });
  const pp = engine.precisionPolicy;
  const counts = {};
  for (const d of pp.layerPrecisions) counts[d.recipe] = (counts[d.recipe] ?? 0) + 1;
  log(`${precision}: recipe ${pp.recipe}; layers ${JSON.stringify(counts)}`);
  const d = engine.dryrun();
  log(`${precision}: dryrun ${(d.totalBytes / 2 ** 30).toFixed(2)} GiB, modelled ${d.time.ms.toFixed(2)} ms a step (BF16 ${d.time.baselineMs.toFixed(2)}: ${d.time.speedupOverBf16.toFixed(3)}×)`);
  engine.profile(); // warm-up: kernels loaded, cuBLASLt's heuristics cached
  const profiles = [engine.profile(), engine.profile(), engine.profile()];
  const profile = profiles.sort((a, b) => a.stepMs - b.stepMs)[1];
  writeFileSync(join(dir, `profile-${pp.recipe}.md`), `# Kernel profile, GPT-2 124M, ${pp.recipe}, batch ${B}×${T}\n\n${formatProfile(profile)}\n`);
  log(`${precision}: profiled step ${profile.stepMs.toFixed(2)} ms (median of 3, nodes launched one by one)`);
  const train = new TokenLoader({ shards: [shard], batchSize: B, seqLen: T, seed: 1 });
  const trainer = Trainer.fromEngine(engine, { data: { train }, steps: STEPS, optimizer: { lr: 6e-4 }, log: { progress: false } });
  const stepMs = [];
  trainer.on('step', (e) => stepMs.push(e.ms));
  const r = trainer.fit();
  const ms = median(stepMs.slice(Math.floor(STEPS / 3)));
  log(`${precision}: trained ${STEPS} steps, loss ${r.losses[0].loss.toFixed(3)} → ${r.losses.at(-1).loss.toFixed(3)}, ${ms.toFixed(2)} ms a step (median of the last two thirds), ${((B * T) / (ms / 1000) / 1000).toFixed(0)}K tokens/s`);
  results.push({
    precision,
    recipe: pp.recipe,
    layers: counts,
    layerPrecisions: engine.precisionPolicy.layerPrecisions.map(({ layer, kind, recipe, reason, native }) => ({ layer, kind, recipe, reason, native })),
    fallbackHistory: engine.precisionPolicy.fallbackHistory,
    dryrun: { totalBytes: d.totalBytes, flopsPerStep: d.flopsPerStep, time: d.time },
    profile,
    training: { steps: STEPS, firstLoss: r.losses[0].loss, lastLoss: r.losses.at(-1).loss, medianStepMs: ms, tokensPerSecond: (B * T) / (ms / 1000), fallbacks: r.fallbacks.length },
  });
  engine.dispose();
}
const [a, b] = results;
const summary = {
  gpu: process.env.GPU_NAME ?? null,
  date: new Date().toISOString(),
  commit: process.env.DEEPWELL_COMMIT ?? null,
  batch: [B, T],
  entropyRate: corpus.entropyRate(),
  method: 'step time: the Trainer step event ms (one CUDA graph replay with the loss read back), median of the last two thirds of the steps; profile: one step with each node launched alone between CUDA events, median of 3 such steps',
  predictedSpeedup: a.dryrun.time.speedupOverBf16,
  measuredSpeedup: b.training.medianStepMs / a.training.medianStepMs,
  results,
};
writeFileSync(join(dir, 'engine.json'), JSON.stringify(summary, null, 1));
log(`${a.recipe} against bf16: predicted ${summary.predictedSpeedup.toFixed(3)}×, measured ${summary.measuredSpeedup.toFixed(3)}×`);
