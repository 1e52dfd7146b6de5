#!/usr/bin/env node
// Deepwell's FP8 GEMM (scaledGemmLt: cuBLASLt through the native addon) beside its bf16 GEMM on the
// same D[M, N] = A[M, K] · B[N, K]ᵀ, at the shapes and in the modes of bench/scaled-gemm-shapes.json:
// bf16 (gemmLt, transB), and FP8 with tensor, row, 1 × 128 and 128 × 128 block scales (see the
// file). Method, as bench/gemm.mjs's (the code is bench/gemm-method.mjs): random inputs (a 64 MiB
// random block tiled through each buffer; FP8 codes are random bytes with the NaN codes, and for
// e5m2 the infinities, moved to the largest finite exponent, so never NaN or Inf; bf16 values
// uniform in (-1, 1)); scales positive random f32 in [0.5, 2), one buffer per operand set, in
// scaledGemmLt's layouts; operand sets cycled so at least 256 MiB is touched; at least 300 ms of
// warm-up launches per case; then 9 samples, each a batch of back-to-back launches (about 25 ms)
// between one pair of CUDA events; the median time per launch. TFLOP/s = 2·M·N·K / time.
// Prints JSON lines (with SCALED_GEMM_ROUND) for bench/scaled_gemm.sh, which alternates this with
// bench/scaled_gemm_torch.py (the same method with torch._scaled_mm / scaled_mm) for several
// rounds in one run. A mode the native side rejects (scaledGemmLtSupported gives a reason, or the
// call throws) prints a line with `error` and the run goes on.
// SCALED_GEMM_SHAPES and SCALED_GEMM_MODES (comma lists) select shapes (full name, or the part
// before ':') and modes, e.g. SCALED_GEMM_SHAPES=fc,8192^3 SCALED_GEMM_MODES=bf16,rowwise.
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { f32ToBf16Bits } from '@deepwell/core';
import { Stream, cudaBackend, findLibrary, loadNative } from '@deepwell/kernels-native';
import { codes } from '../packages/kernels-native/abi/table.mjs';
import { RANDOM_BLOCK_BYTES, measure, operandSets, tensorArg as t, tiledBuffer } from './gemm-method.mjs';

const SPEC = JSON.parse(readFileSync(new URL('./scaled-gemm-shapes.json', import.meta.url), 'utf8'));

