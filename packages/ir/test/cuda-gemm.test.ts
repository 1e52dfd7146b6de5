// matmul on the GPU: cuBLASLt and our fallback kernel against a float64 reference, judged by the
// error a naive computation at the same precision makes (input rounding, FP32 accumulation, one
// output rounding), never by a fixed tolerance. Outputs are poisoned before every run.
import { registry, type DTypeName } from '@deepwell/core';
import { EPILOGUE_CODE, cudaBackend, findLibrary, loadNative } from '@deepwell/kernels-native';
import { afterAll, describe, expect, it } from 'vitest';
import { errorOf } from '../../../testing/errors.js';
import { GEMM_LT_WORKSPACE, gemmPlan } from '../src/cuda/gemm.js';
import { gpu, rounded, runCuda } from './cuda-helpers.js';
import { randInt, randn } from './helpers.js';

interface Case { B: number[]; M: number; N: number; K: number; ta: boolean; tb: boolean; shareB: boolean }

/** |got - want| <= u_out·|want| + (K·2⁻²³ + 2·u_in)·Σ|a||b|, element by element. */
function check(c: Case, storage: DTypeName, a: Float64Array, b: Float64Array, got: Float64Array, tf32: boolean): void {
  const uOut = storage === 'f32' ? 2 ** -24 : storage === 'bf16' ? 2 ** -8 : 2 ** -11;
  const uIn = storage === 'f32' && tf32 ? 2 ** -11 : 0; // TF32 rounds f32 inputs to 10 mantissa bits
  const batch = c.B.reduce((x, y) => x * y, 1);
  for (let p = 0; p < batch; p++)
    for (let m = 0; m < c.M; m++)
      for (let n = 0; n < c.N; n++) {
        let want = 0;
        let mag = 0;
        for (let k = 0; k < c.K; k++) {
          const x = a[p * c.M * c.K + (c.ta ? k * c.M + m : m * c.K + k)]!;
          const y = b[(c.shareB ? 0 : p * c.K * c.N) + (c.tb ? n * c.K + k : k * c.N + n)]!;
          want += x * y;
          mag += Math.abs(x * y);
        }
        const g = got[p * c.M * c.N + m * c.N + n]!;
        const bound = uOut * Math.abs(want) + (c.K * 2 ** -23 + 2 * uIn) * mag + 1e-30;
        if (!(Math.abs(g - want) <= bound)) throw new Error(`[${p}, ${m}, ${n}]: ${g} vs ${want} (bound ${bound}, ${storage})`);
      }
}

function runCase(c: Case, storage: DTypeName) {
  const a = rounded(storage, randn(c.B.reduce((x, y) => x * y, 1) * c.M * c.K));
  const b = rounded(storage, randn((c.shareB ? 1 : c.B.reduce((x, y) => x * y, 1)) * c.K * c.N));
  const aShape = [...c.B, ...(c.ta ? [c.K, c.M] : [c.M, c.K])];
  const bShape = [...(c.shareB ? [] : c.B), ...(c.tb ? [c.N, c.K] : [c.K, c.N])];
  const r = runCuda('matmul', [{ shape: aShape, data: a }, { shape: bShape, data: b }], { transA: c.ta, transB: c.tb }, { storage });
  return { a, b, got: r.outputs[0]!, kernel: r.kernel };
}

const cases = (): Case[] => [
  { B: [], M: 64, N: 128, K: 256, ta: false, tb: true, shareB: true },
  { B: [], M: randInt(1, 70), N: randInt(1, 70), K: randInt(1, 90), ta: false, tb: false, shareB: true },
  { B: [], M: 33, N: 17, K: 129, ta: true, tb: false, shareB: true },
  { B: [], M: 16, N: 48, K: 8, ta: true, tb: true, shareB: true },
  { B: [3], M: 21, N: 9, K: 40, ta: false, tb: true, shareB: true }, // a Linear: folded into one GEMM
  { B: [2, 3], M: 16, N: 16, K: 24, ta: false, tb: true, shareB: false }, // attention scores
  { B: [4], M: 13, N: 7, K: 16, ta: true, tb: false, shareB: false },
];

