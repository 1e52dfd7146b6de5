#!/usr/bin/env node
// Each compile-time fusion against the kernels it replaces, at GPT-2 small's shapes (batch 16 × 1024
// tokens, bf16 activations), on the kernels the registry selects, as a compiled step runs them:
//   - matmul_bias_gelu (cuBLASLt GELU_AUX_BIAS)  vs matmul_bias (BIAS epilogue) + gelu
//   - matmul_dgelu (cuBLASLt DGELU)               vs matmul + gelu_backward
//   - matmul_bgrad (cuBLASLt BGRADB)              vs matmul + sum_to
//   - add_layernorm                               vs add + layernorm
//   - adamw_multi over GPT-2 small's 148 tensors  vs 148 adamw launches
//   - the clipping's sum of squares over GPT-2 small's 148 bf16 gradients: sum_squares + clip_coef
//                                                 vs 148 × (cast to f32, mul, sum), 147 adds, clip_coef
//   - AdamW with the clipping factor, bf16 gradients: adamw_multi with gradScale
//                                                 vs 148 × (cast to f32, mul by the factor), adamw_multi
//   - the weights' bf16 copies: cast_multi        vs 148 cast launches
// Method: random inputs (never zeros); each variant's launches captured once as a CUDA graph, then
// replayed: 3 warm-up replays, then 7 samples, each a batch of replays timed between one pair of
// CUDA events (at least ~20 ms per sample); the median time per replay. Variants alternate sample by
// sample so clock drift hits both alike. Prints a table and one JSON line.
import { f32ToBf16Bits, registry } from '@deepwell/core';
import { checkAttrs, getOp } from '@deepwell/ir';
import { Event, Graph, Stream, cudaBackend } from '@deepwell/kernels-native';

const be = cudaBackend(0);
const stream = new Stream(0);
const bytesOf = (t) => t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'u8' ? 1 : t.dtype === 'f32' || t.dtype === 'i32' ? 4 : 2);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const block = { bf16: Uint16Array.from({ length: 1 << 22 }, () => f32ToBf16Bits(Math.random() * 2 - 1)), f32: Float32Array.from({ length: 1 << 22 }, () => Math.random() * 0.01 + 1e-4) };
const live = [];

function tensor(shape, dtype) {
  const t = { shape, dtype };
  const buf = be.alloc(Math.max(4, bytesOf(t)));
  live.push(buf);
  const total = bytesOf(t);
  if (dtype === 'u8') return { t, buf, arg: { base: buf.ptr, offset: 0, bytes: buf.bytes } }; // scratch: left as is
  const src = block[dtype];
  const first = Math.min(total, src.byteLength);
  be.write(buf, new Uint8Array(src.buffer, 0, first));
  for (let done = first; done < total; ) {
    const k = Math.min(done, total - done);
    be.copy(buf, buf, k, done, 0);
    done += k;
  }
  return { t, buf, arg: { base: buf.ptr, offset: 0, bytes: buf.bytes } };
}

/** A launcher of `op` through the registry's choice on cuda:0 (outputs allocated here unless given). */
function kernel(op, ins, attrs = {}, outs = null) {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const inTypes = ins.map((x) => x.t);
  const outTypes = def.infer(inTypes, checked);
  const params = { op, device: 'cuda:0', inTypes, outTypes, attrs: checked };
  const k = registry.select(op, params);
  if (k.backend !== 'cuda') throw new Error(`no CUDA kernel for ${op}: ${registry.explain(op, params).text}`);
  const o = outs ?? outTypes.map((t) => tensor(t.shape, t.dtype));
  // The scratch the kernel declares (cuBLASLt's workspace, split reductions), as a compiled step's
  // plan would place it.
  const wsBytes = k.workspace?.(params) ?? 0;
  const ws = wsBytes > 0 ? tensor([wsBytes], 'u8') : null;
  const call = { ...params, stream: stream.handle, inputs: ins.map((x) => x.arg), outputs: o.map((x) => x.arg), workspace: ws ? ws.arg : null, checkIndices: false };
  return { name: k.name, outs: o, run: () => k.run(call) };
}

function timeGraphs(variants) {
  const graphs = variants.map((v) => {
    v.launch(); // eager once: plans and caches made outside capture
    stream.synchronize();
    return Graph.capture(stream, v.launch);
  });
  const per = graphs.map((g) => {
    for (let i = 0; i < 3; i++) g.launch(stream);
    const [s, e] = [new Event(0), new Event(0)];
    s.record(stream);
    g.launch(stream);
    e.record(stream);
    e.synchronize();
    const one = e.elapsedSince(s);
    s.dispose();
    e.dispose();
    return Math.max(1, Math.ceil(20 / Math.max(one, 1e-3)));
  });
  const samples = variants.map(() => []);
  for (let r = 0; r < 7; r++) {
    graphs.forEach((g, k) => {
      const [s, e] = [new Event(0), new Event(0)];
      s.record(stream);
      for (let i = 0; i < per[k]; i++) g.launch(stream);
      e.record(stream);
      e.synchronize();
      samples[k].push(e.elapsedSince(s) / per[k]);
      s.dispose();
      e.dispose();
    });
  }
  graphs.forEach((g) => g.dispose());
  return samples.map(median);
}

