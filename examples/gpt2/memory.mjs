// dryrun's memory figure beside what the device allocator hands out for a compiled training step:
// GPT-2 124M (B16, T1024) and the tiny GPT (B8, T16), bf16 with f32 master weights, the step the
// Trainer builds (autocast, trainingStep with clipping). For each: dryrun's total (arena, every
// parameter and every state value), then the allocator's peak bytes in use over compiling and
// three steps (the first eager, the second captured as a CUDA graph, the third replayed), and every
// byte of the difference named: the allocator rounds each allocation up to a multiple of 512 bytes
// (up to 1 MiB) or of 2 MiB (above), native/runtime/memory.cpp.
//   node examples/gpt2/memory.mjs [--json FILE]
import { writeFileSync } from 'node:fs';
import { autocast, capture, compile, dryrun, trainingStep } from '@deepwell/ir';
import { loadNative, registerCudaBackends } from '@deepwell/kernels-native';
import { GPT } from '@deepwell/nn';
import { requireGpu } from './preflight.mjs';

requireGpu('memory.mjs', "it sets dryrun's memory figure beside what the GPU's allocator hands out");
const [device] = registerCudaBackends();
const native = loadNative();
const dev = Number(device.split(':')[1]);
const roundSize = (b) => (b === 0 ? 512 : b <= 1 << 20 ? Math.ceil(b / 512) * 512 : Math.ceil(b / (2 << 20)) * (2 << 20));

const rows = [];
for (const [preset, B, T, vocabLimit] of [['gpt2-small', 16, 1024, 50304], ['tiny', 8, 16, null]]) {
  const model = new GPT(preset);
  const captured = capture(model, { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
  for (const k of Object.keys(captured.outputs)) if (k !== 'loss') delete captured.outputs[k];
  const step = trainingStep(autocast(captured), { clipGradNorm: 1 });
  const report = dryrun(step, { device });
  native.emptyCache(dev);
  const before = native.memoryStats(dev);
  native.resetPeak(dev);
  const exe = compile(step, { device, seed: 1 });
  const V = vocabLimit ?? step.values[step.params['wte.weight']].type.shape[0];
  const batch = () => ({
    tokens: Int32Array.from({ length: B * T }, () => Math.floor(Math.random() * V)),
    targets: Int32Array.from({ length: B * T }, () => Math.floor(Math.random() * V)),
    lr: Float32Array.of(1e-4),
    step: Float32Array.of(1),
  });
  const inputs = Object.keys(exe.graph.inputs);
  const feed = () => Object.fromEntries(Object.entries(batch()).filter(([k]) => inputs.includes(k)));
  for (const k of inputs) if (!['tokens', 'targets', 'lr', 'step'].includes(k)) throw new Error(`unexpected step input ${k}`);
  for (let s = 0; s < 3; s++) exe.run(feed());
  const after = native.memoryStats(dev);
  const peakInUse = after.peak - before.inUse;
  const sizes = [Math.max(1, exe.plan.arenaBytes), ...Object.values(exe.graph.params).concat(Object.values(exe.graph.state)).map((id) => {
    const t = exe.graph.values[id].type;
    return t.shape.reduce((a, b) => a * b, 1) * 4;
  })];
  const rounding = sizes.reduce((a, b) => a + roundSize(b) - b, 0);
  const row = {
    model: preset,
    batch: `B${B} T${T}`,
    dryrunTotal: report.totalBytes,
    dryrunArena: report.arenaBytes,
    kernelWorkspaceAtPeak: report.kernelWorkspaceBytes.atPeak,
    largestKernelWorkspace: report.kernelWorkspaceBytes.largest,
    workspaceUnknown: report.workspaceUnknown ?? null,
    allocations: sizes.length,
    allocatorRounding: rounding,
    allocatorPeakInUse: peakInUse,
    unexplained: peakInUse - report.totalBytes - rounding,
    replaying: exe.replaying,
  };
  rows.push(row);
  console.log(JSON.stringify(row));
  exe.dispose();
}
const out = process.argv.indexOf('--json');
if (out > 0) writeFileSync(process.argv[out + 1], JSON.stringify({ date: new Date().toISOString(), gpu: native.deviceProperties(dev).name, rows }, null, 1));
