#!/usr/bin/env node
// Memory-bound kernels at large sizes against a device-to-device copy measured in the same run.
// Each kernel is the CUDA candidate the registry selects for the op (as a compiled step would use).
// Bandwidth = (bytes the kernel must read + bytes it must write) / time: each input read once, each
// output written once, except where the op says otherwise (ir's bytesMoved: a gather or MoE's
// permute reads only the rows it takes, once per row it writes). Method: random inputs (never zeros), 3 warm-ups, 15 timings of 10 launches
// back to back between a pair of CUDA events (per launch), the median (device-bench.mjs).
import { f32ToBf16Bits, registry } from '@deepwell/core';
import { bytesMoved, checkAttrs, getOp, interpret, GraphBuilder } from '@deepwell/ir';
import { Stream, cudaBackend } from '@deepwell/kernels-native';
import { fillRepeated, timeMedian } from './device-bench.mjs';

const be = cudaBackend(0);
const stream = new Stream(0);
const bytesOf = (t) => t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'f32' || t.dtype === 'i32' ? 4 : 2);
const randBlock = { bf16: Uint16Array.from({ length: 1 << 22 }, () => f32ToBf16Bits(Math.random() * 2 - 1)), f32: Float32Array.from({ length: 1 << 22 }, () => Math.random() * 2 - 1) };

function fill(buf, t, ints) {
  const block = t.dtype === 'i32' ? Int32Array.from({ length: 1 << 20 }, () => Math.floor(Math.random() * ints)) : randBlock[t.dtype];
  fillRepeated(be, buf, block, bytesOf(t));
}

const time = (launch) => timeMedian(stream, launch, { warmups: 3, reps: 15, batch: 10 });

const rows = [];
{
  const bytes = 2 ** 31; // 2 GiB copy
  const a = be.alloc(bytes);
  const b = be.alloc(bytes);
  fill(a, { shape: [bytes / 4], dtype: 'f32' });
  const ms = time(() => be.copy(b, a, bytes, 0, 0, stream));
  rows.push({ name: 'device-to-device copy, 2 GiB', ms, gbps: (2 * bytes) / (ms * 1e6) });
  be.free(a);
  be.free(b);
}
const copy = rows[0].gbps;

// GPT-2 124M's 148 weights (f32), as the step's cast_multi converts them to bf16 for autocast.
function gpt2Weights() {
  const C = 768;
  const layer = [[C], [C], [C, 3 * C], [3 * C], [C, C], [C], [C], [C], [C, 4 * C], [4 * C], [4 * C, C], [C]];
  const shapes = [[50304, C], [1024, C], ...Array.from({ length: 12 }, () => layer).flat(), [C], [C]];
  return shapes.map((shape) => ({ shape, dtype: 'f32' }));
}

// name, op, inputs (types), attrs, bytes that must move (defaults to all inputs + outputs)
const CASES = [
  ['layernorm 131072×768 bf16', 'layernorm', [{ shape: [131072, 768], dtype: 'bf16' }, { shape: [768], dtype: 'bf16' }, { shape: [768], dtype: 'bf16' }], { eps: 1e-5 }],
  ['add_layernorm 131072×768 bf16 (residual + layernorm)', 'add_layernorm', [{ shape: [131072, 768], dtype: 'bf16' }, { shape: [131072, 768], dtype: 'bf16' }, { shape: [768], dtype: 'bf16' }, { shape: [768], dtype: 'bf16' }], { eps: 1e-5 }],
  ['gelu 268M bf16', 'gelu', [{ shape: [1 << 28], dtype: 'bf16' }], {}],
  ['adamw 124M f32 (grad bf16)', 'adamw', [{ shape: [124475904], dtype: 'f32' }, { shape: [124475904], dtype: 'bf16' }, { shape: [124475904], dtype: 'f32' }, { shape: [124475904], dtype: 'f32' }, { shape: [1], dtype: 'f32' }, { shape: [1], dtype: 'f32' }], { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 }],
  ['cast_multi GPT-2 124M weights f32 → bf16 (148 tensors)', 'cast_multi', gpt2Weights(), { dtype: 'bf16' }],
  ['cross_entropy 16384×50304 bf16', 'cross_entropy', [{ shape: [16384, 50304], dtype: 'bf16' }, { shape: [16384], dtype: 'i32' }], { ignoreIndex: -1 }],
  // Dropless MoE's dispatch and combine (issue 21: >= 0.8 of copy): 16,384 tokens (16 × 1024), top-2
  // of 8 experts, width 1024 (the MoE GPT's shape), and top-8 of 64 at width 2048.
  ...[[16384, 2, 8, 1024], [16384, 8, 64, 2048]].flatMap(([N, k, E, D]) => {
    const idx = [{ shape: [N * k], dtype: 'i32', routing: [N, k, E] }, { shape: [N, k], dtype: 'i32', routing: [N, k, E] }];
    const w = { shape: [N, k], dtype: 'f32' };
    const tag = `${N}×${D} bf16, top-${k} of ${E}`;
    return [
      [`moe_permute ${tag}`, 'moe_permute', [{ shape: [N, D], dtype: 'bf16' }, ...idx], {}],
      [`moe_unpermute ${tag}, weighted`, 'moe_unpermute', [{ shape: [N * k, D], dtype: 'bf16' }, ...idx, w], {}],
      [`moe_weight_grad ${tag}`, 'moe_weight_grad', [{ shape: [N, D], dtype: 'bf16' }, { shape: [N * k, D], dtype: 'bf16' }, ...idx], {}],
      [`gather_rows ${tag} (the old dispatch)`, 'gather_rows', [{ shape: [N, D], dtype: 'bf16' }, { shape: [N * k], dtype: 'i32', routing: [N, k, E] }], {}],
    ];
  }),
];

