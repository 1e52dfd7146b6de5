/**
 * Dropless MoE's CUDA kernels (native/ops/moe/moe_sort.cu, native/gemm/grouped_gemm.cu;
 * src/cuda/moe.ts, src/cuda/grouped_gemm.ts) against the CPU references on the same
 * storage-rounded inputs, outputs poisoned (NaN) so an unwritten element fails. Runs only where a
 * GPU is; skips cleanly elsewhere. moe_sort must match exactly; the GEMMs within f32 1e-5 or two
 * units of roundoff of bf16 / f16 against the rounded float64 reference (the row's max |want| as
 * the scale), on random ragged groups (the Hopper kernel's shapes and the general path's): empty experts, one expert taking every row, sizes that are
 * multiples of no tile. Reruns are bitwise identical; bad offsets and ids are typed errors.
 */
import { describe, expect, it } from 'vitest';
import { errorOf } from '../../../testing/errors.js';
import type { AttrValue } from '../src/index.js';
import { gpu, reference, runCuda, type CudaInput } from './cuda-helpers.js';
import { STORAGES, expectExact, rowsError, tol, type Storage } from './cuda-checks.js';
import { randInt, randn, randomOffsets } from './helpers.js';

function check(op: string, inputs: CudaInput[], attrs: Record<string, AttrValue>, storage: Storage, rowLen: number, what: string): Float64Array {
  const r = runCuda(op, inputs, attrs, { storage });
  expect(r.kernel, what).toBe(`${op}_cuda`);
  const want = reference(op, inputs, attrs, storage)[0]!;
  const err = rowsError(r.outputs[0]!, want, Math.max(1, rowLen), storage);
  expect(err, `${what}: error ${err}`).toBeLessThan(tol(storage));
  return r.outputs[0]!;
}

