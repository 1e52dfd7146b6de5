// scaledMatmul and the scaled_matmul op's cuBLASLt candidate on the GPU, against the float64
// reference of the same codes and scales. Operands come from quantizeTensor on the GPU (fresh random
// inputs each run); blockwise scales are moved into the 'gemm' layout on the host here, so the test
// does not depend on quantizeTensor writing it (a second test checks quantizeTensor's own 'gemm'
// output where it has it). The error must be no worse than a naive FP8 GEMM's at the same precision
// (exact products of the dequantized operands summed in order in f32, rounded once to the output),
// with scaled_gemm.test.ts's floor for the tensor cores' ~14-bit partial sums; reruns are
// bit-identical; the CPU scaledMatmul on host copies equals the rounded float64 sum exactly. The
// registry candidate is run into a NaN-poisoned output (an unwritten element fails) and must equal
// the Tensor call bit for bit. Through the IR: kernel selection, dryrun's workspace and compile's
// kernel summary. A compiled step cannot be fed FP8 codes yet (its host staging holds f32, i32 and
// 16-bit floats), so no step is run. Skipped without a GPU and cuBLASLt.
//
// MXFP8 and NVFP4 (mx32, nv16: Blackwell's block-scaled GEMMs): on any GPU the addon's argument
// checks; below compute capability 10 (the H200) every layer's decline with the addon's reason
// (MXFP8 on 9.x then runs our own kernel, scaled_matmul_mx8_sm90: scaled_matmul_mx8_gpu.test.ts); on
// compute capability 10 or newer a run against the reference — written for Blackwell, compiled,
// never run (the project has no Blackwell GPU), so it is a sketch until one runs it.
import { Tensor, registry } from '@deepwell/core';
import { DTYPE_CODE, EPILOGUE_CODE, FP8_CODE, SCALING_CODE, cudaStatus, findLibrary, nativeEntries, registerCudaBackends, type CudaCall, type DevArg } from '@deepwell/kernels-native';
import { GraphBuilder, compile, dryrun, getOp, type KernelParams } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { ELEMENTS, MX8_SM90_KERNEL, SCALED_GEMM_WORKSPACE, computeCapabilityOf, decodeElement, dequantizeTensor, quantizeTensor, roundToBf16, scaledMatmul, type QuantizedTensor } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';
import { gemmLayoutScales, relErr, valuesOf } from './fp8.js';

const gpu = cudaStatus().available && findLibrary('cublasLt').found;
if (gpu) registerCudaBackends();
const dev = { device: 'cuda:0' } as const;

const normal = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
const randMatrix = (n: number) => Float32Array.from({ length: n }, () => Math.fround(normal() * 2 ** (Math.random() * 6 - 3)));

/**
 * A QuantizedTensor on `device` with blockwise scales moved into the 'gemm' layout (read back,
 * re-laid on the host, 128 × 128 padding NaN so reading it shows); tensorwise ones as they are.
 */
function toGemmLayout(q: QuantizedTensor, device: string): QuantizedTensor {
  if (!q.format.startsWith('fp8-block')) return q;
  const { data, shape } = gemmLayoutScales(q);
  const scales = Tensor.from(data, shape, 'f32', { device });
  q.rowwise!.scales!.dispose();
  return { ...q, scaleLayout: 'gemm' as never, rowwise: { data: q.rowwise!.data, scales }, dispose: () => (q.rowwise!.data.dispose(), scales.dispose(), q.globalScale?.dispose(), q.amax?.dispose()) };
}

/** The same operand with every part copied to the host (the layout kept). */
function onHost(q: QuantizedTensor): QuantizedTensor {
  const cp = (t: Tensor | null) => (t ? Tensor.from(t.toHost() as never, t.shape, t.dtype) : null);
  return { ...q, rowwise: { data: cp(q.rowwise!.data)!, scales: cp(q.rowwise!.scales) }, globalScale: cp(q.globalScale), amax: cp(q.amax), columnwise: null };
}

