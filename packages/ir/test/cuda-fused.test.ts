// The fused ops' CUDA kernels (made by the compile-time fusions: passes/fuse-*.ts) against their CPU
// references on fresh random inputs, outputs poisoned first (runCuda), through cuBLASLt's epilogues
// and through the unfused fallbacks (cuBLASLt hidden). Skipped without a GPU.
import { registry, type DTypeName } from '@deepwell/core';
import { Stream, cudaBackend, findLibrary } from '@deepwell/kernels-native';
import { afterEach, describe, expect, it } from 'vitest';
import { checkAttrs, getOp, type ValueType } from '../src/index.js';
import type { CudaCall } from '@deepwell/kernels-native';
import { geluScalar } from '../src/ops/tensor/gelu.js';
import { geluGradScalar } from '../src/ops/tensor/gelu_backward.js';
import { UNIT_ROUNDOFF, gpu, maxError, reference, rounded, runCuda, type CudaInput } from './cuda-helpers.js';
import { randInt, randn } from './helpers.js';

type Storage = 'f32' | 'bf16' | 'f16';

function hideCublasLt(hidden: boolean): void {
  if (hidden) process.env.DEEPWELL_CUBLASLT_PATH = 'none';
  else delete process.env.DEEPWELL_CUBLASLT_PATH;
  findLibrary('cublasLt', { refresh: true });
}

afterEach(() => hideCublasLt(false));

/** |got - want| <= bound(i) for every element, NaN (unwritten) failing. */
function expectWithin(got: ArrayLike<number>, want: ArrayLike<number>, bound: (i: number) => number, what: string): void {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i]! - want[i]!) / bound(i);
    if (!(r <= worst)) (worst = r), (at = i);
  }
  expect(worst, `${what}: worst element ${at}, got ${got[at]} want ${want[at]} bound ${bound(at)}`).toBeLessThanOrEqual(1);
}

