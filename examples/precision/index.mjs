// Quantize a random tensor (normal values with a few outliers, as activations have) to each format
// and print the error against the original; then the precision policy's per-layer table for GPT-2
// small's training step, for the recipe asked for and for 'fp8-blockwise'; then quantizeTensor on a
// bf16 tensor, rowwise and columnwise in one call, on the first GPU when there is one (the CPU
// reference otherwise), checked against the CPU's codes; FP8 GEMMs (scaledMatmul) beside BF16; last,
// a short training run with an FP8 recipe (native on an H100 / H200, emulated elsewhere).
//   node examples/precision/index.mjs [mxfp8|nvfp4|fp8-tensorwise|fp8-blockwise]
import { autocast, capture, compile, trainingStep } from '@deepwell/ir';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { Tensor, f32ToBf16Bits } from '@deepwell/core';
import { FORMATS, PrecisionPolicy, computeCapabilityOf, dequantize, dequantize2d, dequantizeTensor, quantize, quantize2d, quantizeTensor, scaledMatmul } from '@deepwell/precision';

const n = 1 << 16;
const x = Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
for (let i = 0; i < 16; i++) x[Math.floor(Math.random() * n)] *= 50; // outliers
let norm = 0;
for (const v of x) norm += v * v;
console.log(`${n} values, N(0, 1) with 16 outliers ×50\n`);
console.log(`${'format'.padEnd(16)} scale   bits/value  relative RMS error  max |error|`);
for (const format of FORMATS) {
  for (const scaleMode of format.startsWith('mx') ? ['floor', 'rceil'] : [undefined]) {
    const q = quantize(x, scaleMode ? { format, scaleMode } : { format });
    const y = dequantize(q);
    let err = 0;
    let worst = 0;
    for (let i = 0; i < n; i++) (err += (y[i] - x[i]) ** 2), (worst = Math.max(worst, Math.abs(y[i] - x[i])));
    const bits = (8 * (q.data.length + q.scales.length) + (q.globalScale !== null ? 32 : 0)) / n;
    console.log(`${format.padEnd(16)} ${(scaleMode ?? '-').padEnd(7)} ${bits.toFixed(3).padStart(10)}  ${Math.sqrt(err / norm).toExponential(3).padStart(18)}  ${worst.toExponential(3).padStart(11)}`);
  }
}

// Blockwise FP8 (E4M3, one FP32 scale per 1×128 block or 128×128 tile) of the same values as a 256×256 matrix.
for (const format of ['fp8-block1x128', 'fp8-block128x128']) {
  const y = dequantize2d(quantize2d(x, 256, 256, { format }));
  let err = 0;
  let worst = 0;
  for (let i = 0; i < n; i++) (err += (y[i] - x[i]) ** 2), (worst = Math.max(worst, Math.abs(y[i] - x[i])));
  const bits = 8 + 32 / (format === 'fp8-block1x128' ? 128 : 128 * 128);
  console.log(`${format.padEnd(16)} ${'-'.padEnd(7)} ${bits.toFixed(3).padStart(10)}  ${Math.sqrt(err / norm).toExponential(3).padStart(18)}  ${worst.toExponential(3).padStart(11)}`);
}

const recipe = process.argv[2] ?? 'mxfp8';
const fwd = capture(new GPT('gpt2-small'), { tokens: { shape: [1, 1024], dtype: 'i32' }, targets: { shape: [1, 1024], dtype: 'i32' } });
delete fwd.outputs.logits;
const step = trainingStep(autocast(fwd));
for (const r of recipe === 'fp8-blockwise' ? [recipe] : [recipe, 'fp8-blockwise']) {
  console.log(`\nThe '${r}' policy on GPT-2 small's training step (H200 = sm 9.0):\n`);
  console.log(PrecisionPolicy.table(new PrecisionPolicy({ recipe: r }).plan(step), '9.0'));
}

// The Tensor API: a [1024, 768] bf16 activation quantized to MXFP8 for the forward GEMM (rowwise) and
// the backward one (columnwise, stored transposed), on the GPU when there is one.
let device = 'cpu';
try {
  const kn = await import('@deepwell/kernels-native');
  device = kn.registerCudaBackends()[0] ?? 'cpu';
} catch {
  // no native addon: the CPU reference runs
}
const bits = Uint16Array.from({ length: 1024 * 768 }, () => f32ToBf16Bits(Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())));
const act = Tensor.from(bits, [1024, 768], 'bf16', { device });
const q = quantizeTensor(act, { format: 'mxfp8-e4m3', direction: 'both', scaleLayout: 'tiled128x4' });
const ref = quantizeTensor(Tensor.from(bits, [1024, 768], 'bf16'), { format: 'mxfp8-e4m3', direction: 'both', scaleLayout: 'tiled128x4' });
const same = (a, b) => Buffer.compare(Buffer.from(a.toHost().buffer), Buffer.from(b.toHost().buffer)) === 0;
console.log(`\nquantizeTensor on ${device}: rowwise ${q.rowwise.data.dtype}[${q.rowwise.data.shape}] + scales ${q.rowwise.scales.dtype}[${q.rowwise.scales.shape}] (128x4 tiles), columnwise ${q.columnwise.data.dtype}[${q.columnwise.data.shape}]`);
console.log(`codes and scales equal to the CPU reference's: ${same(q.rowwise.data, ref.rowwise.data) && same(q.rowwise.scales, ref.rowwise.scales) && same(q.columnwise.data, ref.columnwise.data) && same(q.columnwise.scales, ref.columnwise.scales)}`);
const orig = Float32Array.from(bits, (b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]);
for (const direction of ['rowwise', 'columnwise']) {
  const back = dequantizeTensor(q, { direction }).toHost(); // [1024, 768] either way
  let e = 0;
  let o = 0;
  for (let i = 0; i < back.length; i++) (e += (back[i] - orig[i]) ** 2), (o += orig[i] ** 2);
  console.log(`dequantized ${direction.padEnd(10)} relative RMS error ${Math.sqrt(e / o).toExponential(3)}`);
}

