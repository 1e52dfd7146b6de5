#!/usr/bin/env node
// MXFP8 on Hopper, timed: our own exact kernel (mx8GemmSm90, native/gemm/gemm_mx8_sm90.cu) beside
// what it replaces — emulation: both operands dequantized to bf16 (the dequantize kernel, reading
// the same codes and tiled E8M0 scales) and our BF16 GEMM (gemmLt) — and beside the BF16 GEMM alone,
// on the same D[M, N] = A[M, K] · B[N, K]ᵀ with bf16 output. Method as bench/scaled_gemm.mjs's
// (bench/gemm-method.mjs: random inputs, operand sets cycled over >= 256 MiB, warm-up, 9 samples of
// back-to-back launches, the median). FP8 codes are random bytes with e4m3's NaN codes remapped to
// ±448; scale codes random in 120..134 (2^−7 .. 2^7), the tiles' padding 0. TFLOP/s = 2·M·N·K /
// time. Prints JSON lines; the kernel's bound (near the BF16 tensor-core peak, not FP8's) is
// explained in the kernel file.
//   node bench/mx8_gemm.mjs                      (shapes below; MX8_SHAPES=16384x3072x768 for one)
import { randomFillSync } from 'node:crypto';
import { f32ToBf16Bits } from '@deepwell/core';
import { Stream, cudaBackend, findLibrary, loadNative } from '@deepwell/kernels-native';
import { codes } from '../packages/kernels-native/abi/table.mjs';
import { RANDOM_BLOCK_BYTES, measure, operandSets, tensorArg as t, tiledBuffer } from './gemm-method.mjs';

const SHAPES = (process.env.MX8_SHAPES ?? '16384x3072x768,8192x8192x8192').split(',').map((s) => s.split('x').map(Number));
if (!findLibrary('cublasLt').found) throw new Error('cuBLASLt not found (the BF16 GEMM and the emulation need it)');
const n = loadNative();
if (typeof n.mx8GemmSm90 !== 'function') throw new Error('the loaded addon has no mx8GemmSm90 (rebuild kernels-native)');
const be = cudaBackend(0);
const stream = new Stream(0);
const workspaceBuf = be.alloc(32 << 20);
const workspace = t(workspaceBuf);
console.log(JSON.stringify({ bench: 'mx8_gemm', build: n.build, cublasLt: findLibrary('cublasLt').version }));

const random = randomFillSync(new Uint8Array(RANDOM_BLOCK_BYTES));
const e4m3 = random.map((c) => ((c & 0x7f) === 0x7f ? c & ~1 : c));
const bf16 = Uint16Array.from({ length: RANDOM_BLOCK_BYTES / 2 }, () => f32ToBf16Bits(Math.random() * 2 - 1));
const scaleBlock = Uint8Array.from({ length: 1 << 20 }, () => 120 + Math.floor(Math.random() * 15));
const tiledBytes = (R, K) => Math.ceil(R / 128) * Math.ceil(K / 32 / 4) * 512;

for (const [M, N, K] of SHAPES) {
  const owned = [];
  const alloc = (buf) => (owned.push(buf), buf);
  const run = (mode, api, prepare) => {
    const row = { mode, M, N, K };
    try {
      const { launch, sets } = prepare();
      const { ms, per } = measure(stream, launch, sets);
      console.log(JSON.stringify({ ...row, api, ms, tflops: (2 * M * N * K) / (ms * 1e9), launchesPerSample: per, operandSets: sets }));
    } catch (e) {
      console.log(JSON.stringify({ ...row, error: String(e?.message ?? e).split('\n')[0] }));
    }
  };
  // MXFP8 operand sets: codes and tiled scale codes of a and b, and a bf16 d.
  const mxSets = operandSets(M * K + N * K + 2 * M * N);
  const mx = Array.from({ length: mxSets }, () => [
    t(alloc(tiledBuffer(be, e4m3, M * K))),
    t(alloc(tiledBuffer(be, scaleBlock, tiledBytes(M, K)))),
    t(alloc(tiledBuffer(be, e4m3, N * K))),
    t(alloc(tiledBuffer(be, scaleBlock, tiledBytes(N, K)))),
    t(alloc(be.alloc(M * N * 2))),
  ]);
  let next = 0;
  run('mxfp8-sm90', 'mx8GemmSm90', () => ({
    sets: mxSets,
    launch: () => {
      const [a, sa, b, sb, d] = mx[next++ % mxSets];
      n.mx8GemmSm90(stream.handle, M, N, K, codes.fp8.e4m3, codes.fp8.e4m3, codes.dtype.bf16, a, sa, b, sb, d);
    },
  }));
  // Emulation: dequantize a and b to bf16 (scales in the tiled layout: flags gemm), then the BF16 GEMM.
  const [ab, bb] = [t(alloc(be.alloc(M * K * 2))), t(alloc(be.alloc(N * K * 2)))];
  run('mxfp8-emulated', 'dequantize ×2 + gemmLt', () => ({
    sets: mxSets,
    launch: () => {
      const [a, sa, b, sb, d] = mx[next++ % mxSets];
      n.dequantize(stream.handle, codes.format['mxfp8-e4m3'], codes.dtype.bf16, M, K, 4, a, sa, null, ab);
      n.dequantize(stream.handle, codes.format['mxfp8-e4m3'], codes.dtype.bf16, N, K, 4, b, sb, null, bb);
      n.gemmLt(stream.handle, codes.dtype.bf16, 0, 1, M, N, K, 1, 0, 0, M * N, 0, ab, bb, d, codes.epilogue.none, null, null, workspace);
    },
  }));
  // The BF16 GEMM alone on bf16 operands.
  const bfSets = operandSets(2 * (M * K + N * K + M * N));
  const bf = Array.from({ length: bfSets }, () => [t(alloc(tiledBuffer(be, bf16, M * K * 2))), t(alloc(tiledBuffer(be, bf16, N * K * 2))), t(alloc(be.alloc(M * N * 2)))]);
  run('bf16', 'gemmLt', () => ({
    sets: bfSets,
    launch: () => {
      const [a, b, d] = bf[next++ % bfSets];
      n.gemmLt(stream.handle, codes.dtype.bf16, 0, 1, M, N, K, 1, 0, 0, M * N, 0, a, b, d, codes.epilogue.none, null, null, workspace);
    },
  }));
  try {
    stream.synchronize();
  } finally {
    for (const buf of owned) be.free(buf);
    be.emptyCache();
  }
}
be.free(workspaceBuf);
stream.dispose();
