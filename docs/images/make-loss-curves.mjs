// The loss-curve pictures of docs/images/: the tiny GPT trained on the CPU for 300 steps on a
// synthetic Markov corpus (the main job's model, data, batch and schedule; evaluated every 50
// steps), drawn by @deepwell/trainer's lossCurveSvg with the corpus's entropy rate as the floor
// (loss-curve-after.png), and the same losses drawn by the lossCurveSvg of commit 8f3866d, before the
// picture had axis labels, smoothing, eval markers or the floor (loss-curve-before.png: read from
// git and transpiled, so this needs the repository's history). About 10 s on two CPU cores.
//
//   pnpm build && node docs/images/make-loss-curves.mjs [--no-before]
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { svgToPng } from '../../scripts/svg-to-png.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const dist = (pkg) => pathToFileURL(join(root, 'packages', pkg, 'dist', 'index.js')).href;
const { GPT, MarkovCorpus } = await import(dist('nn'));
const { TokenLoader, Trainer, lossCurveSvg, markovShard } = await import(dist('trainer'));

const [B, T, steps] = [8, 16, 300];
const corpus = new MarkovCorpus({ vocab: 16, seed: 1 });
const trainer = new Trainer({
  model: new GPT('tiny'),
  train: new TokenLoader({ shards: [markovShard(corpus, 400_000, 'markov train')], batchSize: B, seqLen: T, seed: 1 }),
  val: new TokenLoader({ shards: [markovShard(corpus, 40_000, 'markov val')], batchSize: B, seqLen: T, shuffle: false }),
  device: 'cpu',
  steps,
  optimizer: { lr: 3e-3, weightDecay: 0 },
  schedule: { warmup: 20, minLr: 3e-4 },
  evalEvery: 50,
  evalBatches: 20,
  seed: 1,
  log: { progress: false },
});
const { losses, evals } = trainer.fit();
// The series as the Trainer draws them (trainer.ts), and its title.
const series = [
  { name: 'train loss', points: losses.map((l) => [l.step, l.loss]), color: '#1f77b4' },
  { name: 'eval loss', points: evals.map((l) => [l.step, l.loss]), color: '#d62728' },
];
const title = `loss (cpu, f32, batch ${B}×${T})`;
const entropy = corpus.entropyRate();

const write = (name, svg) => {
  writeFileSync(join(here, name), svgToPng(svg));
  console.log(`wrote docs/images/${name}`);
};
write('loss-curve-after.png', lossCurveSvg(series, { title, floor: { value: entropy, label: `entropy rate of the corpus, ${entropy.toFixed(3)}: the lowest loss a model can reach` } }));

if (!process.argv.includes('--no-before')) {
  const ts = (await import('typescript')).default;
  const old = execFileSync('git', ['show', '8f3866d:packages/trainer/src/plot.ts'], { cwd: root, encoding: 'utf8' });
  const js = ts.transpileModule(old, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
  const before = await import(`data:text/javascript;base64,${Buffer.from(js).toString('base64')}`);
  write('loss-curve-before.png', before.lossCurveSvg(series, { title }));
}