const rows = [];
// moved: the bytes the fused kernel must read and write (for the memory-bound ones), else 0.
function compare(name, fused, unfused, moved = 0) {
  const [f, u] = timeGraphs([fused, unfused]);
  rows.push({ name, fused: fused.label, unfused: unfused.label, fusedMs: f, unfusedMs: u, speedup: u / f, ...(moved ? { fusedGBps: moved / (f * 1e6) } : {}) });
  for (const b of live.splice(0)) be.free(b);
  be.emptyCache();
}

const [T, D, H] = [16 * 1024, 768, 3072];
{
  const x = tensor([T, D], 'bf16');
  const w = tensor([H, D], 'bf16');
  const b = tensor([H], 'bf16');
  const fused = kernel('matmul_bias_gelu', [x, w, b], { transB: true });
  const mb = kernel('matmul_bias', [x, w, b], { transB: true });
  const g = kernel('gelu', [mb.outs[0]]);
  compare(`fc + GELU ${T}×${H}×${D}`, { label: fused.name, launch: fused.run }, { label: `${mb.name} + ${g.name}`, launch: () => (mb.run(), g.run()) });
}
{
  // The MLP's backward: dh = dy · W_proj (W_proj [D, H], as fc2's weight [out, in]) into
  // gelu_backward(dh, pre).
  const dy = tensor([T, D], 'bf16');
  const w = tensor([D, H], 'bf16');
  const pre = tensor([T, H], 'bf16');
  const fused = kernel('matmul_dgelu', [dy, w, pre]);
  const mm = kernel('matmul', [dy, w]);
  const gb = kernel('gelu_backward', [mm.outs[0], pre]);
  compare(`fc2 data gradient + GELU backward ${T}×${H}×${D}`, { label: fused.name, launch: fused.run }, { label: `${mm.name} + ${gb.name}`, launch: () => (mm.run(), gb.run()) });
}
{
  const gy = tensor([T, H], 'bf16');
  const x = tensor([T, D], 'bf16');
  const fused = kernel('matmul_bgrad', [gy, x], { transA: true });
  const mm = kernel('matmul', [gy, x], { transA: true });
  const st = kernel('sum_to', [gy], { shape: [H] });
  compare(`fc dW + bias grad ${H}×${D}×${T}`, { label: fused.name, launch: fused.run }, { label: `${mm.name} + ${st.name}`, launch: () => (mm.run(), st.run()) });
}
{
  const x = tensor([T, D], 'bf16');
  const r = tensor([T, D], 'bf16');
  const w = tensor([D], 'bf16');
  const b = tensor([D], 'bf16');
  const fused = kernel('add_layernorm', [x, r, w, b]);
  const add = kernel('add', [x, r]);
  const ln = kernel('layernorm', [add.outs[0], w, b]);
  // x, residual read; sum, y written (bf16); mean, rstd (f32) written.
  compare(`residual + layernorm ${T}×${D}`, { label: fused.name, launch: fused.run }, { label: `${add.name} + ${ln.name}`, launch: () => (add.run(), ln.run()) }, 4 * T * D * 2 + 2 * T * 4);
}
{
  // GPT-2 small (124M): token and position embeddings, 12 blocks of 12 tensors, the final norm.
  const shapes = [[50304, 768], [1024, 768]];
  for (let l = 0; l < 12; l++) shapes.push([768], [768], [2304, 768], [2304], [768, 768], [768], [768], [768], [3072, 768], [3072], [768, 3072], [768]);
  shapes.push([768], [768]);
  const lr = tensor([1], 'f32');
  const step = tensor([1], 'f32');
  be.write(lr.buf, Float32Array.of(1e-4));
  be.write(step.buf, Float32Array.of(10));
  const groups = shapes.map((s) => [tensor(s, 'f32'), tensor(s, 'f32'), tensor(s, 'f32'), tensor(s, 'f32')]);
  const attrs = { weightDecay: 0.1 };
  const multi = kernel('adamw_multi', [lr, step, ...groups.flat()], attrs, groups.flatMap(([p, , m, v]) => [p, m, v]));
  const singles = groups.map(([p, g, m, v]) => kernel('adamw', [p, g, m, v, lr, step], attrs, [p, m, v]));
  compare(`AdamW, GPT-2 small's ${shapes.length} tensors (${(shapes.reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0) / 1e6).toFixed(1)}M, f32 grads)`, { label: multi.name, launch: multi.run }, {
    label: `${shapes.length} × ${singles[0].name}`,
    launch: () => singles.forEach((k) => k.run()),
  }, 7 * 4 * shapes.reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0)); // p, m, v read and written, g read (f32)
}

