// Where the host time of a replayed training step goes (the Trainer's hostMs): the batch check
// (ids against the vocabulary, on the host) and the rest (staging the inputs, cudaGraphLaunch, the
// outputs' copies queued), for GPT-2 124M (B16, T1024) and the tiny GPT, bf16 with clipping as the
// Trainer builds the step. Medians over 100 replayed steps, process.hrtime-based performance.now().
//   node examples/gpt2/host.mjs
import { autocast, capture, compile, trainingStep } from '@deepwell/ir';
import { cudaStatus, registerCudaBackends } from '@deepwell/kernels-native';
import { GPT } from '@deepwell/nn';

if (!cudaStatus().available) {
  console.log(`no GPU: ${cudaStatus().reason}`);
  process.exit(0);
}
const [device] = registerCudaBackends();
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
for (const [preset, B, T] of [['gpt2-small', 16, 1024], ['tiny', 8, 16]]) {
  const model = new GPT(preset);
  const captured = capture(model, { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
  for (const k of Object.keys(captured.outputs)) if (k !== 'loss') delete captured.outputs[k];
  const exe = compile(trainingStep(autocast(captured), { clipGradNorm: 1 }), { device, seed: 1 });
  const V = Math.min(50257, model.config?.vocabSize ?? 16);
  const batch = (s) => ({
    tokens: Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % V),
    targets: Int32Array.from({ length: B * T }, (_, i) => (i * 104729) % V),
    lr: Float32Array.of(1e-5),
    step: Float32Array.of(s),
  });
  for (let s = 1; s <= 3; s++) exe.run(batch(s));
  const host = [];
  const check = [];
  for (let s = 4; s < 104; s++) {
    const b = batch(s);
    const t0 = performance.now();
    exe['checkBatch'](b);
    check.push(performance.now() - t0);
    exe.run(b);
    host.push(exe.lastHostMs);
  }
  const kernels = exe.kernelSummary().reduce((a, r) => a + r.nodes, 0);
  console.log(JSON.stringify({ model: preset, B, T, irNodes: exe.graph.nodes.length, kernelNodes: kernels, replaying: exe.replaying, hostUsMedian: 1000 * median(host), checkBatchUsMedian: 1000 * median(check), restUs: 1000 * (median(host) - median(check)) }));
  exe.dispose();
}
