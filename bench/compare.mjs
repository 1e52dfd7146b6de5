#!/usr/bin/env node
// Reads the JSON lines of both GEMM benchmarks (several alternating rounds) and prints, per shape,
// each side's median TFLOP/s over the rounds, their ratio, and the lowest ratio of any one round.
import { median, readJsonLines } from './bench-stats.mjs';

const rows = readJsonLines(process.argv[2]);
const names = [...new Set(rows.map((r) => r.name))];
const rounds = [...new Set(rows.map((r) => r.round ?? 1))];
const get = (impl, name, round) => rows.find((r) => r.impl === impl && r.name === name && (r.round ?? 1) === round);
console.log(`| shape (M×N×K) | Deepwell TFLOP/s (median of ${rounds.length}) | torch TFLOP/s (median of ${rounds.length}) | ratio | lowest per-round ratio |\n| --- | --- | --- | --- | --- |`);
let worst = Infinity;
let worstRound = Infinity;
for (const name of names) {
  const d = rounds.map((r) => get('deepwell', name, r)?.tflops).filter((x) => x !== undefined);
  const t = rounds.map((r) => get('torch', name, r)?.tflops).filter((x) => x !== undefined);
  const per = rounds.map((r) => (get('deepwell', name, r)?.tflops ?? NaN) / (get('torch', name, r)?.tflops ?? NaN)).filter((x) => !Number.isNaN(x));
  const ratio = d.length && t.length ? median(d) / median(t) : NaN;
  worst = Math.min(worst, ratio);
  worstRound = Math.min(worstRound, ...per);
  console.log(`| ${name} | ${d.length ? median(d).toFixed(1) : '-'} | ${t.length ? median(t).toFixed(1) : '-'} | ${ratio.toFixed(3)} | ${per.length ? Math.min(...per).toFixed(3) : '-'} |`);
}
console.log(`\nlowest ratio of medians: ${worst.toFixed(3)}; lowest single-round ratio: ${worstRound.toFixed(3)} (target >= 0.95)`);
