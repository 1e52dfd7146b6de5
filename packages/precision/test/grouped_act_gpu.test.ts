// The FP8 grouped GEMM with an activation epilogue on CUDA: grouped_scaled_matmul_gelu's and _dgelu's
// candidates over kernels-native's groupedScaledGemmAct, and grouped_scaled_matmul_swiglu's over
// groupedScaledGemmSwiglu (native/gemm/grouped_gemm.cu), against the unfused chain they replace, run
// on CUDA on the same inputs: grouped_scaled_matmul (bf16 out) → gelu / gelu_backward → quantize
// (fp8-block1x128, rowwise); for SwiGLU two grouped_scaled_matmul (w1 the gate, w3 the up
// projection) → swiglu → quantize. The fused Hopper kernels run the unfused kernel's main loop and
// round where the unfused kernels store, so every output must be equal bit for bit: the products
// (pre; gate and up), the activation, the codes and the scales. Skipped without a GPU.
//
// Operands are fresh random finite FP8 codes with random f32 scales small enough that the products
// mostly lie on GELU's curve rather than its tails (1 × 128 for a in the 'gemm' layout [K/128, R],
// 128 × 128 per expert for b (and w3), [E, ceil(N/128), L4], each padding block NaN), ragged groups
// with an empty expert, or one expert taking every row, R (600 to 1000) not a multiple of 128, K 256
// to 512, N 256 or 384, E 4 to 8; the Hopper path and the general path (DW_GROUPED_GENERAL=1). Every
// output is poisoned first (NaN; codes 0x7f, e4m3's NaN) and must come back fully written. Each
// product is also checked against the float64 sum on the CPU within the bound
// grouped_scaled_matmul_gpu.test.ts uses: twice cuBLASLt's blockwise FP8 error on the same data
// (|pre − S| <= 2·eLt·Σ|a||b|).
import { Tensor, f32ToBf16Bits, registry } from '@deepwell/core';
import { cudaStatus, findLibrary, registerCudaBackends } from '@deepwell/kernels-native';
import { checkAttrs, getOp, type KernelParams } from '@deepwell/ir';
import { afterEach, describe, expect, it } from 'vitest';
import { firstDiff, randomCodes, valuesOf } from './fp8.js';
import { cublasLtReference, exact, runCandidate, worstError, type Fmt, type Problem as GroupedProblem } from './grouped_fp8.js';
import { errorOf } from '../../../testing/errors.js';
import { randomOffsets } from '../../../testing/moe.js';

const gpu = cudaStatus().available && findLibrary('cublasLt').found;
if (gpu) registerCudaBackends();
const dev = { device: 'cuda:0' } as const;

const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
/** Scales that keep the products of random FP8 codes mostly within a few units (GELU's curve, not its tails): e5m2's codes reach 2^7 times e4m3's. */
const smallScale = (f: Fmt = 'e4m3') => Math.fround(2 ** (randInt(-12, -9) - (f === 'e5m2' ? 6 : 0)) * (1 + Math.random()));
const GEMM = { scaleLayout: 'gemm', outDtype: 'bf16' } as const;
const QUANT = { format: 'fp8-block1x128', direction: 'rowwise' } as const;

const made: Tensor[] = [];
const keep = <T extends Tensor>(t: T): T => (made.push(t), t);
afterEach(() => {
  for (const t of made.splice(0)) t.dispose();
});

interface Problem extends GroupedProblem {
  pre: Uint16Array; // bf16 bits [R, N]: the GELU backward's pre-activation
  b3: Uint8Array; // SwiGLU's up weight w3 (b is w1, the gate): codes [E, N, K] of b's format
  b3Scale: Float32Array; // and its scales [E, ceil(N/128), L4], padding NaN
}

