#!/usr/bin/env node
// SparseK top-k block-sparse attention beside our dense fused attention, forward and backward
// separately, at long sequences (bench/sparsek_torch.py times PyTorch's default SDPA on the same
// shapes in the same run; scripts/sparsek-check.sh merges the two).
//
// Each op runs through the CUDA candidate the registry selects, as a compiled step would: the dense
// flash kernels (sdpa, sdpa_backward: on the H200 the Hopper ones) and sparsek_attention (its
// forward includes the block means and the top-k selection), sparsek_attention_backward (over the
// forward's indices). bf16, q [B, H, S, D], k and v [B, Hkv, S, D], contiguous, uniform random in
// [-1, 1] (never zeros). Method: CUDA events around each call, WARMUP warm-ups, the median of REPS.
// TFLOP/s counts what is computed: dense causal 4·B·H·D·S(S+1)/2 forward (2.5x that backward);
// sparse: the visible pairs of the selection (at most topK·bs keys per query, fewer in the first
// blocks), the same factors.
//
//   node bench/sparsek.mjs [out.json]      CASES='S:topK:blockSize,...' overrides the shapes (B1 H32 Hkv8 D128)
//   DEEPWELL_SPARSEK_KERNEL=sm80 keeps the portable kernels for block size 128 too (an A/B on sm_90)
import { writeFileSync } from 'node:fs';
import { f32ToBf16Bits, registry } from '@deepwell/core';
import { checkAttrs, getOp } from '@deepwell/ir';
import { Event, Stream, cudaBackend } from '@deepwell/kernels-native';
import '@deepwell/attention-sparsek';
import { median } from './bench-stats.mjs';
import { fillRepeated } from './device-bench.mjs';

const be = cudaBackend(0);
const stream = new Stream(0);
const WARMUP = Number(process.env.WARMUP ?? 2);
const REPS = Number(process.env.REPS ?? 7);
const [B, H, Hkv, D] = [1, 32, 8, 128];
// (S, topK, block size): topK blocks cover 1/8 of the mean causal keys (S/2) at each S with blocks of
// 64 (the portable kernels) and of 128 (on sm_90 the Hopper kernels), then a fixed top-16 of 64
// (NSA's published configuration) and the same keys as top-8 of 128.
const CASES = (process.env.CASES ?? '8192:8:64,8192:4:128,32768:32:64,32768:16:128,32768:16:64,32768:8:128,65536:64:64,65536:32:128,65536:16:64,65536:8:128')
  .split(',')
  .map((c) => c.split(':').map(Number));

const block = Uint16Array.from({ length: 1 << 22 }, () => f32ToBf16Bits(Math.random() * 2 - 1));
const bytesOf = (t) => t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'f32' || t.dtype === 'i32' ? 4 : 2);

function timeIt(launch) {
  for (let i = 0; i < WARMUP; i++) launch();
  const ms = [];
  for (let i = 0; i < REPS; i++) {
    const [s, e] = [new Event(0), new Event(0)];
    s.record(stream);
    launch();
    e.record(stream);
    e.synchronize();
    ms.push(e.elapsedSince(s));
    s.dispose();
    e.dispose();
  }
  return median(ms);
}

/** The selected kernel of `op` for these types, with buffers for its outputs and workspace. */
function prepare(op, inTypes, attrs, inputs) {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const params = { op, device: 'cuda:0', inTypes, outTypes: def.infer(inTypes, checked), attrs: checked };
  const kernel = registry.select(op, params);
  const outs = params.outTypes.map((t) => be.alloc(bytesOf(t)));
  const wsBytes = kernel.workspace?.(params) ?? 0;
  const ws = wsBytes > 0 ? be.alloc(wsBytes) : null;
  const arg = (b) => ({ base: b.ptr, offset: 0, bytes: b.bytes });
  const call = { ...params, stream: stream.handle, inputs: inputs.map(arg), outputs: outs.map(arg), workspace: ws ? arg(ws) : null };
  return { name: kernel.name, run: () => kernel.run(call), outs, free: () => [...outs, ...(ws ? [ws] : [])].forEach((b) => be.free(b)) };
}

/** Visible (query, key) pairs of a selection (indices i32 [B, Hkv, nB, topK]), causal. */
function sparsePairs(idx, S, topK, BS) {
  const nB = Math.ceil(S / BS);
  let pairs = 0;
  for (let g = 0; g < B * Hkv; g++)
    for (let i = 0; i < nB; i++)
      for (let t = 0; t < topK; t++) {
        const j = idx[(g * nB + i) * topK + t];
        if (j < 0) break;
        const rows = Math.min(S, (i + 1) * BS) - i * BS;
        const keys = Math.min(S, (j + 1) * BS) - j * BS;
        pairs += j < i ? rows * keys : (rows * (rows + 1)) / 2; // the diagonal block: causal within
      }
  return (pairs / Hkv) * H; // per query head
}