{
  // The optimizer phase of GPT-2 small's autocast step with clipGradNorm: bf16 gradients (what the
  // backward makes), f32 master weights and moments.
  const shapes = [[50304, 768], [1024, 768]];
  for (let l = 0; l < 12; l++) shapes.push([768], [768], [2304, 768], [2304], [768, 768], [768], [768], [768], [3072, 768], [3072], [768, 3072], [768]);
  shapes.push([768], [768]);
  const N = shapes.reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  const what = `GPT-2 small's ${shapes.length} tensors (${(N / 1e6).toFixed(1)}M, bf16 grads)`;
  const grads = shapes.map((s) => tensor(s, 'bf16'));
  // sum_squares + clip_coef against the chain trainingStep built before (each gradient cast to f32
  // by the backward, then squared, summed and added up).
  const ss = kernel('sum_squares', grads);
  const coef = kernel('clip_coef', [ss.outs[0]], { maxNorm: 1 });
  const casts = grads.map((g) => kernel('cast', [g], { dtype: 'f32' }));
  const sq = casts.map((c) => kernel('mul', [c.outs[0], c.outs[0]]));
  const sums = sq.map((m) => kernel('sum', [m.outs[0]]));
  const adds = [];
  let acc = sums[0].outs[0];
  for (const s of sums.slice(1)) {
    const a = kernel('add', [acc, s.outs[0]]);
    adds.push(a);
    acc = a.outs[0];
  }
  const coef0 = kernel('clip_coef', [acc], { maxNorm: 1 });
  compare(`clipping's sum of squares, ${what}`, { label: `${ss.name} + ${coef.name}`, launch: () => (ss.run(), coef.run()) }, {
    label: `${shapes.length} × (cast, mul, sum) + ${adds.length} add + clip_coef`,
    launch: () => (casts.forEach((k) => k.run()), sq.forEach((k) => k.run()), sums.forEach((k) => k.run()), adds.forEach((k) => k.run()), coef0.run()),
  }, 2 * N);
}
{
  const shapes = [[50304, 768], [1024, 768]];
  for (let l = 0; l < 12; l++) shapes.push([768], [768], [2304, 768], [2304], [768, 768], [768], [768], [768], [3072, 768], [3072], [768, 3072], [768]);
  shapes.push([768], [768]);
  const N = shapes.reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  const lr = tensor([1], 'f32');
  const step = tensor([1], 'f32');
  const scale = tensor([1], 'f32');
  be.write(lr.buf, Float32Array.of(1e-4));
  be.write(step.buf, Float32Array.of(10));
  be.write(scale.buf, Float32Array.of(0.5));
  const groups = shapes.map((s) => [tensor(s, 'f32'), tensor(s, 'bf16'), tensor(s, 'f32'), tensor(s, 'f32')]);
  const attrs = { weightDecay: 0.1 };
  const multi = kernel('adamw_multi', [lr, step, ...groups.flat(), scale], attrs, groups.flatMap(([p, , m, v]) => [p, m, v]));
  // Before: the backward's cast of each bf16 gradient to f32, its mul by the factor, adamw_multi on f32.
  const casts = groups.map(([, g]) => kernel('cast', [g], { dtype: 'f32' }));
  const muls = casts.map((c) => kernel('mul', [c.outs[0], scale]));
  const plain = kernel('adamw_multi', [lr, step, ...groups.flatMap(([p, , m, v], k) => [p, muls[k].outs[0], m, v])], attrs, groups.flatMap(([p, , m, v]) => [p, m, v]));
  compare(`AdamW with the clip factor, GPT-2 small's ${shapes.length} tensors (bf16 grads)`, { label: `${multi.name} (gradScale)`, launch: multi.run }, {
    label: `${shapes.length} × (cast, mul) + ${plain.name}`,
    launch: () => (casts.forEach((k) => k.run()), muls.forEach((k) => k.run()), plain.run()),
  }, 26 * N); // p, m, v read and written (f32), g read (bf16)
  const weights = shapes.map((s) => tensor(s, 'f32')); // compare() freed the tensors above
  const cm = kernel('cast_multi', weights, { dtype: 'bf16' });
  const singles = weights.map((w) => kernel('cast', [w], { dtype: 'bf16' }));
  compare(`the weights' bf16 copies, GPT-2 small's ${shapes.length} tensors`, { label: cm.name, launch: cm.run }, {
    label: `${shapes.length} × ${singles[0].name}`,
    launch: () => singles.forEach((k) => k.run()),
  }, 6 * N);
}

console.log('| fusion | fused kernel | ms | GB/s (read + write) | unfused kernels | ms | speed-up |\n| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.name} | ${r.fused} | ${r.fusedMs.toFixed(3)} | ${r.fusedGBps ? r.fusedGBps.toFixed(0) : '-'} | ${r.unfused} | ${r.unfusedMs.toFixed(3)} | ${r.speedup.toFixed(2)}× |`);
console.log(JSON.stringify({ date: new Date().toISOString(), rows }));
stream.dispose();