function problem(fa: Fmt, fb: Fmt, kind: 'ragged' | 'one'): Problem {
  const [E, K, N] = [randInt(4, 8), 128 * randInt(2, 4), [256, 384][randInt(0, 1)]!];
  let R = randInt(600, 1000);
  if (R % 128 === 0) R++;
  const L = K / 128, L4 = Math.ceil(L / 4) * 4, tn = N / 128;
  const weightScales = () => {
    const s = new Float32Array(E * tn * L4).fill(NaN);
    for (let t = 0; t < E * tn; t++) for (let l = 0; l < L; l++) s[t * L4 + l] = smallScale(fb);
    return s;
  };
  const pre = Uint16Array.from({ length: R * N }, () => f32ToBf16Bits(Math.random() * 8 - 4));
  return { R, K, N, E, fa, fb, a: randomCodes(R * K, fa), aScale: Float32Array.from({ length: L * R }, () => smallScale(fa)), b: randomCodes(E * N * K, fb), bScale: weightScales(), offsets: randomOffsets(E, R, kind), pre, b3: randomCodes(E * N * K, fb), b3Scale: weightScales() };
}

const code = (f: Fmt) => (f === 'e4m3' ? 'f8e4m3' : 'f8e5m2');
const on = (d: ArrayLike<number> | Uint8Array | Uint16Array, shape: number[], dtype: string) => keep(Tensor.from(d as never, shape, dtype as never, dev));

function inputs(p: Problem): Tensor[] {
  const L4 = Math.ceil(p.K / 128 / 4) * 4;
  return [on(p.a, [p.R, p.K], code(p.fa)), on(p.aScale, [p.K / 128, p.R], 'f32'), on(p.b, [p.E, p.N, p.K], code(p.fb)), on(p.bScale, [p.E, p.N / 128, L4], 'f32'), on(p.offsets, [p.E + 1], 'i32')];
}

/** w3's codes and scales on the device (b's shapes and format). */
function upWeight(p: Problem): Tensor[] {
  const L4 = Math.ceil(p.K / 128 / 4) * 4;
  return [on(p.b3, [p.E, p.N, p.K], code(p.fb)), on(p.b3Scale, [p.E, p.N / 128, L4], 'f32')];
}

/** Each product against the float64 sum S of its operands, within twice cuBLASLt's error on the same data. */
function expectNearExact(what: string, got: Float64Array, p: GroupedProblem): void {
  const { S, T } = exact(p);
  const eLt = worstError(cublasLtReference(p, 'bf16'), S, T);
  console.log(`${what}: worst |product − S| / Σ|a||b| ${worstError(got, S, T).toExponential(3)}, cuBLASLt's ${eLt.toExponential(3)}`);
  const bad = got.findIndex((v, i) => !(Math.abs(v - S[i]!) <= 2 * eLt * T[i]!));
  expect(bad, bad < 0 ? '' : `${what}: [${bad}] = ${got[bad]} for ${S[bad]} (Σ|a||b| ${T[bad]}, bound 2·${eLt}·Σ|a||b|)`).toBe(-1);
}

/** Poisoned outputs: bf16 [R, N] NaN, codes [R, N] 0x7f (e4m3's NaN), scales f32 [N/128, R] NaN. */
const bf16Out = (p: Problem) => on(new Uint16Array(p.R * p.N).fill(0x7fc0), [p.R, p.N], 'bf16');
const quantOut = (p: Problem) => [on(new Uint8Array(p.R * p.N).fill(0x7f), [p.R, p.N], 'f8e4m3'), on(new Float32Array((p.N / 128) * p.R).fill(NaN), [p.N / 128, p.R], 'f32')];

/** Each output's bits equal the unfused one's, and every element written (no NaN, no NaN code). */
function expectSame(what: string, got: Tensor, want: Tensor): void {
  const [g, w] = [got.toHost() as ArrayLike<number>, want.toHost() as ArrayLike<number>];
  expect(firstDiff(g, w), `${what}: the unfused kernels' bits`).toBe(-1);
  const nan = got.dtype === 'f8e4m3' ? (c: number) => (c & 0x7f) === 0x7f : got.dtype === 'bf16' ? (c: number) => (c & 0x7fff) > 0x7f80 : Number.isNaN;
  expect(Array.from(g).findIndex(nan), `${what}: every element written`).toBe(-1);
}

const CASES: [Fmt, Fmt, 'ragged' | 'one', 'hopper' | 'general'][] = [
  ['e4m3', 'e4m3', 'ragged', 'hopper'],
  ['e4m3', 'e4m3', 'one', 'hopper'],
  ['e5m2', 'e4m3', 'ragged', 'hopper'],
  ['e4m3', 'e4m3', 'ragged', 'general'],
];
afterEach(() => {
  delete process.env.DW_GROUPED_GENERAL;
});

