#!/usr/bin/env node
// Deepwell's bf16 GEMM (cuBLASLt through the native addon) at 8192³ and the GPT-2 small shapes with
// their backward forms. Method: random bf16 inputs (a 64 MiB random block tiled through each
// buffer; never zeros); operand sets cycled so at least 256 MiB is touched (inputs are not served
// from the 60 MiB L2 on the next launch); at least 300 ms of warm-up launches per shape; then 9
// samples, each a batch of back-to-back launches (about 25 ms) between one pair of CUDA events; the
// median time per launch. TFLOP/s = 2·M·N·K / time. Prints JSON lines (with GEMM_ROUND) for
// bench/gemm.sh, which alternates this with bench/gemm_torch.py (the same method with
// torch.matmul) for several rounds in one run.
import { readFileSync } from 'node:fs';
import { f32ToBf16Bits } from '@deepwell/core';
import { Event, Stream, cudaBackend, findLibrary, loadNative } from '@deepwell/kernels-native';

// [name, M, N, K, transA, transB]: D[M, N] = op(A)[M, K] · op(B)[K, N], row-major.
export const SHAPES = JSON.parse(readFileSync(new URL('./gemm-shapes.json', import.meta.url), 'utf8')).shapes;

if (!findLibrary('cublasLt').found) throw new Error('cuBLASLt not found');
const n = loadNative();
const be = cudaBackend(0);
const stream = new Stream(0);
// Tensors as the typed entry points take them, and one cuBLASLt workspace for every call (the
// 32 MiB a compiled step's plan gives a GEMM).
const t = (buf) => ({ base: buf.ptr, offset: 0, bytes: buf.bytes });
const workspaceBuf = be.alloc(32 << 20);
const workspace = t(workspaceBuf);
const block = Uint16Array.from({ length: 32 << 20 }, () => f32ToBf16Bits(Math.random() * 2 - 1));
function randomBuffer(elems) {
  const buf = be.alloc(elems * 2);
  be.write(buf, block.subarray(0, Math.min(block.length, elems)));
  for (let done = Math.min(block.length, elems); done < elems; ) {
    const k = Math.min(done, elems - done);
    be.copy(buf, buf, k * 2, done * 2, 0);
    done += k;
  }
  return buf;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = Number(process.env.GEMM_ROUND ?? 1);
const L2_ROTATE_BYTES = 256 << 20; // operand sets cycled through so inputs do not stay in the 60 MiB L2
function timed(launches) {
  const [s, e] = [new Event(0), new Event(0)];
  s.record(stream);
  launches();
  e.record(stream);
  e.synchronize();
  const ms = e.elapsedSince(s);
  s.dispose();
  e.dispose();
  return ms;
}
for (const [name, M, N, K, ta, tb] of SHAPES) {
  const setBytes = 2 * (M * K + K * N + M * N);
  const sets = Math.max(1, Math.min(8, Math.ceil(L2_ROTATE_BYTES / setBytes)));
  const bufs = Array.from({ length: sets }, () => [randomBuffer(M * K), randomBuffer(K * N), be.alloc(M * N * 2)]);
  let next = 0;
  const launch = () => {
    const [a, b, d] = bufs[next++ % sets];
    n.gemmLt(stream.handle, 1, ta ? 1 : 0, tb ? 1 : 0, M, N, K, 1, 0, 0, M * N, 0, t(a), t(b), t(d), 0, null, null, workspace);
  };
  // Warm-up: at least 300 ms of this GEMM (clocks settle, the plan is cached).
  const one = timed(() => launch());
  const per = Math.max(sets, Math.ceil(25 / Math.max(one, 1e-3)));
  for (let t = 0; t < 300; ) t += timed(() => { for (let i = 0; i < per; i++) launch(); });
  // 9 samples, each a batch of back-to-back launches (>= ~25 ms) between one pair of events.
  const samples = [];
  for (let r = 0; r < 9; r++) samples.push(timed(() => { for (let i = 0; i < per; i++) launch(); }) / per);
  const ms = median(samples);
  console.log(JSON.stringify({ impl: 'deepwell', round, name, M, N, K, ms, tflops: (2 * M * N * K) / (ms * 1e9), launchesPerSample: per, operandSets: sets }));
  for (const set of bufs) for (const b of set) be.free(b);
  be.emptyCache();
}
be.free(workspaceBuf);
stream.dispose();
