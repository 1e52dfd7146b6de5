#!/usr/bin/env node
// Deepwell's grouped GEMM (groupedGemm / groupedGemmWgrad through the native addon; groupedScaledGemm
// for the 'fp8' cases: random finite e4m3 codes, scales uniform in [0.5, 1.5)) at the cases of
// bench/grouped-gemm-cases.json, bf16 (or FP8 in, bf16 out), measured as bench/gemm.mjs measures a GEMM (the method's
// code is bench/gemm-method.mjs): inputs tiled from a 64 MiB random block (bf16 uniform in (-1, 1)),
// operand sets cycled so at least 256 MiB is touched, at least 300 ms of warm-up, then 9 samples of
// back-to-back launches (about 25 ms each) between one pair of CUDA events; the median per launch.
// The group offsets are on the device, as dropless routing leaves them. TFLOP/s = 2·R·K·N / time.
// Prints JSON lines (with GROUPED_GEMM_ROUND) for bench/grouped_gemm.sh, which alternates this with
// bench/grouped_gemm_torch.py (torch._grouped_mm, the same method) in one run.
// GROUPED_GEMM_CASES (a comma list of names) selects cases. Each 'fwd' and 'gelu' case is measured
// three times: on the default tiles ('deepwell'), on the 128 × 256 tiles ('deepwell-wide') and under
// the pingpong schedule ('deepwell-pingpong'). 'gelu' runs the GELU epilogue (groupedEpilogue.gelu,
// writing the pre-activation too). 'fp8-wgrad' is measured alone and with its two quantizeKgrouped calls.
// 'fp8-gelu' and 'fp8-dgelu' run groupedScaledGemmAct (the FP8 GEMM with the activation and the next
// GEMM's quantize fused; FLOPs of the GEMM alone): against the 'fp8' case of the same shape, the
// cost of the fused epilogue. 'fp8-swiglu' runs groupedScaledGemmSwiglu (a SwiGLU expert MLP's gate
// and up GEMMs from one pass over x, silu(gate) · up and the next GEMM's quantize fused; FLOPs of
// both GEMMs, 4·R·K·N): against the 'fp8' case of the shape, the same.
import { readFileSync } from 'node:fs';
import { f32ToBf16Bits } from '@deepwell/core';
import { Stream, cudaBackend, loadNative } from '@deepwell/kernels-native';
import { codes } from '../packages/kernels-native/abi/table.mjs';
import { RANDOM_BLOCK_BYTES, measure, operandSets, tensorArg as t, tiledBuffer } from './gemm-method.mjs';

const SPEC = JSON.parse(readFileSync(new URL('./grouped-gemm-cases.json', import.meta.url), 'utf8'));
const wanted = (process.env.GROUPED_GEMM_CASES ?? '').split(',').filter(Boolean);
const CASES = SPEC.cases.filter(([name]) => wanted.length === 0 || wanted.includes(name));

/** Group sizes (bench/grouped-gemm-cases.json's rule, as bench/grouped_gemm_torch.py computes them). */
export function groupSizes(E, R, routing) {
  const w = Array.from({ length: E }, (_, e) => (routing === 'skewed' ? 1 / (e + 1) : 1));
  const total = w.reduce((a, b) => a + b, 0);
  const sizes = w.map((x) => Math.floor((R * x) / total));
  let left = R - sizes.reduce((a, b) => a + b, 0);
  for (let e = 0; left > 0; e = (e + 1) % E, left--) sizes[e]++;
  return sizes;
}

const n = loadNative();
const be = cudaBackend(0);
const stream = new Stream(0);
const round = Number(process.env.GROUPED_GEMM_ROUND ?? 1);
console.log(JSON.stringify({ impl: 'deepwell', round, info: { build: n.build } }));
const bf16Block = Uint16Array.from({ length: RANDOM_BLOCK_BYTES / 2 }, () => f32ToBf16Bits(Math.random() * 2 - 1));
// e4m3 codes without the NaNs (S.1111.111); f32 scales in [0.5, 1.5).
const e4m3Block = Uint8Array.from({ length: RANDOM_BLOCK_BYTES }, () => {
  const c = Math.floor(Math.random() * 256);
  return (c & 0x7f) === 0x7f ? c - 1 : c;
});
const scaleBlock = Float32Array.from({ length: 1 << 20 }, () => 0.5 + Math.random());

/**
 * The FP8 k-grouped weight gradient: groupedScaledGemmWgrad on e4m3 codes a [K, P], b [N, P] (P =
 * 128 · (ceil(R / 128) + E)) with scales [P / 128, K] and [P / 128, N], bf16 dw [E, K, N]; then the
 * same with the two quantizeKgrouped calls that make the operands from bf16 x [R, K] and g [R, N]
 * ('deepwell-with-quantize'). TFLOP/s from the real rows, 2 · R · K · N, as the bf16 'wgrad' case.
 */