describe.skipIf(!gpu)('the fused GEMMs on CUDA', () => {
  // A row-major product with exact float64 terms: want[r, n] and Σ|terms| (for the error bound).
  function product(a: Float64Array, w: Float64Array, rows: number, N: number, K: number) {
    const want = new Float64Array(rows * N);
    const mag = new Float64Array(rows * N);
    for (let r = 0; r < rows; r++)
      for (let n = 0; n < N; n++)
        for (let k = 0; k < K; k++) {
          const t = a[r * K + k]! * w[n * K + k]!;
          want[r * N + n]! += t;
          mag[r * N + n]! += Math.abs(t);
        }
    return { want, mag };
  }

  for (const hidden of [false, true]) {
    it(`matmul_bias_gelu: gelu(x·wᵀ + b) and the pre-activation (${hidden ? 'cuBLASLt hidden: unfused' : 'cuBLASLt GELU_AUX_BIAS'})`, () => {
      hideCublasLt(hidden);
      for (const storage of ['f32', 'bf16'] as const) {
        const [B, M, K, N] = [randInt(1, 3), randInt(5, 40), randInt(8, 96), 8 * randInt(1, 12)];
        const a = rounded(storage, randn(B * M * K));
        const w = rounded(storage, randn(N * K).map((v) => v / Math.sqrt(K)));
        const bias = rounded(storage, randn(N));
        const r = runCuda('matmul_bias_gelu', [{ shape: [B, M, K], data: a }, { shape: [N, K], data: w }, { shape: [N], data: bias }], { transB: true }, { storage });
        expect(r.kernel).toBe(hidden ? 'matmul_bias_gelu_unfused' : 'matmul_bias_gelu_cublaslt');
        const { want, mag } = product(a, w, B * M, N, K);
        const pre = want.map((v, i) => v + bias[i % N]!);
        const uOut = UNIT_ROUNDOFF[storage]!;
        const uIn = storage === 'f32' && !hidden ? 2 ** -11 : 0; // TF32 operands through cuBLASLt
        // A GEMM's error (FP32 accumulation over K, TF32 inputs), then up to two roundings to storage.
        const preBound = (i: number) => (K * 2 ** -23 + 2 * uIn) * mag[i]! + 2 * uOut * (Math.abs(pre[i]!) + Math.abs(want[i]!) + Math.abs(bias[i % N]!)) + 1e-30;
        expectWithin(r.outputs[1]!, pre, preBound, `pre ${storage}`);
        // |gelu'| < 1.13: the pre-activation's error carries over; one more rounding, and the fp32 tanh.
        const act = pre.map(geluScalar);
        expectWithin(r.outputs[0]!, act, (i) => 1.13 * preBound(i) + 2 * uOut * Math.abs(act[i]!) + 1e-6 * (1 + Math.abs(pre[i]!)), `out ${storage}`);
      }
    });

    it(`matmul_dgelu: (dy·w) * gelu'(pre) (${hidden ? 'cuBLASLt hidden: unfused' : 'cuBLASLt DGELU'})`, () => {
      hideCublasLt(hidden);
      for (const storage of ['f32', 'bf16'] as const) {
        // dh = dy @ W_proj as in an MLP's backward: dy [B, M, K], w [K, N] shared, untransposed.
        const [B, M, K, N] = [randInt(1, 3), randInt(5, 40), 8 * randInt(1, 12), 8 * randInt(1, 12)];
        const dy = rounded(storage, randn(B * M * K));
        const w = rounded(storage, randn(K * N).map((v) => v / Math.sqrt(K)));
        const pre = rounded(storage, randn(B * M * N).map((v) => 2 * v));
        const r = runCuda('matmul_dgelu', [{ shape: [B, M, K], data: dy }, { shape: [K, N], data: w }, { shape: [B, M, N], data: pre }], {}, { storage });
        expect(r.kernel).toBe(hidden ? 'matmul_dgelu_unfused' : 'matmul_dgelu_cublaslt');
        // The exact product (w transposed into the helper's [N, K] layout) and gelu'(pre) in float64.
        const wT = new Float64Array(N * K);
        for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) wT[n * K + k] = w[k * N + n]!;
        const { want: prod, mag } = product(dy, wT, B * M, N, K);
        const d = pre.map(geluGradScalar);
        const out = prod.map((v, i) => v * d[i]!);
        const uOut = UNIT_ROUNDOFF[storage]!;
        const uIn = storage === 'f32' && !hidden ? 2 ** -11 : 0; // TF32 operands through cuBLASLt
        // The GEMM's error, the product's rounding to storage (unfused only: the epilogue multiplies
        // the FP32 product), both times |gelu'| < 1.13; out's one rounding; gelu' in FP32 (tanh).
        const bound = (i: number) =>
          1.13 * ((K * 2 ** -23 + 2 * uIn) * mag[i]! + uOut * Math.abs(prod[i]!)) + 2 * uOut * Math.abs(out[i]!) + 1e-5 * (1 + pre[i]! * pre[i]!) * Math.abs(prod[i]!) + 1e-30;
        expectWithin(r.outputs[0]!, out, bound, `out ${storage}`);
        // The reference (what the unfused graph computes) within the same bound.
        const [ref] = reference('matmul_dgelu', [{ shape: [B, M, K], data: dy }, { shape: [K, N], data: w }, { shape: [B, M, N], data: pre }], {}, storage);
        expectWithin(ref!, out, bound, `reference ${storage}`);
      }
    });

    it(`matmul_bgrad: gᵀ·x and the bias gradient Σ_rows g (${hidden ? 'cuBLASLt hidden: unfused' : 'cuBLASLt BGRADB'})`, () => {
      hideCublasLt(hidden);
      for (const storage of ['f32', 'bf16'] as const) {
        const [rows, M, N] = [randInt(9, 300), 8 * randInt(1, 12), 8 * randInt(1, 8)];
        const g = rounded(storage, randn(rows * M));
        const x = rounded(storage, randn(rows * N));
        const r = runCuda('matmul_bgrad', [{ shape: [rows, M], data: g }, { shape: [rows, N], data: x }], { transA: true }, { storage });
        expect(r.kernel).toBe(hidden ? 'matmul_bgrad_unfused' : 'matmul_bgrad_cublaslt');
        const [want, bg] = reference('matmul_bgrad', [{ shape: [rows, M], data: g }, { shape: [rows, N], data: x }], { transA: true }, storage);
        const mag = new Float64Array(M * N);
        const magB = new Float64Array(M);
        for (let k = 0; k < rows; k++)
          for (let m = 0; m < M; m++) {
            magB[m]! += Math.abs(g[k * M + m]!);
            for (let n = 0; n < N; n++) mag[m * N + n]! += Math.abs(g[k * M + m]! * x[k * N + n]!);
          }
        const uOut = UNIT_ROUNDOFF[storage]!;
        const uIn = storage === 'f32' && !hidden ? 2 ** -11 : 0;
        expectWithin(r.outputs[0]!, want!, (i) => (rows * 2 ** -23 + 2 * uIn) * mag[i]! + uOut * Math.abs(want![i]!) + 1e-30, `dW ${storage}`);
        expectWithin(r.outputs[1]!, bg!, (i) => (rows * 2 ** -23 + 2 * uIn) * magB[i]! + uOut * Math.abs(bg![i]!) + 1e-30, `db ${storage}`);
      }
    });
  }
});