/** An operand's exact float64 values, from its codes and its 'gemm'-layout (or tensor) scales. */
function values64(q: QuantizedTensor): Float64Array {
  const c = q.rowwise!.data.toHost() as Uint8Array;
  const e = q.format === 'fp8-e5m2' ? ELEMENTS.e5m2 : ELEMENTS.e4m3;
  const [R, K] = [q.rows, q.cols];
  const L = K / 128;
  const s = (q.format.startsWith('fp8-block') ? q.rowwise!.scales! : q.globalScale!).toHost() as Float32Array;
  const at =
    q.format === 'fp8-block1x128' ? (r: number, k: number) => s[Math.floor(k / 128) * R + r]! : q.format === 'fp8-block128x128' ? (r: number, k: number) => s[Math.floor(r / 128) * Math.ceil(L / 4) * 4 + Math.floor(k / 128)]! : () => s[0]!;
  return Float64Array.from({ length: R * K }, (_, i) => decodeElement(e, c[i]!) * at(Math.floor(i / K), i % K));
}



const bitsEqual = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((x, i) => Object.is(x, b[i]));
const ptr = (t: Tensor): DevArg => ({ base: (t.buffer as unknown as { ptr: number }).ptr, offset: 0, bytes: t.buffer.bytes });

interface Case {
  M: number;
  N: number;
  K: number;
  a: string;
  b: string;
  out: 'bf16' | 'f32';
  fast?: boolean;
}

const CASES: Case[] = [
  { M: 77, N: 40, K: 48, a: 'fp8-e4m3', b: 'fp8-e4m3', out: 'bf16' },
  { M: 130, N: 264, K: 272, a: 'fp8-e5m2', b: 'fp8-e4m3', out: 'bf16' }, // a gradient × a weight
  { M: 257, N: 1000, K: 1024, a: 'fp8-e4m3', b: 'fp8-e5m2', out: 'f32' },
  { M: 257, N: 1000, K: 1024, a: 'fp8-e4m3', b: 'fp8-e4m3', out: 'bf16', fast: true },
  { M: 4, N: 8, K: 128, a: 'fp8-block1x128', b: 'fp8-block1x128', out: 'bf16' },
  { M: 132, N: 256, K: 384, a: 'fp8-block1x128', b: 'fp8-block128x128', out: 'bf16' }, // activations × weights
  { M: 260, N: 384, K: 640, a: 'fp8-block1x128', b: 'fp8-block128x128', out: 'f32' }, // L = 5: padded scales
  { M: 128, N: 264, K: 384, a: 'fp8-block128x128', b: 'fp8-block1x128', out: 'bf16' },
  { M: 136, N: 400, K: 1152, a: 'fp8-block1x128', b: 'fp8-block1x128', out: 'f32' },
];

/** a and b quantized on the GPU from fresh random x [M, K] and w [N, K], block scales in 'gemm'. */
function operands(c: Case): [QuantizedTensor, QuantizedTensor] {
  const q = (rows: number, format: string) => {
    const x = Tensor.from(randMatrix(rows * c.K), [rows, c.K], 'f32', dev);
    const r = quantizeTensor(x, { format: format as never });
    x.dispose();
    return toGemmLayout(r, dev.device);
  };
  return [q(c.M, c.a), q(c.N, c.b)];
}

