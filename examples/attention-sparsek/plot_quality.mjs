// One picture of several quality.mjs runs of the same task and dense model: the dense curve (of the
// first run) and each run's sparsek curve (from its switch step, when it has one), with the chance
// level. Curves are the mean of each 20 steps, so the picture stays small.
//
//   node plot_quality.mjs out.svg quality.json [quality.json ...]
import { readFileSync, writeFileSync } from 'node:fs';
import { lossCurveSvg } from '@deepwell/trainer';

const [out, ...files] = process.argv.slice(2);
if (!out?.endsWith('.svg') || files.length === 0) throw new Error('Expected: node plot_quality.mjs out.svg quality.json [quality.json ...]');
const runs = files.map((f) => JSON.parse(readFileSync(f, 'utf8')));
const { T, vocab, chanceLoss } = runs[0].task;
for (const [i, r] of runs.entries()) {
  if (r.task.T !== T || r.task.vocab !== vocab || r.runs.dense.finalLoss !== runs[0].runs.dense.finalLoss) {
    throw new Error(`Expected runs of one task and one dense model but ${files[i]} differs from ${files[0]}`);
  }
}

/** [step, mean loss] of each 20 steps from `from` on. */
function curve(run, from) {
  const pts = [];
  for (let i = from; i < run.loss.length; i += 20) {
    const chunk = run.loss.slice(i, i + 20);
    pts.push([run.steps[i + chunk.length - 1], chunk.reduce((a, b) => a + b, 0) / chunk.length]);
  }
  return pts;
}

const colors = ['#d62728', '#ff7f0e', '#2ca02c', '#9467bd'];
const dense = runs[0].runs.dense;
const series = [{ name: `dense (${dense.finalLoss.toFixed(2)})`, points: curve(dense, 0), color: '#1f77b4' }];
for (const [i, r] of runs.entries()) {
  const s = r.config.switchAt ?? 0;
  const k = r.config;
  series.push({
    name: `sparsek top-${k.topK}×${k.blockSize}${s ? ` from dense step ${s}` : ' from the start'} (${r.runs.sparsek.finalLoss.toFixed(2)})`,
    points: curve(r.runs.sparsek, s),
    color: colors[i % colors.length],
  });
}
series.push({ name: `chance log ${vocab}`, points: [[1, chanceLoss], [dense.steps.at(-1), chanceLoss]], color: '#999999' });
const title = `copy task, T ${T}: loss on the copy (${runs[0].deviceName}, ${dense.precision}, batch ${runs[0].config.batch}; mean of 20 steps)`;
writeFileSync(out, lossCurveSvg(series, { title }));
console.log(`wrote ${out}: ${series.length - 1} curves from ${files.length} runs`);