describe.skipIf(!gpu)('dropless MoE kernels on CUDA', () => {
  it('moe_sort: the reference\'s order, slots and offsets exactly, over several chunks and up to 8192 experts', () => {
    for (const [N, k, E, skew] of [[1, 1, 1, false], [37, 2, 5, false], [3000, 2, 8, false], [2500, 4, 64, true], [700, 3, 300, false], [100, 2, 8192, false], [0, 2, 4, false]] as const) {
      const one = randInt(0, E - 1);
      const experts = Int32Array.from({ length: N * k }, () => (skew && Math.random() < 0.9 ? one : randInt(0, E - 1)));
      const inputs: CudaInput[] = [{ shape: [N, k], dtype: 'i32', data: experts }];
      const r = runCuda('moe_sort', inputs, { numExperts: E });
      expect(r.kernel).toBe('moe_sort_cuda');
      const want = reference('moe_sort', inputs, { numExperts: E });
      ['order', 'slot', 'offsets'].forEach((name, i) => expectExact(r.outputs[i]!, Array.from(want[i]!), `${name} (N ${N}, k ${k}, E ${E})`));
      const again = runCuda('moe_sort', inputs, { numExperts: E });
      for (let i = 0; i < 3; i++) expectExact(again.outputs[i]!, r.outputs[i]!, 'rerun');
    }
  });

  it('moe_sort refuses an expert id outside [0, E), naming the position', () => {
    const experts = Int32Array.from({ length: 40 }, () => randInt(0, 5));
    experts[27] = 6;
    const e = errorOf(() => runCuda('moe_sort', [{ shape: [20, 2], dtype: 'i32', data: experts }], { numExperts: 6 }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain('experts[13, 1]');
  });

  it('grouped_matmul: every dtype, both weight layouts, ragged groups, one expert taking all; reruns bitwise equal', () => {
    for (const storage of STORAGES) {
      // K and N multiples of 64 take the Hopper kernel for bf16 / f16 on an H100 / H200 (several K
      // blocks and N tiles, ragged and one-expert groups, more tiles than SMs); the rest the general path.
      for (const [E, R, K, N, one] of [[1, 77, 17, 65, false], [3, 300, 130, 129, false], [8, 513, 64, 64, false], [5, 200, 33, 1, true], [4, 0, 16, 16, false], [6, 90, 1, 70, false],
        [6, 1000, 256, 192, false], [3, 300, 128, 128, true], [16, 4100, 512, 384, false], [1, 129, 64, 64, false]] as const) {
        const off = randomOffsets(E, R, one ? 'one' : 'ragged');
        for (const transposeW of [false, true]) {
          const inputs: CudaInput[] = [
            { shape: [R, K], data: randn(R * K) },
            { shape: transposeW ? [E, N, K] : [E, K, N], data: randn(E * K * N) },
            { shape: [E + 1], dtype: 'i32', data: off },
          ];
          const what = `${storage} E ${E} R ${R} K ${K} N ${N}${transposeW ? ' transposeW' : ''} offsets ${Array.from(off).join(',')}`;
          const got = check('grouped_matmul', inputs, { transposeW }, storage, N, what);
          expectExact(runCuda('grouped_matmul', inputs, { transposeW }, { storage }).outputs[0]!, got, `${what} rerun`);
        }
      }
    }
  });

  it('grouped_matmul_wgrad: every dtype, ragged groups, zeros for an empty expert; reruns bitwise equal', () => {
    for (const storage of STORAGES) {
      for (const [E, R, K, N, one] of [[1, 77, 17, 65, false], [3, 300, 130, 129, false], [8, 513, 64, 64, false], [5, 200, 33, 1, true], [4, 0, 16, 16, false]] as const) {
        const off = randomOffsets(E, R, one ? 'one' : 'ragged');
        const inputs: CudaInput[] = [{ shape: [R, K], data: randn(R * K) }, { shape: [R, N], data: randn(R * N) }, { shape: [E + 1], dtype: 'i32', data: off }];
        const what = `${storage} E ${E} R ${R} K ${K} N ${N} offsets ${Array.from(off).join(',')}`;
        const r = runCuda('grouped_matmul_wgrad', inputs, { experts: E }, { storage });
        const want = reference('grouped_matmul_wgrad', inputs, { experts: E }, storage)[0]!;
        // An empty expert's block is exactly zero; the rest within the bound, scaled by each expert's largest |want|.
        for (let e = 0; e < E; e++) {
          const [a, b] = [e * K * N, (e + 1) * K * N];
          if (off[e] === off[e + 1]) expect(Array.from(r.outputs[0]!.subarray(a, b)).every((v) => v === 0), `${what} expert ${e} empty`).toBe(true);
          else expect(rowsError(r.outputs[0]!.subarray(a, b), want.subarray(a, b), K * N, storage), `${what} expert ${e}`).toBeLessThan(tol(storage));
        }
        expectExact(runCuda('grouped_matmul_wgrad', inputs, { experts: E }, { storage }).outputs[0]!, r.outputs[0]!, `${what} rerun`);
      }
    }
  });

  it('refuses offsets that do not add up, naming the entry, in both kernels', () => {
    const [E, R, K, N] = [3, 10, 4, 5];
    for (const [off, at] of [[[1, 4, 6, 10], 0], [[0, 6, 4, 10], 2], [[0, 4, 6, 9], 3], [[0, 4, 11, 10], 2]] as const) {
      const o: CudaInput = { shape: [E + 1], dtype: 'i32', data: Int32Array.from(off) };
      const cases: [string, CudaInput[], Record<string, AttrValue>][] = [
        ['grouped_matmul', [{ shape: [R, K], data: randn(R * K) }, { shape: [E, K, N], data: randn(E * K * N) }, o], {}],
        ['grouped_matmul_wgrad', [{ shape: [R, K], data: randn(R * K) }, { shape: [R, N], data: randn(R * N) }, o], { experts: E }],
      ];
      for (const [op, inputs, attrs] of cases) {
        const e = errorOf(() => runCuda(op, inputs, attrs));
        expect(e.code, `${op} ${off}`).toBe('INVALID_ARGUMENT');
        expect(e.message, `${op} ${off}`).toContain(`offsets[${at}]`);
      }
    }
  });
});