const results = [];
const table = ['| S | topK | block | dense fwd ms | sparse fwd ms | fwd × | dense bwd ms | sparse bwd ms | bwd × | fwd+bwd × | sparse fwd TFLOP/s | sparse bwd TFLOP/s |', '|' + ' --- |'.repeat(12)];
for (const [S, topK, BS] of CASES) {
  const qt = { shape: [B, H, S, D], dtype: 'bf16' };
  const kt = { shape: [B, Hkv, S, D], dtype: 'bf16' };
  const bufs = [qt, kt, kt, qt].map((t) => {
    const b = be.alloc(bytesOf(t));
    fillRepeated(be, b, block, bytesOf(t));
    return b;
  });
  const [q, k, v, dout] = bufs;
  const dense = prepare('sdpa', [qt, kt, kt], { causal: true }, [q, k, v]);
  const tDenseF = timeIt(dense.run);
  const denseB = prepare('sdpa_backward', [qt, qt, kt, kt, qt, { shape: [B, H, S], dtype: 'f32' }], { causal: true }, [dout, q, k, v, ...dense.outs]);
  const tDenseB = timeIt(denseB.run);
  const sattrs = { causal: true, blockSize: BS, topK };
  const sparse = prepare('sparsek_attention', [qt, kt, kt], sattrs, [q, k, v]);
  const tSparseF = timeIt(sparse.run);
  const idxT = { shape: [B, Hkv, Math.ceil(S / BS), topK], dtype: 'i32' };
  const sparseB = prepare('sparsek_attention_backward', [qt, qt, kt, kt, qt, { shape: [B, H, S], dtype: 'f32' }, idxT], sattrs, [dout, q, k, v, ...sparse.outs]);
  const tSparseB = timeIt(sparseB.run);
  stream.synchronize();
  const idx = new Int32Array(bytesOf(idxT) / 4);
  be.read(sparse.outs[2], idx);
  const pairs = sparsePairs(idx, S, topK, BS);
  const densePairs = (H * S * (S + 1)) / 2;
  const tf = (p, ms, f) => (f * 4 * B * p * D) / (ms * 1e9);
  const r = {
    S, topK, B, H, Hkv, D, blockSize: BS, coverage: pairs / densePairs,
    kernels: { dense: [dense.name, denseB.name], sparse: [sparse.name, sparseB.name] },
    ms: { denseFwd: tDenseF, denseBwd: tDenseB, sparseFwd: tSparseF, sparseBwd: tSparseB },
    tflops: { denseFwd: tf(densePairs, tDenseF, 1), denseBwd: tf(densePairs, tDenseB, 2.5), sparseFwd: tf(pairs, tSparseF, 1), sparseBwd: tf(pairs, tSparseB, 2.5) },
    speedup: { fwd: tDenseF / tSparseF, bwd: tDenseB / tSparseB, total: (tDenseF + tDenseB) / (tSparseF + tSparseB) },
  };
  results.push(r);
  const f = (x) => x.toFixed(2);
  table.push(`| ${S} | ${topK} | ${BS} | ${f(tDenseF)} | ${f(tSparseF)} | ${f(r.speedup.fwd)} | ${f(tDenseB)} | ${f(tSparseB)} | ${f(r.speedup.bwd)} | ${f(r.speedup.total)} | ${r.tflops.sparseFwd.toFixed(0)} | ${r.tflops.sparseBwd.toFixed(0)} |`);
  console.log(table.at(-1), `coverage ${(100 * r.coverage).toFixed(1)}%`);
  for (const p of [dense, denseB, sparse, sparseB]) p.free();
  for (const b of bufs) be.free(b);
}
const gpuName = (await import('@deepwell/kernels-native')).deviceProperties(0).name;
const doc = { date: new Date().toISOString(), gpu: gpuName, sparsekKernel: process.env.DEEPWELL_SPARSEK_KERNEL ?? 'default', method: `CUDA events per call, ${WARMUP} warm-ups, median of ${REPS}`, results };
console.log(table.join('\n'));
writeFileSync(process.argv[2] ?? 'sparsek-bench.json', JSON.stringify(doc, null, 2));
console.log(JSON.stringify(doc));
