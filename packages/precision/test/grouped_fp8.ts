// What the FP8 grouped GEMM's GPU tests share (grouped_scaled_matmul_gpu, grouped_act_gpu,
// kgrouped_gpu, grouped_repeat_gpu): a problem's operands, the float64 sum S and Σ|a||b| T of every
// output, the worst |got − S| / T, cuBLASLt's blockwise FP8 GEMM on each expert's rows as the
// same-precision yardstick, and running an op's CUDA candidate as a compiled step does. Needs a GPU
// for cublasLtReference and runCandidate; the rest is host code.
import { Tensor, registry } from '@deepwell/core';
import type { CudaCall, DevArg } from '@deepwell/kernels-native';
import { checkAttrs, getOp, type Attrs, type KernelParams } from '@deepwell/ir';
import { expect } from 'vitest';
import { ELEMENTS, SCALED_GEMM_WORKSPACE, decodeElement } from '../src/index.js';
import { valuesOf } from './fp8.js';

export type Fmt = 'e4m3' | 'e5m2';
const dev = { device: 'cuda:0' } as const;
export const ptr = (t: Tensor): DevArg => ({ base: (t.buffer as unknown as { ptr: number }).ptr, offset: 0, bytes: t.buffer.bytes });

/**
 * Selects op's kernel for these device tensors as a compiled step does (it must be a CUDA one, and
 * `want` when given) and runs it into the given outputs, with a workspace when it asks for one.
 */
export function runCandidate(op: string, want: string | null, ins: Tensor[], outs: Tensor[], attrs: Attrs): void {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const inTypes = ins.map((t) => ({ shape: [...t.shape], dtype: t.dtype }));
  const params: KernelParams = { op, device: 'cuda:0', inTypes, outTypes: def.infer(inTypes, checked), attrs: checked };
  const kernel = registry.select<KernelParams, void>(op, params);
  expect(kernel.backend, `${op}: ${registry.explain(op, params).text}`).toBe('cuda');
  if (want !== null) expect(kernel.name).toBe(want);
  const bytes = (kernel as { workspace?: (p: KernelParams) => number }).workspace?.(params) ?? 0;
  const ws = bytes > 0 ? Tensor.empty([bytes], 'u8', dev) : null;
  try {
    const call: CudaCall<KernelParams> = { ...params, stream: 0, inputs: ins.map(ptr), outputs: outs.map(ptr), workspace: ws ? ptr(ws) : null };
    kernel.run(call as never);
  } finally {
    ws?.dispose();
  }
}

export interface Problem {
  R: number;
  K: number;
  N: number;
  E: number;
  fa: Fmt;
  fb: Fmt;
  a: Uint8Array;
  aScale: Float32Array; // [K/128, R]
  b: Uint8Array; // [E, N, K]
  bScale: Float32Array; // [E, ceil(N/128), L4], padding NaN
  offsets: Int32Array;
}

/** S (the float64 sum) and T (Σ|a||b|) of every output, from the dequantized values, k ascending. */
export function exact(p: Problem): { S: Float64Array; T: Float64Array } {
  const { R, K, N, E } = p;
  const L4 = Math.ceil(K / 128 / 4) * 4, tn = Math.ceil(N / 128);
  const [da, db] = [ELEMENTS[p.fa], ELEMENTS[p.fb]];
  const A = Float64Array.from({ length: R * K }, (_, i) => decodeElement(da, p.a[i]!) * p.aScale[Math.floor((i % K) / 128) * R + Math.floor(i / K)]!);
  const S = new Float64Array(R * N);
  const T = new Float64Array(R * N);
  for (let e = 0; e < E; e++) {
    if (p.offsets[e] === p.offsets[e + 1]) continue;
    const B = Float64Array.from({ length: N * K }, (_, i) => {
      const [n, k] = [Math.floor(i / K), i % K];
      return decodeElement(db, p.b[e * N * K + i]!) * p.bScale[(e * tn + Math.floor(n / 128)) * L4 + Math.floor(k / 128)]!;
    });
    for (let r = p.offsets[e]!; r < p.offsets[e + 1]!; r++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        let t = 0;
        for (let k = 0; k < K; k++) {
          const v = A[r * K + k]! * B[n * K + k]!;
          s += v;
          t += Math.abs(v);
        }
        S[r * N + n] = s;
        T[r * N + n] = t;
      }
  }
  return { S, T };
}

/** The largest |got − S| / T, over elements with T > 0 (rows of an expert). */
export function worstError(got: ArrayLike<number>, S: Float64Array, T: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < S.length; i++) if (T[i]! > 0) worst = Math.max(worst, Math.abs(got[i]! - S[i]!) / T[i]!);
  return worst;
}

/**
 * cuBLASLt's blockwise FP8 GEMM (scaled_matmul_cublaslt) on each expert's rows, padded with zero
 * codes to a multiple of 4 rows (its block-scaling rule): a same-precision GEMM's outputs, [R, N],
 * as `out` values.
 */
export function cublasLtReference(p: Problem, out: 'bf16' | 'f32'): Float64Array {
  const { K, N, E } = p;
  const L = K / 128, tn = Math.ceil(N / 128), L4 = Math.ceil(L / 4) * 4;
  const result = new Float64Array(p.R * N).fill(NaN);
  const ws = Tensor.empty([SCALED_GEMM_WORKSPACE], 'u8', dev);
  const t = (d: ArrayLike<number> | Uint8Array, shape: number[], dtype: string) => Tensor.from(d as never, shape, dtype as never, dev);
  for (let e = 0; e < E; e++) {
    const [r0, r1] = [p.offsets[e]!, p.offsets[e + 1]!];
    if (r0 === r1) continue;
    const M = Math.ceil((r1 - r0) / 4) * 4;
    const a = new Uint8Array(M * K);
    a.set(p.a.subarray(r0 * K, r1 * K));
    const aScale = new Float32Array(L * M).fill(1);
    for (let l = 0; l < L; l++) for (let r = r0; r < r1; r++) aScale[l * M + r - r0] = p.aScale[l * p.R + r]!;
    const ins = [
      t(a, [M, K], p.fa === 'e4m3' ? 'f8e4m3' : 'f8e5m2'),
      t(aScale, [L, M], 'f32'),
      t(p.b.subarray(e * N * K, (e + 1) * N * K), [N, K], p.fb === 'e4m3' ? 'f8e4m3' : 'f8e5m2'),
      t(p.bScale.subarray(e * tn * L4, (e + 1) * tn * L4), [tn, L4], 'f32'),
    ];
    const attrs = { aScaling: 'block1x128', bScaling: 'block128x128', scaleLayout: 'gemm', outDtype: out, fastAccum: false };
    const inTypes = ins.map((x) => ({ shape: x.shape, dtype: x.dtype }));
    const params: KernelParams = { op: 'scaled_matmul', device: 'cuda:0', inTypes, outTypes: getOp('scaled_matmul').infer(inTypes, attrs), attrs };
    const kernel = registry.select<KernelParams, void>('scaled_matmul', params);
    expect(kernel.name).toBe('scaled_matmul_cublaslt');
    const d = Tensor.from(out === 'f32' ? new Float32Array(M * N).fill(NaN) : new Uint16Array(M * N).fill(0x7fc0), [M, N], out, dev);
    kernel.run({ ...params, stream: 0, inputs: ins.map(ptr), outputs: [ptr(d)], workspace: ptr(ws) } as never);
    result.set(valuesOf(d).subarray(0, (r1 - r0) * N), r0 * N);
    for (const x of [...ins, d]) x.dispose();
  }
  ws.dispose();
  return result;
}
