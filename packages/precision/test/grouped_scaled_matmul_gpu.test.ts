// The FP8 blockwise grouped GEMM on CUDA: grouped_scaled_matmul's candidate over kernels-native's
// groupedScaledGemm (native/gemm/grouped_gemm.cu: the Hopper kernel gemm/grouped_fp8_sm90.cuh where N
// is a multiple of 64 on a compute capability 9.0 GPU, the general path otherwise), against a
// float64 sum computed here. Skipped without a GPU. First run on the H200 on 2026-12-05.
//
// Operands are fresh random finite FP8 codes with random f32 scales (1 × 128 for a in the 'gemm'
// layout [K/128, R], 128 × 128 per expert for b, [E, ceil(N/128), L4], each padding block NaN so a
// kernel that reads one gives NaN), ragged groups with an empty expert, one expert taking every row,
// and sizes that are multiples of no tile.
//
// The error is judged against cuBLASLt's blockwise FP8 GEMM (scaled_matmul's candidate, VEC128_32F ×
// BLK128x128_32F) on the same codes and scales, expert by expert: a GEMM of the same precision (FP8
// tensor-core partials, promoted to FP32 once per 128-deep block). With S the float64 sum and
// T = Σ|a||b| of each output, every element must satisfy |got − S| <= 2·eLt·T, where eLt is the
// largest |lt − S| / T over cuBLASLt's outputs (same output dtype, so its rounding is in both). The
// first H200 run (2026-12-05) showed an analytic bound of 2^-12·T (DeepSeek-V3's "about 14 bits"
// kept by Hopper's FP8 accumulation) too tight: the kernel's partials lost up to ~4·10^-4·T. So the
// bound comes from the vendor GEMM, measured on the same data. A wrong scale, row, expert or block
// is off by O(T) and fails. Outputs are poisoned (NaN) first, reruns are bit-identical, and this
// file's float64 values equal the op's CPU reference, rounded. Bad offsets are a typed error.
import { Tensor, registry } from '@deepwell/core';
import { FORMAT_CODE, cudaStatus, findLibrary, nativeEntries, registerCudaBackends, type CudaCall } from '@deepwell/kernels-native';
import { getOp, type KernelParams } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { computeCapabilityOf, roundToBf16 } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';
import { randomCodes, valuesOf } from './fp8.js';
import { cublasLtReference, exact, ptr, worstError, type Fmt, type Problem } from './grouped_fp8.js';
import { randomOffsets } from '../../../testing/moe.js';

const gpu = cudaStatus().available && findLibrary('cublasLt').found;
if (gpu) registerCudaBackends();
const dev = { device: 'cuda:0' } as const;

const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const bitsEqual = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((x, i) => Object.is(x, b[i]));

const randomScale = () => 2 ** randInt(-6, 6) * (1 + Math.random());

function problem(E: number, R: number, K: number, N: number, fa: Fmt, fb: Fmt, one: boolean): Problem {
  const L = K / 128, L4 = Math.ceil(L / 4) * 4, tn = Math.ceil(N / 128);
  const bScale = new Float32Array(E * tn * L4).fill(NaN);
  for (let e = 0; e < E; e++) for (let t = 0; t < tn; t++) for (let l = 0; l < L; l++) bScale[(e * tn + t) * L4 + l] = randomScale();
  return {
    R, K, N, E, fa, fb,
    a: randomCodes(R * K, fa),
    aScale: Float32Array.from({ length: L * R }, randomScale),
    b: randomCodes(E * N * K, fb),
    bScale,
    offsets: randomOffsets(E, R, one ? 'one' : 'ragged'),
  };
}

function firstBad(got: Float64Array, S: Float64Array, T: Float64Array, tol: number): number {
  for (let i = 0; i < got.length; i++) if (!(Math.abs(got[i]! - S[i]!) <= tol * T[i]!)) return i;
  return -1;
}

function tensors(p: Problem, device: string) {
  const t = (d: ArrayLike<number> | Uint8Array, shape: number[], dtype: string) => Tensor.from(d as never, shape, dtype as never, { device });
  const tn = Math.ceil(p.N / 128), L4 = Math.ceil(p.K / 128 / 4) * 4;
  return [
    t(p.a, [p.R, p.K], p.fa === 'e4m3' ? 'f8e4m3' : 'f8e5m2'),
    t(p.aScale, [p.K / 128, p.R], 'f32'),
    t(p.b, [p.E, p.N, p.K], p.fb === 'e4m3' ? 'f8e4m3' : 'f8e5m2'),
    t(p.bScale, [p.E, tn, L4], 'f32'),
    t(p.offsets, [p.E + 1], 'i32'),
  ];
}

