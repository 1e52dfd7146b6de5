// scaled_matmul's MXFP8 candidate on Hopper (scaled_matmul_mx8_sm90, over mx8GemmSm90) on the CPU:
// the reasons it declines with (mx8Sm90Limits, given a compute capability), and its place in the
// registry (below cuBLASLt, declining on a machine without the GPU). Its results on a GPU are
// checked by scaled_matmul_mx8_gpu.test.ts.
import { registry } from '@deepwell/core';
import { getOp, type KernelParams } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { MX8_SM90_KERNEL, mx8Sm90Limits, type ScaledMatmulDims } from '../src/index.js';

const dims: ScaledMatmulDims = { M: 130, N: 17, K: 96, aFormat: 'e4m3', bFormat: 'e5m2', aScaling: 'mx32', bScaling: 'mx32', layout: 'gemm', outDtype: 'bf16', fastAccum: false };

describe('scaled_matmul_mx8_sm90: what it takes', () => {
  it('takes MXFP8 operands in the tiled layout on compute capability 9.x, any M and N', () => {
    for (const cc of ['9.0', '9.1']) expect(mx8Sm90Limits(dims, cc), cc).toBe(true);
    expect(mx8Sm90Limits({ ...dims, M: 1, N: 1, K: 32, outDtype: 'f32' }, '9.0')).toBe(true);
  });

  it('declines, with the reason, other scalings, plain scales, sizes and GPUs', () => {
    const cases: [string, Partial<ScaledMatmulDims>, string | null, RegExp][] = [
      ['tensorwise', { aScaling: 'tensor', bScaling: 'tensor' }, '9.0', /^takes MXFP8 operands only \(mx32 × mx32 scaling\), not \(tensor, tensor\)$/],
      ['NVFP4', { aScaling: 'nv16', bScaling: 'nv16', aFormat: 'e2m1', bFormat: 'e2m1' }, '9.0', /not \(nv16, nv16\)/],
      ['plain scales', { layout: 'plain' }, '9.0', /^takes mx32 scale codes in scaleLayout 'gemm' \(cuBLASLt's 128 × 4 tiles\), not 'plain': quantize with quantizeTensor\(x, \{ format, scaleLayout: 'tiled128x4' \}\)$/],
      ['K from 2^31', { K: 2 ** 31 }, '9.0', /takes M, N and K up to 2\^31 - 1/],
      ['too many tiles', { M: 2 ** 31 - 1, N: 2 ** 31 - 1 }, '9.0', /takes at most 2\^31 - 1 tiles of 128 × 128/],
      ['Blackwell', {}, '10.0', /^runs on Hopper \(compute capability 9\.x\) only: this GPU is 10\.0, whose block-scaled tensor cores run MXFP8 through cuBLASLt \(scaled_matmul_cublaslt\)$/],
      ['Ada', {}, '8.9', /^runs on compute capability 9\.x \(Hopper; the addon has its code for sm_90a\) but this GPU is 8\.9$/],
      ['unknown', {}, null, /could not read the GPU’s compute capability/],
    ];
    for (const [what, change, cc, reason] of cases) expect(mx8Sm90Limits({ ...dims, ...change }, cc), what).toMatch(reason);
  });

  it('is a CUDA candidate of scaled_matmul below cuBLASLt, and declines off the GPU', () => {
    const inTypes = [
      { shape: [130, 96], dtype: 'f8e4m3' },
      { shape: [2, 512], dtype: 'e8m0' }, // ceil(130 / 128) · ceil(3 / 4) tiles
      { shape: [17, 96], dtype: 'f8e4m3' },
      { shape: [1, 512], dtype: 'e8m0' },
    ] as const;
    const attrs = { aScaling: 'mx32', bScaling: 'mx32', scaleLayout: 'gemm', outDtype: 'bf16', fastAccum: false };
    const outTypes = getOp('scaled_matmul').infer(inTypes as never, attrs);
    expect(outTypes).toEqual([{ shape: [130, 17], dtype: 'bf16' }]);
    const ex = registry.explain('scaled_matmul', { op: 'scaled_matmul', device: 'cuda:0', inTypes, outTypes, attrs } as unknown as KernelParams);
    const rows = ex.rows.filter((r) => r.backend === 'cuda');
    const mine = rows.find((r) => r.name === MX8_SM90_KERNEL);
    const lt = rows.find((r) => r.name === 'scaled_matmul_cublaslt');
    expect(mine?.priority).toBe(150);
    expect(lt!.priority).toBeGreaterThan(mine!.priority);
    // Without a GPU (CI) it declines with the registry's reason; the CPU reference declines f8 codes.
    if (ex.selected === null) expect(mine!.verdict).not.toBe('selected');
  });
});
