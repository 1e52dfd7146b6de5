// Whether the FP8 MoE kernels repeat bit for bit at a real model's size. The other GPU tests rerun
// each kernel once on small problems (a few hundred rows, at most one tile per CTA). Here every CUDA
// candidate the FP8 MoE step runs and the bf16 one does not (quantize rowwise, columnwise and
// 128 × 128, quantize_kgrouped, grouped_scaled_matmul up and down, _gelu, _dgelu, _swiglu, _wgrad,
// and the attention's dense scaled_matmul on cuBLASLt) runs at moe-8x's shapes (B 16 × T 1024
// tokens, top-2: 32,768 routed rows, width 1024, hidden 4096, 8 experts; also 64 experts) DW_REPEAT
// times back to back, each time into its own poisoned outputs kept on the device (as many runs as
// fit in half the free memory), and every output's bytes must equal the first run's. Persistent CTAs take many tiles each here, so a race between one tile's epilogue and the
// next tile's loads, or an order of accumulation that depends on timing, can show as a difference.
// Skipped without a GPU, and unless DW_REPEAT is set.
//
// On the H200 (2026-12-05, 6 runs each, then copied to the host one by one) it passed, while fp8-blockwise trainings of the moe-8x GPT
// still left one another at random steps, in one process too, with the experts in FP8 and not with
// only the attention's projections (examples/gpt2/rerun.mjs; docs/gpu-runs/2026-12-05-session24).
// So a fault, if it is in these kernels, is rarer than one in a few hundred launches, or needs what
// a training step gives them and random operands do not.
import { randomFillSync } from 'node:crypto';
import { Tensor, dtypeInfo, f32ToBf16Bits } from '@deepwell/core';
import { cudaBackend, cudaStatus, findLibrary, memGetInfo, registerCudaBackends } from '@deepwell/kernels-native';
import { byteSizeOf, checkAttrs, getOp, type Attrs } from '@deepwell/ir';
import { afterEach, describe, expect, it } from 'vitest';
import { runCandidate } from './grouped_fp8.js';
import { randomOffsets } from '../../../testing/moe.js';

const gpu = cudaStatus().available && findLibrary('cublasLt').found;
if (gpu) registerCudaBackends();
// The native FP8 weight gradient (cuda/grouped_scaled_matmul_wgrad.ts), on whatever the environment says.
process.env.DEEPWELL_FP8_WGRAD = 'native';
const dev = { device: 'cuda:0' } as const;
// Opt-in (DW_REPEAT=n, at least 2); scripts/moe-check.sh's bisect and repeat parts set it.
const REPEAT = process.env.DW_REPEAT === undefined ? 0 : Math.max(2, Number(process.env.DW_REPEAT));

const made: Tensor[] = [];
const keep = <T extends Tensor>(t: T): T => (made.push(t), t);
afterEach(() => {
  for (const t of made.splice(0)) t.dispose();
});

/** n random E4M3 codes, none NaN (0x7f / 0xff become 0x7e / 0xfe). */
function codes(n: number): Uint8Array {
  const c = randomFillSync(new Uint8Array(n));
  for (let i = 0; i < n; i++) if ((c[i]! & 0x7f) === 0x7f) c[i]! -= 1;
  return c;
}
/** Scales that keep a K-deep sum of random codes within a few units. */
const scales = (n: number) => Float32Array.from({ length: n }, () => Math.fround(2 ** (-12 + Math.floor(Math.random() * 3)) * (1 + Math.random())));
const bf16 = (n: number, spread: number) => Uint16Array.from({ length: n }, () => f32ToBf16Bits((Math.random() * 2 - 1) * spread));
const on = (d: ArrayLike<number> | Uint8Array | Uint16Array, shape: number[], dtype: string) => keep(Tensor.from(d as never, shape, dtype as never, dev));

/** An output of the type on the device, every byte 0xff: NaN as bf16, f32 and E4M3 (not kept: the caller disposes it). */
function poisoned(shape: readonly number[], dtype: string): Tensor {
  const t = Tensor.empty([...shape], dtype as never, dev);
  cudaBackend(0).memset(t.buffer, 0xff);
  return t;
}

