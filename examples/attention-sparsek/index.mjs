// scaledDotProductAttention on Tensors: grouped-query causal attention on random inputs, checked
// against a naive attention computed here in float64 (every score materialised), then timed.
// On a GPU it runs the op's best CUDA kernel (today the general path; the fast Hopper kernels are
// still to come), else the CPU reference.   node index.mjs
import { scaledDotProductAttention } from '@deepwell/attention-sparsek';
import { Tensor } from '@deepwell/core';

const [B, H, Hkv, S, D] = [2, 8, 2, 64, 32];
const randn = (n) => Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
const q = randn(B * H * S * D);
const k = randn(B * Hkv * S * D);
const v = randn(B * Hkv * S * D);

// The naive reference: for each query head, its group's key/value head, the causal mask, softmax.
function naive() {
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
          s.push(scale * dot);
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
try {
  const kn = await import('@deepwell/kernels-native');
  device = kn.registerCudaBackends()[0] ?? 'cpu';
} catch {
  // no native addon: the CPU reference
}

const run = (dev) => {
  const t = (x, heads) => Tensor.from(x, [B, heads, S, D], 'f32', { device: dev });
  const [tq, tk, tv] = [t(q, H), t(k, Hkv), t(v, Hkv)];
  const t0 = performance.now();
  const out = scaledDotProductAttention(tq, tk, tv, { causal: true, enableGqa: true });
  const host = out.to('cpu').toHost();
  const ms = performance.now() - t0;
  for (const x of [tq, tk, tv, out]) x.dispose();
  return { host, ms };
};

let result;
if (device !== 'cpu') {
  try {
    result = { ...run(device), device };
  } catch (e) {
    console.log(`on ${device}: ${e.code} — ${e.message.split('\n')[0]}`);
  }
}
result ??= { ...run('cpu'), device: 'cpu' };
const want = naive();
let worst = 0;
for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(result.host[i] - want[i]));
console.log(`scaledDotProductAttention, B${B} H${H}/Hkv${Hkv} S${S} D${D} causal, f32 on ${result.device}: ${result.ms.toFixed(1)} ms (one call, with copies)`);
console.log(`largest difference from the naive float64 attention: ${worst.toExponential(2)} (f32 output: ~1e-7 expected)`);
if (!(worst < 1e-5)) process.exit(1);
