// Deepwell's main job (`pnpm start`): report the hardware and smoke-test every device; then build a
// small GPT, capture it into the IR, compile one training step, print what dryrun says it costs,
// and train it on a synthetic Markov corpus on the embedded default — the first GPU, in bf16 with
// f32 master weights (autocast), or the CPU reference backend in f32 when there is no GPU — printing
// the loss as it goes and, at the end, the loss beside the corpus's entropy rate.
//   node examples/main/main.mjs [steps]
import { registry } from '@deepwell/core';
import { autocast, capture, compile, dryrun, formatDryrun, trainingStep } from '@deepwell/ir';
import { registerCudaBackends } from '@deepwell/kernels-native';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { printHardwareInfo, smokeTest } from '@deepwell/probe';

const steps = Number(process.argv[2] ?? 300);
printHardwareInfo();
const gpus = registerCudaBackends();
const devices = gpus.length ? gpus : ['cpu'];
console.log(`\nSmoke test on ${devices.join(', ')}${gpus.length ? '' : ' (no GPU: the embedded default is the CPU)'}`);
let failed = false;
for (const device of devices) {
  const r = smokeTest(device, 1 << 22);
  failed ||= r.mismatches !== 0;
  console.log(`  ${device}: ${r.elements} elements by ${r.kernel}: ${r.mismatches === 0 ? 'all correct' : `${r.mismatches} WRONG`}`);
}

const device = gpus[0] ?? 'cpu';
const [B, T] = [8, 16];
const corpus = new MarkovCorpus({ vocab: 16, seed: 1 });
const model = new GPT('tiny');
const captured = capture(model, { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
const forward = device === 'cpu' ? captured : autocast(captured); // bf16 activations on the GPU
const step = trainingStep(forward, { optimizer: { weightDecay: 0 } });
console.log(`\nGPT 'tiny': ${model.parameterCount().toLocaleString('en')} parameters; training step of ${step.nodes.length} nodes, batch ${B} × ${T}, ${device === 'cpu' ? 'f32' : 'bf16 activations, f32 master weights'}`);
console.log(formatDryrun(dryrun(step, { device })));
const exe = compile(step, { device, seed: 1 });
const entropy = corpus.entropyRate();
console.log(`\nTraining ${steps} steps on ${device} (corpus entropy rate ${entropy.toFixed(4)} nats/token)`);
const recent = [];
const t0 = performance.now();
for (let s = 1; s <= steps; s++) {
  const lr = 3e-3 * Math.min(1, s / 20);
  const { loss } = exe.run({ ...corpus.batch(B, T), lr: Float32Array.of(lr), step: Float32Array.of(s) });
  recent.push(loss[0]);
  if (recent.length > 50) recent.shift();
  if (s === 1 || s % 25 === 0 || s === steps) {
    const ms = (performance.now() - t0) / s;
    console.log(`  step ${String(s).padStart(4)}/${steps}  loss ${loss[0].toFixed(4)}  (mean of last ${recent.length}: ${(recent.reduce((a, b) => a + b) / recent.length).toFixed(4)})  ${ms.toFixed(1)} ms/step`);
  }
}
const final = recent.reduce((a, b) => a + b) / recent.length;
console.log(`\nFinal loss ${final.toFixed(4)} (mean of the last ${recent.length} steps, each on fresh data) vs entropy rate ${entropy.toFixed(4)}: ${((100 * (final - entropy)) / entropy).toFixed(1)}% above the floor`);
console.log(`\nKernels that served the training step${exe.replaying ? ' (replayed as one CUDA graph per step)' : ''}:`);
for (const row of exe.kernelSummary()) console.log(`  ${row.op.padEnd(22)} ${row.kernel} [${row.backend}] × ${row.calls}`);
console.log('Kernels that served the smoke test:');
for (const row of registry.summary().filter((r) => r.op.startsWith('probe.'))) console.log(`  ${row.op} -> ${row.kernel} [${row.backend}]: ${row.calls}`);
exe.dispose();
process.exitCode = failed ? 1 : 0;
