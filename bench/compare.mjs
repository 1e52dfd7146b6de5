#!/usr/bin/env node
// Reads the JSON lines of both GEMM benchmarks and prints the table with Deepwell / torch ratios.
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
const by = (impl) => new Map(rows.filter((r) => r.impl === impl).map((r) => [r.name, r]));
const [dw, th] = [by('deepwell'), by('torch')];
console.log('| shape (M×N×K) | Deepwell TFLOP/s | torch TFLOP/s | ratio |\n| --- | --- | --- | --- |');
let worst = Infinity;
for (const [name, d] of dw) {
  const t = th.get(name);
  const ratio = t ? d.tflops / t.tflops : NaN;
  worst = Math.min(worst, ratio);
  console.log(`| ${name} | ${d.tflops.toFixed(1)} | ${t ? t.tflops.toFixed(1) : '-'} | ${ratio.toFixed(3)} |`);
}
console.log(`\nlowest ratio: ${worst.toFixed(3)} (target >= 0.95)`);
