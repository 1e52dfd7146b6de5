// scaledDotProductAttention on Tensors: grouped-query causal attention on random inputs, checked
// against a naive attention computed here in float64 (every score materialised), in f32 and in bf16;
// then, on a GPU, the bf16 call timed at a training shape. Then sparseKAttention (SparseK top-k
// block-sparse attention), checked the same way under its block mask and, on a GPU, timed beside
// dense attention at S = 16384.   node index.mjs
//
// On a GPU it runs the op's best CUDA kernel for each call: for bf16 or f16 at head dimensions 64
// and 128 the fused flash kernels (on sm_90, H100 / H200, the Hopper kernels with TMA and wgmma;
// elsewhere from sm_80 the mma.sync ones), for everything else (here the f32 check at D = 32) the
// general path. Without a GPU the CPU reference serves, and the timing is skipped.
import { scaledDotProductAttention, sparseKAttention } from '@deepwell/attention-sparsek';
import { Tensor, bf16BitsToF32, f32ToBf16Bits, registry } from '@deepwell/core';

const randn = (n) => Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));

// The naive reference over [B, heads, S, D] arrays: for each query head, its group's key/value
// head, the causal mask (and, for SparseK, `visible(b, h, i, j)`: the selected blocks), softmax.
function naive({ B, H, Hkv, S, D }, q, k, v, visible = () => true) {
  const out = new Float64Array(q.length);
  const scale = 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hkv));
      for (let i = 0; i < S; i++) {
        const s = [];
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[((b * H + h) * S + i) * D + d] * k[((b * Hkv + hk) * S + j) * D + d];
          s.push(visible(b, h, i, j) ? scale * dot : -Infinity);
        }
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const l = e.reduce((a, x) => a + x, 0);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += (e[j] / l) * v[((b * Hkv + hk) * S + j) * D + d];
          out[((b * H + h) * S + i) * D + d] = acc;
        }
      }
    }
  return out;
}

let device = 'cpu';
let kn = null;
try {
  kn = await import('@deepwell/kernels-native');
  device = kn.registerCudaBackends()[0] ?? 'cpu';
} catch {
  // no native addon: the CPU reference
}

// Host data in a dtype's storage: f32 as is, bf16 as its bits (rounded to nearest even).
const toStorage = (x, dtype) => (dtype === 'bf16' ? Uint16Array.from(x, (y) => f32ToBf16Bits(y)) : x);
const fromStorage = (h, dtype) => (dtype === 'bf16' ? Float64Array.from(h, (b) => bf16BitsToF32(b)) : Float64Array.from(h));

/** The kernel the registry picks for a causal bhsd call of sdpa (what scaledDotProductAttention runs). */
function kernelFor(dev, dtype, { B, H, Hkv, S, D }) {
  const t = (heads) => ({ shape: [B, heads, S, D], dtype });
  const params = { op: 'sdpa', device: dev, inTypes: [t(H), t(Hkv), t(Hkv)], outTypes: [t(H), { shape: [B, H, S], dtype: 'f32' }], attrs: { causal: true, scale: 0, layout: 'bhsd' } };
  return registry.explain('sdpa', params).selected;
}

/** One call on `dev`, timed with the copy back; inputs and the result as float64 host arrays. */
function run(dev, dtype, shape, q, k, v) {
  const { B, H, Hkv, S, D } = shape;
  const t = (x, heads) => Tensor.from(toStorage(x, dtype), [B, heads, S, D], dtype, { device: dev });
  const [tq, tk, tv] = [t(q, H), t(k, Hkv), t(v, Hkv)];
  const t0 = performance.now();
  const out = scaledDotProductAttention(tq, tk, tv, { causal: true, enableGqa: true });
  const host = fromStorage(out.to('cpu').toHost(), dtype);
  const ms = performance.now() - t0;
  for (const x of [tq, tk, tv, out]) x.dispose();
  return { host, ms };
}

/** The call on the GPU when there is one (falling back to the CPU if it fails), else on the CPU. */
function runSomewhere(dtype, shape, q, k, v) {
  if (device !== 'cpu') {
    try {
      return { ...run(device, dtype, shape, q, k, v), device, kernel: kernelFor(device, dtype, shape) };
    } catch (e) {
      console.log(`on ${device}: ${e.code} — ${e.message.split('\n')[0]}`);
    }
  }
  return { ...run('cpu', dtype, shape, q, k, v), device: 'cpu', kernel: kernelFor('cpu', dtype, shape) };
}

