// The FP8 expert weight gradient on CUDA: quantize_kgrouped's candidate (native/quant/
// quantize_kgrouped.cu) against the op's CPU reference, and grouped_scaled_matmul_wgrad's
// (native/gemm/grouped_fp8_wgrad.cu: the Hopper kernel gemm/grouped_fp8_wgrad_sm90.cuh where K and N
// are multiples of 64 on a compute capability 9.0 GPU, the general path otherwise) against a float64
// sum computed here. Skipped without a GPU.
//
// The quantizer must give the reference's codes and scales bit for bit, every dtype, into outputs
// poisoned first (codes 0x7f, e4m3's NaN; scales NaN), padding and the tail included.
//
// The weight gradient's operands are fresh random finite FP8 codes in the padded layout (zero codes
// past each expert's rows inside its last block, as the quantizer writes them; random codes in the
// blocks past the last expert's, so a kernel that reads one is off) with random f32 scales. With S
// the float64 sum over each expert's blocks and T = Σ|a·sa||b·sb| of each output:
//   * the general path (FP32 sums of exact FP8 products, promoted once a block) within 2^-16·T
//     plus the output's rounding;
//   * the Hopper kernel within 2^-10·T plus the output's rounding: Hopper's FP8 tensor-core partials
//     keep fewer bits than FP32 (DeepSeek-V3 §3.3.2); against cuBLASLt's blockwise FP8 GEMM our
//     forward kernel and cuBLASLt both lost up to 9.7e-4·T on 128-deep blocks of K 384
//     (docs/gpu-runs/2026-12-05-session18), and 2^-10 = 9.8e-4. A wrong scale, row, column, expert or
//     block is off by O(T).
// Experts with no rows must come back as zeros; reruns are bit-identical; bad offsets are typed.
import { Tensor, bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '@deepwell/core';
import { cudaStatus, findLibrary, registerCudaBackends } from '@deepwell/kernels-native';
import { getOp } from '@deepwell/ir';
import { afterEach, describe, expect, it } from 'vitest';
import { ELEMENTS, decodeElement } from '../src/index.js';
import { paddedOffsets } from '../src/ops/quantize_kgrouped.js';
import { firstDiff, randomCodes, valuesOf } from './fp8.js';
import { runCandidate } from './grouped_fp8.js';
import { randomOffsets } from '../../../testing/moe.js';

const gpu = cudaStatus().available && findLibrary('cublasLt').found;
// The native FP8 weight gradient (cuda/grouped_scaled_matmul_wgrad.ts), on whatever the environment says.
process.env.DEEPWELL_FP8_WGRAD = 'native';
if (gpu) registerCudaBackends();
const dev = { device: 'cuda:0' } as const;

type Fmt = 'e4m3' | 'e5m2';
const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const randomScale = () => 2 ** randInt(-6, 6) * (1 + Math.random());
const bitsEqual = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((x, i) => Object.is(x, b[i]));
const padOf = (R: number, E: number) => 128 * (Math.ceil(R / 128) + E);

const made: Tensor[] = [];
const keep = <T extends Tensor>(t: T): T => (made.push(t), t);
afterEach(() => {
  for (const t of made.splice(0)) t.dispose();
});

/** x on the device in dtype (bf16 and f16 from their bits), and the values it holds (rounded). */
function deviceInput(xs: Float32Array, shape: number[], dtype: 'bf16' | 'f16' | 'f32'): { x: Tensor; values: Float32Array } {
  if (dtype === 'f32') return { x: keep(Tensor.from(xs, shape, 'f32', dev)), values: xs };
  const [toBits, fromBits] = dtype === 'bf16' ? [f32ToBf16Bits, bf16BitsToF32] : [f32ToF16Bits, f16BitsToF32];
  const bits = Uint16Array.from(xs, toBits);
  return { x: keep(Tensor.from(bits, shape, dtype, dev)), values: Float32Array.from(bits, fromBits) };
}

describe.skipIf(!gpu)('quantize_kgrouped on CUDA', () => {
  // [E, R, C, dtype, one]: ragged groups with an empty expert, one expert taking every row, R = 0,
  // counts that are multiples of 128 and not, C not a multiple of 64 or of 8 (the scalar loads).
  const CASES: [number, number, number, 'bf16' | 'f32' | 'f16', boolean][] = [
    [4, 300, 128, 'bf16', false],
    [3, 256, 64, 'f32', true],
    [8, 1000, 200, 'bf16', false],
    [16, 2100, 96, 'f16', false],
    [2, 0, 64, 'bf16', false],
    [5, 77, 30, 'f32', false],
  ];
  it.each(CASES.map((c) => [`E ${c[0]} R ${c[1]} C ${c[2]} ${c[3]}${c[4] ? ' one expert' : ''}`, ...c] as const))(
    'the reference’s codes and scales bit for bit, into poisoned outputs: %s',
    (_name, E, R, C, dtype, one) => {
      const offsets = randomOffsets(E, R, one ? 'one' : 'ragged');
      // Values over many binades, a few exactly zero rows' worth of blocks aside.
      const xs = Float32Array.from({ length: R * C }, () => (Math.random() - 0.5) * 2 ** randInt(-8, 8));
      const { x: xd, values } = deviceInput(xs, [R, C], dtype);
      const off = keep(Tensor.from(offsets, [E + 1], 'i32', dev));
      const P = padOf(R, E);
      const codes = keep(Tensor.from(new Uint8Array(C * P).fill(0x7f), [C, P], 'f8e4m3', dev));
      const scales = keep(Tensor.from(new Float32Array((P / 128) * C).fill(NaN), [P / 128, C], 'f32', dev));
      runCandidate('quantize_kgrouped', 'quantize_kgrouped_cuda', [xd, off], [codes, scales], { experts: E });
      // The reference on the values the device read (bf16 / f16 rounded).
      const host = Float64Array.from(values);
      const inTypes = [{ shape: [R, C], dtype }, { shape: [E + 1], dtype: 'i32' }];
      const op = getOp('quantize_kgrouped');
      const outTypes = op.infer(inTypes as never, { experts: E });
      const refCodes = new Float64Array(C * P);
      const refScales = new Float64Array((P / 128) * C);
      op.reference({ inputs: [host, Float64Array.from(offsets)], outputs: [refCodes, refScales], inTypes: inTypes as never, outTypes, attrs: { experts: E } });
      const gotCodes = Array.from(codes.toHost() as Uint8Array);
      const gotScales = Array.from(scales.toHost() as Float32Array);
      const dc = firstDiff(gotCodes, refCodes);
      expect(dc, dc < 0 ? '' : `code [${Math.floor(dc / P)}, ${dc % P}]: ${gotCodes[dc]} for ${refCodes[dc]}; offsets ${Array.from(offsets)}`).toBe(-1);
      const ds = firstDiff(gotScales, refScales);
      expect(ds, ds < 0 ? '' : `scale [${Math.floor(ds / C)}, ${ds % C}]: ${gotScales[ds]} for ${refScales[ds]}; offsets ${Array.from(offsets)}`).toBe(-1);
      const again = keep(Tensor.from(new Uint8Array(C * P).fill(0x7f), [C, P], 'f8e4m3', dev));
      runCandidate('quantize_kgrouped', 'quantize_kgrouped_cuda', [xd, off], [again, scales], { experts: E });
      expect(firstDiff(Array.from(again.toHost() as Uint8Array), gotCodes), 'bit-identical on a rerun').toBe(-1);
    },
  );

  it('refuses offsets that do not add up, naming the entry', () => {
    const [E, R, C] = [3, 100, 64];
    const { x } = deviceInput(Float32Array.from({ length: R * C }, Math.random), [R, C], 'bf16');
    const off = keep(Tensor.from(Int32Array.of(0, 60, 40, 100), [E + 1], 'i32', dev));
    const P = padOf(R, E);
    const codes = keep(Tensor.from(new Uint8Array(C * P), [C, P], 'f8e4m3', dev));
    const scales = keep(Tensor.from(new Float32Array((P / 128) * C), [P / 128, C], 'f32', dev));
    expect(() => runCandidate('quantize_kgrouped', 'quantize_kgrouped_cuda', [x, off], [codes, scales], { experts: E })).toThrow(/quantize_kgrouped.*offsets\[2\]/);
  });
});

interface Wgrad {
  R: number;
  K: number;
  N: number;
  E: number;
  P: number;
  fa: Fmt;
  fb: Fmt;
  offsets: Int32Array;
  a: Uint8Array; // [K, P]
  aScale: Float32Array; // [P/128, K]
  b: Uint8Array; // [N, P]
  bScale: Float32Array; // [P/128, N]
}

/** Random codes in the padded layout: zero codes past each expert's rows in its last block. */
function wgradProblem(E: number, R: number, K: number, N: number, fa: Fmt, fb: Fmt, one: boolean): Wgrad {
  const offsets = randomOffsets(E, R, one ? 'one' : 'ragged');
  const P = padOf(R, E);
  const q = paddedOffsets(offsets, E);
  const a = randomCodes(K * P, fa);
  const b = randomCodes(N * P, fb);
  for (let e = 0; e < E; e++) {
    const rows = offsets[e + 1]! - offsets[e]!;
    for (let p = q[e]! + rows; p < q[e + 1]!; p++) {
      for (let k = 0; k < K; k++) a[k * P + p] = 0;
      for (let n = 0; n < N; n++) b[n * P + p] = 0;
    }
  }
  return { R, K, N, E, P, fa, fb, offsets, a, b, aScale: Float32Array.from({ length: (P / 128) * K }, randomScale), bScale: Float32Array.from({ length: (P / 128) * N }, randomScale) };
}

/** S (the float64 sum) and T (Σ of |terms|) of every dw element, over each expert's blocks. */
function wgradExact(p: Wgrad): { S: Float64Array; T: Float64Array } {
  const { K, N, E, P } = p;
  const q = paddedOffsets(p.offsets, E);
  const [da, db] = [ELEMENTS[p.fa], ELEMENTS[p.fb]];
  const S = new Float64Array(E * K * N);
  const T = new Float64Array(E * K * N);
  const A = new Float64Array(128 * K);
  const B = new Float64Array(128 * N);
  for (let e = 0; e < E; e++)
    for (let pb = q[e]! / 128; pb < q[e + 1]! / 128; pb++) {
      for (let i = 0; i < 128; i++) {
        for (let k = 0; k < K; k++) A[i * K + k] = decodeElement(da, p.a[k * P + pb * 128 + i]!) * p.aScale[pb * K + k]!;
        for (let n = 0; n < N; n++) B[i * N + n] = decodeElement(db, p.b[n * P + pb * 128 + i]!) * p.bScale[pb * N + n]!;
      }
      for (let k = 0; k < K; k++)
        for (let n = 0; n < N; n++) {
          let s = 0;
          let t = 0;
          for (let i = 0; i < 128; i++) {
            const v = A[i * K + k]! * B[i * N + n]!;
            s += v;
            t += Math.abs(v);
          }
          const at = (e * K + k) * N + n;
          S[at] = S[at]! + s;
          T[at] = T[at]! + t;
        }
    }
  return { S, T };
}

function runWgrad(p: Wgrad, out: 'bf16' | 'f32'): Float64Array {
  const t = (d: ArrayLike<number> | Uint8Array, shape: number[], dtype: string) => keep(Tensor.from(d as never, shape, dtype as never, dev));
  const ins = [
    t(p.a, [p.K, p.P], p.fa === 'e4m3' ? 'f8e4m3' : 'f8e5m2'),
    t(p.aScale, [p.P / 128, p.K], 'f32'),
    t(p.b, [p.N, p.P], p.fb === 'e4m3' ? 'f8e4m3' : 'f8e5m2'),
    t(p.bScale, [p.P / 128, p.N], 'f32'),
    t(p.offsets, [p.E + 1], 'i32'),
  ];
  const n = p.E * p.K * p.N;
  const dw = t(out === 'f32' ? new Float32Array(n).fill(NaN) : new Uint16Array(n).fill(0x7fc0), [p.E, p.K, p.N], out);
  runCandidate('grouped_scaled_matmul_wgrad', 'grouped_scaled_matmul_wgrad_cuda', ins, [dw], { experts: p.E, outDtype: out });
  return valuesOf(dw);
}

describe.skipIf(!gpu)('grouped_scaled_matmul_wgrad on CUDA (the FP8 expert weight gradient)', () => {
  // [E, R, K, N, fa, fb, out, one]: K and N multiples of 64 take the Hopper kernel (several blocks,
  // tiles past K or N, ragged groups, more tiles than SMs); K 96 or N 80 the general path.
  const CASES: [number, number, number, number, Fmt, Fmt, 'bf16' | 'f32', boolean][] = [
    [4, 300, 128, 128, 'e4m3', 'e4m3', 'f32', false],
    [3, 129, 64, 192, 'e4m3', 'e5m2', 'bf16', true],
    [8, 1000, 256, 384, 'e4m3', 'e4m3', 'f32', false],
    [16, 2100, 128, 256, 'e5m2', 'e4m3', 'bf16', false],
    [1, 257, 320, 64, 'e4m3', 'e4m3', 'f32', false],
    [2, 0, 64, 64, 'e4m3', 'e4m3', 'f32', false],
    [5, 400, 96, 80, 'e4m3', 'e4m3', 'f32', false],
  ];
  it.each(CASES.map((c) => [`E ${c[0]} R ${c[1]} K ${c[2]} N ${c[3]} ${c[4]}·${c[5]} → ${c[6]}${c[7] ? ' one expert' : ''}`, ...c] as const))(
    'within the bound of its path, zeros for an empty expert, bit-identical on a rerun, the general path too: %s',
    (_name, E, R, K, N, fa, fb, out, one) => {
      const p = wgradProblem(E, R, K, N, fa, fb, one);
      const { S, T } = wgradExact(p);
      const hopper = K % 64 === 0 && N % 64 === 0;
      const rounding = out === 'bf16' ? 2 ** -8 : 2 ** -23;
      const check = (got: Float64Array, tol: number, what: string) => {
        let worst = 0;
        for (let i = 0; i < got.length; i++) {
          const bound = tol * T[i]! + rounding * Math.abs(S[i]!);
          if (!(Math.abs(got[i]! - S[i]!) <= bound)) {
            const e = Math.floor(i / (K * N));
            throw new Error(`${what}: dw[${e}, ${Math.floor(i / N) % K}, ${i % N}] = ${got[i]} for ${S[i]} (Σ|terms| ${T[i]}, bound ${bound}); offsets ${Array.from(p.offsets)}`);
          }
          if (T[i]! > 0) worst = Math.max(worst, Math.abs(got[i]! - S[i]!) / T[i]!);
        }
        return worst;
      };
      const got = runWgrad(p, out);
      const worst = check(got, hopper ? 2 ** -10 : 2 ** -16, hopper ? 'Hopper kernel' : 'general path');
      expect(bitsEqual(runWgrad(p, out), got), 'bit-identical on a rerun').toBe(true);
      process.env.DW_GROUPED_GENERAL = '1';
      let general: Float64Array;
      try {
        general = runWgrad(p, out);
      } finally {
        delete process.env.DW_GROUPED_GENERAL;
      }
      const worstGeneral = check(general, 2 ** -16, 'general path');
      console.log(`E ${E} R ${R} K ${K} N ${N} ${fa}·${fb} → ${out}: worst |got − S| / Σ|terms| ${worst.toExponential(3)} (${hopper ? 'Hopper' : 'general'}), general path ${worstGeneral.toExponential(3)}`);
      // The experts with no rows: exact zeros.
      for (let e = 0; e < E; e++)
        if (p.offsets[e] === p.offsets[e + 1]) expect(got.subarray(e * K * N, (e + 1) * K * N).every((v) => Object.is(v, 0)), `expert ${e} (no rows) is zeros`).toBe(true);
    },
    120_000,
  );

  it('refuses offsets that do not add up, naming the entry', () => {
    const p = wgradProblem(3, 100, 64, 64, 'e4m3', 'e4m3', false);
    p.offsets = Int32Array.of(0, 60, 40, 100);
    expect(() => runWgrad(p, 'f32')).toThrow(/grouped_scaled_matmul_wgrad.*offsets\[2\]/);
  });
});