function fp8Wgrad(name, E, R, K, N, routing, sizes, offBuf, alloc) {
  const P = 128 * (Math.ceil(R / 128) + E);
  const sets = operandSets((K + N) * P + 2 * E * K * N + 2 * R * (K + N));
  const args = Array.from({ length: sets }, () => ({
    a: t(alloc(tiledBuffer(be, e4m3Block, K * P))),
    sa: t(alloc(tiledBuffer(be, scaleBlock, (P / 128) * K * 4))),
    b: t(alloc(tiledBuffer(be, e4m3Block, N * P))),
    sb: t(alloc(tiledBuffer(be, scaleBlock, (P / 128) * N * 4))),
    d: t(alloc(be.alloc(E * K * N * 2))),
    x: t(alloc(tiledBuffer(be, bf16Block, R * K * 2))),
    g: t(alloc(tiledBuffer(be, bf16Block, R * N * 2))),
  }));
  const row = (impl, v) => ({ impl, round, name, E, R, K, N, routing, pass: 'fp8-wgrad', ms: v.ms, tflops: (2 * R * K * N) / (v.ms * 1e9), launchesPerSample: v.per, operandSets: sets, sizes: [Math.min(...sizes), Math.max(...sizes)], P });
  for (const withQuantize of [false, true]) {
    let next = 0;
    const launch = () => {
      const s = args[next++ % sets];
      if (withQuantize) {
        n.quantizeKgrouped(stream.handle, codes.dtype.bf16, R, K, E, P, s.x, t(offBuf), s.a, s.sa);
        n.quantizeKgrouped(stream.handle, codes.dtype.bf16, R, N, E, P, s.g, t(offBuf), s.b, s.sb);
      }
      n.groupedScaledGemmWgrad(stream.handle, K, N, P, E, codes.fp8.e4m3, codes.fp8.e4m3, codes.dtype.bf16, s.a, s.sa, s.b, s.sb, t(offBuf), s.d);
    };
    // Real operands for the first call: quantized, so the padding is zero codes.
    for (const s of args) {
      n.quantizeKgrouped(stream.handle, codes.dtype.bf16, R, K, E, P, s.x, t(offBuf), s.a, s.sa);
      n.quantizeKgrouped(stream.handle, codes.dtype.bf16, R, N, E, P, s.g, t(offBuf), s.b, s.sb);
    }
    launch();
    n.opsErrorCheck(stream.handle);
    console.log(JSON.stringify(row(withQuantize ? 'deepwell-with-quantize' : 'deepwell', measure(stream, launch, sets))));
  }
}

