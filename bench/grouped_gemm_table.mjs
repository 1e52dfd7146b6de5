// The grouped GEMM bench's results (bench/grouped_gemm.sh's grouped-gemm-bench.jsonl) as a markdown
// table: per case, each implementation's TFLOP/s (the median over rounds of each round's median),
// Deepwell's best tiling against torch._grouped_mm, and an FP8 case against our bf16 case of the
// same shape (the same name without "fp8-", or the bf16 "wgrad" case for "fp8-wgrad").
//   node bench/grouped_gemm_table.mjs <grouped-gemm-bench.jsonl>
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('Usage: node bench/grouped_gemm_table.mjs <grouped-gemm-bench.jsonl>');
  process.exit(2);
}
const rows = readFileSync(file, 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l))
  .filter((r) => r.name && typeof r.tflops === 'number');
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cases = [...new Set(rows.map((r) => r.name))];
const impls = ['deepwell', 'deepwell-wide', 'deepwell-pingpong', 'deepwell-with-quantize', 'torch'].filter((i) => rows.some((r) => r.impl === i));
const tf = (name, impl) => {
  const xs = rows.filter((r) => r.name === name && r.impl === impl).map((r) => r.tflops);
  return xs.length ? median(xs) : null;
};
const bestOurs = (name) => Math.max(...['deepwell', 'deepwell-wide', 'deepwell-pingpong'].map((i) => tf(name, i) ?? 0));
const bf16Twin = (name) => (name.includes('fp8-wgrad') ? name.replace('fp8-wgrad', 'wgrad') : name.replace('fp8-', ''));
const fmt = (x) => (x == null ? '—' : x.toFixed(0));
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : '—');
console.log(`| case | ${impls.join(' | ')} | best ours × torch | FP8 × our bf16 |`);
console.log(`| --- | ${impls.map(() => '---').join(' | ')} | --- | --- |`);
for (const name of cases) {
  const best = bestOurs(name);
  const fp8 = name.includes('fp8');
  const twin = fp8 ? bestOurs(bf16Twin(name)) : 0;
  console.log(`| ${name} | ${impls.map((i) => fmt(tf(name, i))).join(' | ')} | ${ratio(best, tf(name, 'torch'))} | ${fp8 ? ratio(tf(name, 'deepwell'), twin) : ''} |`);
}
const errors = readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"error"'));
if (errors.length) console.log(`\nErrors:\n${errors.map((e) => `- ${e}`).join('\n')}`);
