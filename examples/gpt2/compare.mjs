// The runs of run.sh side by side: Deepwell's (the bf16 run in <out>, each other recipe in
// <out>/recipe-<name>/) and PyTorch's (<out>/torch-<mode>.jsonl). Loss at each logged step, the
// largest gap after warm-up, throughput as tokens/s from the median step time over the steps after
// the first 10 (the first steps include compilation and graph capture; the first half of a run of
// under 20 steps), MFU from dryrun's FLOPs per
// step, peak device memory; Deepwell's host time per replayed step and its bytes in use over the
// replayed steps; all the loss curves in one SVG (<out>/loss-curves.svg); where Deepwell's profiled
// step went (<out>/breakdown.md); and every figure in <out>/summary.json (with the kernel the
// registry chose for each op, from bench.mjs's kernels.json).
//   node compare.mjs <out dir>
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { MarkovCorpus } from '@deepwell/nn';
import { lossCurveSvg } from '@deepwell/trainer';
import { breakdownTable, kernelRows } from './breakdown.mjs';

const out = process.argv[2] ?? 'runs/gpt2';
if (!existsSync(`${out}/config.json`) || !existsSync(`${out}/deepwell.jsonl`)) {
  console.error(`compare.mjs: no bench.mjs run in ${out} (it writes config.json and deepwell.jsonl there): run bash examples/gpt2/run.sh, or node examples/gpt2/bench.mjs <steps> ${out}, first\nUsage: node compare.mjs <out dir>`);
  process.exit(2);
}
const cfg = JSON.parse(readFileSync(`${out}/config.json`, 'utf8'));
const read = (f) => readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const tokens = cfg.B * cfg.T;
// Steps left out of the timing: compilation and graph capture.
const skip = Math.min(10, Math.floor(cfg.steps / 2));

// Every run: its step records, its peak (Deepwell: the allocator's high-water mark; PyTorch:
// torch.cuda.max_memory_allocated), and Deepwell's log.
const runs = {};
const addDeepwell = (dir) => {
  const log = read(`${dir}/deepwell.jsonl`);
  const c = JSON.parse(readFileSync(`${dir}/config.json`, 'utf8'));
  const kernels = existsSync(`${dir}/kernels.json`) ? JSON.parse(readFileSync(`${dir}/kernels.json`, 'utf8')) : null;
  runs[`deepwell ${c.recipe ?? 'bf16'}`] = { steps: log.filter((r) => r.event === 'step'), peak: log.find((r) => r.peakMemoryBytes !== undefined)?.peakMemoryBytes, log, kernels };
};
addDeepwell(out);
for (const d of readdirSync(out).filter((d) => d.startsWith('recipe-')).sort()) if (existsSync(`${out}/${d}/deepwell.jsonl`)) addDeepwell(`${out}/${d}`);
for (const mode of ['eager', 'compile', 'compile-fp8']) {
  if (!existsSync(`${out}/torch-${mode}.jsonl`)) continue;
  const rows = read(`${out}/torch-${mode}.jsonl`);
  runs[`torch-${mode}`] = { steps: rows.filter((r) => r.event === 'step'), peak: rows.find((r) => r.peakMemoryBytes !== undefined)?.peakMemoryBytes };
}
const flops = runs['deepwell bf16'].log.find((r) => r.event === 'start').flopsPerStep;
const stats = {};
for (const [name, r] of Object.entries(runs)) {
  const ms = median(r.steps.filter((s) => s.step > skip).map((s) => s.ms));
  const last = r.steps.slice(-20);
  stats[name] = { steps: r.steps.length, medianStepMs: ms, tokensPerSecond: tokens / (ms / 1000), mfu: flops / (ms / 1000) / 989e12, peakMemoryBytes: r.peak ?? null, meanLossLast20: last.reduce((a, x) => a + x.loss, 0) / last.length, finalLoss: r.steps.at(-1)?.loss };
}
const compiled = stats['torch-compile'];
for (const s of Object.values(stats)) {
  s.vsTorchCompile = compiled ? s.tokensPerSecond / compiled.tokensPerSecond : null;
  s.memoryVsTorchCompile = compiled?.peakMemoryBytes && s.peakMemoryBytes ? s.peakMemoryBytes / compiled.peakMemoryBytes : null;
}