for (const [name, E, R, K, N, routing, pass] of CASES) {
  const owned = [];
  const alloc = (buf) => (owned.push(buf), buf);
  try {
    const sizes = groupSizes(E, R, routing);
    const offsets = Int32Array.from({ length: E + 1 }, (_, e) => sizes.slice(0, e).reduce((a, b) => a + b, 0));
    const offBuf = alloc(be.alloc(offsets.byteLength));
    be.write(offBuf, offsets);
    if (pass === 'fp8-wgrad') {
      fp8Wgrad(name, E, R, K, N, routing, sizes, offBuf, alloc);
      continue;
    }
    const [aElems, bElems, dElems] = pass === 'wgrad' ? [R * K, R * N, E * K * N] : [R * K, E * K * N, R * N];
    const gelu = pass === 'gelu';
    // 'fp8-gelu' / 'fp8-dgelu': groupedScaledGemmAct, the FP8 GEMM with GELU (or its gradient, the
    // pre-activation read) and the 1 × 128 quantize of the result in the epilogue (writing d, the
    // codes and scales, and for GELU the pre-activation).
    const act = pass === 'fp8-gelu' || pass === 'fp8-dgelu';
    // 'fp8-swiglu': groupedScaledGemmSwiglu, both products of a tile (w1, w3), the SwiGLU and the
    // 1 × 128 quantize of its result in the epilogue (writing d, gate, up, the codes and scales).
    const swiglu = pass === 'fp8-swiglu';
    const fp8 = pass === 'fp8' || act || swiglu;
    const inBytes = fp8 ? 1 : 2;
    // FP8: a's 1 × 128 scales [K/128, R], b's 128 × 128 scales [E, ceil(N/128), L4].
    const scaleElems = fp8 ? [(K / 128) * R, E * Math.ceil(N / 128) * Math.ceil(K / 128 / 4) * 4] : [0, 0];
    const sets = operandSets(swiglu ? aElems + 2 * bElems + 7 * dElems : inBytes * (aElems + bElems) + 2 * dElems);
    const args = Array.from({ length: sets }, () => [
      t(alloc(tiledBuffer(be, fp8 ? e4m3Block : bf16Block, aElems * inBytes))),
      t(alloc(tiledBuffer(be, fp8 ? e4m3Block : bf16Block, bElems * inBytes))),
      t(alloc(be.alloc(dElems * 2))),
      ...(fp8 ? scaleElems.map((m) => t(alloc(tiledBuffer(be, scaleBlock, m * 4)))) : []),
      ...(gelu ? [t(alloc(be.alloc(dElems * 2)))] : []), // the pre-activation the GELU epilogue writes
      ...(act ? [t(alloc(tiledBuffer(be, bf16Block, dElems * 2))), t(alloc(be.alloc(dElems))), t(alloc(be.alloc((N / 128) * R * 4)))] : []), // aux (pre), codes, scales
      // SwiGLU: w3's codes and scales, then gate, up, codes, scales.
      ...(swiglu ? [t(alloc(tiledBuffer(be, e4m3Block, bElems))), t(alloc(tiledBuffer(be, scaleBlock, scaleElems[1] * 4))), t(alloc(be.alloc(dElems * 2))), t(alloc(be.alloc(dElems * 2))), t(alloc(be.alloc(dElems))), t(alloc(be.alloc((N / 128) * R * 4)))] : []),
    ]);
    let next = 0;
    const launch = () => {
      const set = args[next++ % sets];
      const [a, b, d, sa, sb] = set; // FP8: the scales; GELU: set[3] the pre-activation
      if (pass === 'wgrad') n.groupedGemmWgrad(stream.handle, codes.dtype.bf16, R, K, N, E, a, b, t(offBuf), d);
      else if (swiglu) n.groupedScaledGemmSwiglu(stream.handle, R, K, N, E, codes.fp8.e4m3, codes.fp8.e4m3, a, sa, b, sb, set[5], set[6], t(offBuf), d, set[7], set[8], set[9], set[10]);
      else if (act) n.groupedScaledGemmAct(stream.handle, R, K, N, E, codes.fp8.e4m3, codes.fp8.e4m3, codes.groupedEpilogue[pass.slice(4)], a, sa, b, sb, t(offBuf), d, set[5], set[6], set[7]);
      else if (fp8) n.groupedScaledGemm(stream.handle, R, K, N, E, codes.fp8.e4m3, codes.fp8.e4m3, codes.dtype.bf16, a, sa, b, sb, t(offBuf), d);
      else if (gelu) n.groupedGemm(stream.handle, codes.dtype.bf16, R, K, N, E, 0, a, b, t(offBuf), d, codes.groupedEpilogue.gelu, null, set[3], null);
      else n.groupedGemm(stream.handle, codes.dtype.bf16, R, K, N, E, 0, a, b, t(offBuf), d, codes.groupedEpilogue.none, null, null, null);
    };
    launch();
    n.opsErrorCheck(stream.handle); // the offsets are good
    const { ms, per } = measure(stream, launch, sets);
    const flops = (swiglu ? 4 : 2) * R * K * N; // SwiGLU: both products
    const row = (impl, ms, per) => ({ impl, round, name, E, R, K, N, routing, pass, ms, tflops: flops / (ms * 1e9), launchesPerSample: per, operandSets: sets, sizes: [Math.min(...sizes), Math.max(...sizes)] });
    console.log(JSON.stringify(row('deepwell', ms, per)));
    if (pass === 'fwd' || gelu) {
      // The same call on the Hopper kernel's other tilings, which the native side takes while the
      // variable is set (read at each call): the 128 × 256 tiles (gemm/grouped_wide_sm90.cuh) and
      // the 128-wide kernel's pingpong schedule.
      for (const [impl, key, value] of [['deepwell-wide', 'DW_GROUPED_TILE_N', '256'], ['deepwell-pingpong', 'DW_GROUPED_SCHEDULE', 'pingpong']]) {
        process.env[key] = value;
        try {
          launch();
          n.opsErrorCheck(stream.handle);
          const v = measure(stream, launch, sets);
          console.log(JSON.stringify(row(impl, v.ms, v.per)));
        } catch (e) {
          console.log(JSON.stringify({ impl, round, name, error: String(e?.message ?? e) }));
        } finally {
          delete process.env[key];
        }
      }
    }
  } catch (e) {
    console.log(JSON.stringify({ impl: 'deepwell', round, name, error: String(e?.message ?? e) }));
  } finally {
    stream.synchronize();
    for (const b of owned) be.free(b);
  }
}
stream.dispose();