// FP8 GEMMs (scaledMatmul): d = x · wᵀ from quantized operands, on the GPU's FP8 tensor cores through
// cuBLASLt when there is a GPU (the float64 reference otherwise), tensorwise and blockwise (activations
// in 1 × 128 blocks, the weight in 128 × 128 tiles, scales in the GEMM's layout), beside the same
// product with the operands rounded to bf16 (what a BF16 GEMM starts from), each against float64.
// Speed: bench/scaled_gemm.sh (on the H200, 1.25–1.81× our BF16 GEMM; docs/gpu-runs/2026-12-03-fp8-gemm).
{
  const [M, N, K] = [256, 384, 512];
  const normal = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  const xs = Float32Array.from({ length: M * K }, normal);
  const ws = Float32Array.from({ length: N * K }, () => normal() * 0.02);
  const bf = (v) => new Float32Array(new Uint32Array([f32ToBf16Bits(v) << 16]).buffer)[0];
  const product = (a, b) => {
    const d = new Float64Array(M * N);
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[m * K + k] * b[n * K + k];
      d[m * N + n] = s;
    }
    return d;
  };
  const exact = product(xs, ws);
  const errOf = (d) => {
    let e = 0;
    let o = 0;
    for (let i = 0; i < d.length; i++) (e += (d[i] - exact[i]) ** 2), (o += exact[i] ** 2);
    return Math.sqrt(e / o).toExponential(3);
  };
  console.log(`\nd = x · wᵀ, ${M}×${N}×${K}, relative RMS error against float64:`);
  console.log(`  bf16 operands, exact sum:                ${errOf(product(xs.map(bf), ws.map(bf)))}`);
  const on = (a, shape) => Tensor.from(a, shape, 'f32', { device });
  for (const [name, fx, fw, layout] of [['fp8 tensorwise (e4m3)', 'fp8-e4m3', 'fp8-e4m3', undefined], ['fp8 blockwise (1×128 · 128×128)', 'fp8-block1x128', 'fp8-block128x128', 'gemm']]) {
    const qx = quantizeTensor(on(xs, [M, K]), { format: fx, ...(layout ? { scaleLayout: layout } : {}) });
    const qw = quantizeTensor(on(ws, [N, K]), { format: fw, ...(layout ? { scaleLayout: layout } : {}) });
    const d = scaledMatmul(qx, qw, { outDtype: 'f32' });
    console.log(`  ${`${name} on ${device}:`.padEnd(40)} ${errOf(d.toHost())}`);
    for (const t of [qx, qw, d]) t.dispose();
  }
}

// A short training run with an FP8 recipe: a small GPT's compiled step under fp8-tensorwise beside
// plain bf16, on the same batches. On an H100 / H200 the policy runs the chosen GEMMs natively
// (quantize → scaled_matmul on FP8 tensor cores; the table's 'runs' column says so); on the CPU it
// emulates them (fake_quant → BF16 GEMM). Larger runs: examples/gpt2 (RECIPE=fp8-tensorwise).
{
  const gpu = device !== 'cpu';
  const cfg = gpu ? { vocabSize: 256, blockSize: 256, nLayer: 4, nHead: 4, nEmbd: 512 } : { vocabSize: 64, blockSize: 32, nLayer: 3, nHead: 2, nEmbd: 128 };
  const [B, T, steps] = gpu ? [32, 256, 60] : [4, 32, 12];
  const corpus = new MarkovCorpus({ vocab: cfg.vocabSize, seed: 3 });
  const batches = Array.from({ length: steps }, () => corpus.batch(B, T));
  const stepGraph = () => {
    const fwd = capture(new GPT(cfg), { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
    delete fwd.outputs.logits;
    return trainingStep(autocast(fwd), { optimizer: { weightDecay: 0.1 }, clipGradNorm: 1 });
  };
  console.log(`\nA ${cfg.nLayer}-layer GPT (width ${cfg.nEmbd}, T ${T}, B ${B}) for ${steps} steps on ${device}:`);
  for (const recipe of ['bf16', 'fp8-tensorwise']) {
    const policy = recipe === 'bf16' ? undefined : new PrecisionPolicy({ recipe, keepFirstLast: false, minWeightElements: 0 });
    const exe = compile(stepGraph(), { device, seed: 1, precision: policy });
    const losses = [];
    const ms = [];
    batches.forEach((b, s) => {
      const t0 = performance.now();
      losses.push(exe.run({ ...b, lr: Float32Array.of(1e-3 * Math.min(1, (s + 1) / 10)), step: Float32Array.of(s + 1) }).loss[0]);
      ms.push(performance.now() - t0);
    });
    exe.dispose();
    const late = ms.slice(Math.floor(steps / 2)).sort((a, b) => a - b);
    console.log(`  ${recipe.padEnd(15)} loss ${losses[0].toFixed(3)} -> ${losses.at(-1).toFixed(3)}, median step ${late[late.length >> 1].toFixed(2)} ms (wall clock)`);
    if (policy) console.log(PrecisionPolicy.table(policy.lastPlan, computeCapabilityOf(device)).split('\n').filter((l, i) => i === 0 || /blocks\.1\.|head/.test(l)).map((l) => `    ${l}`).join('\n'));
  }
}
