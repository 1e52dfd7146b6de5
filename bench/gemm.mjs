#!/usr/bin/env node
// Deepwell's bf16 GEMM (cuBLASLt through the native addon) at 8192³ and the GPT-2 small shapes with
// their backward forms. Method: random bf16 inputs (a 64 MiB random block tiled through each
// buffer; never zeros), 5 warm-up launches, then 20 launches each timed with its own pair of CUDA
// events; the median. TFLOP/s = 2·M·N·K / time. Prints JSON lines for bench/gemm.sh to compare
// with bench/gemm_torch.py, which does the same with torch.matmul in the same run.
import { readFileSync } from 'node:fs';
import { f32ToBf16Bits } from '@deepwell/core';
import { Event, Stream, cudaBackend, findLibrary, loadNative } from '@deepwell/kernels-native';

// [name, M, N, K, transA, transB]: D[M, N] = op(A)[M, K] · op(B)[K, N], row-major.
export const SHAPES = JSON.parse(readFileSync(new URL('./gemm-shapes.json', import.meta.url), 'utf8')).shapes;

if (!findLibrary('cublasLt').found) throw new Error('cuBLASLt not found');
const n = loadNative();
const be = cudaBackend(0);
const stream = new Stream(0);
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
for (const [name, M, N, K, ta, tb] of SHAPES) {
  const a = randomBuffer(M * K);
  const b = randomBuffer(K * N);
  const d = be.alloc(M * N * 2);
  const launch = () => n.gemmLt(stream.handle, 1, ta ? 1 : 0, tb ? 1 : 0, M, N, K, 1, 0, 0, M * N, 0, a.ptr, 0, b.ptr, 0, d.ptr, 0, 0, 0, 0);
  for (let i = 0; i < 5; i++) launch();
  const times = [];
  for (let i = 0; i < 20; i++) {
    const [s, e] = [new Event(0), new Event(0)];
    s.record(stream);
    launch();
    e.record(stream);
    e.synchronize();
    times.push(e.elapsedSince(s));
    s.dispose();
    e.dispose();
  }
  const ms = median(times);
  console.log(JSON.stringify({ impl: 'deepwell', name, M, N, K, ms, tflops: (2 * M * N * K) / (ms * 1e9) }));
  be.free(a);
  be.free(b);
  be.free(d);
  be.emptyCache();
}
stream.dispose();
