// The FP8 GEMM through cuBLASLt (kernels-native's scaledGemmLt, native/gemm/gemm_scaled.cpp) against
// a float64 reference of the same codes and scales, on odd shapes: every scaling pair cuBLASLt
// offers on Hopper, e4m3 and e5m2 operands, bf16 and f32 outputs, fast accumulation. Outputs are
// poisoned (NaN) first, so an unwritten element fails; the padding of 128 × 128 scales is NaN too,
// so reading it fails. The error must be no worse than a naive FP8 GEMM's at the same precision
// (exact FP8 products summed in f32 in order, rounded once to the output), with a floor for the
// tensor cores' accumulation. Two runs must agree bit for bit. Then the quantizer's blockwise-FP8
// parts in scaleLayout 'gemm' go in as they are, for a Linear's three GEMMs. Skipped without a GPU.
import { DeepwellError, Tensor, bf16BitsToF32, f32ToBf16Bits } from '@deepwell/core';
import { DTYPE_CODE, cudaStatus, findLibrary, nativeEntries, registerCudaBackends, type DevArg, type NativeEntries } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { ELEMENTS, encodeElement, decodeElement, quantizeTensor, type QuantizedTensor } from '../src/index.js';
import { relErr } from './fp8.js';

// cuBLASLt is loaded at run time (findLibrary); without it there is nothing to test.
const gpu = cudaStatus().available && findLibrary('cublasLt').found;
if (gpu) registerCudaBackends();
const FP8 = { e4m3: 0, e5m2: 1 } as const;
const SCALING = { tensor: 0, row: 1, block1x128: 2, block128x128: 3 } as const;
type Fp8 = keyof typeof FP8;
type Scaling = keyof typeof SCALING;

const normal = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
const ptr = (t: Tensor): DevArg => ({ base: (t.buffer as unknown as { ptr: number }).ptr, offset: 0, bytes: t.buffer.bytes });

/** n random FP8 codes (normal values spread over the format's range; never NaN). */
function codes(f: Fp8, n: number): Uint8Array {
  const e = f === 'e4m3' ? ELEMENTS.e4m3 : ELEMENTS.e5m2;
  const top = f === 'e4m3' ? 448 : 57344;
  return Uint8Array.from({ length: n }, () => encodeElement(e, Math.max(-top, Math.min(top, normal() * 2 ** Math.floor(Math.random() * 6 - 2)))));
}
const decode = (f: Fp8, c: Uint8Array) => Float64Array.from(c, (x) => decodeElement(f === 'e4m3' ? ELEMENTS.e4m3 : ELEMENTS.e5m2, x));

/**
 * Scales of an operand with R rows and K columns in scaledGemmLt's layout, and the scale of element
 * (r, k) they give. The 128 × 128 layout's padding columns hold NaN.
 */
function scales(s: Scaling, R: number, K: number): { data: Float32Array; at: (r: number, k: number) => number } {
  const v = () => Math.fround(2 ** (Math.random() * 6 - 3));
  const L = Math.ceil(K / 128);
  if (s === 'tensor') {
    const data = Float32Array.of(v());
    return { data, at: () => data[0]! };
  }
  if (s === 'row') {
    const data = Float32Array.from({ length: R }, v);
    return { data, at: (r) => data[r]! };
  }
  if (s === 'block1x128') {
    const data = Float32Array.from({ length: L * R }, v); // [L, R]
    return { data, at: (r, k) => data[Math.floor(k / 128) * R + r]! };
  }
  const L4 = Math.ceil(L / 4) * 4;
  const data = new Float32Array(Math.ceil(R / 128) * L4).fill(NaN); // [ceil(R/128), L4]
  for (let rb = 0; rb < Math.ceil(R / 128); rb++) for (let kb = 0; kb < L; kb++) data[rb * L4 + kb] = v();
  return { data, at: (r, k) => data[Math.floor(r / 128) * L4 + Math.floor(k / 128)]! };
}

interface Case {
  M: number;
  N: number;
  K: number;
  a: Fp8;
  b: Fp8;
  sa: Scaling;
  sb: Scaling;
  out: 'bf16' | 'f32';
  fast?: boolean;
}

