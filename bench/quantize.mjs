#!/usr/bin/env node
// The fused quantization kernels on a 16384 × 16384 bf16 input, beside a device-to-device copy of
// the same input in the same run (the target: MXFP8 rowwise, and rowwise + columnwise, at >= 0.85
// of the copy's bandwidth). Bandwidth = (bytes that must be read + bytes that must be written) /
// time: the input once, every code and scale once. Formats with a tensor scale (tensorwise FP8,
// NVFP4) also run the amax pass, which reads the input a second time; their figure still counts it
// once, so it is what a user gets per tensor, not the kernels' raw bandwidth.
// Method: random normal inputs (new each run), the real API (quantizeTensor into reused outputs),
// 20 launches back to back between two CUDA events (host enqueue time hidden), after >= 300 ms of
// warm-up; 7 such rounds, the median per launch. Prints one JSON line per case.
import { Tensor, f32ToBf16Bits } from '@deepwell/core';
import { Event, cudaBackend, loadNative, registerCudaBackends } from '@deepwell/kernels-native';
import { dequantizeTensor, quantizeTensor } from '@deepwell/precision';

registerCudaBackends();
const be = cudaBackend(0);
// Everything runs on the legacy default stream (handle 0), where quantizeTensor launches.
const sync = () => loadNative().streamSynchronize(0);
const [R, C] = [16384, 16384];
const N = R * C;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// Random normal bf16 values: a 4 Mi-element random block, doubled by device copies to fill.
const x = Tensor.empty([R, C], 'bf16', { device: 'cuda:0' });
{
  const block = Uint16Array.from({ length: 1 << 22 }, () => f32ToBf16Bits(Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())));
  be.write(x.buffer, block);
  for (let done = block.byteLength; done < x.bytes; ) {
    const k = Math.min(done, x.bytes - done);
    be.copy(x.buffer, x.buffer, k, done, 0);
    done += k;
  }
}

function time(launch) {
  const t0 = performance.now();
  while (performance.now() - t0 < 300) {
    for (let i = 0; i < 5; i++) launch();
    sync();
  }
  const per = [];
  for (let r = 0; r < 7; r++) {
    const [s, e] = [new Event(0), new Event(0)];
    s.record();
    for (let i = 0; i < 20; i++) launch();
    e.record();
    e.synchronize();
    per.push(e.elapsedSince(s) / 20);
    s.dispose();
    e.dispose();
  }
  return median(per);
}

const rows = [];
let copy = 0;
const report = (name, ms, bytes) => {
  const gbps = bytes / (ms * 1e6);
  const row = { name, ms: +ms.toFixed(4), gbps: +gbps.toFixed(1), ofCopy: copy ? +(gbps / copy).toFixed(3) : 1 };
  rows.push(row);
  console.log(JSON.stringify(row));
};

const y = be.alloc(x.bytes);
const copyMs = time(() => be.copy(y, x.buffer, x.bytes, 0, 0));
be.free(y);
report('device-to-device copy, 512 MiB', copyMs, 2 * x.bytes);
copy = rows[0].gbps;

// Scales in the plain layout unless a case names the GEMM's ('tiled128x4' for MX, 'gemm' for
// blockwise FP8).
const CASES = [
  ['mxfp8-e4m3', 'rowwise'],
  ['mxfp8-e4m3', 'both'],
  ['mxfp8-e4m3', 'columnwise'],
  ['mxfp8-e4m3', 'rowwise', 'tiled128x4'],
  ['mxfp8-e4m3', 'both', 'tiled128x4'],
  ['mxfp8-e5m2', 'both'],
  ['mxfp4', 'rowwise'],
  ['mxfp4', 'both'],
  ['nvfp4', 'rowwise'],
  ['nvfp4', 'both'],
  ['fp8-e4m3', 'rowwise'],
  ['fp8-e4m3', 'both'],
  ['fp8-block1x128', 'rowwise'],
  ['fp8-block1x128', 'both', 'gemm'],
  ['fp8-block128x128', 'both'],
  ['fp8-block128x128', 'both', 'gemm'],
];
for (const [format, direction, scaleLayout] of CASES) {
  const opts = { format, direction, ...(format.startsWith('mx') ? { scaleMode: 'rceil' } : {}), ...(scaleLayout ? { scaleLayout } : {}) };
  const first = quantizeTensor(x, opts);
  const out = { rowwise: first.rowwise ?? undefined, columnwise: first.columnwise ?? undefined, globalScale: first.globalScale ?? undefined };
  const ms = time(() => quantizeTensor(x, { ...opts, out }).amax?.dispose());
  let written = 0;
  for (const p of [first.rowwise, first.columnwise]) if (p) written += p.data.bytes + (p.scales?.bytes ?? 0);
  report(`quantize ${format} ${direction}${scaleLayout ? `, ${scaleLayout} scales` : ''}`, ms, x.bytes + written);
  if (format === 'mxfp8-e4m3' && direction === 'rowwise' && !scaleLayout) {
    const back = Tensor.empty([R, C], 'bf16', { device: 'cuda:0' });
    const dms = time(() => dequantizeTensor(first, { dtype: 'bf16', out: back }));
    report('dequantize mxfp8-e4m3 rowwise -> bf16', dms, first.rowwise.data.bytes + first.rowwise.scales.bytes + back.bytes);
    back.dispose();
  }
  first.dispose();
}
x.dispose();
console.log('\n| case | ms | GB/s | of copy |\n| --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.name} | ${r.ms.toFixed(3)} | ${r.gbps.toFixed(0)} | ${r.ofCopy} |`);