/** The entries of `list` that a comma list in env var `what` names (by any of `keys(entry)`); all when unset. */
function select(list, what, keys) {
  const wanted = (process.env[what] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (wanted.length === 0) return list;
  const unknown = wanted.filter((w) => !list.some((x) => keys(x).includes(w)));
  if (unknown.length) throw new Error(`${what}: unknown ${unknown.map((u) => `'${u}'`).join(', ')}; known: ${list.map((x) => keys(x).at(-1)).join(', ')}`);
  return list.filter((x) => keys(x).some((k) => wanted.includes(k)));
}
// [name, M, N, K]: D[M, N] = A[M, K] · B[N, K]ᵀ, row-major, both operands K-major.
const SHAPES = select(SPEC.shapes, 'SCALED_GEMM_SHAPES', ([name]) => [name, name.split(':')[0].trim()]);
// [mode, null (bf16) | { a, b, aScaling, bScaling, fastAccum }].
const MODES = select(Object.entries(SPEC.modes), 'SCALED_GEMM_MODES', ([mode]) => [mode]);

if (!findLibrary('cublasLt').found) throw new Error('cuBLASLt not found');
const n = loadNative();
const be = cudaBackend(0);
const stream = new Stream(0);
// One cuBLASLt workspace for every call (the 32 MiB a compiled step's plan gives a GEMM).
const workspaceBuf = be.alloc(32 << 20);
const workspace = t(workspaceBuf);
const round = Number(process.env.SCALED_GEMM_ROUND ?? 1);
const hasScaled = typeof n.scaledGemmLt === 'function' && codes.fp8 !== undefined && codes.scaling !== undefined;
{
  const lt = findLibrary('cublasLt');
  const info = { cublasLt: lt.version, cublasLtPath: lt.path, build: n.build, scaledGemmLt: hasScaled };
  console.log(JSON.stringify({ impl: 'deepwell', round, info }));
}

// The random host blocks, made on first use: bf16 values in (-1, 1) as bench/gemm.mjs makes them,
// and FP8 codes from one block of random bytes with each format's non-finite codes remapped:
// e4m3's NaNs (S.1111.111) lose the low mantissa bit (±448); e5m2's NaNs and infinities
// (S.11111.xx) lose the low exponent bit (±2^15 · 1.xx, the largest finite exponent).
let bf16Block = null;
let randomBytes = null;
const fp8Blocks = {};
const NON_FINITE = { e4m3: { mask: 0x7f, clear: 0x01 }, e5m2: { mask: 0x7c, clear: 0x04 } };
function fp8Block(format) {
  if (!fp8Blocks[format]) {
    const { mask, clear } = NON_FINITE[format];
    randomBytes ??= randomFillSync(new Uint8Array(RANDOM_BLOCK_BYTES));
    fp8Blocks[format] = randomBytes.map((c) => ((c & mask) === mask ? c & ~clear : c));
  }
  return fp8Blocks[format];
}
function bf16Random() {
  bf16Block ??= Uint16Array.from({ length: RANDOM_BLOCK_BYTES / 2 }, () => f32ToBf16Bits(Math.random() * 2 - 1));
  return bf16Block;
}

/**
 * f32 scales for an operand of `rows` rows (M for A, N for B) and depth K, in scaledGemmLt's
 * layouts, with L = K / 128: tensor f32[1]; row f32[rows]; block1x128 f32[L, rows] (rows
 * contiguous); block128x128 f32[ceil(rows / 128), L4], L4 = L rounded up to a multiple of 4 (the
 * padding is not read, and is filled like the rest).
 */
function scaleElems(scaling, rows, K) {
  const L = Math.ceil(K / 128);
  if (scaling === 'tensor') return 1;
  if (scaling === 'row') return rows;
  if (scaling === 'block1x128') return L * rows;
  if (scaling === 'block128x128') return Math.ceil(rows / 128) * Math.ceil(L / 4) * 4;
  throw new Error(`unknown scaling '${scaling}'`);
}

/**
 * One case's operand sets and its launch, for `measure`. Every buffer it allocates goes into
 * `owned`, which the caller frees whether or not the case ran.
 */
function prepareBf16(M, N, K, owned) {
  const alloc = (buf) => (owned.push(buf), buf);
  const sets = operandSets(2 * (M * K + N * K + M * N));
  const args = Array.from({ length: sets }, () => [
    t(alloc(tiledBuffer(be, bf16Random(), M * K * 2))),
    t(alloc(tiledBuffer(be, bf16Random(), N * K * 2))),
    t(alloc(be.alloc(M * N * 2))),
  ]);
  let next = 0;
  const launch = () => {
    const [a, b, d] = args[next++ % sets];
    // D = A · Bᵀ: transA 0, transB 1, batch 1, no tf32, no epilogue.
    n.gemmLt(stream.handle, codes.dtype.bf16, 0, 1, M, N, K, 1, 0, 0, M * N, 0, a, b, d, codes.epilogue.none, null, null, workspace);
  };
  return { api: 'gemmLt', launch, sets };
}

function prepareScaled(M, N, K, mode, owned) {
  if (!hasScaled) {
    throw new Error(
      typeof n.scaledGemmLt === 'function'
        ? 'the ABI table (packages/kernels-native/abi/table.mjs) has no codes.fp8 / codes.scaling'
        : 'the loaded addon has no scaledGemmLt (build kernels-native, native addon and dist, from an ABI table that declares it)',
    );
  }
  const aFormat = codes.fp8[mode.a];
  const bFormat = codes.fp8[mode.b];
  const aScaling = codes.scaling[mode.aScaling];
  const bScaling = codes.scaling[mode.bScaling];
  const fastAccum = mode.fastAccum ? 1 : 0;
  const [outDtype, epilogue] = [codes.dtype.bf16, codes.epilogue.none];
  if (typeof n.scaledGemmLtSupported === 'function') {
    const why = n.scaledGemmLtSupported(M, N, K, aFormat, bFormat, aScaling, bScaling, outDtype, fastAccum, epilogue, workspace.bytes);
    if (why) throw new Error(`scaledGemmLtSupported: ${why}`);
  }
  const alloc = (buf) => (owned.push(buf), buf);
  const scales = (elems) => {
    const buf = alloc(be.alloc(elems * 4));
    be.write(buf, Float32Array.from({ length: elems }, () => 2 ** (2 * Math.random() - 1)));
    return t(buf);
  };
  const [aScaleElems, bScaleElems] = [scaleElems(mode.aScaling, M, K), scaleElems(mode.bScaling, N, K)];
  const sets = operandSets(M * K + N * K + 2 * M * N + 4 * (aScaleElems + bScaleElems));
  const args = Array.from({ length: sets }, () => [
    t(alloc(tiledBuffer(be, fp8Block(mode.a), M * K))),
    scales(aScaleElems),
    t(alloc(tiledBuffer(be, fp8Block(mode.b), N * K))),
    scales(bScaleElems),
    t(alloc(be.alloc(M * N * 2))),
  ]);
  let next = 0;
  const launch = () => {
    const [a, aScale, b, bScale, d] = args[next++ % sets];
    n.scaledGemmLt(stream.handle, M, N, K, aFormat, bFormat, aScaling, bScaling, outDtype, fastAccum, a, aScale, b, bScale, d, epilogue, null, null, null, workspace);
  };
  return { api: 'scaledGemmLt', launch, sets };
}

for (const [name, M, N, K] of SHAPES) {
  for (const [mode, spec] of MODES) {
    const row = { impl: 'deepwell', mode, round, name, M, N, K };
    const owned = [];
    try {
      const { api, launch, sets } = spec ? prepareScaled(M, N, K, spec, owned) : prepareBf16(M, N, K, owned);
      const { ms, per } = measure(stream, launch, sets);
      console.log(JSON.stringify({ ...row, api, ms, tflops: (2 * M * N * K) / (ms * 1e9), launchesPerSample: per, operandSets: sets }));
    } catch (e) {
      const message = String(e?.message ?? e).split('\n')[0];
      console.log(JSON.stringify({ ...row, error: message, ...(e?.code ? { errorCode: e.code } : {}) }));
    } finally {
      // After a failed launch the stream may still run earlier ones: let them finish first. After a
      // CUDA error these may throw as well; the next cases then report errors of their own.
      try {
        stream.synchronize();
        for (const buf of owned) be.free(buf);
        be.emptyCache();
      } catch (e) {
        console.error(`scaled_gemm.mjs: cleaning up after ${name} ${mode}: ${String(e?.message ?? e).split('\n')[0]}`);
      }
    }
  }
}
be.free(workspaceBuf);
stream.dispose();