describe.skipIf(!gpu)('scaledMatmul on CUDA (cuBLASLt FP8)', () => {
  it.each(CASES.map((c) => [`${c.M}x${c.N}x${c.K} ${c.a}·${c.b} → ${c.out}${c.fast ? ' fast' : ''}`, c] as const))(
    'is within a naive FP8 GEMM’s error of the float64 reference, bit-identical on a rerun and through the registry: %s',
    (_name, c) => {
      const [a, b] = operands(c);
      const [A, B] = [values64(a), values64(b)];
      const want = new Float64Array(c.M * c.N);
      const naive = new Float64Array(c.M * c.N);
      const round = c.out === 'f32' ? Math.fround : roundToBf16;
      for (let m = 0; m < c.M; m++)
        for (let n = 0; n < c.N; n++) {
          let s = 0;
          let f = 0;
          for (let k = 0; k < c.K; k++) {
            const p = A[m * c.K + k]! * B[n * c.K + k]!;
            s += p;
            f = Math.fround(f + Math.fround(p));
          }
          want[m * c.N + n] = s;
          naive[m * c.N + n] = round(f);
        }
      const options = { outDtype: c.out, ...(c.fast ? { fastAccum: true } : {}) };
      const d = scaledMatmul(a, b, options);
      expect([d.shape, d.dtype, d.device]).toEqual([[c.M, c.N], c.out, 'cuda:0']);
      const got = valuesOf(d);
      const again = valuesOf(scaledMatmul(a, b, options));
      const err = relErr(got, want);
      const naiveErr = relErr(naive, want);
      const floor = c.fast ? 2 ** -9 : 2 ** -11;
      expect(err, `relative error ${err} against the naive FP8 GEMM's ${naiveErr}`).toBeLessThanOrEqual(1.25 * naiveErr + floor);
      expect(bitsEqual(again, got), 'bit-identical on a rerun').toBe(true);

      // The CPU path on host copies: the float64 sum rounded once, exactly.
      const [ha, hb] = [onHost(a), onHost(b)];
      expect(bitsEqual(valuesOf(scaledMatmul(ha, hb, options)), want.map(round))).toBe(true);

      // The registry's candidate, called as a compiled step calls it, into a poisoned output.
      const op = getOp('scaled_matmul');
      const scalingOf = (f: string) => (f === 'fp8-block1x128' ? 'block1x128' : f === 'fp8-block128x128' ? 'block128x128' : 'tensor');
      const attrs = { aScaling: scalingOf(c.a), bScaling: scalingOf(c.b), scaleLayout: 'gemm', outDtype: c.out, fastAccum: c.fast ?? false };
      const ins = [a.rowwise!.data, scalingOf(c.a) === 'tensor' ? a.globalScale! : a.rowwise!.scales!, b.rowwise!.data, scalingOf(c.b) === 'tensor' ? b.globalScale! : b.rowwise!.scales!];
      const inTypes = ins.map((t) => ({ shape: t.shape, dtype: t.dtype }));
      const params: KernelParams = { op: 'scaled_matmul', device: 'cuda:0', inTypes, outTypes: op.infer(inTypes, attrs), attrs };
      const kernel = registry.select<KernelParams, void>('scaled_matmul', params);
      expect(kernel.name).toBe('scaled_matmul_cublaslt');
      expect(kernel.workspace!(params)).toBe(SCALED_GEMM_WORKSPACE);
      const poisoned = Tensor.from(c.out === 'f32' ? new Float32Array(c.M * c.N).fill(NaN) : new Uint16Array(c.M * c.N).fill(0x7fc0), [c.M, c.N], c.out, dev);
      const ws = Tensor.empty([SCALED_GEMM_WORKSPACE], 'u8', dev);
      const call: CudaCall<KernelParams> = { ...params, stream: 0, inputs: ins.map(ptr), outputs: [ptr(poisoned)], workspace: ptr(ws) };
      kernel.run(call as never);
      expect(bitsEqual(valuesOf(poisoned), got), 'the candidate equals the Tensor call').toBe(true);
      for (const t of [d, poisoned, ws]) t.dispose();
      for (const q of [a, b, ha, hb]) q.dispose();
    },
  );

  it("takes quantizeTensor's own 'gemm' layout", () => {
    const x = Tensor.from(randMatrix(132 * 384), [132, 384], 'f32', dev);
    const w = Tensor.from(randMatrix(256 * 384), [256, 384], 'f32', dev);
    const qa = quantizeTensor(x, { format: 'fp8-block1x128', scaleLayout: 'gemm' });
    const qw = quantizeTensor(w, { format: 'fp8-block128x128', scaleLayout: 'gemm' });
    const [pa, pw] = [toGemmLayout(quantizeTensor(x, { format: 'fp8-block1x128' }), dev.device), toGemmLayout(quantizeTensor(w, { format: 'fp8-block128x128' }), dev.device)];
    expect(bitsEqual(valuesOf(scaledMatmul(qa, qw, { outDtype: 'f32' })), valuesOf(scaledMatmul(pa, pw, { outDtype: 'f32' })))).toBe(true);
    for (const q of [qa, qw, pa, pw]) q.dispose();
    x.dispose();
    w.dispose();
  });

  it('refuses, with typed errors, what the GPU path cannot take', () => {
    const q = (rows: number, cols: number, format: string, device: string = dev.device) => quantizeTensor(Tensor.from(randMatrix(rows * cols), [rows, cols], 'f32', { device }), { format: format as never });
    const plainA = q(64, 256, 'fp8-block1x128');
    const plainB = q(128, 256, 'fp8-block128x128');
    const onCpu = q(8, 128, 'fp8-e4m3', 'cpu');
    const e4 = q(8, 128, 'fp8-e4m3');
    const cases: [string, () => unknown, string, RegExp][] = [
      ['operands on two devices', () => scaledMatmul(e4, onCpu), 'DEVICE_MISMATCH', /Expected a, b and their scales on one device but received a on cuda:0, a's scales on cuda:0, b on cpu, b's scales on cpu/],
      ["block scales in the 'plain' layout", () => scaledMatmul(plainA, plainB), 'INVALID_ARGUMENT', /Expected scaleLayout 'gemm' for a and b .* on cuda:0 .*quantizeTensor\(x, \{ format, scaleLayout: 'gemm' \}\).* but received 'plain'/],
      ['M not divisible by 4 with blocks', () => scaledMatmul(toGemmLayout(q(6, 128, 'fp8-block1x128'), dev.device), toGemmLayout(q(8, 128, 'fp8-block1x128'), dev.device)), 'NO_KERNEL', /M and N divisible by 4 with block scaling, not 6 and 8/],
      ['K not divisible by 16', () => scaledMatmul(q(8, 40, 'fp8-e4m3'), q(8, 40, 'fp8-e4m3')), 'NO_KERNEL', /K divisible by 16 .* not 40/],
      ['a bf16 row of 6 bytes', () => scaledMatmul(e4, q(3, 128, 'fp8-e4m3')), 'NO_KERNEL', /rows of d of a multiple of 16 bytes, not 6/],
    ];
    for (const [what, fn, code, msg] of cases) {
      const e = errorOf(fn);
      expect(e.code, what).toBe(code);
      expect(e.message, what).toMatch(msg);
    }
    // The candidate's reason for plain block scales, as the registry explains it.
    const inTypes = [plainA.rowwise!.data, plainA.rowwise!.scales!, plainB.rowwise!.data, plainB.rowwise!.scales!].map((t) => ({ shape: t.shape, dtype: t.dtype }));
    const attrs = { aScaling: 'block1x128', bScaling: 'block128x128', scaleLayout: 'plain', outDtype: 'bf16', fastAccum: false };
    const ex = registry.explain('scaled_matmul', { op: 'scaled_matmul', device: 'cuda:0', inTypes, outTypes: getOp('scaled_matmul').infer(inTypes, attrs), attrs });
    expect(ex.selected).toBeNull();
    expect(ex.text).toMatch(/scaled_matmul_cublaslt.*takes block scales in scaleLayout 'gemm'/);
  });

  it('is selected through the IR: dryrun plans its workspace, compile names its kernel', () => {
    const [M, N, K] = [256, 512, 1024];
    const b = new GraphBuilder();
    const a = b.input('a', [M, K], 'f8e4m3');
    const sa = b.input('sa', [K / 128, M], 'f32');
    const w = b.input('w', [N, K], 'f8e4m3');
    const sw = b.input('sw', [N / 128, 8], 'f32'); // L = 8 (already a multiple of 4)
    b.output('d', b.op1('scaled_matmul', [a, sa, w, sw], { aScaling: 'block1x128', bScaling: 'block128x128', scaleLayout: 'gemm', outDtype: 'bf16' }));
    const report = dryrun(b.graph, { device: 'cuda:0' });
    expect(report.workspaceUnknown).toBeUndefined();
    expect(report.kernelWorkspaceBytes.largest).toBe(SCALED_GEMM_WORKSPACE);
    expect(report.flopsPerStep).toBe(2 * M * N * K);
    const exe = compile(b.graph, { device: 'cuda:0' });
    expect(exe.kernelSummary()).toEqual([{ op: 'scaled_matmul', kernel: 'scaled_matmul_cublaslt', backend: 'cuda', nodes: 1, calls: 0 }]);
    exe.dispose();
  });
});