/** Runs the registry's candidate (as a compiled step calls it) into a poisoned output. */
function runCandidate(ins: Tensor[], out: 'bf16' | 'f32'): Tensor {
  const inTypes = ins.map((t) => ({ shape: t.shape, dtype: t.dtype }));
  const attrs = { scaleLayout: 'gemm', outDtype: out };
  const params: KernelParams = { op: 'grouped_scaled_matmul', device: 'cuda:0', inTypes, outTypes: getOp('grouped_scaled_matmul').infer(inTypes, attrs), attrs };
  const kernel = registry.select<KernelParams, void>('grouped_scaled_matmul', params);
  expect(kernel.name).toBe('grouped_scaled_matmul_cuda');
  const [R, N] = [ins[0]!.shape[0]!, ins[2]!.shape[1]!];
  const d = Tensor.from(out === 'f32' ? new Float32Array(R * N).fill(NaN) : new Uint16Array(R * N).fill(0x7fc0), [R, N], out, dev);
  const call: CudaCall<KernelParams> = { ...params, stream: 0, inputs: ins.map(ptr), outputs: [ptr(d)], workspace: null };
  kernel.run(call as never);
  return d;
}

// [E, R, K, N, fa, fb, out, one]: N multiples of 64 take the Hopper kernel (several K blocks, N
// tiles, ragged groups, more tiles than SMs); N = 200 and 72 the general path.
const CASES: [number, number, number, number, Fmt, Fmt, 'bf16' | 'f32', boolean][] = [
  [4, 300, 256, 128, 'e4m3', 'e4m3', 'bf16', false],
  [3, 129, 128, 64, 'e4m3', 'e5m2', 'f32', true],
  [8, 1000, 512, 384, 'e4m3', 'e4m3', 'bf16', false],
  [16, 2100, 384, 256, 'e5m2', 'e4m3', 'f32', false],
  [5, 77, 256, 200, 'e4m3', 'e4m3', 'bf16', false],
  [2, 0, 128, 64, 'e4m3', 'e4m3', 'bf16', false],
  [1, 257, 640, 72, 'e4m3', 'e4m3', 'f32', false],
];

describe.skipIf(!gpu)('grouped_scaled_matmul on CUDA (FP8 blockwise grouped GEMM)', () => {
  it.each(CASES.map((c) => [`E ${c[0]} R ${c[1]} K ${c[2]} N ${c[3]} ${c[4]}·${c[5]} → ${c[6]}${c[7] ? ' one expert' : ''}`, ...c] as const))(
    'within twice cuBLASLt’s blockwise FP8 error on the same data, into a poisoned output, bit-identical on a rerun: %s',
    (_name, E, R, K, N, fa, fb, out, one) => {
      const p = problem(E, R, K, N, fa, fb, one);
      const { S, T } = exact(p);
      const ins = tensors(p, dev.device);
      const d = runCandidate(ins, out);
      const got = valuesOf(d);
      const lt = cublasLtReference(p, out);
      const eLt = worstError(lt, S, T);
      const tol = 2 * eLt;
      console.log(`E ${E} R ${R} K ${K} N ${N} ${fa}·${fb} → ${out}: worst |got − S| / Σ|a||b| ${worstError(got, S, T).toExponential(3)}, cuBLASLt's ${eLt.toExponential(3)}`);
      const bad = firstBad(got, S, T, tol);
      expect(bad, bad < 0 ? '' : `element ${bad} (row ${Math.floor(bad / N)}): ${got[bad]} for ${S[bad]} (Σ|a||b| ${T[bad]}, cuBLASLt ${lt[bad]}, bound ${tol}·Σ|a||b|); offsets ${Array.from(p.offsets)}`).toBe(-1);
      const again = runCandidate(ins, out);
      expect(bitsEqual(valuesOf(again), got), 'bit-identical on a rerun').toBe(true);
      if (R * N * K <= 1 << 24) {
        // The op's CPU reference on the same operands is this file's float64 sum, rounded once.
        const host = tensors(p, 'cpu');
        const op = getOp('grouped_scaled_matmul');
        const ref = new Float64Array(R * N);
        op.reference({ inputs: host.map((t) => Float64Array.from(t.toHost() as ArrayLike<number>)), outputs: [ref], inTypes: host.map((t) => ({ shape: t.shape, dtype: t.dtype })), outTypes: [{ shape: [R, N], dtype: out }], attrs: { scaleLayout: 'gemm', outDtype: out } });
        expect(bitsEqual(ref, S.map(out === 'f32' ? Math.fround : roundToBf16)), 'the op reference is this file’s sum').toBe(true);
        for (const t of host) t.dispose();
      }
      for (const t of [...ins, d, again]) t.dispose();
    },
  );

  it('refuses offsets that do not add up, naming the entry', () => {
    const p = problem(3, 100, 128, 64, 'e4m3', 'e4m3', false);
    p.offsets = Int32Array.of(0, 60, 40, 100);
    const ins = tensors(p, dev.device);
    const e = errorOf(() => runCandidate(ins, 'bf16'));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/grouped_scaled_matmul.*offsets\[2\]/);
    for (const t of ins) t.dispose();
  });
});