describe.skipIf(!gpu)('grouped_scaled_matmul_gelu and _dgelu on CUDA (the FP8 grouped GEMM with the GELU and quantize epilogue)', () => {
  it.each(CASES.map((c) => [`${c[0]}·${c[1]}, ${c[2]}, ${c[3]} path`, ...c] as const))('every output equals the unfused CUDA chain bit for bit, into poisoned outputs; the product within twice cuBLASLt’s error of the float64 sum: %s', (_name, fa, fb, kind, path) => {
    if (path === 'general') process.env.DW_GROUPED_GENERAL = '1';
    const p = problem(fa, fb, kind);
    const what = `E ${p.E} R ${p.R} K ${p.K} N ${p.N} ${fa}·${fb} ${path} offsets ${Array.from(p.offsets)}`;
    const ins = inputs(p);

    // Forward: [out, pre, codes, scales] against grouped_scaled_matmul → gelu → quantize.
    const fused = [bf16Out(p), bf16Out(p), ...quantOut(p)];
    runCandidate('grouped_scaled_matmul_gelu', 'grouped_scaled_matmul_gelu_cuda', ins, fused, GEMM);
    const pre = bf16Out(p);
    runCandidate('grouped_scaled_matmul', 'grouped_scaled_matmul_cuda', ins, [pre], GEMM);
    const h = bf16Out(p);
    runCandidate('gelu', null, [pre], [h], {});
    const hq = quantOut(p);
    runCandidate('quantize', 'quantize_cuda', [h], hq, QUANT);
    ['out', 'pre', 'codes', 'scales'].forEach((name, i) => expectSame(`${what}: gelu ${name}`, fused[i]!, [h, pre, ...hq][i]!));
    const codes = fused[2]!.toHost() as Uint8Array;
    expect(codes.some((c) => c !== 0 && c !== 0x80), `${what}: codes not all zero`).toBe(true);

    // Backward: [out, codes, scales] against grouped_scaled_matmul → gelu_backward(dh, pre) → quantize.
    const preIn = on(p.pre, [p.R, p.N], 'bf16');
    const dfused = [bf16Out(p), ...quantOut(p)];
    runCandidate('grouped_scaled_matmul_dgelu', 'grouped_scaled_matmul_dgelu_cuda', [...ins, preIn], dfused, GEMM);
    const dpre = bf16Out(p);
    runCandidate('gelu_backward', null, [pre, preIn], [dpre], {});
    const dq = quantOut(p);
    runCandidate('quantize', 'quantize_cuda', [dpre], dq, QUANT);
    ['out', 'codes', 'scales'].forEach((name, i) => expectSame(`${what}: dgelu ${name}`, dfused[i]!, [dpre, ...dq][i]!));

    // The product against the float64 sum, within the grouped GEMM test's bound.
    expectNearExact(`${what}: pre`, valuesOf(fused[1]!), p);
  });

  it('refuses offsets that do not add up (the error check after the call)', () => {
    const p = problem('e4m3', 'e4m3', 'ragged');
    // 0, 0, R, 1, …, R: offsets[3] < offsets[2] (E >= 4).
    p.offsets = Int32Array.from({ length: p.E + 1 }, (_, e) => (e === p.E || e === 2 ? p.R : e === 3 ? 1 : 0));
    const e = errorOf(() => runCandidate('grouped_scaled_matmul_gelu', 'grouped_scaled_matmul_gelu_cuda', inputs(p), [bf16Out(p), bf16Out(p), ...quantOut(p)], GEMM));
    expect(e.code, e.message).toBe('INVALID_ARGUMENT');
  });
});

