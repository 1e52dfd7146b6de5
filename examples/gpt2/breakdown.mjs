// Where Deepwell's step goes, kernel by kernel: the profiled step of a Trainer log (its `profile`
// record: every node launched between CUDA events, not replayed), summed by kernel and phase, with
// launch counts; given two logs, before and after side by side.
//   node breakdown.mjs <deepwell.jsonl> [<another deepwell.jsonl>] [--md FILE]
import { readFileSync, writeFileSync } from 'node:fs';

/** The profile record of a Trainer JSONL log, or null. */
export function profileOf(file) {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{"event":"profile"')) continue;
    return JSON.parse(line);
  }
  return null;
}

/** Per kernel and phase: launches (reshapes that alias launch nothing and are left out) and ms. */
export function kernelRows(profile) {
  const rows = new Map();
  for (const n of profile.nodes) {
    if (n.kernel === 'alias') continue;
    const key = `${n.kernel}|${n.phase}`;
    const r = rows.get(key) ?? { kernel: n.kernel, phase: n.phase, launches: 0, ms: 0 };
    r.launches++;
    r.ms += n.ms;
    rows.set(key, r);
  }
  return [...rows.values()].sort((a, b) => b.ms - a.ms);
}

/** A markdown table of one profile, or of two side by side (keyed by kernel and phase). */
export function breakdownTable(before, after = null) {
  const a = kernelRows(before);
  const total = (p) => p.nodes.reduce((s, n) => s + n.ms, 0);
  const launches = (p) => p.nodes.filter((n) => n.kernel !== 'alias').length;
  if (!after) {
    const lines = ['| kernel | phase | launches | ms | share |', '| --- | --- | --- | --- | --- |'];
    for (const r of a) lines.push(`| ${r.kernel} | ${r.phase} | ${r.launches} | ${r.ms.toFixed(3)} | ${((100 * r.ms) / total(before)).toFixed(1)}% |`);
    lines.push(`| **all** | | ${launches(before)} | ${total(before).toFixed(3)} | 100% |`);
    return lines.join('\n');
  }
  const b = new Map(kernelRows(after).map((r) => [`${r.kernel}|${r.phase}`, r]));
  const keys = [...new Set([...a.map((r) => `${r.kernel}|${r.phase}`), ...b.keys()])];
  const at = (rows, k) => rows.find((r) => `${r.kernel}|${r.phase}` === k);
  keys.sort((x, y) => Math.max(at(a, y)?.ms ?? 0, b.get(y)?.ms ?? 0) - Math.max(at(a, x)?.ms ?? 0, b.get(x)?.ms ?? 0));
  const lines = ['| kernel | phase | launches before | ms before | launches after | ms after | Δ ms |', '| --- | --- | --- | --- | --- | --- | --- |'];
  for (const k of keys) {
    const x = at(a, k);
    const y = b.get(k);
    const [kernel, phase] = k.split('|');
    lines.push(`| ${kernel} | ${phase} | ${x?.launches ?? 0} | ${(x?.ms ?? 0).toFixed(3)} | ${y?.launches ?? 0} | ${(y?.ms ?? 0).toFixed(3)} | ${((y?.ms ?? 0) - (x?.ms ?? 0)).toFixed(3)} |`);
  }
  lines.push(`| **all** | | ${launches(before)} | ${total(before).toFixed(3)} | ${launches(after)} | ${total(after).toFixed(3)} | ${(total(after) - total(before)).toFixed(3)} |`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const md = args.includes('--md') ? args.splice(args.indexOf('--md'), 2)[1] : null;
  if (args.length < 1 || args.length > 2) {
    console.error('usage: node breakdown.mjs <deepwell.jsonl> [<another deepwell.jsonl>] [--md FILE]');
    process.exit(2);
  }
  const profiles = args.map((f) => {
    const p = profileOf(f);
    if (!p) throw new Error(`${f}: no profile record (the Trainer writes one when given profileStep)`);
    return p;
  });
  const head = profiles.map((p, i) => `${args[i]}: step ${p.step} profiled, ${p.totalMs.toFixed(2)} ms on the device`).join('\n');
  const text = `${head}\n\n${breakdownTable(profiles[0], profiles[1] ?? null)}\n`;
  console.log(text);
  if (md) writeFileSync(md, text);
}