console.log(`| implementation | median step (ms, steps ${skip + 1}-${cfg.steps}) | tokens/s | × torch.compile | MFU (989 TFLOP/s bf16) | peak memory (GiB) |\n| --- | --- | --- | --- | --- | --- |`);
for (const [name, s] of Object.entries(stats)) {
  const gib = s.peakMemoryBytes === null ? '-' : (s.peakMemoryBytes / 2 ** 30).toFixed(2);
  console.log(`| ${name} | ${s.medianStepMs.toFixed(1)} | ${Math.round(s.tokensPerSecond).toLocaleString('en')} | ${s.vsTorchCompile === null ? '-' : `${s.vsTorchCompile.toFixed(3)}×`} | ${(100 * s.mfu).toFixed(1)}% | ${gib} |`);
}
const names = Object.keys(runs);
console.log(`\n| step | ${names.join(' | ')} |\n| --- | ${names.map(() => '---').join(' | ')} |`);
for (let s = 1; s <= cfg.steps; s++) {
  if (s !== 1 && s % 10 !== 0) continue;
  console.log(`| ${s} | ${names.map((n) => runs[n].steps.find((r) => r.step === s)?.loss.toFixed(4) ?? '-').join(' | ')} |`);
}
// The largest loss gap after warm-up between each Deepwell run and each PyTorch run. A MoE GPT's
// loss is a bf16 value on both sides (Deepwell's autocast adds the load-balancing loss to the
// cross-entropy in bf16, and bench_torch.py does the same): one bf16 step is 2^(floor(log2 loss) - 7),
// 0.0156 for a loss from 2 to 4 and 0.031 from 4 to 8, so single steps can differ by a whole step;
// for it the gap of the means of 10-step windows after warm-up is given too.
const windowGap = (a, b) => {
  let worst = 0;
  let at = 0;
  const mean = (rows, s0) => {
    const xs = rows.filter((r) => r.step >= s0 && r.step < s0 + 10).map((r) => r.loss);
    return xs.length === 10 ? xs.reduce((x, y) => x + y, 0) / 10 : null;
  };
  for (let s0 = cfg.warmup + 1; s0 + 9 <= cfg.steps; s0 += 10) {
    const [ma, mb] = [mean(a, s0), mean(b, s0)];
    if (ma !== null && mb !== null && Math.abs(ma - mb) > worst) (worst = Math.abs(ma - mb)), (at = s0);
  }
  return { worst, at };
};
const gaps = [];
// The largest single-step gap after warm-up, and for a MoE the 10-step window means' too.
const lossGap = (a, b) => {
  let worst = 0;
  let at = 0;
  for (const r of runs[a].steps) {
    if (r.step <= cfg.warmup) continue;
    const t = runs[b].steps.find((x) => x.step === r.step);
    if (t && Math.abs(t.loss - r.loss) > worst) (worst = Math.abs(t.loss - r.loss)), (at = r.step);
  }
  return { worst, at, w: cfg.moe ? windowGap(runs[a].steps, runs[b].steps) : null };
};
const windowText = (w) => `largest |Δ| of 10-step mean losses after warm-up ${w.at ? `${w.worst.toFixed(4)} (steps ${w.at}-${w.at + 9})` : '- (no whole 10-step window after warm-up)'}`;
for (const d of names.filter((x) => x.startsWith('deepwell'))) {
  for (const n of names.filter((x) => x.startsWith('torch'))) {
    const { worst, at, w } = lossGap(d, n);
    gaps.push({ deepwell: d, torch: n, largestLossGap: worst, atStep: at, ...(w ? { largestWindowMeanGap: w.worst, atWindowFrom: w.at } : {}) });
    console.log(`largest |Δloss| ${d} vs ${n} after warm-up (step > ${cfg.warmup}): ${worst.toFixed(4)} at step ${at} (target <= 0.02)`);
    if (w) console.log(`  MoE (losses are bf16 values on both sides): ${windowText(w)}`);
  }
}
// PyTorch against itself (eager against torch.compile: the same model, data and weights, bf16
// roundings in another order): how far two correct bf16 implementations drift apart, the floor any
// cross-implementation gap is read against.
const torchRuns = names.filter((x) => x.startsWith('torch') && !x.includes('fp8'));
const floors = [];
for (let i = 0; i < torchRuns.length; i++)
  for (let j = i + 1; j < torchRuns.length; j++) {
    const { worst, at, w } = lossGap(torchRuns[i], torchRuns[j]);
    floors.push({ a: torchRuns[i], b: torchRuns[j], largestLossGap: worst, atStep: at, ...(w ? { largestWindowMeanGap: w.worst, atWindowFrom: w.at } : {}) });
    console.log(`PyTorch against itself: largest |Δloss| ${torchRuns[i]} vs ${torchRuns[j]} after warm-up: ${worst.toFixed(4)} at step ${at}${w ? `; ${windowText(w)}` : ''}`);
  }
