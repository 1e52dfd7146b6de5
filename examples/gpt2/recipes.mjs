// The recipes side by side: one bench.mjs run per recipe (each in its own out dir, on the same data
// and initial weights: both come from the seed), and the PyTorch runs found in those dirs
// (torch-compile.jsonl, torch-compile-fp8.jsonl). Per run: median step time over the steps after the
// first 10 (compilation and capture), tokens/s, speed against our bf16 run, the mean loss of the
// last 20 steps and its distance from bf16's, peak memory, and (Deepwell) the share of the profiled
// step that quantization (quantize nodes) and the FP8 GEMMs (scaled_matmul) took.
//   node recipes.mjs <dir of the bf16 run> <dir of another recipe> ...
import { readFileSync, existsSync } from 'node:fs';

const dirs = process.argv.slice(2);
const read = (f) => readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const dir of dirs) {
  const cfg = JSON.parse(readFileSync(`${dir}/config.json`, 'utf8'));
  const tokens = cfg.B * cfg.T;
  const runs = [['deepwell ' + cfg.recipe, `${dir}/deepwell.jsonl`], ['torch.compile', `${dir}/torch-compile.jsonl`], ['torch.compile fp8 (tensorwise, torchao-style)', `${dir}/torch-compile-fp8.jsonl`]];
  for (const [name, file] of runs) {
    if (!existsSync(file)) continue;
    const log = read(file);
    const steps = log.filter((r) => r.event === 'step');
    if (steps.length < 20) continue;
    const ms = median(steps.filter((s) => s.step > 10).map((s) => s.ms));
    const last = steps.slice(-20);
    const loss = last.reduce((a, r) => a + r.loss, 0) / last.length;
    const peak = log.find((r) => r.peakMemoryBytes !== undefined)?.peakMemoryBytes;
    const prof = log.find((r) => r.event === 'profile');
    let quant = '-';
    let fp8 = '-';
    if (prof) {
      const total = prof.nodes.reduce((a, n) => a + n.ms, 0);
      const share = (op) => prof.nodes.filter((n) => n.op === op).reduce((a, n) => a + n.ms, 0);
      quant = `${share('quantize').toFixed(2)} ms (${((100 * share('quantize')) / total).toFixed(1)}%)`;
      fp8 = `${share('scaled_matmul').toFixed(2)} ms (${((100 * share('scaled_matmul')) / total).toFixed(1)}%)`;
    }
    rows.push({ name, ms, tps: tokens / (ms / 1000), loss, steps: steps.length, peak, quant, fp8 });
  }
}
const base = rows.find((r) => r.name === 'deepwell bf16');
const fp8torch = rows.find((r) => r.name.startsWith('torch.compile fp8'));
console.log('| run | steps | median step (ms) | tokens/s | × our bf16 | × torch fp8 | mean loss, last 20 steps | vs bf16 | peak (GiB) | quantize (profiled step) | FP8 GEMMs |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  const vs = base ? `${(r.tps / base.tps).toFixed(3)}×` : '-';
  const vt = fp8torch ? `${(r.tps / fp8torch.tps).toFixed(3)}×` : '-';
  const dl = base ? `${((100 * (r.loss - base.loss)) / base.loss).toFixed(2)}%` : '-';
  console.log(`| ${r.name} | ${r.steps} | ${r.ms.toFixed(1)} | ${Math.round(r.tps).toLocaleString('en')} | ${vs} | ${vt} | ${r.loss.toFixed(4)} | ${dl} | ${r.peak ? (r.peak / 2 ** 30).toFixed(2) : '-'} | ${r.quant} | ${r.fp8} |`);
}