/**
 * Runs op's CUDA candidate `want` on `ins` REPEAT times (fewer where the outputs would not fit) back to back, each into its own poisoned
 * outputs held on the device (no copy or wait between the launches, as in a step), then every
 * output's bytes must equal the first run's.
 */
function expectRepeatable(op: string, want: string, ins: Tensor[], attrs: Attrs): void {
  const def = getOp(op);
  const outTypes = def.infer(ins.map((t) => ({ shape: [...t.shape], dtype: t.dtype })), checkAttrs(def, attrs));
  // As many runs as REPEAT, or as fit in half the free device memory (64 experts' f32 weight gradient is 1 GiB a run).
  const perRun = outTypes.reduce((n, t) => n + byteSizeOf(t), 0);
  const reps = Math.max(2, Math.min(REPEAT, Math.floor(memGetInfo(0).free / 2 / perRun)));
  const runs: Tensor[][] = [];
  const bytesOf = (t: Tensor): Buffer => {
    const h = t.toHost() as ArrayLike<number> & { buffer: ArrayBuffer; byteOffset: number; byteLength: number };
    return Buffer.from(h.buffer, h.byteOffset, h.byteLength);
  };
  try {
    for (let rep = 0; rep < reps; rep++) {
      const outs = outTypes.map((t) => poisoned(t.shape, t.dtype));
      runs.push(outs);
      runCandidate(op, want, ins, outs, attrs);
    }
    const first = runs[0]!.map(bytesOf);
    for (let rep = 1; rep < reps; rep++) {
      runs[rep]!.forEach((t, i) => {
        const g = bytesOf(t);
        const want1 = first[i]!;
        if (g.equals(want1)) return;
        const size = dtypeInfo(outTypes[i]!.dtype).bits / 8;
        let firstAt = -1;
        let diff = 0;
        for (let k = 0; k < g.length; k += size) {
          if (g.compare(want1, k, k + size, k, k + size) === 0) continue;
          diff++;
          if (firstAt < 0) firstAt = k / size;
        }
        expect.fail(`${op} output ${i} (${outTypes[i]!.dtype}[${outTypes[i]!.shape.join(', ')}]), run ${rep + 1}: ${diff} elements differ from run 1, the first at element ${firstAt}`);
      });
    }
  } finally {
    for (const outs of runs) for (const t of outs) t.dispose();
  }
}

const GEMM = { scaleLayout: 'gemm', outDtype: 'bf16' } as const;
// [experts, offsets kind]: moe-8x's 8 experts routed unevenly, one expert taking every row, 64 experts.
const SHAPES: [number, 'ragged' | 'one'][] = [
  [8, 'ragged'],
  [8, 'one'],
  [64, 'ragged'],
];
const [R, D, H] = [32768, 1024, 4096];

