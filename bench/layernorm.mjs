#!/usr/bin/env node
// The layernorm kernels (layernorm, add_layernorm, layernorm_backward) beside a device-to-device copy
// of the same bytes, measured in the same run. Each op runs through the CUDA candidate the registry
// selects (as a compiled step would), once per kernel path (PATHS below: environment variables the
// native entry point reads at each call), so one run compares them.
//
// Bytes moved = every input read once + every output written once (the backward's column partials,
// a few hundred slices of 2 x D floats, are overhead, not counted). "of copy" = the kernel's GB/s over
// the GB/s of cudaMemcpyAsync D2D of half those bytes (a copy reads and writes each byte: the same
// traffic), timed the same way. Method: random inputs (never zeros), 5 warm-ups, 21 timings of 10
// launches back to back between a pair of CUDA events (per launch), the median (device-bench.mjs).
//
//   node bench/layernorm.mjs            # the table, then one JSON line
import { f32ToBf16Bits, f32ToF16Bits, registry } from '@deepwell/core';
import { checkAttrs, getOp } from '@deepwell/ir';
import { Stream, cudaBackend } from '@deepwell/kernels-native';
import { fillRepeated, timeMedian } from './device-bench.mjs';

const be = cudaBackend(0);
const stream = new Stream(0);
const SIZE = { f32: 4, bf16: 2, f16: 2 };
const bytesOf = (t) => t.shape.reduce((a, b) => a * b, 1) * SIZE[t.dtype];

const BLOCK = 1 << 22;
const rand = (k, shift) => Float32Array.from({ length: BLOCK }, () => (Math.random() * 2 - 1) * k + shift);
function blockFor(dtype, k = 1, shift = 0) {
  const f = rand(k, shift);
  if (dtype === 'f32') return f;
  return Uint16Array.from(f, dtype === 'bf16' ? f32ToBf16Bits : f32ToF16Bits);
}

const fill = (buf, t, k = 1, shift = 0) => fillRepeated(be, buf, blockFor(t.dtype, k, shift), bytesOf(t));
const time = (launch) => timeMedian(stream, launch, { warmups: 5, reps: 21, batch: 10 });

/** GB/s of a D2D copy of `bytes` bytes (reads + writes counted: 2 x bytes). */
function copyRate(bytes) {
  const a = be.alloc(bytes);
  const b = be.alloc(bytes);
  fill(a, { shape: [bytes / 4], dtype: 'f32' });
  const ms = time(() => be.copy(b, a, bytes, 0, 0, stream));
  be.free(a);
  be.free(b);
  return { ms, gbps: (2 * bytes) / (ms * 1e6) };
}

const t = (shape, dtype) => ({ shape, dtype });
function cases(rows, D, dt) {
  const x = t([rows, D], dt);
  const v = t([D], dt);
  const stat = t([rows], 'f32');
  return [
    [`layernorm ${rows}x${D} ${dt}`, 'layernorm', [x, v, v], { eps: 1e-5 }],
    [`add_layernorm ${rows}x${D} ${dt}`, 'add_layernorm', [x, x, v, v], { eps: 1e-5 }],
    [`layernorm_backward ${rows}x${D} ${dt}`, 'layernorm_backward', [x, x, v, stat, stat], {}],
    [`layernorm_backward + addend ${rows}x${D} ${dt}`, 'layernorm_backward', [x, x, v, stat, stat, x], {}],
  ];
}
const SHAPES = [
  [16384, 768, 'bf16'], // GPT-2 124M, B16 T1024
  [131072, 768, 'bf16'],
  [16384, 1024, 'bf16'],
  [16384, 1600, 'bf16'], // GPT-2 XL
  [16384, 2048, 'bf16'],
  [16384, 4096, 'bf16'],
  [16384, 768, 'f32'],
];

