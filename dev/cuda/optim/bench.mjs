#!/usr/bin/env node
// The optimizer phase's kernels at GPT-2 124M's parameter shapes (148 tensors, 124.5M elements), on
// the first GPU, through the registry's CUDA candidates as a compiled step calls them: the weights'
// f32 -> bf16 copies (cast_multi), the clipping's sum of squares over the bf16 gradients
// (sum_squares) and AdamW with the clipping factor as gradScale (adamw_multi, two nodes as in the
// fused step: the decayed matrices and the rest). Prints the median time of each (CUDA events, after
// warm-up), the bytes it must move and the bandwidth that makes, and checks each result on a few
// values (every input is a constant, so the answers are known).
//   pnpm -r build (or turbo build), then: node dev/cuda/optim/bench.mjs [reps=20]
// Bytes per element: cast_multi 4 + 2, sum_squares 2, adamw 4 + 2 + 4 + 4 read and 3 · 4 written.
// Before this work the same phase took 4.46 ms (clipping chain 3.56, adamw_multi 0.89) plus 0.86 ms of
// gradient casts and 1.0 ms of weight casts, 148 launches each (profile of 2026-12, H200).
import { registry } from '../../../packages/core/dist/index.js';
import { Event, Stream, cudaBackend, cudaStatus } from '../../../packages/kernels-native/dist/index.js';
import { checkAttrs, getOp } from '../../../packages/ir/dist/index.js';

if (!cudaStatus().available) {
  console.log('no GPU: nothing to bench');
  process.exit(0);
}
const reps = Number(process.argv[2] ?? 20);

// GPT-2 124M (vocab 50304, 12 layers, width 768): 148 parameters.
const D = 768;
const shapes = [[50304, D], [1024, D]];
for (let l = 0; l < 12; l++) shapes.push([D], [D], [3 * D, D], [3 * D], [D, D], [D], [D], [D], [4 * D, D], [4 * D], [D, 4 * D], [D]);
shapes.push([D], [D]);
const numel = (s) => s.reduce((a, b) => a * b, 1);
const N = shapes.reduce((a, s) => a + numel(s), 0);

const be = cudaBackend(0);
const stream = new Stream(0);
const align = (x) => Math.ceil(x / 256) * 256;
// One buffer per role, each tensor 256-byte aligned inside it (as the planner places them).
function region(bytesPerElem) {
  const offs = [];
  let at = 0;
  for (const s of shapes) {
    offs.push(at);
    at = align(at + numel(s) * bytesPerElem);
  }
  const buf = be.alloc(at);
  return { buf, offs, bytes: at, arg: (k) => ({ base: buf.ptr, offset: offs[k], bytes: numel(shapes[k]) * bytesPerElem }) };
}
const p = region(4), g = region(2), m = region(4), v = region(4), w16 = region(2);
const scalars = be.alloc(256);
const sc = (k) => ({ base: scalars.ptr, offset: 4 * k, bytes: 4 });
// Constants with known answers: p = m = v = 0x3c3c3c3c (about 0.01149), grads bf16 0x3c3c (0.01147).
for (const r of [p, m, v, g]) be.memset(r.buf, 0x3c);
be.write(scalars, Float32Array.of(1e-3, 1, 0.5)); // lr, step, gradScale
be.synchronize();

function kernelFor(op, inTypes, attrs = {}) {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const params = { op, device: 'cuda:0', inTypes, outTypes: def.infer(inTypes, checked), attrs: checked };
  const kernel = registry.select(op, params);
  if (kernel.backend !== 'cuda') throw new Error(`no CUDA kernel for ${op}: ${registry.explain(op, params).text}`);
  const ws = kernel.workspace?.(params) ?? 0;
  return { kernel, params, ws: ws > 0 ? be.alloc(ws) : null, wsBytes: ws };
}

function time(name, bytes, calls) {
  const run = () => calls.forEach(({ k, inputs, outputs }) => k.kernel.run({ ...k.params, stream: stream.handle, inputs, outputs, workspace: k.ws ? { base: k.ws.ptr, offset: 0, bytes: k.wsBytes } : null }));
  for (let i = 0; i < 3; i++) run();
  const a = new Event(0), b = new Event(0);
  const ms = [];
  for (let i = 0; i < reps; i++) {
    a.record(stream);
    run();
    b.record(stream);
    b.synchronize();
    ms.push(b.elapsedSince(a));
  }
  a.dispose();
  b.dispose();
  ms.sort((x, y) => x - y);
  const med = ms[Math.floor(ms.length / 2)];
  console.log(`${name.padEnd(34)} ${med.toFixed(3).padStart(7)} ms  ${(bytes / 1e9).toFixed(2).padStart(5)} GB  ${(bytes / med / 1e6).toFixed(0).padStart(5)} GB/s`);
  return med;
}

const f32 = (s) => ({ shape: s, dtype: 'f32' });
const b16 = (s) => ({ shape: s, dtype: 'bf16' });
const all = shapes.map((_, k) => k);
let total = 0;

// cast_multi: the weight copies.
const cm = kernelFor('cast_multi', shapes.map(f32), { dtype: 'bf16' });
total += time('cast_multi f32->bf16 (148)', 6 * N, [{ k: cm, inputs: all.map(p.arg), outputs: all.map(w16.arg) }]);

// sum_squares over the bf16 gradients.
const ss = kernelFor('sum_squares', shapes.map(b16));
const sumOut = be.alloc(256);
total += time('sum_squares bf16 (148)', 2 * N, [{ k: ss, inputs: all.map(g.arg), outputs: [{ base: sumOut.ptr, offset: 0, bytes: 4 }] }]);

// adamw_multi with gradScale, the decayed matrices and the rest (as the fused step groups them),
// 8 timed steps' worth of updates in place on the constants (finite throughout).
const groups = [all.filter((k) => shapes[k].length >= 2), all.filter((k) => shapes[k].length < 2)];
const calls = groups.map((ks, j) => {
  const inTypes = [f32([1]), f32([1]), ...ks.flatMap((k) => [f32(shapes[k]), b16(shapes[k]), f32(shapes[k]), f32(shapes[k])]), f32([1])];
  const k = kernelFor('adamw_multi', inTypes, { weightDecay: j === 0 ? 0.1 : 0 });
  return { k, inputs: [sc(0), sc(1), ...ks.flatMap((i) => [p.arg(i), g.arg(i), m.arg(i), v.arg(i)]), sc(2)], outputs: ks.flatMap((i) => [p.arg(i), m.arg(i), v.arg(i)]) };
});
total += time('adamw_multi bf16 grads + scale (2)', 26 * N, calls);
console.log(`${'optimizer phase and weight casts'.padEnd(34)} ${total.toFixed(3).padStart(7)} ms  (${N} elements; was 6.3 ms: 4.46 + 0.86 + 1.0)`);

// Checks on known answers.
const host = new Uint8Array(4);
be.read(sumOut, host);
const gv = new Float32Array(Uint32Array.of(0x3c3c << 16).buffer)[0];
const want = N * gv * gv;
const got = new Float32Array(host.buffer)[0];
const w = new Uint16Array(2);
be.read(w16.buf, new Uint8Array(w.buffer));
console.log(`check: sum_squares ${got} vs ${want} (rel ${(Math.abs(got - want) / want).toExponential(1)}), cast_multi first bf16 bits 0x${w[0].toString(16)} (want 0x3c3c)`);
if (Math.abs(got - want) > 1e-6 * want || w[0] !== 0x3c3c) process.exitCode = 1;
stream.dispose();