const describeShape = ({ B, H, Hkv, S, D }) => `B${B} H${H}/Hkv${Hkv} S${S} D${D} causal`;
let failed = false;

// f32 at D = 32: the general path on a GPU. The largest difference, for an f32 output ~1e-7.
{
  const shape = { B: 2, H: 8, Hkv: 2, S: 64, D: 32 };
  const [q, k, v] = [shape.H, shape.Hkv, shape.Hkv].map((h) => randn(shape.B * h * shape.S * shape.D));
  const r = runSomewhere('f32', shape, q, k, v);
  const want = naive(shape, q, k, v);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(r.host[i] - want[i]));
  console.log(`scaledDotProductAttention, ${describeShape(shape)}, f32 on ${r.device} (${r.kernel}): ${r.ms.toFixed(1)} ms (one call, with copies)`);
  console.log(`  largest difference from the naive float64 attention: ${worst.toExponential(2)} (f32 output: ~1e-7 expected)`);
  if (!(worst < 1e-5)) failed = true;
}

// bf16 at D = 64, a shape the fused kernels take, small enough for the naive check. The inputs are
// rounded to bf16 first, so both sides see the same values; the error is then the output's: each
// element one bf16 rounding (a relative 2^-9) plus the kernel's own, so the relative norm error
// ‖got − want‖ / ‖want‖ sits near 2e-3 and must stay under 1e-2.
{
  const shape = { B: 1, H: 4, Hkv: 1, S: 256, D: 64 };
  const bf16 = (n) => Float32Array.from(randn(n), (x) => bf16BitsToF32(f32ToBf16Bits(x)));
  const [q, k, v] = [shape.H, shape.Hkv, shape.Hkv].map((h) => bf16(shape.B * h * shape.S * shape.D));
  const r = runSomewhere('bf16', shape, q, k, v);
  const want = naive(shape, q, k, v);
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (r.host[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  const rel = Math.sqrt(num / den);
  console.log(`scaledDotProductAttention, ${describeShape(shape)}, bf16 on ${r.device} (${r.kernel}): ${r.ms.toFixed(1)} ms (one call, with copies)`);
  console.log(`  relative error from the naive float64 attention: ${rel.toExponential(2)} (bf16 output: ~2e-3 expected)`);
  if (!(rel < 1e-2)) failed = true;
}

// The bf16 call timed on the GPU at a training shape: a few calls to warm up, then the median of 20,
// each from the call until the device has finished (synchronize), inputs already on the device.
if (device !== 'cpu') {
  const shape = { B: 4, H: 16, Hkv: 4, S: 2048, D: 128 };
  const { B, H, Hkv, S, D } = shape;
  // Random bf16 bits straight away (uniform in [-1, 1)): the values do not change the time, and
  // normal samples at this size would take seconds in JS.
  const bits = (n) => Uint16Array.from({ length: n }, () => f32ToBf16Bits(2 * Math.random() - 1));
  const t = (heads) => Tensor.from(bits(B * heads * S * D), [B, heads, S, D], 'bf16', { device });
  const [tq, tk, tv] = [t(H), t(Hkv), t(Hkv)];
  const call = () => {
    const t0 = performance.now();
    const out = scaledDotProductAttention(tq, tk, tv, { causal: true, enableGqa: true });
    out.backend.synchronize();
    const ms = performance.now() - t0;
    out.dispose();
    return ms;
  };
  for (let i = 0; i < 3; i++) call();
  const times = Array.from({ length: 20 }, call).sort((a, b) => a - b);
  const ms = (times[9] + times[10]) / 2;
  // 2 GEMMs (q kᵀ and P v) of 2·S²·D flops per head, half of them under the causal mask.
  const tflops = (4 * B * H * S * S * D) / 2 / (ms * 1e-3) / 1e12;
  const name = kn?.deviceProperties(Number(device.split(':')[1] ?? 0)).name ?? device;
  console.log(`scaledDotProductAttention, ${describeShape(shape)}, bf16 on ${name} (${kernelFor(device, 'bf16', shape)}):`);
  console.log(`  ${ms.toFixed(3)} ms median of 20 calls (min ${times[0].toFixed(3)}), ${tflops.toFixed(0)} TFLOP/s`);
  for (const x of [tq, tk, tv]) x.dispose();
}

// SparseK: each block of 64 queries attends only to its topK best blocks of keys (MoBA's score: the
// block's mean query against each block's mean key, one selection per GQA group; its own diagonal
// block always), so the cost grows with S·topK, not S². The call returns the output and the
// selection (indices i32 [B, Hkv, blocks, topK], ascending, -1 where a block has fewer candidates).
// Checked on a small shape against the naive attention under that block mask; timed on a GPU
// against dense attention at a long sequence.
{
  const shape = { B: 1, H: 4, Hkv: 2, S: 320, D: 64 };
  const { B, H, Hkv, S, D } = shape;
  const [blockSize, topK] = [64, 2];
  const bf16 = (n) => Float32Array.from(randn(n), (x) => bf16BitsToF32(f32ToBf16Bits(x)));
  const [q, k, v] = [H, Hkv, Hkv].map((h) => bf16(B * h * S * D));
  const sparseOn = (dev) => {
    const t = (x, heads) => Tensor.from(toStorage(x, 'bf16'), [B, heads, S, D], 'bf16', { device: dev });
    const [tq, tk, tv] = [t(q, H), t(k, Hkv), t(v, Hkv)];
    const { out, indices } = sparseKAttention(tq, tk, tv, { blockSize, topK, causal: true });
    const r = { host: fromStorage(out.to('cpu').toHost(), 'bf16'), idx: indices.to('cpu').toHost(), device: dev };
    for (const x of [tq, tk, tv, out, indices]) x.dispose();
    return r;
  };
  let r;
  try {
    r = sparseOn(device);
  } catch (e) {
    if (device === 'cpu') throw e;
    console.log(`on ${device}: ${e.code} — ${e.message.split('\n')[0]}`);
    r = sparseOn('cpu');
  }
  const nB = Math.ceil(S / blockSize);
  const visible = (b, h, i, j) => {
    const row = ((b * Hkv + Math.floor(h / (H / Hkv))) * nB + Math.floor(i / blockSize)) * topK;
    return Array.from(r.idx.subarray(row, row + topK)).includes(Math.floor(j / blockSize));
  };
  const want = naive(shape, q, k, v, visible);
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (r.host[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  const rel = Math.sqrt(num / den);
  console.log(`sparseKAttention, ${describeShape(shape)}, blockSize ${blockSize}, topK ${topK}, bf16 on ${r.device}:`);
  console.log(`  blocks chosen by query block 4 of kv head 0: [${Array.from(r.idx.subarray(4 * topK, 5 * topK)).join(', ')}] (4 is its own)`);
  console.log(`  relative error from the naive float64 attention under that mask: ${rel.toExponential(2)} (bf16 output: ~2e-3 expected)`);
  if (!(rel < 1e-2)) failed = true;
}

// SparseK beside dense attention on the GPU at S = 16384 (top-16 blocks of 64: 1/8 of the causal
// keys on average), forward only, the median of 10 calls after 3 warm-ups, each until the device
// has finished (bench/sparsek.mjs measures both passes beside PyTorch).
if (device !== 'cpu') {
  const [B, H, Hkv, S, D] = [1, 32, 8, 16384, 128];
  const bits = (n) => Uint16Array.from({ length: n }, () => f32ToBf16Bits(2 * Math.random() - 1));
  const t = (heads) => Tensor.from(bits(B * heads * S * D), [B, heads, S, D], 'bf16', { device });
  const [tq, tk, tv] = [t(H), t(Hkv), t(Hkv)];
  const median = (f) => {
    for (let i = 0; i < 3; i++) f();
    const ts = Array.from({ length: 10 }, f).sort((a, b) => a - b);
    return (ts[4] + ts[5]) / 2;
  };
  const timed = (call) => () => {
    const t0 = performance.now();
    const outs = call();
    tq.backend.synchronize();
    const ms = performance.now() - t0;
    for (const o of outs) o.dispose();
    return ms;
  };
  const dense = median(timed(() => [scaledDotProductAttention(tq, tk, tv, { causal: true, enableGqa: true })]));
  const sparse = median(timed(() => Object.values(sparseKAttention(tq, tk, tv, { blockSize: 64, topK: 16, causal: true }))));
  console.log(`B${B} H${H}/Hkv${Hkv} S${S} D${D} causal bf16: dense ${dense.toFixed(2)} ms, sparseK top-16 ${sparse.toFixed(2)} ms (${(dense / sparse).toFixed(1)}x; selection included)`);
  for (const x of [tq, tk, tv]) x.dispose();
}

if (failed) process.exit(1);