// moe_sort's order and slot for random routing (top-k distinct experts per token), by the CPU
// reference: the MoE cases' index inputs must come from one moe_sort.
const routings = new Map();
function routing([N, k, E]) {
  const key = `${N},${k},${E}`;
  if (!routings.has(key)) {
    const experts = new Int32Array(N * k);
    for (let n = 0; n < N; n++) {
      const picks = new Set();
      for (let j = 0; j < k; j++) {
        let e = Math.floor(Math.random() * E);
        while (picks.has(e)) e = (e + 1) % E;
        picks.add(e);
        experts[n * k + j] = e;
      }
    }
    const b = new GraphBuilder();
    const [order, slot] = b.op('moe_sort', [b.input('e', [N, k], 'i32')], { numExperts: E });
    b.output('order', order);
    b.output('slot', slot);
    const vals = interpret(b.graph, { e: experts });
    routings.set(key, { order: Int32Array.from(vals[order.id]), slot: Int32Array.from(vals[slot.id]) });
  }
  return routings.get(key);
}

for (const [name, op, inTypes, attrs] of CASES) {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  // The ops' own dtype rules: bf16 activations, f32 statistics, loss and optimizer state.
  const outTypes = def.infer(inTypes, checked);
  const params = { op, device: 'cuda:0', inTypes, outTypes, attrs: checked };
  const kernel = registry.select(op, params);
  if (kernel.backend !== 'cuda') {
    rows.push({ name, error: registry.explain(op, params).text });
    continue;
  }
  const ins = inTypes.map((t, i) => {
    const buf = be.alloc(bytesOf(t));
    if (t.routing) be.write(buf, routing(t.routing)[t.shape.length === 1 ? 'order' : 'slot']);
    else fill(buf, t, op === 'cross_entropy' ? 50304 : 1);
    return buf;
  });
  if (op === 'adamw') {
    be.write(ins[4], Float32Array.of(1e-4));
    be.write(ins[5], Float32Array.of(10));
    // v must be positive (it is a running mean of squares): random magnitudes.
    const v = Float32Array.from({ length: 1 << 22 }, () => Math.random() * 1e-3 + 1e-6);
    be.write(ins[3], v);
    for (let done = v.byteLength; done < ins[3].bytes; ) {
      const k = Math.min(done, ins[3].bytes - done);
      be.copy(ins[3], ins[3], k, done, 0);
      done += k;
    }
  }
  const outs = op === 'adamw' ? [ins[0], ins[2], ins[3]] : outTypes.map((t) => be.alloc(bytesOf(t)));
  const arg = (b) => ({ base: b.ptr, offset: 0, bytes: b.bytes });
  const wsBytes = kernel.workspace?.(params) ?? 0;
  const ws = wsBytes > 0 ? be.alloc(wsBytes) : null;
  const call = { ...params, stream: stream.handle, inputs: ins.map(arg), outputs: outs.map(arg), workspace: ws ? arg(ws) : null, checkIndices: false };
  const ms = time(() => kernel.run(call));
  const moved = bytesMoved(op, inTypes, outTypes, checked);
  rows.push({ name, kernel: kernel.name, ms, gbps: moved / (ms * 1e6), ofCopy: moved / (ms * 1e6) / copy });
  for (const b of new Set([...ins, ...outs, ...(ws ? [ws] : [])])) be.free(b);
  be.emptyCache();
}
console.log(`| kernel | ms | GB/s (read + write) | of copy |\n| --- | --- | --- | --- |`);
for (const r of rows) console.log(r.error ? `| ${r.name} | no CUDA kernel: ${r.error.split('\n')[0]} | | |` : `| ${r.name}${r.kernel ? ` (${r.kernel})` : ''} | ${r.ms.toFixed(3)} | ${r.gbps.toFixed(0)} | ${r.ofCopy ? r.ofCopy.toFixed(2) : '1.00'} |`);
console.log(JSON.stringify({ date: new Date().toISOString(), rows }));
stream.dispose();