// Deepwell on the device: the host time of each replayed step (steps 3 on: the first two run
// eagerly and capture) and the allocator's bytes in use over them.
const device = {};
for (const d of names.filter((x) => x.startsWith('deepwell'))) {
  const replayed = runs[d].steps.filter((s) => s.step > 2 && s.hostMs !== undefined);
  if (replayed.length === 0) continue;
  const inUse = new Set(replayed.map((s) => s.inUseBytes));
  // The medians of the host time's parts (lastHostSplit: check, stage, launch, outputs), where logged.
  const split = replayed[0].hostSplit ? Object.fromEntries(Object.keys(replayed[0].hostSplit).map((k) => [k, median(replayed.map((s) => s.hostSplit[k]))])) : null;
  device[d] = { replayedSteps: replayed.length, hostUsMedian: 1000 * median(replayed.map((s) => s.hostMs)), hostUsMax: 1000 * Math.max(...replayed.map((s) => s.hostMs)), hostSplitUsMedian: split, inUseBytesConstant: inUse.size === 1, inUseBytes: [...inUse] };
  const parts = split ? ` (medians of its parts, µs: ${Object.entries(split).map(([k, v]) => `${k.replace(/Us$/, '')} ${v.toFixed(1)}`).join(', ')})` : '';
  console.log(`${d}: host time per replayed step median ${device[d].hostUsMedian.toFixed(1)} µs${parts} (max ${device[d].hostUsMax.toFixed(1)}) over ${replayed.length} steps (target < 50 µs); bytes in use ${inUse.size === 1 ? `constant at ${[...inUse][0]}` : `varied: ${[...inUse].slice(0, 5).join(', ')}`}`);
}

const colors = ['#1f77b4', '#9467bd', '#8c564b', '#ff7f0e', '#2ca02c', '#d62728'];
// The data's floor: bench.mjs's chain (seed 7) over cfg.symbols symbols, spread over the vocabulary
// (symbol x is token x · spread mod vocab): where that is one to one, the chain's entropy rate is
// the lowest loss any model can reach (a small model's vocabulary merges symbols: no floor then).
const vocab = cfg.model?.vocabSize ?? 50304;
const oneToOne = cfg.symbols && new Set(Array.from({ length: cfg.symbols }, (_, x) => (x * cfg.spread) % vocab)).size === cfg.symbols;
const entropy = oneToOne ? new MarkovCorpus({ vocab: cfg.symbols, seed: 7 }).entropyRate() : null;
const svg = lossCurveSvg(
  names.map((name, i) => ({ name, points: runs[name].steps.map((r) => [r.step, r.loss]), color: colors[i % colors.length] })),
  {
    title: `GPT ${cfg.model ? `${cfg.model.nLayer}L × ${cfg.model.nEmbd}` : '124M'}${cfg.moe ? `, MoE ${cfg.moe.experts} experts top-${cfg.moe.topK}` : ''}, B ${cfg.B} × T ${cfg.T}: training loss`,
    ...(entropy !== null ? { floor: { value: entropy, label: `entropy rate of the data, ${entropy.toFixed(3)}: the lowest loss a model can reach` } } : {}),
  },
);
writeFileSync(`${out}/loss-curves.svg`, svg);
console.log(`\nthe loss curves: ${out}/loss-curves.svg`);

// Where each Deepwell run's profiled step went, kernel by kernel.
const breakdowns = {};
let md = '';
for (const d of names.filter((x) => x.startsWith('deepwell'))) {
  const prof = runs[d].log.find((r) => r.event === 'profile');
  if (!prof) continue;
  breakdowns[d] = { step: prof.step, totalMs: prof.totalMs, kernels: kernelRows(prof), chosen: runs[d].kernels };
  md += `## ${d}: step ${prof.step} profiled node by node (CUDA events around each node; launched eagerly, not replayed): ${prof.totalMs.toFixed(2)} ms on the device\n\n${breakdownTable(prof)}\n\n`;
}
if (md) {
  writeFileSync(`${out}/breakdown.md`, md);
  console.log(`per-kernel breakdown: ${out}/breakdown.md`);
}
let gpu = null;
try {
  gpu = execFileSync('nvidia-smi', ['--query-gpu=name,driver_version', '--format=csv,noheader'], { encoding: 'utf8' }).trim().split('\n')[0];
} catch {}
// The commit that ran: DEEPWELL_COMMIT where the checkout's own .git may not be this tree's (the
// GPU host's copy: scripts/device-pack.sh records it), else git's HEAD here.
let commit = process.env.DEEPWELL_COMMIT || null;
try {
  commit ??= execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
} catch {}
const summary = { date: new Date().toISOString(), gpu, commit, config: cfg, method: `median step time over steps ${skip + 1} on (Deepwell: wall clock per Trainer step, the step a replayed CUDA graph; PyTorch: CUDA events around each step); peak: allocator high-water mark (Deepwell) and torch.cuda.max_memory_allocated`, runs: stats, lossGaps: gaps, torchAgainstItself: floors, device, breakdowns };
writeFileSync(`${out}/summary.json`, `${JSON.stringify(summary, null, 1)}\n`);
console.log(`summary: ${out}/summary.json`);