const CASES: Case[] = [
  { M: 77, N: 40, K: 48, a: 'e4m3', b: 'e4m3', sa: 'tensor', sb: 'tensor', out: 'bf16' },
  { M: 1, N: 8, K: 16, a: 'e4m3', b: 'e4m3', sa: 'tensor', sb: 'tensor', out: 'f32' },
  { M: 130, N: 264, K: 272, a: 'e5m2', b: 'e4m3', sa: 'tensor', sb: 'tensor', out: 'bf16' }, // a gradient × a weight
  { M: 257, N: 1000, K: 1024, a: 'e4m3', b: 'e5m2', sa: 'tensor', sb: 'tensor', out: 'f32' },
  { M: 257, N: 1000, K: 1024, a: 'e4m3', b: 'e4m3', sa: 'tensor', sb: 'tensor', out: 'bf16', fast: true },
  { M: 99, N: 136, K: 400, a: 'e4m3', b: 'e4m3', sa: 'row', sb: 'row', out: 'bf16' },
  { M: 132, N: 264, K: 384, a: 'e4m3', b: 'e4m3', sa: 'block1x128', sb: 'block128x128', out: 'bf16' }, // activations × weights
  { M: 260, N: 136, K: 640, a: 'e4m3', b: 'e4m3', sa: 'block1x128', sb: 'block128x128', out: 'f32' }, // L = 5: padded scales
  { M: 132, N: 264, K: 384, a: 'e4m3', b: 'e4m3', sa: 'block128x128', sb: 'block1x128', out: 'bf16' },
  { M: 4, N: 8, K: 128, a: 'e4m3', b: 'e4m3', sa: 'block1x128', sb: 'block1x128', out: 'bf16' },
  { M: 136, N: 400, K: 1152, a: 'e5m2', b: 'e4m3', sa: 'block1x128', sb: 'block1x128', out: 'f32' }, // a weight gradient
];


function ops(): NativeEntries {
  const n = nativeEntries();
  if (!n.entries) throw new Error(n.why);
  return n.entries;
}

/** One call on the legacy default stream; D read back as numbers. */
function run(c: Case, a: Tensor, sa: Tensor, b: Tensor, sb: Tensor, ws: Tensor): Float64Array {
  const d = Tensor.from(c.out === 'f32' ? new Float32Array(c.M * c.N).fill(NaN) : new Uint16Array(c.M * c.N).fill(0x7fc0), [c.M, c.N], c.out, { device: 'cuda:0' });
  ops().scaledGemmLt(0, c.M, c.N, c.K, FP8[c.a], FP8[c.b], SCALING[c.sa], SCALING[c.sb], DTYPE_CODE[c.out], c.fast ? 1 : 0, ptr(a), ptr(sa), ptr(b), ptr(sb), ptr(d), 0, null, null, null, ptr(ws));
  const host = d.toHost();
  d.dispose();
  return c.out === 'f32' ? Float64Array.from(host as Float32Array) : Float64Array.from(host as Uint16Array, bf16BitsToF32);
}