// The Blackwell block-scaled grouped GEMM (kernels-native's groupedBlockScaledGemm, gemm/
// grouped_block_sm100.cuh) is compiled and never run: no Blackwell GPU here. On any other GPU it must
// refuse with a typed error, not launch (it has no other path).
describe.skipIf(!gpu)('groupedBlockScaledGemm off Blackwell', () => {
  it('refuses with NO_KERNEL on a GPU of compute capability other than 10.x, and bad formats with INVALID_ARGUMENT', () => {
    const cc = computeCapabilityOf('cuda:0');
    const [R, K, N, E] = [128, 256, 128, 2];
    const t = (bytes: number) => Tensor.from(new Uint8Array(bytes), [bytes], 'u8', dev);
    const bufs = [t(R * K), t(512 * 2), t(E * N * K), t(E * 512 * 2), Tensor.from(Int32Array.of(0, 64, 128), [3], 'i32', dev), Tensor.from(new Uint16Array(R * N), [R, N], 'bf16', dev)];
    const [a, sa, b, sb, off, d] = bufs.map(ptr);
    const call = (format: number) => () => nativeEntries().entries!.groupedBlockScaledGemm(0, R, K, N, E, format, a!, sa!, b!, sb!, null, null, off!, d!);
    expect(errorOf(call(FORMAT_CODE['fp8-e4m3'])).code).toBe('INVALID_ARGUMENT');
    if (cc !== null && !cc.startsWith('10.')) {
      const e = errorOf(call(FORMAT_CODE['mxfp8-e4m3']));
      expect(e.code).toBe('NO_KERNEL');
      expect(e.message).toMatch(/Blackwell/);
    }
    for (const x of bufs) x.dispose();
    // The op's MXFP8 candidate declines off Blackwell, saying why; with no other candidate for mx32, NO_KERNEL.
    if (cc !== null && !cc.startsWith('10.')) {
      const inTypes = [
        { shape: [R, K], dtype: 'f8e4m3' },
        { shape: [1 * (K / 32 / 4), 512], dtype: 'e8m0' },
        { shape: [E, N, K], dtype: 'f8e4m3' },
        { shape: [E, 1 * (K / 32 / 4), 512], dtype: 'e8m0' },
        { shape: [E + 1], dtype: 'i32' },
      ] as const;
      const attrs = { aScaling: 'mx32', bScaling: 'mx32', scaleLayout: 'gemm', outDtype: 'bf16' };
      const params: KernelParams = { op: 'grouped_scaled_matmul', device: 'cuda:0', inTypes: [...inTypes], outTypes: getOp('grouped_scaled_matmul').infer([...inTypes], attrs), attrs };
      const e = errorOf(() => registry.select<KernelParams, void>('grouped_scaled_matmul', params));
      expect(e.code).toBe('NO_KERNEL');
      expect(JSON.stringify((e as unknown as { details: unknown }).details)).toMatch(/grouped_scaled_matmul_sm100.*Blackwell/);
    }
  });
});