describe.skipIf(!gpu)('matmul on the GPU', () => {
  afterAll(() => {
    delete process.env.DEEPWELL_CUBLASLT_PATH;
    findLibrary('cublasLt', { refresh: true });
  });

  for (const storage of ['f32', 'bf16', 'f16'] as const) {
    it(`cuBLASLt computes ${storage} GEMMs within the error of the same precision`, () => {
      expect(findLibrary('cublasLt').found).toBe(true);
      for (const c of cases()) {
        const { a, b, got, kernel } = runCase(c, storage);
        expect(kernel).toBe('matmul_cublaslt');
        check(c, storage, a, b, got, true);
      }
    });
  }

  it('falls back to our own kernels when cuBLASLt is hidden, and they are right too', () => {
    process.env.DEEPWELL_CUBLASLT_PATH = 'none';
    expect(findLibrary('cublasLt', { refresh: true }).found).toBe(false);
    const why = registry.explain('matmul', { op: 'matmul', device: 'cuda:0', inTypes: [{ shape: [4, 4], dtype: 'bf16' }, { shape: [4, 4], dtype: 'bf16' }], outTypes: [{ shape: [4, 4], dtype: 'bf16' }], attrs: { transA: false, transB: false } });
    expect(why.selected).toBe('matmul_cuda_fallback');
    expect(why.rows[0]!.verdict).toMatch(/cuBLASLt not found .*DEEPWELL_CUBLASLT_PATH=none/);
    for (const storage of ['f32', 'bf16', 'f16'] as const) {
      for (const c of cases()) {
        const { a, b, got, kernel } = runCase(c, storage);
        expect(kernel).toBe('matmul_cuda_fallback');
        check(c, storage, a, b, got, false);
      }
    }
    delete process.env.DEEPWELL_CUBLASLT_PATH;
    expect(findLibrary('cublasLt', { refresh: true }).found).toBe(true);
  });

  it('runs matmul_bias (the fused Linear) through cuBLASLt and through our fallback', () => {
    for (const hidden of [false, true]) {
      if (hidden) process.env.DEEPWELL_CUBLASLT_PATH = 'none';
      findLibrary('cublasLt', { refresh: true });
      for (const storage of ['f32', 'bf16'] as const) {
        const [B, M, K, N] = [3, 17, 40, 24];
        const a = rounded(storage, randn(B * M * K));
        const w = rounded(storage, randn(N * K));
        const bias = rounded(storage, randn(N));
        const r = runCuda('matmul_bias', [{ shape: [B, M, K], data: a }, { shape: [N, K], data: w }, { shape: [N], data: bias }], { transB: true }, { storage });
        expect(r.kernel).toBe(hidden ? 'matmul_bias_cuda_fallback' : 'matmul_bias_cublaslt');
        const uOut = storage === 'f32' ? 2 ** -24 : 2 ** -8;
        const uIn = storage === 'f32' && !hidden ? 2 ** -11 : 0;
        for (let row = 0; row < B * M; row++)
          for (let n = 0; n < N; n++) {
            let s = 0;
            let mag = 0;
            for (let k = 0; k < K; k++) (s += a[row * K + k]! * w[n * K + k]!), (mag += Math.abs(a[row * K + k]! * w[n * K + k]!));
            const want = s + bias[n]!;
            // One more rounding than a GEMM where the fallback stores the product before adding.
            const bound = 2 * uOut * (Math.abs(want) + Math.abs(s)) + (K * 2 ** -23 + 2 * uIn) * mag + 2 * uOut * Math.abs(bias[n]!);
            expect(Math.abs(r.outputs[0]![row * N + n]! - want)).toBeLessThanOrEqual(bound);
          }
      }
      delete process.env.DEEPWELL_CUBLASLT_PATH;
    }
    findLibrary('cublasLt', { refresh: true });
  });

  it('applies the bias, GELU+bias and bias-gradient epilogues', () => {
    const n = loadNative();
    const be = cudaBackend(0);
    const [M, N, K] = [37, 24, 40];
    const a = rounded('bf16', randn(M * K));
    const w = rounded('bf16', randn(N * K)); // [N, K]: y = a·wᵀ + bias
    const bias = rounded('bf16', randn(N));
    const up = (x: Float64Array) => Uint16Array.from(x, (v) => new Uint16Array(new Float32Array([v]).buffer)[1]!);
    const bufs = [be.alloc(M * K * 2), be.alloc(N * K * 2), be.alloc(M * N * 2), be.alloc(Math.max(M, N) * 2)];
    const ws = be.alloc(GEMM_LT_WORKSPACE);
    const t = (b: (typeof bufs)[0]) => ({ base: b.ptr, offset: 0, bytes: b.bytes });
    const wsArg = { base: ws.ptr, offset: 0, bytes: GEMM_LT_WORKSPACE };
    be.write(bufs[0]!, up(a));
    be.write(bufs[1]!, up(w));
    const read = (buf: (typeof bufs)[0], count: number) => {
      const h = new Uint16Array(count);
      be.read(buf, h);
      return Float64Array.from(h, (x) => new Float32Array(new Uint32Array([x << 16]).buffer)[0]!);
    };
    const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    for (const epi of [1, 2]) {
      be.write(bufs[3]!, up(Float64Array.from({ length: Math.max(M, N) }, (_, i) => bias[i] ?? 0)));
      be.memset(bufs[2]!, 0xff);
      n.gemmLt(0, 1, 0, 1, M, N, K, 1, 0, 0, M * N, 0, t(bufs[0]!), t(bufs[1]!), t(bufs[2]!), epi, t(bufs[3]!), null, wsArg);
      be.synchronize();
      const got = read(bufs[2]!, M * N);
      for (let m = 0; m < M; m++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          let mag = 0;
          for (let k = 0; k < K; k++) {
            s += a[m * K + k]! * w[j * K + k]!;
            mag += Math.abs(a[m * K + k]! * w[j * K + k]!);
          }
          const want = epi === 1 ? s + bias[j]! : gelu(s + bias[j]!);
          expect(Math.abs(got[m * N + j]! - want)).toBeLessThanOrEqual(2 ** -8 * Math.abs(want) + K * 2 ** -22 * (mag + Math.abs(bias[j]!)) + 2e-3 * (epi === 2 ? 1 : 0));
        }
    }
    // Weight gradient dW[N, K] = gᵀ·a with g [M, N]: op(A) = gᵀ, and BGRADB gives db[N] = Σ_m g[m, n].
    const g = rounded('bf16', randn(M * N));
    be.write(bufs[2]!, up(g));
    const dW = be.alloc(N * K * 2);
    be.memset(bufs[3]!, 0xff);
    n.gemmLt(0, 1, 1, 0, N, K, M, 1, 0, 0, N * K, 0, t(bufs[2]!), t(bufs[0]!), t(dW), 3, t(bufs[3]!), null, wsArg);
    be.synchronize();
    const db = read(bufs[3]!, N);
    for (let j = 0; j < N; j++) {
      let s = 0;
      let mag = 0;
      for (let m = 0; m < M; m++) (s += g[m * N + j]!), (mag += Math.abs(g[m * N + j]!));
      expect(Math.abs(db[j]! - s)).toBeLessThanOrEqual(2 ** -8 * Math.abs(s) + M * 2 ** -22 * mag);
    }
    for (const b of [...bufs, dW, ws]) be.free(b);
  });

  it('plans each shape once and rejects bad GEMM arguments with typed errors', () => {
    const n = loadNative();
    const c = cases()[0]!;
    runCase(c, 'bf16');
    const count = n.gemmPlanCount!();
    runCase(c, 'bf16');
    runCase(c, 'bf16');
    expect(n.gemmPlanCount()).toBe(count);
    const be = cudaBackend(0);
    const small = be.alloc(64);
    const s = { base: small.ptr, offset: 0, bytes: 64 };
    const ws = be.alloc(GEMM_LT_WORKSPACE);
    const wsArg = { base: ws.ptr, offset: 0, bytes: GEMM_LT_WORKSPACE };
    expect(errorOf(() => n.gemmLt(0, 1, 0, 0, 0, 4, 4, 1, 0, 0, 16, 1, s, s, s, 0, null, null, wsArg)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => n.gemmLt(0, 1, 0, 0, 64, 64, 64, 1, 0, 0, 4096, 1, s, s, s, 0, null, null, wsArg)).code).toBe('SHAPE_MISMATCH');
    // A workspace said to be larger than its allocation: refused before cuBLASLt could overrun it.
    const big = be.alloc(3 * 512 * 512 * 2);
    const m = (k: number) => ({ base: big.ptr, offset: k * 512 * 512 * 2, bytes: 512 * 512 * 2 });
    expect(n.gemmLtSupported(1, 0, 0, 512, 512, 512, 1, 0, 0, 512 * 512, 1, 0, GEMM_LT_WORKSPACE)).toBe('');
    expect(errorOf(() => n.gemmLt(0, 1, 0, 0, 512, 512, 512, 1, 0, 0, 512 * 512, 1, m(0), m(1), m(2), 0, null, null, { ...wsArg, bytes: GEMM_LT_WORKSPACE + 4096 })).message).toMatch(/Expected at most 33554432 bytes/);
    n.gemmLt(0, 1, 0, 0, 512, 512, 512, 1, 0, 0, 512 * 512, 1, m(0), m(1), m(2), 0, null, null, wsArg);
    be.synchronize();
    // The DGELU epilogue reads aux (the pre-activation, M x N): none, or one too small, is refused
    // before cuBLASLt runs; so is a batch (epilogues take one GEMM).
    const dgelu = EPILOGUE_CODE.dgelu;
    expect(errorOf(() => n.gemmLt(0, 1, 0, 0, 512, 512, 512, 1, 0, 0, 512 * 512, 1, m(0), m(1), m(2), dgelu, null, null, wsArg)).message).toMatch(/Expected a tensor for aux/);
    expect(errorOf(() => n.gemmLt(0, 1, 0, 0, 512, 512, 512, 1, 0, 0, 512 * 512, 1, m(0), m(1), m(2), dgelu, null, s, wsArg)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => n.gemmLt(0, 1, 0, 0, 16, 16, 16, 2, 256, 256, 256, 1, m(0), m(1), m(2), dgelu, null, m(0), wsArg)).message).toMatch(/batch 1/);
    if (n.gemmLtSupported(1, 0, 0, 512, 512, 512, 1, 0, 0, 512 * 512, 1, dgelu, GEMM_LT_WORKSPACE) === '') {
      n.gemmLt(0, 1, 0, 0, 512, 512, 512, 1, 0, 0, 512 * 512, 1, m(0), m(1), m(2), dgelu, null, m(0), wsArg);
      be.synchronize();
    }
    expect(errorOf(() => n.gemmFallback(0, 3, 0, 0, 2, 2, 2, 1, 0, 0, 4, s, s, s)).code).toBe('INVALID_DTYPE');
    be.free(small);
    be.free(big);
    be.free(ws);
    expect(gemmPlan({ op: 'matmul', device: 'cuda:0', inTypes: [{ shape: [2, 3, 4, 4], dtype: 'f32' }, { shape: [3, 1, 4, 4], dtype: 'f32' }], outTypes: [{ shape: [2, 3, 4, 4], dtype: 'f32' }], attrs: {} })).toMatch(/partially broadcast/);
  });
});
