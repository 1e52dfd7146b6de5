#!/usr/bin/env node
// Deepwell's grouped GEMM (groupedGemm / groupedGemmWgrad through the native addon) at the cases of
// bench/grouped-gemm-cases.json, bf16, measured as bench/gemm.mjs measures a GEMM (the method's
// code is bench/gemm-method.mjs): inputs tiled from a 64 MiB random block (bf16 uniform in (-1, 1)),
// operand sets cycled so at least 256 MiB is touched, at least 300 ms of warm-up, then 9 samples of
// back-to-back launches (about 25 ms each) between one pair of CUDA events; the median per launch.
// The group offsets are on the device, as dropless routing leaves them. TFLOP/s = 2·R·K·N / time.
// Prints JSON lines (with GROUPED_GEMM_ROUND) for bench/grouped_gemm.sh, which alternates this with
// bench/grouped_gemm_torch.py (torch._grouped_mm, the same method) in one run.
// GROUPED_GEMM_CASES (a comma list of names) selects cases.
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

for (const [name, E, R, K, N, routing, pass] of CASES) {
  const owned = [];
  const alloc = (buf) => (owned.push(buf), buf);
  try {
    const sizes = groupSizes(E, R, routing);
    const offsets = Int32Array.from({ length: E + 1 }, (_, e) => sizes.slice(0, e).reduce((a, b) => a + b, 0));
    const offBuf = alloc(be.alloc(offsets.byteLength));
    be.write(offBuf, offsets);
    const [aElems, bElems, dElems] = pass === 'wgrad' ? [R * K, R * N, E * K * N] : [R * K, E * K * N, R * N];
    const sets = operandSets(2 * (aElems + bElems + dElems));
    const args = Array.from({ length: sets }, () => [t(alloc(tiledBuffer(be, bf16Block, aElems * 2))), t(alloc(tiledBuffer(be, bf16Block, bElems * 2))), t(alloc(be.alloc(dElems * 2)))]);
    let next = 0;
    const launch = () => {
      const [a, b, d] = args[next++ % sets];
      if (pass === 'wgrad') n.groupedGemmWgrad(stream.handle, codes.dtype.bf16, R, K, N, E, a, b, t(offBuf), d);
      else n.groupedGemm(stream.handle, codes.dtype.bf16, R, K, N, E, 0, a, b, t(offBuf), d);
    };
    launch();
    n.opsErrorCheck(stream.handle); // the offsets are good
    const { ms, per } = measure(stream, launch, sets);
    console.log(JSON.stringify({ impl: 'deepwell', round, name, E, R, K, N, routing, pass, ms, tflops: (2 * R * K * N) / (ms * 1e9), launchesPerSample: per, operandSets: sets, sizes: [Math.min(...sizes), Math.max(...sizes)] }));
  } catch (e) {
    console.log(JSON.stringify({ impl: 'deepwell', round, name, error: String(e?.message ?? e) }));
  } finally {
    stream.synchronize();
    for (const b of owned) be.free(b);
  }
}
stream.dispose();
