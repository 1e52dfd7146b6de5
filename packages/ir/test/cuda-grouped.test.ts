/**
 * Dropless MoE's CUDA kernels (native/ops/moe/moe_sort.cu, permute.cu, route.cu,
 * native/gemm/grouped_gemm.cu; src/cuda/moe.ts, src/cuda/grouped_gemm.ts) against the CPU
 * references on the same storage-rounded inputs, outputs poisoned (NaN) so an unwritten element
 * fails. Runs only where a GPU is; skips cleanly elsewhere. moe_sort and the router's choices must
 * match exactly, a permute without weights is an exact copy; the GEMMs and sums within f32 1e-5 or
 * two units of roundoff of bf16 / f16 against the rounded float64 reference (the row's max |want| as
 * the scale), on random ragged groups (the Hopper kernel's shapes and the general path's): empty
 * experts, one expert taking every row, sizes that are multiples of no tile. Reruns are bitwise
 * identical; bad offsets, ids and routing are typed errors naming the entry. The fused grouped GEMMs
 * (GELU, GELU backward, SwiGLU epilogues) equal the unfused kernels' results bit for bit.
 */
import { describe, expect, it } from 'vitest';
import { errorOf } from '../../../testing/errors.js';
import type { AttrValue } from '../src/index.js';
import { gpu, reference, rounded, runCuda, type CudaInput } from './cuda-helpers.js';
import { STORAGES, expectExact, rowsError, tol, type Storage } from './cuda-checks.js';
import { randInt, randn, randomChoices, randomOffsets } from './helpers.js';

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
      // K and N multiples of 64 take the Hopper weight-gradient kernel for bf16 / f16 on an H100 / H200:
      // experts whose rows end inside a 64-row block (the next expert's rows must not leak in), K tiles
      // with a panel past K (192), one expert taking every row, more tiles than SMs; the rest the general path.
      for (const [E, R, K, N, one] of [[1, 77, 17, 65, false], [3, 300, 130, 129, false], [8, 513, 64, 64, false], [5, 200, 33, 1, true], [4, 0, 16, 16, false],
        [6, 1000, 256, 192, false], [3, 300, 128, 128, true], [4, 301, 192, 64, false], [16, 4100, 512, 384, false], [1, 129, 64, 64, false], [5, 3, 64, 128, false], [5, 193, 64, 128, false]] as const) {
        // R = 193 over 5 experts: 1, 63, 64, 65 and 0 rows (a block's edges on both sides), the rest random.
        const off = R === 193 ? Int32Array.of(0, 1, 64, 128, 193, 193) : randomOffsets(E, R, one ? 'one' : 'ragged');
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

  // One test per dtype, each with 4 minutes: the float64 checks of the 4100 × 512 × 384 case take
  // most of a minute per dtype (87 s for all three ran past vitest's default limit on the H200).
  it.each(STORAGES.map((s) => [s] as const))('grouped_matmul_gelu, _dgelu, _swiglu: the unfused kernels\' results bit for bit, %s, both layouts, Hopper and general shapes', (storage) => {
    // A fused call runs the same GEMM (same path, same order of accumulation) as grouped_matmul on
    // that shape, and its epilogue the elementwise kernels' activations (common/activations.cuh) on
    // the rounded product: so pre / gate / up equal grouped_matmul's output exactly, and out equals
    // gelu / gelu_backward / swiglu of them exactly. The products are also checked against float64.
    for (const [E, R, K, N, one] of [[3, 300, 130, 129, false], [5, 200, 33, 2, true], [4, 0, 16, 16, false], [6, 1000, 256, 192, false], [3, 300, 128, 128, true], [16, 4100, 512, 384, false], [1, 129, 64, 64, false]] as const) {
      const off = randomOffsets(E, R, one ? 'one' : 'ragged');
      for (const transposeW of [false, true]) {
        const wShape = transposeW ? [E, N, K] : [E, K, N];
        const x: CudaInput = { shape: [R, K], data: randn(R * K) };
        const w: CudaInput = { shape: wShape, data: randn(E * K * N) };
        const w3: CudaInput = { shape: wShape, data: randn(E * K * N) };
        const o: CudaInput = { shape: [E + 1], dtype: 'i32', data: off };
        const pre: CudaInput = { shape: [R, N], data: randn(R * N).map((v) => 2 * v) };
        const what = `${storage} E ${E} R ${R} K ${K} N ${N}${transposeW ? ' transposeW' : ''}`;
        const attrs = { transposeW };
        const plain = check('grouped_matmul', [x, w, o], attrs, storage, N, what);
        const plain3 = runCuda('grouped_matmul', [x, w3, o], attrs, { storage }).outputs[0]!;
        const asInput = (d: Float64Array): CudaInput => ({ shape: [R, N], data: d });
        const gelu = runCuda('grouped_matmul_gelu', [x, w, o], attrs, { storage });
        expect(gelu.kernel).toBe('grouped_matmul_gelu_cuda');
        expectExact(gelu.outputs[1]!, plain, `${what} gelu: pre`);
        expectExact(gelu.outputs[0]!, runCuda('gelu', [asInput(plain)], {}, { storage }).outputs[0]!, `${what} gelu: out`);
        const dgelu = runCuda('grouped_matmul_dgelu', [x, w, o, pre], attrs, { storage });
        expectExact(dgelu.outputs[0]!, runCuda('gelu_backward', [asInput(plain), pre], {}, { storage }).outputs[0]!, `${what} dgelu`);
        const swi = runCuda('grouped_matmul_swiglu', [x, w, w3, o], attrs, { storage });
        expectExact(swi.outputs[1]!, plain, `${what} swiglu: gate`);
        expectExact(swi.outputs[2]!, plain3, `${what} swiglu: up`);
        expectExact(swi.outputs[0]!, runCuda('swiglu', [asInput(plain), asInput(plain3)], {}, { storage }).outputs[0]!, `${what} swiglu: out`);
        expectExact(runCuda('grouped_matmul_swiglu', [x, w, w3, o], attrs, { storage }).outputs[0]!, swi.outputs[0]!, `${what} swiglu rerun`);
      }
    }
  }, 240_000);

  // The Hopper kernel's other tilings, chosen by the environment at each call: the 128 × 256 tiles
  // (gemm/grouped_wide_sm90.cuh; not SwiGLU) and the pingpong schedule (each consumer warpgroup a
  // whole 128-row tile). Pingpong runs the same wgmma on the same data as the default, so it must
  // give the default's bits; the wide tiles are judged against float64. N of 64, 192, 320 and 384
  // leave the last 256-wide tile partly past N; one expert taking every row; more tiles than SMs.
  it.each([['wide', 'DW_GROUPED_TILE_N', '256'], ['pingpong', 'DW_GROUPED_SCHEDULE', 'pingpong']] as const)(
    'grouped_matmul and its fused epilogues, %s: within the bound, reruns bitwise equal, fused equal to unfused bit for bit',
    (variant, key, value) => {
      for (const storage of ['bf16', 'f16'] as const) {
        for (const [E, R, K, N, one] of [[8, 513, 64, 64, false], [6, 1000, 256, 192, false], [3, 300, 128, 256, true], [16, 4100, 512, 384, false], [1, 129, 64, 320, false], [4, 2000, 1024, 512, false]] as const) {
          const off = randomOffsets(E, R, one ? 'one' : 'ragged');
          for (const transposeW of [false, true]) {
            const x: CudaInput = { shape: [R, K], data: randn(R * K) };
            const w: CudaInput = { shape: transposeW ? [E, N, K] : [E, K, N], data: randn(E * K * N) };
            const w3: CudaInput = { shape: transposeW ? [E, N, K] : [E, K, N], data: randn(E * K * N) };
            const o: CudaInput = { shape: [E + 1], dtype: 'i32', data: off };
            const pre: CudaInput = { shape: [R, N], data: randn(R * N).map((v) => 2 * v) };
            const what = `${variant} ${storage} E ${E} R ${R} K ${K} N ${N}${transposeW ? ' transposeW' : ''} offsets ${Array.from(off).join(',')}`;
            const attrs = { transposeW };
            const asInput = (d: Float64Array): CudaInput => ({ shape: [R, N], data: d });
            // The default schedule's results, for pingpong's bit-for-bit check.
            const base = variant === 'pingpong' ? { plain: runCuda('grouped_matmul', [x, w, o], attrs, { storage }).outputs[0]!, swi: runCuda('grouped_matmul_swiglu', [x, w, w3, o], attrs, { storage }).outputs } : null;
            process.env[key] = value;
            try {
              const plain = check('grouped_matmul', [x, w, o], attrs, storage, N, what);
              expectExact(runCuda('grouped_matmul', [x, w, o], attrs, { storage }).outputs[0]!, plain, `${what} rerun`);
              const gelu = runCuda('grouped_matmul_gelu', [x, w, o], attrs, { storage });
              expectExact(gelu.outputs[1]!, plain, `${what} gelu: pre`);
              expectExact(gelu.outputs[0]!, runCuda('gelu', [asInput(plain)], {}, { storage }).outputs[0]!, `${what} gelu: out`);
              const dgelu = runCuda('grouped_matmul_dgelu', [x, w, o, pre], attrs, { storage });
              expectExact(dgelu.outputs[0]!, runCuda('gelu_backward', [asInput(plain), pre], {}, { storage }).outputs[0]!, `${what} dgelu`);
              if (base) {
                expectExact(plain, base.plain, `${what}: the default schedule's bits`);
                const swi = runCuda('grouped_matmul_swiglu', [x, w, w3, o], attrs, { storage }).outputs;
                swi.forEach((out, k) => expectExact(out, base.swi[k]!, `${what} swiglu output ${k}: the default schedule's bits`));
              }
            } finally {
              delete process.env[key];
            }
          }
        }
      }
    },
    240_000,
  );

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

  /** Routing of N tokens to k distinct experts of E, through the CPU moe_sort: [order, slot]. */
  const route = (N: number, k: number, E: number, skew: boolean): [CudaInput, CudaInput] => {
    const [order, slot] = reference('moe_sort', [{ shape: [N, k], dtype: 'i32', data: randomChoices(N, k, E, skew) }], { numExperts: E });
    return [{ shape: [N * k], dtype: 'i32', data: Int32Array.from(order!) }, { shape: [N, k], dtype: 'i32', data: Int32Array.from(slot!) }];
  };

  it('moe_permute, moe_unpermute, moe_weight_grad: every dtype, weights absent or of another dtype, 16-byte rows and odd ones; reruns bitwise equal', () => {
    for (const storage of STORAGES) {
      for (const [N, k, E, D, skew] of [[1, 1, 1, 8, false], [37, 2, 5, 24, false], [300, 2, 8, 264, true], [129, 4, 16, 7, false], [64, 8, 64, 1024, false], [0, 2, 4, 16, false]] as const) {
        const [order, slot] = route(N, k, E, skew);
        const wd = (['f32', 'bf16', storage] as const)[randInt(0, 2)];
        const weights: CudaInput = { shape: [N, k], dtype: wd, data: randn(N * k) };
        const x: CudaInput = { shape: [N, D], data: randn(N * D) };
        const ys: CudaInput = { shape: [N * k, D], data: randn(N * k * D) };
        const what = `${storage} N ${N} k ${k} D ${D} weights ${wd}`;
        // A permute copies exactly; scaled, one rounding of the product.
        const xs = check('moe_permute', [x, order, slot], {}, storage, D, `${what} permute`);
        const xsw = check('moe_permute', [x, order, slot, weights], {}, storage, D, `${what} permute weighted`);
        expectExact(runCuda('moe_permute', [x, order, slot], {}, { storage }).outputs[0]!, Array.from(reference('moe_permute', [x, order, slot], {}, storage)[0]!), `${what} permute exact`);
        const y = check('moe_unpermute', [ys, order, slot, weights], {}, storage, D, `${what} unpermute`);
        check('moe_unpermute', [ys, order, slot], {}, storage, D, `${what} unpermute unweighted`);
        const a: CudaInput = { shape: [N, D], data: randn(N * D) };
        const dw = runCuda('moe_weight_grad', [a, ys, order, slot], {}, { storage });
        expect(dw.kernel).toBe('moe_weight_grad_cuda');
        const wantDw = reference('moe_weight_grad', [a, ys, order, slot], {}, storage)[0]!;
        // An f32 dot product of D rounded terms: within D units of f32 roundoff of Σ|a·b|.
        for (let c = 0; c < N * k; c++) {
          const n = Math.floor(c / k);
          const p = (slot.data as Int32Array)[c]!;
          let mag = 0;
          for (let d = 0; d < D; d++) mag += Math.abs((a.data as Float64Array)[n * D + d]! * (ys.data as Float64Array)[p * D + d]!);
          expect(Math.abs(dw.outputs[0]![c]! - wantDw[c]!), `${what} dw[${c}]`).toBeLessThanOrEqual(4 * D * 2 ** -24 * mag + 1e-30);
        }
        // Reruns give the same bits.
        expectExact(runCuda('moe_permute', [x, order, slot, weights], {}, { storage }).outputs[0]!, xsw, `${what} permute rerun`);
        expectExact(runCuda('moe_unpermute', [ys, order, slot, weights], {}, { storage }).outputs[0]!, y, `${what} unpermute rerun`);
        expectExact(runCuda('moe_weight_grad', [a, ys, order, slot], {}, { storage }).outputs[0]!, dw.outputs[0]!, `${what} weight_grad rerun`);
        expect(xs.length).toBe(N * k * D);
      }
    }
  });

  it('moe_permute, moe_unpermute, moe_weight_grad refuse order and slot that are not from one moe_sort, naming the entry', () => {
    const [N, k, E, D] = [20, 2, 4, 16];
    const [order, slot] = route(N, k, E, false);
    const o = order.data as Int32Array;
    const s = slot.data as Int32Array;
    const x: CudaInput = { shape: [N, D], data: randn(N * D) };
    const ys: CudaInput = { shape: [N * k, D], data: randn(N * k * D) };
    const p = s[2 * k + 1]!; // token 2's second row
    const wrongOrder: CudaInput = { ...order, data: Int32Array.from(o, (v, i) => (i === p ? 5 : v)) };
    const repeat: CudaInput = { ...slot, data: Int32Array.from(s, (v, i) => (i === 2 * k + 1 ? s[2 * k]! : v)) };
    const farOrder: CudaInput = { ...order, data: Int32Array.from(o, (v, i) => (i === 7 ? N + 3 : v)) };
    const farSlot: CudaInput = { ...slot, data: Int32Array.from(s, (v, i) => (i === 2 * k + 1 ? N * k + 5 : v)) };
    for (const [op, inputs, want] of [
      ['moe_permute', [x, farOrder, slot], [`moe_permute: Expected a token in [0, ${N}) for order[7] but received ${N + 3}`]],
      ['moe_unpermute', [ys, order, farSlot], [`moe_unpermute: Expected a row in [0, ${N * k}) for slot[2, 1] but received ${N * k + 5}`]],
      ['moe_permute', [x, wrongOrder, slot], [`row ${p}`]],
      ['moe_unpermute', [ys, wrongOrder, slot], ['slot[2, 1]', `order[${p}] = 2`]],
      ['moe_unpermute', [ys, order, repeat], ['slot[2, 1]', 'repeats row']],
      ['moe_weight_grad', [x, ys, wrongOrder, slot], ['slot[2, 1]']],
    ] as const) {
      const e = errorOf(() => runCuda(op, inputs as unknown as CudaInput[], {}));
      expect(e.code, op).toBe('INVALID_ARGUMENT');
      for (const w of want) expect(e.message, op).toContain(w);
    }
  });

  it('moe_route: the reference\'s experts exactly and its probabilities within f32 roundoff, logits in every dtype, ties to the lower index; reruns bitwise equal', () => {
    for (const storage of STORAGES) {
      for (const [N, E, k, ties] of [[1, 1, 1, false], [300, 8, 2, false], [77, 64, 8, true], [40, 300, 6, false], [0, 4, 2, false]] as const) {
        // Ties: logits on a coarse grid, so equal probabilities are common. The probabilities: expf and a
        // sum of E terms in FP32, within (8 + E) units of roundoff.
        const logits: CudaInput = { shape: [N, E], data: randn(N * E).map((v) => (ties ? Math.round(2 * v) / 2 : 3 * v)) };
        const what = `${storage} N ${N} E ${E} k ${k}`;
        const r = runCuda('moe_route', [logits], { k }, { storage });
        expect(r.kernel).toBe('moe_route_cuda');
        const [probs, weights, chosen] = reference('moe_route', [logits], { k }, storage);
        expectExact(r.outputs[2]!, Array.from(chosen!), `${what} chosen`);
        // p_e = exp(l_e − max l) / Σ: the f32 subtraction's rounding reaches the result scaled by
        // |l_e − max l|, expf adds a few units, the sum of E terms up to E.
        const l = rounded(storage, Float64Array.from(logits.data as Float64Array));
        const bound = (n: number, e: number) => {
          let m = -Infinity;
          for (let c = 0; c < E; c++) m = Math.max(m, l[n * E + c]!);
          return (8 + E + 2 * Math.abs(l[n * E + e]! - m)) * 2 ** -24;
        };
        for (let c = 0; c < N * E; c++) expect(Math.abs(r.outputs[0]![c]! - probs![c]!), `${what} probs [${c}]`).toBeLessThanOrEqual(bound(Math.floor(c / E), c % E) * Math.abs(probs![c]!) + 1e-30);
        for (let c = 0; c < N * k; c++) expect(Math.abs(r.outputs[1]![c]! - weights![c]!), `${what} weights [${c}]`).toBeLessThanOrEqual(bound(Math.floor(c / k), chosen![c]!) * Math.abs(weights![c]!) + 1e-30);
        const again = runCuda('moe_route', [logits], { k }, { storage });
        for (let i = 0; i < 3; i++) expectExact(again.outputs[i]!, r.outputs[i]!, `${what} rerun ${i}`);
      }
    }
  });

  it('moe_route_backward and moe_aux_loss against the reference; reruns bitwise equal; bad expert ids named', () => {
    for (const [N, E, k] of [[1, 2, 1], [500, 8, 2], [64, 64, 8], [3, 300, 5]] as const) {
      const [probs, , chosenF] = reference('moe_route', [{ shape: [N, E], data: randn(N * E) }], { k });
      const p: CudaInput = { shape: [N, E], dtype: 'f32', data: Float64Array.from(probs!) };
      const chosen: CudaInput = { shape: [N, k], dtype: 'i32', data: Int32Array.from(chosenF!) };
      const gW: CudaInput = { shape: [N, k], dtype: 'f32', data: randn(N * k) };
      const gP: CudaInput = { shape: [N, E], dtype: 'f32', data: randn(N * E) };
      for (const inputs of [[p, chosen, gW], [p, chosen, gW, gP]]) {
        const r = runCuda('moe_route_backward', inputs, {});
        expect(r.kernel).toBe('moe_route_backward_cuda');
        const want = reference('moe_route_backward', inputs, {})[0]!;
        expect(rowsError(r.outputs[0]!, want, E, 'f32'), `route backward N ${N} E ${E}`).toBeLessThan(tol('f32'));
        expectExact(runCuda('moe_route_backward', inputs, {}).outputs[0]!, r.outputs[0]!, 'route backward rerun');
      }
      for (const storage of STORAGES) {
        const r = runCuda('moe_aux_loss', [{ ...p, dtype: storage }, chosen], {}, { storage });
        expect(r.kernel).toBe('moe_aux_loss_cuda');
        const [loss, fractions] = reference('moe_aux_loss', [{ ...p, dtype: storage }, chosen], {}, storage);
        expect(Math.abs(r.outputs[0]![0]! - loss![0]!), `aux loss ${storage} N ${N} E ${E}: ${r.outputs[0]![0]} vs ${loss![0]}`).toBeLessThan(1e-5 * Math.abs(loss![0]!) + 1e-7);
        for (let e = 0; e < E; e++) expect(Math.abs(r.outputs[1]![e]! - fractions![e]!)).toBeLessThanOrEqual(2 ** -24 * fractions![e]!);
        const again = runCuda('moe_aux_loss', [{ ...p, dtype: storage }, chosen], {}, { storage });
        expectExact(again.outputs[0]!, r.outputs[0]!, 'aux loss rerun');
      }
    }
    const [N, E, k] = [10, 4, 2];
    const bad = Int32Array.from({ length: N * k }, () => randInt(0, E - 1));
    bad[13] = -3;
    const p: CudaInput = { shape: [N, E], dtype: 'f32', data: randn(N * E).map(Math.abs) };
    const c: CudaInput = { shape: [N, k], dtype: 'i32', data: bad };
    for (const [op, inputs] of [['moe_aux_loss', [p, c]], ['moe_route_backward', [p, c, { shape: [N, k], dtype: 'f32', data: randn(N * k) } as CudaInput]]] as const) {
      const e = errorOf(() => runCuda(op, inputs as unknown as CudaInput[], {}));
      expect(e.code, op).toBe('INVALID_ARGUMENT');
      expect(e.message, op).toContain(`${op}: Expected an expert id in [0, 4) for chosen[6, 1] but received -3`);
    }
  });
});