describe.skipIf(!gpu || REPEAT === 0)(`the FP8 MoE kernels at moe-8x's size repeat bit for bit (${REPEAT} runs each)`, () => {
  it.each(SHAPES.map(([E, kind]) => [`${E} experts, ${kind}`, E, kind] as const))('%s', (_name, E, kind) => {
    const offsets = on(randomOffsets(E, R, kind), [E + 1], 'i32');
    const x = on(bf16(R * D, 2), [R, D], 'bf16');
    const l4 = (k: number) => Math.ceil(k / 128 / 4) * 4;
    // Activations and gradients quantized as the policy's rewrite does it.
    expectRepeatable('quantize', 'quantize_cuda', [x], { format: 'fp8-block1x128', direction: 'rowwise' });
    expectRepeatable('quantize', 'quantize_cuda', [x], { format: 'fp8-block1x128', direction: 'columnwise' });
    expectRepeatable('quantize', 'quantize_cuda', [x], { format: 'fp8-block128x128', direction: 'both' });
    expectRepeatable('quantize_kgrouped', 'quantize_kgrouped_cuda', [x, offsets], { experts: E });
    // Up projection [R, D] × [E, H, D] and its fused epilogues; down projection [R, H] × [E, D, H].
    const [a, aS] = [on(codes(R * D), [R, D], 'f8e4m3'), on(scales((D / 128) * R), [D / 128, R], 'f32')];
    const [w1, w1S] = [on(codes(E * H * D), [E, H, D], 'f8e4m3'), on(scales(E * (H / 128) * l4(D)), [E, H / 128, l4(D)], 'f32')];
    const [w3, w3S] = [on(codes(E * H * D), [E, H, D], 'f8e4m3'), on(scales(E * (H / 128) * l4(D)), [E, H / 128, l4(D)], 'f32')];
    expectRepeatable('grouped_scaled_matmul', 'grouped_scaled_matmul_cuda', [a, aS, w1, w1S, offsets], GEMM);
    expectRepeatable('grouped_scaled_matmul_gelu', 'grouped_scaled_matmul_gelu_cuda', [a, aS, w1, w1S, offsets], GEMM);
    expectRepeatable('grouped_scaled_matmul_dgelu', 'grouped_scaled_matmul_dgelu_cuda', [a, aS, w1, w1S, offsets, on(bf16(R * H, 4), [R, H], 'bf16')], GEMM);
    expectRepeatable('grouped_scaled_matmul_swiglu', 'grouped_scaled_matmul_swiglu_cuda', [a, aS, w1, w1S, w3, w3S, offsets], GEMM);
    const [h, hS] = [on(codes(R * H), [R, H], 'f8e4m3'), on(scales((H / 128) * R), [H / 128, R], 'f32')];
    const [w2, w2S] = [on(codes(E * D * H), [E, D, H], 'f8e4m3'), on(scales(E * (D / 128) * l4(H)), [E, D / 128, l4(H)], 'f32')];
    expectRepeatable('grouped_scaled_matmul', 'grouped_scaled_matmul_cuda', [h, hS, w2, w2S, offsets], GEMM);
    // Weight gradient of the up projection: dw[e] = x_eᵀ · g_e over each expert's padded rows.
    const P = 128 * (Math.ceil(R / 128) + E);
    const [xt, xtS] = [on(codes(D * P), [D, P], 'f8e4m3'), on(scales((P / 128) * D), [P / 128, D], 'f32')];
    const [gt, gtS] = [on(codes(H * P), [H, P], 'f8e4m3'), on(scales((P / 128) * H), [P / 128, H], 'f32')];
    expectRepeatable('grouped_scaled_matmul_wgrad', 'grouped_scaled_matmul_wgrad_cuda', [xt, xtS, gt, gtS, offsets], { experts: E, outDtype: 'f32' });
    expectRepeatable('grouped_scaled_matmul_wgrad', 'grouped_scaled_matmul_wgrad_cuda', [xt, xtS, gt, gtS, offsets], { experts: E, outDtype: 'bf16' });
    // The attention's dense FP8 projection (cuBLASLt, blockwise): [T·B, D] × [3D, D].
    const M = R / 2;
    const [q, qS] = [on(codes(M * D), [M, D], 'f8e4m3'), on(scales((D / 128) * M), [D / 128, M], 'f32')];
    const [wq, wqS] = [on(codes(3 * D * D), [3 * D, D], 'f8e4m3'), on(scales(((3 * D) / 128) * l4(D)), [(3 * D) / 128, l4(D)], 'f32')];
    const LT = { aScaling: 'block1x128', bScaling: 'block128x128', scaleLayout: 'gemm', outDtype: 'bf16', fastAccum: false } as const;
    expectRepeatable('scaled_matmul', 'scaled_matmul_cublaslt', [q, qS, wq, wqS], LT);
    // Its weight gradient's shape, reducing over the 16,384 tokens (where a split-K algorithm is likely).
    const [gT, gTS] = [on(codes(D * M), [D, M], 'f8e4m3'), on(scales((M / 128) * D), [M / 128, D], 'f32')];
    const [xT, xTS] = [on(codes(3 * D * M), [3 * D, M], 'f8e4m3'), on(scales(((3 * D) / 128) * l4(M)), [(3 * D) / 128, l4(M)], 'f32')];
    expectRepeatable('scaled_matmul', 'scaled_matmul_cublaslt', [gT, gTS, xT, xTS], LT);
  }, 600_000);
});