describe.skipIf(!gpu)('add_layernorm_cuda', () => {
  // The last five go through the register-row kernel (native/ops/nn/reg_rows.cuh) with rows to spare
  // in its last round, and 1, 2, 4 and 8 warps per row.
  const cases: number[][] = [[1, 1], [3, 7], [5, 13], [17, 768], [2, 3, 768], [4, 1000], [3, 4096], [2, 20000], [301, 96], [2049, 768], [257, 1024], [300, 1600], [33, 4096], [9, 6144]];
  for (const storage of ['f32', 'bf16', 'f16'] as const) {
    it(`writes the exact sum and the layernorm of it in ${storage}`, () => {
      for (const shape of cases) {
        const D = shape.at(-1)!;
        const n = shape.reduce((p, q) => p * q, 1);
        const inputs: CudaInput[] = [
          { shape, data: randn(n).map((v) => 2 * v + 0.5) },
          { shape, data: randn(n) },
          { shape: [D], data: randn(D) },
          { shape: [D], data: randn(D) },
        ];
        const r = runCuda('add_layernorm', inputs, { eps: 1e-5 }, { storage });
        expect(r.kernel).toBe('add_layernorm_cuda');
        const want = reference('add_layernorm', inputs, { eps: 1e-5 }, storage);
        // One correctly rounded add of two stored values: bit for bit what the reference stores.
        const sum = rounded(storage, want[0]!);
        for (let i = 0; i < n; i++) if (r.outputs[0]![i] !== sum[i]) expect(r.outputs[0]![i], `sum ${shape} element ${i}`).toBe(sum[i]);
        const tol = storage === 'f32' ? 1e-5 : 2 * UNIT_ROUNDOFF[storage]!;
        for (let row = 0; row < n / D; row++) {
          const y = want[1]!.subarray(row * D, row * D + D);
          let m = 0;
          for (const v of y) m = Math.max(m, Math.abs(v));
          expect(maxError(r.outputs[1]!.subarray(row * D, row * D + D), storage === 'f32' ? y : rounded(storage, y), m), `y ${shape} row ${row}`).toBeLessThanOrEqual(tol);
        }
        expect(maxError(r.outputs[3]!, want[3]!, 0), `rstd ${shape}`).toBeLessThanOrEqual(tol);
      }
    });
  }
});

