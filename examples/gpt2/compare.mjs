// Both sides' per-step logs side by side: loss at each logged step, the largest gap after warm-up,
// and throughput as tokens/s from the median step time over the steps after the first 10 (the
// first steps include compilation and graph capture), MFU from dryrun's FLOPs per step; all the
// loss curves in one SVG (<out>/loss-curves.svg); where Deepwell's profiled step went.
//   node compare.mjs <out dir>
import { readFileSync, writeFileSync } from 'node:fs';
import { lossCurveSvg } from '@deepwell/trainer';

const out = process.argv[2] ?? 'runs/gpt2';
const cfg = JSON.parse(readFileSync(`${out}/config.json`, 'utf8'));
const read = (f) => readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
const dw = read(`${out}/deepwell.jsonl`);
const flops = dw.find((r) => r.event === 'start').flopsPerStep;
const runs = { deepwell: dw.filter((r) => r.event === 'step') };
// Peak device memory each side reported (Deepwell: its allocator's high-water mark; PyTorch:
// torch.cuda.max_memory_allocated), from the record that carries it.
const peak = { deepwell: dw.find((r) => r.peakMemoryBytes !== undefined)?.peakMemoryBytes };
for (const mode of ['eager', 'compile', 'compile-fp8']) {
  try {
    const rows = read(`${out}/torch-${mode}.jsonl`);
    runs[`torch-${mode}`] = rows.filter((r) => r.event === 'step');
    peak[`torch-${mode}`] = rows.find((r) => r.peakMemoryBytes !== undefined)?.peakMemoryBytes;
  } catch {}
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const tokens = cfg.B * cfg.T;
console.log(`| implementation | median step (ms, steps 11-${cfg.steps}) | tokens/s | MFU (989 TFLOP/s bf16) | peak memory (GiB) |\n| --- | --- | --- | --- | --- |`);
for (const [name, steps] of Object.entries(runs)) {
  const ms = median(steps.filter((s) => s.step > 10).map((s) => s.ms));
  const gib = peak[name] === undefined ? '-' : (peak[name] / 2 ** 30).toFixed(2);
  console.log(`| ${name} | ${ms.toFixed(1)} | ${Math.round(tokens / (ms / 1000)).toLocaleString('en')} | ${((100 * flops) / (ms / 1000) / 989e12).toFixed(1)}% | ${gib} |`);
}
const names = Object.keys(runs);
console.log(`\n| step | ${names.join(' | ')} |\n| --- | ${names.map(() => '---').join(' | ')} |`);
for (let s = 1; s <= cfg.steps; s++) {
  if (s !== 1 && s % 10 !== 0) continue;
  console.log(`| ${s} | ${names.map((n) => runs[n].find((r) => r.step === s)?.loss.toFixed(4) ?? '-').join(' | ')} |`);
}
for (const n of names.filter((x) => x !== 'deepwell')) {
  let worst = 0;
  let at = 0;
  for (const r of runs.deepwell) {
    if (r.step <= cfg.warmup) continue;
    const t = runs[n].find((x) => x.step === r.step);
    if (t && Math.abs(t.loss - r.loss) > worst) (worst = Math.abs(t.loss - r.loss)), (at = r.step);
  }
  console.log(`\nlargest |Δloss| deepwell vs ${n} after warm-up (step > ${cfg.warmup}): ${worst.toFixed(4)} at step ${at} (target <= 0.02)`);
}

// Both curves in one picture.
const colors = { deepwell: '#1f77b4', 'torch-eager': '#ff7f0e', 'torch-compile': '#2ca02c', 'torch-compile-fp8': '#d62728' };
const svg = lossCurveSvg(
  Object.entries(runs).map(([name, steps]) => ({ name, points: steps.map((r) => [r.step, r.loss]), color: colors[name] ?? '#777' })),
  { title: `GPT ${cfg.model ? `${cfg.model.nLayer}L × ${cfg.model.nEmbd}` : "124M"}, B ${cfg.B} × T ${cfg.T}, ${cfg.recipe ?? "bf16"}: training loss` },
);
writeFileSync(`${out}/loss-curves.svg`, svg);
console.log(`\nboth loss curves: ${out}/loss-curves.svg`);

// Where Deepwell's step goes: the profiled step (Trainer profileStep), by part of the model and by kernel.
const prof = dw.find((r) => r.event === 'profile');
if (prof) {
  const part = (n) => {
    if (/\.attn$/.test(n.scope)) return 'attention core (QKᵀ, scale, mask, softmax, ·V, their backward, head layout copies)';
    if (n.phase === 'optimizer') return 'optimizer and clipping';
    if (n.op.startsWith('matmul')) return 'other GEMMs (Linear layers, tied head; fused epilogues)';
    if (n.op.includes('layernorm')) return 'layernorm (+ residual)';
    if (n.op.startsWith('cross_entropy')) return 'cross-entropy';
    return 'other (embeddings, casts, GELU backward, adds, …)';
  };
  const sumBy = (key) => {
    const m = new Map();
    for (const n of prof.nodes) m.set(key(n), (m.get(key(n)) ?? 0) + n.ms);
    return [...m].sort((a, b) => b[1] - a[1]);
  };
  const nodeSum = prof.nodes.reduce((a, n) => a + n.ms, 0);
  console.log(`\nDeepwell step ${prof.step} profiled node by node (CUDA events around each node; launched eagerly, not replayed): ${prof.totalMs.toFixed(1)} ms on the device, ${nodeSum.toFixed(1)} ms inside nodes\n`);
  console.log('| part of the step | ms | share |\n| --- | --- | --- |');
  for (const [k, ms] of sumBy(part)) console.log(`| ${k} | ${ms.toFixed(2)} | ${((100 * ms) / nodeSum).toFixed(1)}% |`);
  console.log('\n| kernel | ms | share |\n| --- | --- | --- |');
  for (const [k, ms] of sumBy((n) => n.kernel).slice(0, 15)) console.log(`| ${k} | ${ms.toFixed(2)} | ${((100 * ms) / nodeSum).toFixed(1)}% |`);
}