describe.skipIf(!gpu)('scaledGemmLt (FP8 through cuBLASLt) on CUDA', () => {
  it.each(CASES.map((c) => [`${c.M}x${c.N}x${c.K} ${c.a}·${c.b} ${c.sa}/${c.sb} → ${c.out}${c.fast ? ' fast' : ''}`, c] as const))(
    'equals the float64 reference within a naive FP8 GEMM’s error, bit-identical on a rerun: %s',
    (_name, c) => {
      const ac = codes(c.a, c.M * c.K);
      const bc = codes(c.b, c.N * c.K);
      const as = scales(c.sa, c.M, c.K);
      const bs = scales(c.sb, c.N, c.K);
      const [av, bv] = [decode(c.a, ac), decode(c.b, bc)];
      // Reference (float64) and the naive FP8 GEMM (exact products of the scaled operands in f32,
      // summed in order in f32, rounded once to the output).
      const want = new Float64Array(c.M * c.N);
      const naive = new Float64Array(c.M * c.N);
      const round = c.out === 'f32' ? Math.fround : (x: number) => bf16BitsToF32(f32ToBf16Bits(x));
      for (let m = 0; m < c.M; m++)
        for (let n = 0; n < c.N; n++) {
          let s = 0;
          let f = 0;
          for (let k = 0; k < c.K; k++) {
            const p = as.at(m, k) * av[m * c.K + k]! * (bs.at(n, k) * bv[n * c.K + k]!);
            s += p;
            f = Math.fround(f + Math.fround(p));
          }
          want[m * c.N + n] = s;
          naive[m * c.N + n] = round(f);
        }
      const dev = { device: 'cuda:0' } as const;
      const a = Tensor.from(ac, [c.M, c.K], 'u8', dev);
      const b = Tensor.from(bc, [c.N, c.K], 'u8', dev);
      const sa = Tensor.from(as.data, [as.data.length], 'f32', dev);
      const sb = Tensor.from(bs.data, [bs.data.length], 'f32', dev);
      const ws = Tensor.empty([32 << 20], 'u8', dev);
      const got = run(c, a, sa, b, sb, ws);
      const again = run(c, a, sa, b, sb, ws);
      for (const t of [a, b, sa, sb, ws]) t.dispose();
      const err = relErr(got, want);
      const naiveErr = relErr(naive, want);
      // The floor: Hopper's FP8 tensor cores keep only about 14 bits of their partial sums between
      // promotions to FP32 (far fewer with fast accumulation), which a sequential f32 sum does not:
      // f32 outputs at K = 640–1152 measured 2.2–2.4e-4 on the H200 (2026-12-03).
      const floor = c.fast ? 2 ** -9 : 2 ** -11;
      expect(err, `relative error ${err} against the naive FP8 GEMM's ${naiveErr}`).toBeLessThanOrEqual(1.25 * naiveErr + floor);
      expect(Float64Array.from(again).every((x, i) => Object.is(x, got[i])), 'bit-identical on a rerun').toBe(true);
    },
  );

  // A Linear's GEMMs on the quantizer's output, every operand quantized on the GPU with scaleLayout
  // 'gemm' and passed unchanged: forward Y = X · Wᵀ (X 1 × 128 rowwise, W 128 × 128 rowwise), data
  // gradient dX = dY · W (W's columnwise part, stored [K, N]: L = 3, padded to 4) and weight
  // gradient dW = dYᵀ · X (both columnwise parts, blocks along M). The reference takes the CPU
  // quantizer's codes and plain-layout scales (the GPU test holds the two quantizers bit-identical),
  // so a scale the GEMM reads from the wrong place shows as error.
  it("takes quantizeTensor's scaleLayout 'gemm' parts as they are: forward, data and weight gradients", () => {
    const dev = { device: 'cuda:0' } as const;
    const bf16Of = (n: number, scale: number) => Uint16Array.from({ length: n }, () => f32ToBf16Bits(normal() * scale));
    /** An operand for the GEMM (device part) and for the reference (CPU plain part's values). */
    const operand = (x: Uint16Array, shape: [number, number], format: 'fp8-block1x128' | 'fp8-block128x128', d: 'rowwise' | 'columnwise') => {
      const host = Tensor.from(x, shape, 'bf16');
      const gpu = Tensor.from(x, shape, 'bf16', dev);
      const g: QuantizedTensor = quantizeTensor(gpu, { format, direction: d, scaleLayout: 'gemm' });
      const c: QuantizedTensor = quantizeTensor(host, { format, direction: d });
      const [R, K] = d === 'rowwise' ? shape : [shape[1], shape[0]];
      const codes = Float64Array.from(c[d]!.data.toHost() as Uint8Array, (b) => decodeElement(ELEMENTS.e4m3, b));
      const s = c[d]!.scales!.toHost() as Float32Array; // plain: [R, L] or [R / 128, L]
      const tile = format === 'fp8-block128x128' ? 128 : 1;
      const at = (r: number, k: number) => s[Math.floor(r / tile) * (K / 128) + Math.floor(k / 128)]!;
      for (const t of [host, gpu]) t.dispose();
      return { R, K, codes, at, data: g[d]!.data, scales: g[d]!.scales!, scaling: format === 'fp8-block1x128' ? ('block1x128' as const) : ('block128x128' as const), dispose: () => (g.dispose(), c.dispose()) };
    };
    type Operand = ReturnType<typeof operand>;
    const gemm = (what: string, a: Operand, b: Operand) => {
      const [M, N, K] = [a.R, b.R, a.K];
      expect(b.K, what).toBe(K);
      const c: Case = { M, N, K, a: 'e4m3', b: 'e4m3', sa: a.scaling, sb: b.scaling, out: 'f32' };
      const want = new Float64Array(M * N);
      const naive = new Float64Array(M * N);
      for (let m = 0; m < M; m++)
        for (let n = 0; n < N; n++) {
          let s = 0;
          let f = 0;
          for (let k = 0; k < K; k++) {
            const p = a.at(m, k) * a.codes[m * K + k]! * (b.at(n, k) * b.codes[n * K + k]!);
            s += p;
            f = Math.fround(f + Math.fround(p));
          }
          want[m * N + n] = s;
          naive[m * N + n] = Math.fround(f);
        }
      const ws = Tensor.empty([32 << 20], 'u8', dev);
      const got = run(c, a.data, a.scales, b.data, b.scales, ws);
      ws.dispose();
      const err = relErr(got, want);
      const naiveErr = relErr(naive, want);
      expect(err, `${what}: relative error ${err} against the naive FP8 GEMM's ${naiveErr}`).toBeLessThanOrEqual(1.25 * naiveErr + 2 ** -11);
    };
    // Forward and data gradient: M = 260 (1 × 128 operands of R not a multiple of 128).
    const [M, N, K] = [260, 384, 640];
    const w = bf16Of(N * K, 0.05);
    const x = operand(bf16Of(M * K, 1), [M, K], 'fp8-block1x128', 'rowwise');
    const wRow = operand(w, [N, K], 'fp8-block128x128', 'rowwise');
    gemm('forward X · Wᵀ', x, wRow);
    const dy = operand(bf16Of(M * N, 1e-3), [M, N], 'fp8-block1x128', 'rowwise');
    const wCol = operand(w, [N, K], 'fp8-block128x128', 'columnwise');
    gemm('data gradient dY · W', dy, wCol);
    // Weight gradient: blocks along M, so M = 384 here.
    const M2 = 384;
    const dyCol = operand(bf16Of(M2 * N, 1e-3), [M2, N], 'fp8-block1x128', 'columnwise');
    const xCol = operand(bf16Of(M2 * K, 1), [M2, K], 'fp8-block1x128', 'columnwise');
    gemm('weight gradient dYᵀ · X', dyCol, xCol);
    for (const o of [x, wRow, dy, wCol, dyCol, xCol]) o.dispose();
  }, 120_000);

  it('rejects what cuBLASLt cannot do with typed errors naming it', () => {
    const n = ops();
    const dev = { device: 'cuda:0' } as const;
    const a = Tensor.empty([128, 256], 'u8', dev);
    const s = Tensor.from(new Float32Array(1024).fill(1), [1024], 'f32', dev);
    const d = Tensor.empty([128, 128], 'f32', dev);
    const ws = Tensor.empty([1 << 20], 'u8', dev);
    const call = (o: Partial<{ K: number; a: number; b: number; sa: number; sb: number; out: number; fast: number; epi: number; scale: Tensor }>) => () =>
      n.scaledGemmLt(0, 128, 128, o.K ?? 256, o.a ?? 0, o.b ?? 0, o.sa ?? 0, o.sb ?? 0, o.out ?? DTYPE_CODE.f32, o.fast ?? 0, ptr(a), ptr(o.scale ?? s), ptr(a), ptr(s), ptr(d), o.epi ?? 0, o.epi ? ptr(s) : null, null, null, ptr(ws));
    const cases: [string, () => void, RegExp, string?][] = [
      ['e5m2 × e5m2', call({ a: 1, b: 1 }), /at most one e5m2/],
      ['128x128 × 128x128', call({ sa: 3, sb: 3 }), /scalings/],
      ['tensor × row', call({ sa: 0, sb: 1 }), /scalings/],
      ['K not a whole number of blocks', call({ K: 144, sa: 2, sb: 3 }), /K divisible by 128/],
      ['K not a multiple of 16', call({ K: 40 }), /K divisible by 16/],
      ['fast accumulation with blocks', call({ sa: 2, sb: 2, fast: 1 }), /fastAccum 0/],
      ['bias with f32 output', call({ epi: 1 }), /no bias epilogue with f32/],
      ['scales shorter than the layout needs', call({ sa: 2, sb: 2, scale: Tensor.from(new Float32Array(4), [4], 'f32', dev) }), /aScale/, 'SHAPE_MISMATCH'],
    ];
    for (const [what, fn, msg, code] of cases) {
      let err: unknown = null;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(DeepwellError.is(err), `${what}: a DeepwellError`).toBe(true);
      expect((err as DeepwellError).code, what).toBe(code ?? 'INVALID_ARGUMENT');
      expect((err as Error).message, what).toMatch(msg);
    }
    for (const t of [a, s, d, ws]) t.dispose();
  });
});
