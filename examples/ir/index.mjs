// examples/ir: capture a model into the IR, print its graph, differentiate it into a training
// step, and ask dryrun what the step costs — all before anything runs. The report's figures are
// printed in units a person reads (KiB to TiB, µs to days), straight from dryrun()'s fields;
// formatDryrun(report) prints the same report in MiB and ms.
//   node index.mjs                 a tiny GPT: prints the forward IR and the dryrun
//   node index.mjs gpt2-small 16   GPT-2 small at batch 16 (dryrun only; the IR is long)
import { capture, dryrun, trainingStep } from '@deepwell/ir';
import { GPT, GPT_PRESETS } from '@deepwell/nn';

const preset = process.argv[2] ?? 'tiny';
const B = Number(process.argv[3] ?? 2);
if (!Object.hasOwn(GPT_PRESETS, preset)) {
  console.error(`examples/ir: expected a GPT preset (${Object.keys(GPT_PRESETS).join(', ')}) but received '${preset}'`);
  process.exit(2);
}
if (!Number.isInteger(B) || B < 1) {
  console.error(`examples/ir: expected a batch size, a whole number above 0, but received '${process.argv[3]}'`);
  process.exit(2);
}

/** 3 significant figures, without an exponent: 475, 15.4, 0.102. */
const sig = (v) => (v >= 100 ? v.toFixed(0) : v.toPrecision(3));
/** Bytes in binary units: 512 B, 102 KiB, 475 MiB, 15.4 GiB. */
function bytes(b) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) (b /= 1024), i++;
  return i === 0 ? `${b} B` : `${sig(b)} ${units[i]}`;
}
/** A duration given in ms: 850 ns, 21.3 µs, 14.2 ms, 3.40 s, 12.5 min, 7.93 h, 2.10 days. */
function duration(ms) {
  const steps = [[1e-3, 1e-6, 'ns'], [1, 1e-3, 'µs'], [1e3, 1, 'ms'], [6e4, 1e3, 's'], [36e5, 6e4, 'min'], [1728e5, 36e5, 'h']];
  for (const [below, unit, name] of steps) if (ms < below) return `${sig(ms / unit)} ${name}`;
  return `${sig(ms / 864e5)} days`;
}
/** A count with an SI prefix: 22.1 M, 13.3 T (for FLOP, FLOP/s, bytes/s). */
function si(v) {
  const prefixes = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
  let i = 0;
  while (v >= 1000 && i < prefixes.length - 1) (v /= 1000), i++;
  return `${sig(v)} ${prefixes[i]}`;
}

const model = new GPT(preset);
const T = model.config.blockSize;
const forward = capture(model, { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
if (preset === 'tiny') console.log(forward.toText(), '\n');
const step = trainingStep(forward);
console.log(`${preset}: ${model.parameterCount().toLocaleString('en')} parameters; forward ${forward.nodes.length} nodes, training step ${step.nodes.length} nodes; batch ${B} × ${T} tokens`);

const r = dryrun(step);
const e = r.estimate;
console.log(`dryrun of one training step on ${r.device} (nothing has run yet):`);
console.log(`  memory      ${bytes(r.totalBytes)} in all`);
console.log(`    parameters       ${bytes(r.parameterBytes)}`);
console.log(`    optimizer state  ${bytes(r.optimizerStateBytes)} (AdamW's two moments per parameter)`);
console.log(`    arena            ${bytes(r.arenaBytes)}, shared over the step by the gradients (${bytes(r.gradientBytes)}), activations and temporaries;`);
console.log(`                     at its busiest: activations ${bytes(r.activationBytes)}, gradients and workspace ${bytes(r.workspaceBytes)}, inputs ${bytes(r.inputBytes)}`);
if (r.workspaceUnknown) console.log(`    not counted      kernel workspaces: ${r.workspaceUnknown}`);
console.log(`  work        ${si(r.flopsPerStep)}FLOP and ${bytes(r.bytesMovedPerStep)} read or written per step`);
console.log(`  time        about ${duration(e.ms)} per step, ${e.bound}-bound at ${si(e.peakTflops * 1e12)}FLOP/s and ${si(e.memoryGBps * 1e9)}B/s (${e.source})`);
