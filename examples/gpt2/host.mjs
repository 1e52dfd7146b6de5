// Where the host time of a replayed training step goes (the Trainer's hostMs), by the executable's
// lastHostSplit: the batch check (ids against the vocabulary, on the host), staging the inputs,
// cudaGraphLaunch, the outputs' copies queued, for GPT-2 124M (B16, T1024) and the tiny GPT, bf16 with clipping as the
// Trainer builds the step. Medians over 100 replayed steps, process.hrtime-based performance.now().
//   node examples/gpt2/host.mjs
import { autocast, capture, compile, trainingStep } from '@deepwell/ir';
import { registerCudaBackends } from '@deepwell/kernels-native';
import { GPT } from '@deepwell/nn';
import { requireGpu } from './preflight.mjs';

requireGpu('host.mjs', "it times the host's part of replaying GPT-2's training step as a CUDA graph");
const [device] = registerCudaBackends();
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
// GPT-2 twice: as the runtime captures it, and with the captured memset nodes kept as they are
// (DEEPWELL_GRAPH_MEMSET=keep; by default they become kernel nodes: native/runtime/graph_memset.cu).
for (const [preset, B, T, memsets] of [['gpt2-small', 16, 1024, 'as kernels'], ['gpt2-small', 16, 1024, 'kept'], ['tiny', 8, 16, 'as kernels']]) {
  if (memsets === 'kept') process.env.DEEPWELL_GRAPH_MEMSET = 'keep';
  else delete process.env.DEEPWELL_GRAPH_MEMSET;
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
  const split = { checkUs: [], stageUs: [], launchUs: [], outputsUs: [] };
  const batches = Array.from({ length: 100 }, (_, k) => batch(k + 4));
  for (const b of batches) {
    exe.run(b);
    host.push(exe.lastHostMs);
    for (const [k, v] of Object.entries(exe.lastHostSplit)) split[k].push(v);
  }
  const kernels = exe.kernelSummary().reduce((a, r) => a + r.nodes, 0);
  const parts = Object.fromEntries(Object.entries(split).map(([k, v]) => [k, median(v)]));
  console.log(JSON.stringify({ model: preset, B, T, memsets, irNodes: exe.graph.nodes.length, kernelNodes: kernels, graphNodes: exe.graphNodes ?? null, replaying: exe.replaying, hostUsMedian: 1000 * median(host), partsUsMedian: parts }));
  exe.dispose();
}