describe.skipIf(!gpu)('adamw_multi_cuda', () => {
  const attrs = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

  // Tensors of many sizes (more than the 32 a launch takes; larger than one 8192-element chunk),
  // placed in one device buffer at offsets that are 16-byte aligned or not (the vector and the
  // scalar paths), updated in place for `steps` steps and compared with adamw's reference.
  function inPlace(gradDtype: DTypeName, steps: number) {
    const sizes = Array.from({ length: 70 }, (_, k) => (k === 3 ? 20000 : k === 5 ? 1 : randInt(1, 700)));
    const gb = gradDtype === 'f32' ? 4 : 2;
    const be = cudaBackend(0);
    const stream = new Stream(0);
    let bytes = 16;
    const place = (n: number, eb: number, misalign: boolean) => {
      const off = Math.ceil(bytes / 16) * 16 + (misalign ? 4 : 0);
      bytes = off + n * eb;
      return off;
    };
    const layout = sizes.map((n, k) => {
      const odd = k % 3 === 1;
      return { n, p: place(n, 4, odd), g: place(n, gb, odd), m: place(n, 4, odd), v: place(n, 4, odd) };
    });
    const lrOff = place(1, 4, false);
    const stepOff = place(1, 4, false);
    const buf = be.alloc(bytes);
    try {
      const host = new Uint8Array(bytes);
      const f32At = (off: number, n: number) => new Float32Array(host.buffer, off, n);
      const state = layout.map((l) => ({
        p: rounded('f32', randn(l.n)),
        m: rounded('f32', randn(l.n).map((x) => 0.1 * x)),
        v: rounded('f32', randn(l.n).map((x) => 0.01 * x * x + 1e-4)),
      }));
      layout.forEach((l, k) => {
        f32At(l.p, l.n).set(state[k]!.p);
        f32At(l.m, l.n).set(state[k]!.m);
        f32At(l.v, l.n).set(state[k]!.v);
      });
      const f32 = (shape: number[]): ValueType => ({ shape, dtype: 'f32' });
      const inTypes: ValueType[] = [f32([1]), f32([1]), ...layout.flatMap((l) => [f32([l.n]), { shape: [l.n], dtype: gradDtype }, f32([l.n]), f32([l.n])])];
      const outTypes = getOp('adamw_multi').infer(inTypes, checkAttrs(getOp('adamw_multi'), attrs));
      const params = { op: 'adamw_multi', device: 'cuda:0', inTypes, outTypes, attrs: checkAttrs(getOp('adamw_multi'), attrs) };
      const kernel = registry.select<CudaCall, void>('adamw_multi', params as unknown as CudaCall);
      expect(kernel.name).toBe('adamw_multi_cuda');
      const arg = (offset: number, n: number, eb: number) => ({ base: buf.ptr, offset, bytes: n * eb });
      for (let t = 1; t <= steps; t++) {
        const grads = layout.map((l) => rounded(gradDtype, randn(l.n)));
        const lr = 1e-3 * t;
        layout.forEach((l, k) => {
          if (gradDtype === 'f32') f32At(l.g, l.n).set(grads[k]!);
          else new Uint8Array(host.buffer, l.g, l.n * 2).set(new Uint8Array(encode16(gradDtype, grads[k]!).buffer));
        });
        // Host state is written once; afterwards only grads, lr and step change on the device.
        if (t === 1) be.write(buf, host);
        else layout.forEach((l) => be.write(buf, host.subarray(l.g, l.g + l.n * gb), l.g));
        be.write(buf, Float32Array.of(lr), lrOff);
        be.write(buf, Float32Array.of(t), stepOff);
        be.synchronize();
        const inputs = [arg(lrOff, 1, 4), arg(stepOff, 1, 4), ...layout.flatMap((l) => [arg(l.p, l.n, 4), arg(l.g, l.n, gb), arg(l.m, l.n, 4), arg(l.v, l.n, 4)])];
        const outputs = layout.flatMap((l) => [arg(l.p, l.n, 4), arg(l.m, l.n, 4), arg(l.v, l.n, 4)]);
        kernel.run({ ...params, stream: stream.handle, inputs, outputs, workspace: null });
        stream.synchronize();
        layout.forEach((l, k) => {
          const s = state[k]!;
          const ins: CudaInput[] = [
            { shape: [l.n], dtype: 'f32', data: s.p },
            { shape: [l.n], dtype: gradDtype, data: grads[k]! },
            { shape: [l.n], dtype: 'f32', data: s.m },
            { shape: [l.n], dtype: 'f32', data: s.v },
            { shape: [1], dtype: 'f32', data: Float64Array.of(lr) },
            { shape: [1], dtype: 'f32', data: Float64Array.of(t) },
          ];
          const [p2, m2, v2] = reference('adamw', ins, attrs);
          [s.p, s.m, s.v] = [rounded('f32', p2!), rounded('f32', m2!), rounded('f32', v2!)];
        });
      }
      const out = new Uint8Array(bytes);
      be.read(buf, out);
      return layout.map((l, k) => ({
        got: [l.p, l.m, l.v].map((o) => Float64Array.from(new Float32Array(out.buffer, o, l.n))),
        want: [state[k]!.p, state[k]!.m, state[k]!.v],
      }));
    } finally {
      stream.dispose();
      be.free(buf);
    }
  }

  for (const gradDtype of ['f32', 'bf16'] as const) {
    it(`updates 70 tensors in place over 3 steps like adamw's reference (${gradDtype} grads)`, () => {
      for (const [k, { got, want }] of inPlace(gradDtype, 3).entries()) {
        // As adamw_cuda's test: the new param cancels at about the update's size (the largest lr).
        const scale = (w: Float64Array, s: number) => Math.max(s, ...Array.from(w, Math.abs));
        expect(maxError(got[0]!, want[0]!, scale(want[0]!, 3e-3)), `param ${k}`).toBeLessThanOrEqual(1e-5);
        expect(maxError(got[1]!, want[1]!, scale(want[1]!, 0)), `m ${k}`).toBeLessThanOrEqual(1e-5);
        expect(maxError(got[2]!, want[2]!, 0), `v ${k}`).toBeLessThanOrEqual(1e-5);
      }
    });
  }

  it('matches the reference into separate outputs, and rejects mixed gradient dtypes', () => {
    const groups = [3, 9000, 17].map((n) => [
      { shape: [n], dtype: 'f32' as const, data: randn(n) },
      { shape: [n], dtype: 'bf16' as const, data: randn(n) },
      { shape: [n], dtype: 'f32' as const, data: randn(n).map((x) => 0.1 * x) },
      { shape: [n], dtype: 'f32' as const, data: randn(n).map((x) => x * x + 0.01) },
    ]);
    const lr = { shape: [1], dtype: 'f32' as const, data: Float64Array.of(3e-4) };
    const step = { shape: [1], dtype: 'f32' as const, data: Float64Array.of(7) };
    const inputs = [lr, step, ...groups.flat()];
    const r = runCuda('adamw_multi', inputs, { weightDecay: 0.01 }, { storage: 'f32' });
    expect(r.kernel).toBe('adamw_multi_cuda');
    const want = reference('adamw_multi', inputs, { weightDecay: 0.01 });
    // param: scale the update's size (lr); m cancels (b1·m + (1 - b1)·g): scale its largest value.
    const big = (w: ArrayLike<number>) => Math.max(...Array.from(w, Math.abs));
    want.forEach((w, i) => expect(maxError(r.outputs[i]!, w, [3e-4, big(w), 0][i % 3]), `output ${i}`).toBeLessThanOrEqual(1e-5));
    const inTypes: ValueType[] = inputs.map((x, i) => ({ shape: x.shape, dtype: i === 7 ? 'f32' : x.dtype }));
    const attrs = checkAttrs(getOp('adamw_multi'), {});
    const params = { op: 'adamw_multi', device: 'cuda:0', inTypes, outTypes: getOp('adamw_multi').infer(inTypes, attrs), attrs };
    expect(registry.explain('adamw_multi', params).text).toMatch(/one gradient dtype per node/);
  });
});

function encode16(dtype: DTypeName, data: ArrayLike<number>): Uint16Array {
  const bits = rounded(dtype, data);
  const f = new Float32Array(bits);
  const u = new Uint32Array(f.buffer);
  // bf16: the top half of the (already rounded) f32; f16 is not used here.
  if (dtype !== 'bf16') throw new Error(`encode16: ${dtype}`);
  return Uint16Array.from(u, (x) => x >>> 16);
}