describe.skipIf(!gpu)('grouped_scaled_matmul_swiglu on CUDA (the FP8 grouped GEMM of gate and up with the SwiGLU and quantize epilogue)', () => {
  const NAMES = ['out', 'gate', 'up', 'codes', 'scales'];
  /** The fused call's inputs: a, aScale, b1 (w1), b1Scale, b3 (w3), b3Scale, offsets. */
  const swigluInputs = (ins: Tensor[], up: Tensor[]) => [ins[0]!, ins[1]!, ins[2]!, ins[3]!, up[0]!, up[1]!, ins[4]!];

  it.each(CASES.map((c) => [`${c[0]}·${c[1]}, ${c[2]}, ${c[3]} path`, ...c] as const))('every output equals the unfused CUDA chain bit for bit, into poisoned outputs; each product within twice cuBLASLt’s error of the float64 sum: %s', (_name, fa, fb, kind, path) => {
    if (path === 'general') process.env.DW_GROUPED_GENERAL = '1';
    const p = problem(fa, fb, kind);
    const what = `E ${p.E} R ${p.R} K ${p.K} N ${p.N} ${fa}·${fb} ${path} offsets ${Array.from(p.offsets)}`;
    const ins = inputs(p);
    const up3 = upWeight(p);

    // [out, gate, up, codes, scales] against grouped_scaled_matmul × 2 → swiglu → quantize.
    const fused = [bf16Out(p), bf16Out(p), bf16Out(p), ...quantOut(p)];
    runCandidate('grouped_scaled_matmul_swiglu', 'grouped_scaled_matmul_swiglu_cuda', swigluInputs(ins, up3), fused, GEMM);
    const gate = bf16Out(p);
    runCandidate('grouped_scaled_matmul', 'grouped_scaled_matmul_cuda', ins, [gate], GEMM);
    const up = bf16Out(p);
    runCandidate('grouped_scaled_matmul', 'grouped_scaled_matmul_cuda', [ins[0]!, ins[1]!, up3[0]!, up3[1]!, ins[4]!], [up], GEMM);
    const h = bf16Out(p);
    runCandidate('swiglu', null, [gate, up], [h], {});
    const hq = quantOut(p);
    runCandidate('quantize', 'quantize_cuda', [h], hq, QUANT);
    NAMES.forEach((name, i) => expectSame(`${what}: swiglu ${name}`, fused[i]!, [h, gate, up, ...hq][i]!));
    // Not trivially so: two different products, codes not all zero.
    const [g, u] = [fused[1]!.toHost() as Uint16Array, fused[2]!.toHost() as Uint16Array];
    expect(g.some((v, i) => v !== u[i]), `${what}: gate and up differ`).toBe(true);
    expect((fused[3]!.toHost() as Uint8Array).some((c) => c !== 0 && c !== 0x80), `${what}: codes not all zero`).toBe(true);

    // Each product against the float64 sum, within the grouped GEMM test's bound.
    expectNearExact(`${what}: gate`, valuesOf(fused[1]!), p);
    expectNearExact(`${what}: up`, valuesOf(fused[2]!), { ...p, b: p.b3, bScale: p.b3Scale });
  });

  it('refuses offsets that do not add up (the error check after the call), and w3 of another format (the candidate declines)', () => {
    const p = problem('e4m3', 'e4m3', 'ragged');
    p.offsets = Int32Array.from({ length: p.E + 1 }, (_, e) => (e === p.E || e === 2 ? p.R : e === 3 ? 1 : 0));
    const outs = () => [bf16Out(p), bf16Out(p), bf16Out(p), ...quantOut(p)];
    const e = errorOf(() => runCandidate('grouped_scaled_matmul_swiglu', 'grouped_scaled_matmul_swiglu_cuda', swigluInputs(inputs(p), upWeight(p)), outs(), GEMM));
    expect(e.code, e.message).toBe('INVALID_ARGUMENT');
    const up5 = [on(randomCodes(p.E * p.N * p.K, 'e5m2'), [p.E, p.N, p.K], 'f8e5m2'), upWeight(p)[1]!];
    const inTypes = swigluInputs(inputs(p), up5).map((t) => ({ shape: [...t.shape], dtype: t.dtype }));
    const why = registry.explain('grouped_scaled_matmul_swiglu', { op: 'grouped_scaled_matmul_swiglu', device: 'cuda:0', inTypes, outTypes: [], attrs: checkAttrs(getOp('grouped_scaled_matmul_swiglu'), GEMM) } as KernelParams);
    expect(why.selected, why.text).not.toBe('grouped_scaled_matmul_swiglu_cuda');
    expect(why.rows.find((r) => r.name === 'grouped_scaled_matmul_swiglu_cuda')?.verdict, why.text).toMatch(/for input 'b3' but received f8e5m2/);
  });
});
