// Two Deepwell runs of bench.mjs side by side, step by step: whether the losses are the same bits
// (the JSON lines keep every f32 loss exactly), and the median tokens/s of each after step 10.
//   node examples/gpt2/same-losses.mjs <recorded deepwell.jsonl> <new deepwell.jsonl>
import { readFileSync } from 'node:fs';

const [a, b] = process.argv.slice(2).map((f) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'step'));
if (!a || !b) throw new Error('usage: node same-losses.mjs <recorded.jsonl> <new.jsonl>');
const n = Math.min(a.length, b.length);
let same = 0;
let firstDiff = null;
let worst = 0;
for (let i = 0; i < n; i++) {
  if (a[i].step !== b[i].step) throw new Error(`step ${a[i].step} beside step ${b[i].step}`);
  if (a[i].loss === b[i].loss) same++;
  else {
    firstDiff ??= { step: a[i].step, recorded: a[i].loss, now: b[i].loss };
    worst = Math.max(worst, Math.abs(a[i].loss - b[i].loss));
  }
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const tps = (r) => median(r.filter((e) => e.step > 10).map((e) => e.tokensPerSecond));
console.log(JSON.stringify({ steps: n, identicalLosses: same, firstDifference: firstDiff, largestDifference: worst, tokensPerSecond: { recorded: Math.round(tps(a)), now: Math.round(tps(b)), ratio: +(tps(b) / tps(a)).toFixed(4) } }));
