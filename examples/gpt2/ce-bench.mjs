// Times the cross-entropy kernels on GPT-2's logits ([16384, 50304] bf16 by default) beside a
// device-to-device copy of the same bytes: cross_entropy (one read), cross_entropy_backward and
// cross_entropy_with_grad (one read and one write each at best), each into a buffer of its own and
// written in place over the logits (as the planner places them in a training step). The figure to
// watch is each kernel's time against the copy's (which reads and writes the same bytes): the
// gradient kernels should reach about 0.8 of the copy's bandwidth or better.
//   node examples/gpt2/ce-bench.mjs [--rows 16384] [--classes 50304] [--dtype bf16] [--reps 20]
import { f32ToBf16Bits, f32ToF16Bits, registry } from '@deepwell/core';
import { checkAttrs, getOp } from '@deepwell/ir';
import { Event, Stream, cudaBackend, loadNative } from '@deepwell/kernels-native';
import { requireGpu } from './preflight.mjs';

requireGpu('ce-bench.mjs', "it times the cross-entropy kernels on GPT-2's logits");
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const N = Number(arg('rows', 16384));
const V = Number(arg('classes', 50304));
const dtype = arg('dtype', 'bf16');
const reps = Number(arg('reps', 20));
const esize = dtype === 'f32' ? 4 : 2;
const bytes = N * V * esize;

const backend = cudaBackend(0);
const native = loadNative();
const stream = new Stream(0);
const logits = backend.alloc(bytes);
const other = backend.alloc(bytes);
const targets = backend.alloc(4 * N);
const g = backend.alloc(4);
const loss = backend.alloc(4);
const work = backend.alloc(1 << 20);
// Random logits (N(0, 2)-ish, 16 MiB of them tiled over the tensor) and targets.
const tile = Math.min(bytes, 16 << 20) / esize;
const enc = dtype === 'f32' ? (x) => x : dtype === 'bf16' ? f32ToBf16Bits : f32ToF16Bits;
const host = (dtype === 'f32' ? Float32Array : Uint16Array).from({ length: tile }, () => enc((Math.random() + Math.random() + Math.random() - 1.5) * 4));
const seed = backend.alloc(host.byteLength);
backend.write(seed, host);
const refill = () => {
  for (let o = 0; o < bytes; o += host.byteLength) native.copyDtoD(logits.ptr, o, seed.ptr, 0, Math.min(host.byteLength, bytes - o), stream.handle);
};
backend.write(targets, Int32Array.from({ length: N }, () => Math.floor(Math.random() * V)));
backend.write(g, Float32Array.of(1));

const arg2 = (b, n = b.bytes) => ({ base: b.ptr, offset: 0, bytes: n });
const lt = { shape: [N, V], dtype };
const it = { shape: [N], dtype: 'i32' };
const ft = { shape: [1], dtype: 'f32' };
function kernelCall(op, inputs, outputs, inTypes, outTypes) {
  const params = { op, device: 'cuda:0', inTypes, outTypes, attrs: checkAttrs(getOp(op), { ignoreIndex: -1 }) };
  const k = registry.select(op, params);
  if (k.backend !== 'cuda') throw new Error(`no CUDA kernel for ${op}`);
  const ws = k.workspace?.(params) ?? 0;
  if (ws > work.bytes) throw new Error(`${op} wants ${ws} bytes of workspace`);
  return () => k.run({ ...params, stream: stream.handle, inputs, outputs, workspace: ws ? arg2(work, ws) : null, checkIndices: false });
}

/** Median milliseconds of `reps` runs of `run` (after `before`, outside the timing). */
function time(run, before = () => {}) {
  const ms = [];
  const [a, b] = [new Event(0), new Event(0)];
  for (let r = 0; r < reps + 2; r++) {
    before();
    a.record(stream);
    run();
    b.record(stream);
    b.synchronize();
    if (r >= 2) ms.push(b.elapsedSince(a));
  }
  a.dispose();
  b.dispose();
  return ms.sort((x, y) => x - y)[ms.length >> 1];
}

refill();
const copyMs = time(() => native.copyDtoD(other.ptr, 0, logits.ptr, 0, bytes, stream.handle));
const rows = [
  ['copy (read + write)', copyMs, 2],
  ['cross_entropy (read)', time(kernelCall('cross_entropy', [arg2(logits), arg2(targets)], [arg2(loss)], [lt, it], [ft]), refill), 1],
  ['cross_entropy_backward, apart', time(kernelCall('cross_entropy_backward', [arg2(logits), arg2(targets), arg2(g)], [arg2(other)], [lt, it, ft], [lt]), refill), 2],
  ['cross_entropy_backward, in place', time(kernelCall('cross_entropy_backward', [arg2(logits), arg2(targets), arg2(g)], [arg2(logits)], [lt, it, ft], [lt]), refill), 2],
  ['cross_entropy_with_grad, apart', time(kernelCall('cross_entropy_with_grad', [arg2(logits), arg2(targets), arg2(g)], [arg2(loss), arg2(other)], [lt, it, ft], [ft, lt]), refill), 2],
  ['cross_entropy_with_grad, in place', time(kernelCall('cross_entropy_with_grad', [arg2(logits), arg2(targets), arg2(g)], [arg2(loss), arg2(logits)], [lt, it, ft], [ft, lt]), refill), 2],
];
native.opsErrorCheck(stream.handle);
console.log(`${native.deviceProperties(0).name}: logits ${dtype}[${N}, ${V}] = ${(bytes / 1e9).toFixed(2)} GB, median of ${reps}`);
for (const [name, ms, passes] of rows) {
  const gbps = (passes * bytes) / (ms * 1e6);
  console.log(`  ${name.padEnd(36)} ${ms.toFixed(3).padStart(7)} ms  ${gbps.toFixed(0).padStart(5)} GB/s  ${(gbps / ((2 * bytes) / (copyMs * 1e6))).toFixed(2)} of the copy's`);
}
stream.dispose();
for (const b of [logits, other, targets, g, loss, work, seed]) backend.free(b);
