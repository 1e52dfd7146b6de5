#!/usr/bin/env node
// Reads the JSON lines of bench/scaled_gemm.mjs and bench/scaled_gemm_torch.py (several
// alternating rounds, as bench/scaled_gemm.sh runs them) and prints markdown: per shape and mode,
// each side's median TFLOP/s over the rounds, their ratio (Deepwell / torch) and the lowest ratio
// of any one round, and each side's speed-up over its own bf16 GEMM on the same shape (the ratio
// of the medians); then, per mode, the lowest of those ratios. A figure above the GPU's dense peak
// (989 TFLOP/s bf16, 1979 FP8: H100 / H200 SXM) cannot be a measurement: such a side is shown as
// an error, not as a result, as is a side whose rounds printed an error; the notes under the
// table say why, and which PyTorch API ran where it was not the first one tried.
//   node bench/scaled_gemm_compare.mjs $OUT/scaled-gemm-bench.jsonl
import { median, readJsonLines } from './bench-stats.mjs';

const PEAK = { bf16: 989, fp8: 1979 };
const peakOf = (mode) => (mode === 'bf16' ? PEAK.bf16 : PEAK.fp8);
const SIDES = [
  ['deepwell', 'Deepwell'],
  ['torch', 'torch'],
];

const all = readJsonLines(process.argv[2]);
const info = all.filter((r) => r.info);
const rows = all.filter((r) => r.mode !== undefined);
const names = [...new Set(rows.map((r) => r.name))];
const modes = [...new Set(rows.map((r) => r.mode))];
const rounds = [...new Set(rows.map((r) => r.round ?? 1))].sort((a, b) => a - b);
const get = (impl, name, mode, round) => rows.find((r) => r.impl === impl && r.name === name && r.mode === mode && (r.round ?? 1) === round);

const notes = [];
const note = (text) => {
  notes.push(text);
  return `[${notes.length}]`;
};
const f1 = (x) => x.toFixed(1);
const f3 = (x) => x.toFixed(3);

/**
 * One side of one shape and mode over the rounds: `ok` with the valid per-round TFLOP/s (by round)
 * and their median, or not `ok` with the text of its table cell (an error and its note).
 */
function side(impl, name, mode) {
  const got = rounds.map((r) => [r, get(impl, name, mode, r)]).filter(([, row]) => row);
  if (got.length === 0) return { ok: false, cell: '-' };
  const tag = `${impl} ${mode} at ${name}`;
  const marks = [];
  const above = got.filter(([, row]) => row.error === undefined && !(row.tflops <= peakOf(mode)));
  if (above.length) {
    const what = above.map(([r, row]) => `round ${r}: ${Number.isFinite(row.tflops) ? f1(row.tflops) : row.tflops} TFLOP/s (${row.ms} ms)`).join('; ');
    return { ok: false, cell: `**error** ${note(`${tag}: ${what}, above the ${peakOf(mode)} TFLOP/s dense ${mode === 'bf16' ? 'bf16' : 'FP8'} peak: not a measurement (did the kernel run?).`)}` };
  }
  // One note per distinct text, naming the rounds it happened in.
  const byText = new Map();
  const add = (r, text) => byText.set(text, [...(byText.get(text) ?? []), r]);
  for (const [r, row] of got) {
    if (row.error !== undefined) add(r, `${row.api ? `${row.api}: ` : ''}${row.error}${row.errorLast ? ` … ${row.errorLast}` : ''}`);
    else if (row.fallbackFrom?.length) add(r, `ran ${row.api} after ${row.fallbackFrom.map((f) => `${f.api}: ${f.error}`).join('; ')}`);
  }
  for (const [text, rs] of byText) marks.push(note(`${tag}, round${rs.length > 1 ? 's' : ''} ${rs.join(', ')}: ${text}`));
  const valid = got.filter(([, row]) => row.error === undefined);
  if (valid.length === 0) return { ok: false, cell: `**error** ${marks.join(' ')}` };
  const byRound = new Map(valid.map(([r, row]) => [r, row.tflops]));
  const med = median([...byRound.values()]);
  const partial = valid.length < rounds.length ? ` (${valid.length} of ${rounds.length} rounds)` : '';
  return { ok: true, byRound, median: med, cell: `${f1(med)}${partial}${marks.length ? ` ${marks.join(' ')}` : ''}` };
}

