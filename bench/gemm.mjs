#!/usr/bin/env node
// Deepwell's bf16 GEMM (cuBLASLt through the native addon) at 8192³ and the GPT-2 small shapes with
// their backward forms. Method: random bf16 inputs (a 64 MiB random block tiled through each
// buffer; never zeros); operand sets cycled so at least 256 MiB is touched (inputs are not served
// from the 60 MiB L2 on the next launch); at least 300 ms of warm-up launches per shape; then 9
// samples, each a batch of back-to-back launches (about 25 ms) between one pair of CUDA events; the
// median time per launch. TFLOP/s = 2·M·N·K / time. Prints JSON lines (with GEMM_ROUND) for
// bench/gemm.sh, which alternates this with bench/gemm_torch.py (the same method with
// torch.matmul) for several rounds in one run. The method's code is bench/gemm-method.mjs, shared
// with bench/scaled_gemm.mjs.
import { readFileSync } from 'node:fs';
import { f32ToBf16Bits } from '@deepwell/core';
import { Stream, cudaBackend, findLibrary, loadNative } from '@deepwell/kernels-native';
import { RANDOM_BLOCK_BYTES, measure, operandSets, tensorArg as t, tiledBuffer } from './gemm-method.mjs';

// [name, M, N, K, transA, transB]: D[M, N] = op(A)[M, K] · op(B)[K, N], row-major.
export const SHAPES = JSON.parse(readFileSync(new URL('./gemm-shapes.json', import.meta.url), 'utf8')).shapes;

if (!findLibrary('cublasLt').found) throw new Error('cuBLASLt not found');
const n = loadNative();
const be = cudaBackend(0);
const stream = new Stream(0);
// One cuBLASLt workspace for every call (the 32 MiB a compiled step's plan gives a GEMM).
const workspaceBuf = be.alloc(32 << 20);
const workspace = t(workspaceBuf);
const block = Uint16Array.from({ length: RANDOM_BLOCK_BYTES / 2 }, () => f32ToBf16Bits(Math.random() * 2 - 1));
const randomBuffer = (elems) => tiledBuffer(be, block, elems * 2);
const round = Number(process.env.GEMM_ROUND ?? 1);
for (const [name, M, N, K, ta, tb] of SHAPES) {
  const sets = operandSets(2 * (M * K + K * N + M * N));
  const bufs = Array.from({ length: sets }, () => [randomBuffer(M * K), randomBuffer(K * N), be.alloc(M * N * 2)]);
  let next = 0;
  const launch = () => {
    const [a, b, d] = bufs[next++ % sets];
    n.gemmLt(stream.handle, 1, ta ? 1 : 0, tb ? 1 : 0, M, N, K, 1, 0, 0, M * N, 0, t(a), t(b), t(d), 0, null, null, workspace);
  };
  const { ms, per } = measure(stream, launch, sets);
  console.log(JSON.stringify({ impl: 'deepwell', round, name, M, N, K, ms, tflops: (2 * M * N * K) / (ms * 1e9), launchesPerSample: per, operandSets: sets }));
  for (const set of bufs) for (const b of set) be.free(b);
  be.emptyCache();
}
be.free(workspaceBuf);
stream.dispose();