// The kernels each op is timed with, by the environment the native entry points read at each call:
// the default (the backward: layernormBwdPipeK, native/ops/nn/layernorm_bwd.cu), the backward's
// variant without the prefetch at 3 blocks an SM (DEEPWELL_NORM_BWD_KERNEL=wide), its register-row
// kernel of before (=reg), and the row framework's kernels (DEEPWELL_NORM_KERNEL=rows). For the
// forward ops the first three are the same kernel.
const PATHS = {
  default: {},
  'wide backward': { DEEPWELL_NORM_BWD_KERNEL: 'wide' },
  'reg backward': { DEEPWELL_NORM_BWD_KERNEL: 'reg' },
  'row framework': { DEEPWELL_NORM_KERNEL: 'rows' },
};
const ENV_KEYS = ['DEEPWELL_NORM_KERNEL', 'DEEPWELL_NORM_BWD_KERNEL'];

const rows = [];
for (const [R, D, dt] of SHAPES) {
  for (const [name, op, inTypes, attrs] of cases(R, D, dt)) {
    const def = getOp(op);
    const checked = checkAttrs(def, attrs);
    const outTypes = def.infer(inTypes, checked);
    const params = { op, device: 'cuda:0', inTypes, outTypes, attrs: checked };
    const kernel = registry.select(op, params);
    if (kernel.backend !== 'cuda') {
      rows.push({ name, error: registry.explain(op, params).text.split('\n')[0] });
      continue;
    }
    const ins = inTypes.map((ty, i) => {
      const buf = be.alloc(bytesOf(ty));
      // The backward's statistics: mean near 0.5, rstd near 1 (as a layernorm of such rows gives).
      if (op === 'layernorm_backward' && i === 3) fill(buf, ty, 0.1, 0.5);
      else if (op === 'layernorm_backward' && i === 4) fill(buf, ty, 0.1, 1);
      else fill(buf, ty);
      return buf;
    });
    const outs = outTypes.map((ty) => be.alloc(bytesOf(ty)));
    const wsBytes = kernel.workspace?.(params) ?? 0;
    const ws = wsBytes > 0 ? be.alloc(wsBytes) : null;
    const arg = (b) => ({ base: b.ptr, offset: 0, bytes: b.bytes });
    const call = { ...params, stream: stream.handle, inputs: ins.map(arg), outputs: outs.map(arg), workspace: ws ? arg(ws) : null, checkIndices: false };
    const moved = [...inTypes, ...outTypes].reduce((a, ty) => a + bytesOf(ty), 0);
    const copy = copyRate(Math.ceil(moved / 2 / 256) * 256);
    const row = { name, kernel: kernel.name, moved, copyMs: copy.ms, copyGbps: copy.gbps };
    for (const [path, env] of Object.entries(PATHS)) {
      for (const k of ENV_KEYS) delete process.env[k];
      Object.assign(process.env, env);
      const ms = time(() => kernel.run(call));
      row[path] = { ms, gbps: moved / (ms * 1e6), ofCopy: moved / (ms * 1e6) / copy.gbps };
    }
    for (const k of ENV_KEYS) delete process.env[k];
    rows.push(row);
    for (const b of [...ins, ...outs, ...(ws ? [ws] : [])]) be.free(b);
    be.emptyCache();
  }
}

const f = (x, d = 1) => x.toFixed(d);
const names = Object.keys(PATHS);
console.log(`| kernel | MB moved | copy µs (GB/s) | ${names.map((n) => `${n} µs | of copy`).join(' | ')} |`);
console.log(`| --- | --- | --- | ${names.map(() => '--- | ---').join(' | ')} |`);
for (const r of rows) {
  if (r.error) {
    console.log(`| ${r.name} | no CUDA kernel: ${r.error} | | ${names.map(() => ' | ').join(' | ')} |`);
    continue;
  }
  console.log(`| ${r.name} | ${f(r.moved / 1e6)} | ${f(r.copyMs * 1e3)} (${f(r.copyGbps, 0)}) | ${names.map((n) => `${f(r[n].ms * 1e3)} | ${r[n].ofCopy.toFixed(2)}`).join(' | ')} |`);
}
console.log(JSON.stringify({ date: new Date().toISOString(), rows }));
stream.dispose();
