#!/usr/bin/env node
// Runtime micro-benchmarks: the cost of one empty native call from JS, of one cached alloc+free, and
// the bandwidth of host<->device and device<->device copies. Host-side costs are timed with
// process.hrtime over batches (median of 15 batches after a warm-up batch); device copies with CUDA
// events (median of 10 after 2 warm-ups). Device-to-device bandwidth counts bytes read + written.
//
//   node packages/kernels-native/bench/runtime.mjs [--json FILE]
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Event, PinnedBuffer, Stream, cudaBackend, cudaStatus, deviceProperties, loadNative } from '../dist/index.js';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function hostNs(fn, perBatch, batches = 15) {
  fn(perBatch); // warm-up
  const out = [];
  for (let b = 0; b < batches; b++) {
    const t = process.hrtime.bigint();
    fn(perBatch);
    out.push(Number(process.hrtime.bigint() - t) / perBatch);
  }
  return median(out);
}

function deviceMs(stream, work, reps = 10, warm = 2) {
  for (let i = 0; i < warm; i++) work();
  const [a, b] = [new Event(0), new Event(0)];
  const out = [];
  for (let i = 0; i < reps; i++) {
    a.record(stream);
    work();
    b.record(stream);
    b.synchronize();
    out.push(b.elapsedSince(a));
  }
  a.dispose();
  b.dispose();
  return median(out);
}

const n = loadNative();
const rows = [];
const result = { date: new Date().toISOString(), method: '', gpu: null, rows };
rows.push({ what: 'empty native call (raw addon)', value: hostNs((k) => { for (let i = 0; i < k; i++) n.nop(); }, 1e6), unit: 'ns', target: '<= 2000 ns' });

if (!cudaStatus().available) {
  console.log('No GPU: only the empty-call benchmark ran.');
} else {
  const p = deviceProperties(0);
  result.gpu = p.name;
  const be = cudaBackend(0);
  const sizes = [256, 4096, 1 << 20, 64 << 20];
  for (const s of sizes) be.free(be.alloc(s)); // fill the cache
  for (const s of sizes) {
    rows.push({
      what: `cached alloc+free, ${s} B (CudaBackend, checked)`,
      value: hostNs((k) => { for (let i = 0; i < k; i++) be.free(be.alloc(s)); }, 1e5),
      unit: 'ns',
      target: '<= 1000 ns',
    });
  }
  rows.push({
    what: 'cached alloc+free, 4096 B (addon entry points, no TS checks)',
    value: hostNs((k) => { for (let i = 0; i < k; i++) n.free(n.alloc(0, 4096)); }, 1e5),
    unit: 'ns',
    target: '<= 1000 ns',
  });
  const bytes = 2 ** 30;
  const host = randomFillSync(Buffer.allocUnsafe(bytes));
  const a = be.alloc(bytes);
  const b = be.alloc(bytes);
  const t0 = performance.now();
  be.write(a, host);
  const h2d = performance.now() - t0;
  const t1 = performance.now();
  be.read(a, host);
  const d2h = performance.now() - t1;
  rows.push({ what: '1 GiB host->device, pageable, blocking', value: bytes / (h2d * 1e6), unit: 'GB/s' });
  rows.push({ what: '1 GiB device->host, pageable, blocking', value: bytes / (d2h * 1e6), unit: 'GB/s' });
  const stream = new Stream(0);
  const pinned = new PinnedBuffer(bytes);
  const up = deviceMs(stream, () => pinned.copyTo(a, stream));
  rows.push({ what: '1 GiB host->device, pinned, async (events)', value: bytes / (up * 1e6), unit: 'GB/s' });
  const dd = deviceMs(stream, () => be.copy(b, a, bytes, 0, 0, stream));
  rows.push({ what: '1 GiB device->device copy, read+write bytes (events)', value: (2 * bytes) / (dd * 1e6), unit: 'GB/s' });
  pinned.dispose();
  stream.dispose();
  be.free(a);
  be.free(b);
}
result.method = 'host costs: process.hrtime over batches of 1e6 (calls) or 1e5 (alloc+free), median of 15 after one warm-up batch; device copies: CUDA events, median of 10 after 2 warm-ups; blocking pageable copies: one timed run each with performance.now()';

console.log(`Runtime micro-benchmarks${result.gpu ? ` on ${result.gpu}` : ''}, ${result.date}`);
for (const r of rows) console.log(`  ${r.what.padEnd(56)} ${r.value.toFixed(r.unit === 'ns' ? 0 : 1).padStart(8)} ${r.unit}${r.target ? `  (target ${r.target})` : ''}`);
const i = process.argv.indexOf('--json');
if (i > 0) writeFileSync(process.argv[i + 1], JSON.stringify(result, null, 2));