// What each side ran on, once per distinct description (with the rounds that printed it).
const described = new Map();
for (const r of info) {
  const i = r.info;
  let text;
  if (r.impl === 'deepwell') {
    text = `Deepwell: cuBLASLt ${i.cublasLt ?? '?'} (${i.cublasLtPath ?? '?'}), addon CUDA runtime ${i.build?.cudartVersion ?? '?'}, archs ${i.build?.cudaArchs ?? '?'}, scaledGemmLt ${i.scaledGemmLt ? 'present' : 'absent'}`;
  } else {
    const recipes = i.scaledMm ? `${i.scaledMm} (${Object.values(i.recipes ?? {}).join(', ')})` : 'no torch.nn.functional.scaled_mm';
    text = `torch ${i.torch}: CUDA ${i.cuda}, cuBLASLt ${i.cublasLt ?? '?'} (${i.cublasLtPath ?? '?'}), ${i.device ?? '?'} sm_${(i.capability ?? []).join('')}, ${recipes}${i.infoError ? `, info error: ${i.infoError}` : ''}`;
  }
  described.set(text, [...(described.get(text) ?? []), r.round ?? 1]);
}
for (const [text, rs] of described) console.log(`- ${text} (round${rs.length > 1 ? 's' : ''} ${rs.join(', ')})`);
if (described.size) console.log('');

const R = rounds.length;
console.log(`| shape (M×N×K) | mode | Deepwell TFLOP/s (median of ${R}) | torch TFLOP/s (median of ${R}) | Deepwell / torch | lowest per-round ratio | Deepwell × its bf16 | torch × its bf16 |`);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
const summary = new Map(modes.map((m) => [m, { medians: [], rounds: [], shapes: 0 }]));
for (const name of names) {
  const base = Object.fromEntries(SIDES.map(([impl]) => [impl, side(impl, name, 'bf16')]));
  for (const mode of modes) {
    const s = mode === 'bf16' ? base : Object.fromEntries(SIDES.map(([impl]) => [impl, side(impl, name, mode)]));
    const [d, t] = [s.deepwell, s.torch];
    let ratio = '-';
    let lowest = '-';
    if (d.ok && t.ok) {
      const per = rounds.filter((r) => d.byRound.has(r) && t.byRound.has(r)).map((r) => d.byRound.get(r) / t.byRound.get(r));
      const sum = summary.get(mode);
      sum.medians.push(d.median / t.median);
      sum.rounds.push(...per);
      sum.shapes++;
      ratio = f3(d.median / t.median);
      lowest = per.length ? f3(Math.min(...per)) : '-';
    }
    const speedup = (impl) => {
      if (mode === 'bf16') return base[impl].ok ? '1' : '-';
      return s[impl].ok && base[impl].ok ? `${(s[impl].median / base[impl].median).toFixed(2)}×` : '-';
    };
    console.log(`| ${name} | ${mode} | ${d.cell} | ${t.cell} | ${ratio} | ${lowest} | ${speedup('deepwell')} | ${speedup('torch')} |`);
  }
}

console.log(`\n| mode | shapes with both sides | lowest ratio of medians | lowest single-round ratio |\n| --- | --- | --- | --- |`);
for (const [mode, sum] of summary) {
  const low = (xs) => (xs.length ? f3(Math.min(...xs)) : '-');
  console.log(`| ${mode} | ${sum.shapes} of ${names.length} | ${low(sum.medians)} | ${low(sum.rounds)} |`);
}

const apis = modes.map((m) => `${m}: ${[...new Set(rows.filter((r) => r.impl === 'torch' && r.mode === m && r.error === undefined).map((r) => r.api))].join(', ') || '-'}`);
if (modes.length) console.log(`\ntorch APIs that ran: ${apis.join('; ')}.`);
if (notes.length) {
  console.log('\nNotes:');
  notes.forEach((n, i) => console.log(`${i + 1}. ${n}`));
}