// ---- MXFP8 and NVFP4 (mx32, nv16) ---------------------------------------------------------------

const cc = gpu ? computeCapabilityOf('cuda:0') : null;
const blackwell = cc !== null && Number(cc.split('.')[0]) >= 10;

/** x [rows, K] from fresh random values, quantized on the GPU with the scales in cuBLASLt's tiles. */
const tiled = (rows: number, K: number, format: 'mxfp8-e4m3' | 'mxfp8-e5m2' | 'nvfp4') => {
  const x = Tensor.from(randMatrix(rows * K), [rows, K], 'f32', dev);
  const q = quantizeTensor(x, { format, scaleLayout: 'tiled128x4' });
  x.dispose();
  return q;
};

describe.skipIf(!gpu)('scaledGemmLt mx32 / nv16: argument checks (before the device is asked)', () => {
  it('refuses bad arguments with typed errors naming them', () => {
    const n = nativeEntries().entries!;
    const a = Tensor.empty([128, 256], 'u8', dev);
    const s = Tensor.empty([2048], 'u8', dev);
    const g = Tensor.from([1], [1], 'f32', dev);
    const d = Tensor.empty([128, 128], 'f32', dev);
    const ws = Tensor.empty([1 << 20], 'u8', dev);
    const short = Tensor.empty([512], 'u8', dev); // 1 row tile × 1 column tile; K = 256 needs 2
    type O = Partial<{ K: number; a: number; b: number; sa: number; sb: number; fast: number; scale: Tensor; globals: boolean }>;
    const call = (o: O) => () =>
      n.scaledGemmLt(0, 128, 128, o.K ?? 256, o.a ?? FP8_CODE.e4m3, o.b ?? FP8_CODE.e4m3, o.sa ?? SCALING_CODE.mx32, o.sb ?? SCALING_CODE.mx32, DTYPE_CODE.f32, o.fast ?? 0, ptr(a), ptr(o.scale ?? s), ptr(a), ptr(s), ptr(d), EPILOGUE_CODE.none, null, o.globals ? ptr(g) : null, o.globals ? ptr(g) : null, ptr(ws));
    const e2 = { a: FP8_CODE.e2m1, b: FP8_CODE.e2m1, sa: SCALING_CODE.nv16, sb: SCALING_CODE.nv16 };
    const cases: [string, () => void, string, RegExp][] = [
      ['mx32 × nv16', call({ sb: SCALING_CODE.nv16 }), 'INVALID_ARGUMENT', /\(mx32, mx32\) or \(nv16, nv16\) but received \(mx32, nv16\)/],
      ['e2m1 with mx32', call({ a: FP8_CODE.e2m1 }), 'INVALID_ARGUMENT', /Expected e2m1 operands only with nv16 scaling \(NVFP4\) but received \(e2m1, e4m3\)/],
      ['e4m3 with nv16', call({ ...e2, b: FP8_CODE.e4m3, globals: true }), 'INVALID_ARGUMENT', /Expected e2m1 operands \(NVFP4\) with nv16 scaling but received \(e2m1, e4m3\)/],
      ['K not in 32s', call({ K: 240 }), 'INVALID_ARGUMENT', /Expected K divisible by 32 with mx32 scaling .* but received 240/],
      ['fast accumulation', call({ fast: 1 }), 'INVALID_ARGUMENT', /Expected fastAccum 0 with block scaling/],
      ['nv16 without tensor scales', call(e2), 'INVALID_ARGUMENT', /Expected aGlobal and bGlobal \(NVFP4's f32 tensor scales, f32\[1\] each\) with nv16 scaling/],
      ['mx32 with tensor scales', call({ globals: true }), 'INVALID_ARGUMENT', /Expected no aGlobal or bGlobal \(NVFP4's tensor scales\) with mx32 scaling/],
      ['tiles shorter than the layout needs', call({ scale: short }), 'SHAPE_MISMATCH', /aScale/],
    ];
    for (const [what, fn, code, msg] of cases) {
      const e = errorOf(fn);
      expect(e.code, what).toBe(code);
      expect(e.message, what).toMatch(msg);
    }
    for (const t of [a, s, g, d, ws, short]) t.dispose();
  });
});

describe.skipIf(!gpu || blackwell)('MXFP8 and NVFP4 below compute capability 10: declined with the reason', () => {
  it('scaledGemmLtSupported, scaledGemmLt, the registry and scaledMatmul each say why', () => {
    const reason = new RegExp(`block-scaled MXFP8/NVFP4 GEMMs \\((mx32|nv16) scaling\\) need compute capability 10\\.0 or newer \\(Blackwell\\); this GPU is ${cc!.replace('.', '\\.')}$`);
    const n = nativeEntries().entries!;
    const [M, N, K] = [256, 128, 256];
    for (const [f, e] of [['mx32', FP8_CODE.e4m3], ['nv16', FP8_CODE.e2m1]] as const) {
      expect(n.scaledGemmLtSupported(M, N, K, e, e, SCALING_CODE[f], SCALING_CODE[f], DTYPE_CODE.bf16, 0, EPILOGUE_CODE.none, SCALED_GEMM_WORKSPACE), f).toMatch(reason);
    }
    for (const format of ['mxfp8-e4m3', 'nvfp4'] as const) {
      const [qa, qb] = [tiled(M, K, format), tiled(N, K, format)];
      const nv = format === 'nvfp4';
      // MXFP8 on Hopper (9.x) runs our own kernel (scaled_matmul_mx8_gpu.test.ts checks its results).
      const ownMx8 = !nv && cc!.startsWith('9.');
      // The Tensor call: NO_KERNEL, the candidate's reason the addon's.
      if (ownMx8) scaledMatmul(qa, qb).dispose();
      else {
        const e = errorOf(() => scaledMatmul(qa, qb));
        expect(e.code, format).toBe('NO_KERNEL');
        expect(e.message, format).toMatch(/scaled_matmul_cublaslt/);
        expect(e.message, format).toMatch(new RegExp(reason.source.replace('$', '')));
      }
      // The registry explains the same without throwing.
      const ins = [qa.rowwise!.data, qa.rowwise!.scales!, qb.rowwise!.data, qb.rowwise!.scales!, ...(nv ? [qa.globalScale!, qb.globalScale!] : [])];
      const inTypes = ins.map((t) => ({ shape: t.shape, dtype: t.dtype }));
      const attrs = { aScaling: nv ? 'nv16' : 'mx32', bScaling: nv ? 'nv16' : 'mx32', scaleLayout: 'gemm', outDtype: 'bf16', fastAccum: false };
      const ex = registry.explain('scaled_matmul', { op: 'scaled_matmul', device: 'cuda:0', inTypes, outTypes: getOp('scaled_matmul').infer(inTypes, attrs), attrs });
      expect(ex.selected).toBe(ownMx8 ? MX8_SM90_KERNEL : null);
      expect(ex.text).toMatch(/scaled_matmul_cublaslt.*need compute capability 10\.0 or newer/);
      // The addon itself, called with valid arguments: INVALID_ARGUMENT with the same reason, no abort.
      const d = Tensor.empty([M, N], 'bf16', dev);
      const ws = Tensor.empty([SCALED_GEMM_WORKSPACE], 'u8', dev);
      const code = nv ? FP8_CODE.e2m1 : FP8_CODE.e4m3;
      const raw = errorOf(() => n.scaledGemmLt(0, M, N, K, code, code, SCALING_CODE[attrs.aScaling as 'mx32'], SCALING_CODE[attrs.bScaling as 'mx32'], DTYPE_CODE.bf16, 0, ptr(ins[0]!), ptr(ins[1]!), ptr(ins[2]!), ptr(ins[3]!), ptr(d), EPILOGUE_CODE.none, null, nv ? ptr(ins[4]!) : null, nv ? ptr(ins[5]!) : null, ptr(ws)));
      expect([raw.code, raw.message]).toEqual(['INVALID_ARGUMENT', expect.stringMatching(reason)]);
      for (const t of [d, ws]) t.dispose();
      for (const q of [qa, qb]) q.dispose();
    }
    // The device still works after the refusals.
    const [fa, fb] = operands({ M: 4, N: 8, K: 128, a: 'fp8-e4m3', b: 'fp8-e4m3', out: 'f32' });
    expect(valuesOf(scaledMatmul(fa, fb, { outDtype: 'f32' })).every(Number.isFinite)).toBe(true);
    for (const q of [fa, fb]) q.dispose();
  });
});

// Compiled, never run: no Blackwell GPU is available to the project (this block skips on the H200).
describe.skipIf(!gpu || !blackwell)('MXFP8 and NVFP4 through cuBLASLt on Blackwell (written for sm_100, never run)', () => {
  const MX: [string, 'mxfp8-e4m3' | 'mxfp8-e5m2' | 'nvfp4', 'mxfp8-e4m3' | 'mxfp8-e5m2' | 'nvfp4', number, number, number, 'bf16' | 'f32'][] = [
    ['mxfp8 e4m3 · e4m3', 'mxfp8-e4m3', 'mxfp8-e4m3', 256, 512, 1024, 'bf16'],
    ['mxfp8 e5m2 · e4m3, odd M', 'mxfp8-e5m2', 'mxfp8-e4m3', 130, 256, 512, 'f32'],
    ['nvfp4 · nvfp4', 'nvfp4', 'nvfp4', 256, 512, 1024, 'bf16'],
    ['nvfp4 · nvfp4, odd M', 'nvfp4', 'nvfp4', 77, 128, 256, 'f32'],
  ];
  it.each(MX)('is within a naive GEMM’s error of the float64 reference, bit-identical on a rerun: %s', (_name, fa, fb, M, N, K, out) => {
    const [qa, qb] = [tiled(M, K, fa), tiled(N, K, fb)];
    const [ha, hb] = [onHost(qa), onHost(qb)];
    const want = valuesOf(scaledMatmul(ha, hb, { outDtype: 'f32' })); // the reference, rounded to f32
    // A naive GEMM at the same precision: the dequantized f32 values, products summed in f32.
    const [A, B] = [dequantizeTensor(ha).toHost() as Float32Array, dequantizeTensor(hb).toHost() as Float32Array];
    const round = out === 'f32' ? Math.fround : roundToBf16;
    const naive = new Float64Array(M * N);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let f = 0;
        for (let k = 0; k < K; k++) f = Math.fround(f + Math.fround(A[m * K + k]! * B[n * K + k]!));
        naive[m * N + n] = round(f);
      }
    const got = valuesOf(scaledMatmul(qa, qb, { outDtype: out }));
    const err = relErr(got, want);
    expect(err, `relative error ${err} against the naive GEMM's ${relErr(naive, want)}`).toBeLessThanOrEqual(1.25 * relErr(naive, want) + 2 ** -11);
    expect(bitsEqual(valuesOf(scaledMatmul(qa, qb, { outDtype: out })), got), 'bit-identical on a rerun').toBe(true);
    for (const q of [qa, qb, ha, hb]) q.dispose();
  });
});
