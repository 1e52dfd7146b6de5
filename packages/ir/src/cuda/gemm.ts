/**
 * matmul on CUDA: cuBLASLt first (priority 200), then our own kernel (native/gemm/gemm_fallback.cu:
 * WMMA tensor cores for bf16/f16, FP32 FMA for f32; priority 150), then the CPU reference.
 * The fused GEMMs (matmul_bias, matmul_bias_gelu, matmul_bgrad) take cuBLASLt's epilogues where
 * cuBLASLt has an algorithm for them (asked at compile time through gemmLtSupported), else one GEMM
 * and our elementwise / reduction kernels one after the other.
 * FP32 storage runs on TF32 tensor cores through cuBLASLt (FP32 accumulation), as PyTorch's
 * `allow_tf32`; bf16/f16 accumulate in FP32.
 *
 * Batches: each operand's batch dimensions must either match the output's (a full stride) or be all
 * ones (shared by every batch, stride 0). A shared right-hand matrix with an untransposed batched
 * left-hand side is folded into one big GEMM (rows = batch × M), which is how every Linear runs.
 */
import { createRequire } from 'node:module';
import type { KernelParams } from '../op.js';
import { numel, sameShape } from '../types.js';
import { DTYPE_CODE, FLOAT_STORAGE, at, nativeOps, registerCuda, type CudaCall, type DevArg, type NativeOps } from './kernels.js';

interface GemmPlan {
  ta: boolean;
  tb: boolean;
  M: number;
  N: number;
  K: number;
  batch: number;
  sA: number;
  sB: number;
  sD: number;
}

export function gemmPlan(p: KernelParams): GemmPlan | string {
  const [a, b] = p.inTypes as [KernelParams['inTypes'][0], KernelParams['inTypes'][0]];
  const out = p.outTypes[0]!;
  if (!FLOAT_STORAGE.includes(a.dtype) || a.dtype !== b.dtype || a.dtype !== out.dtype) return `needs one float storage dtype for a, b and out, got ${a.dtype}, ${b.dtype}, ${out.dtype}`;
  const ta = p.attrs.transA === true;
  const tb = p.attrs.transB === true;
  const M = out.shape.at(-2)!;
  const N = out.shape.at(-1)!;
  const K = ta ? a.shape.at(-2)! : a.shape.at(-1)!;
  const batchShape = out.shape.slice(0, -2);
  const batch = numel(batchShape);
  const stride = (own: readonly number[], mat: number): number | null => {
    const ob = own.slice(0, -2);
    if (numel(ob) === 1) return 0;
    const padded = [...new Array(batchShape.length - ob.length).fill(1), ...ob];
    return sameShape(padded, batchShape) ? mat : null;
  };
  const sA = stride(a.shape, M * K);
  const sB = stride(b.shape, K * N);
  if (sA === null || sB === null) return 'partially broadcast batch dimensions are not supported on CUDA';
  if (M * N * K === 0) return 'empty matrix';
  // A shared b and an untransposed batched a: one GEMM over batch × M rows.
  if (batch > 1 && sB === 0 && sA !== 0 && !ta) return { ta, tb, M: batch * M, N, K, batch: 1, sA: 0, sB: 0, sD: batch * M * N };
  return { ta, tb, M, N, K, batch, sA, sB, sD: M * N };
}

const require = createRequire(import.meta.url);
function cublasLtFound(): true | string {
  const kn = require('@deepwell/kernels-native') as typeof import('@deepwell/kernels-native');
  const lib = kn.findLibrary('cublasLt');
  return lib.found ? true : `cuBLASLt not found (${lib.tried.at(-1)?.error ?? 'no candidates'})`;
}

function args(c: CudaCall, g: GemmPlan): number[] {
  return [c.stream, DTYPE_CODE[c.inTypes[0]!.dtype]!, g.ta ? 1 : 0, g.tb ? 1 : 0, g.M, g.N, g.K, g.batch, g.sA, g.sB, g.sD];
}

/** Epilogue codes of native/gemm/gemm.cpp. */
const EPI = { none: 0, bias: 1, bgradb: 3, geluAuxBias: 4 } as const;

/** true when cuBLASLt is found and has an algorithm for this GEMM with this epilogue, else why not. */
function ltSupports(p: KernelParams, g: GemmPlan, epi: number): true | string {
  const found = cublasLtFound();
  if (found !== true) return found;
  const why = nativeOps().ops!.gemmLtSupported!(DTYPE_CODE[p.inTypes[0]!.dtype]!, g.ta ? 1 : 0, g.tb ? 1 : 0, g.M, g.N, g.K, g.batch, g.sA, g.sB, g.sD, 1, epi) as string;
  return why === '' ? true : why;
}

/** D = op(a)·op(b) with no epilogue: through cuBLASLt when it takes the shape, else our kernel. */
function plainGemm(c: CudaCall, g: GemmPlan, ops: NativeOps, d: DevArg): void {
  if (ltSupports(c, g, EPI.none) === true) ops.gemmLt!(...args(c, g), 1, ...at(c.inputs[0]!), ...at(c.inputs[1]!), ...at(d), EPI.none, 0, 0);
  else ops.gemmFallback!(...args(c, g), ...at(c.inputs[0]!), ...at(c.inputs[1]!), ...at(d));
}

registerCuda({
  op: 'matmul',
  name: 'matmul_cublaslt',
  priority: 200,
  supports: (p) => {
    const g = gemmPlan(p);
    return typeof g === 'string' ? g : cublasLtFound();
  },
  run: (c, ops) => {
    const g = gemmPlan(c) as GemmPlan;
    ops.gemmLt!(...args(c, g), 1, ...at(c.inputs[0]!), ...at(c.inputs[1]!), ...at(c.outputs[0]!), 0, 0, 0);
  },
});

registerCuda({
  op: 'matmul',
  name: 'matmul_cuda_fallback',
  priority: 150,
  supports: (p) => {
    const g = gemmPlan(p);
    return typeof g === 'string' ? g : true;
  },
  run: (c, ops) => {
    const g = gemmPlan(c) as GemmPlan;
    ops.gemmFallback!(...args(c, g), ...at(c.inputs[0]!), ...at(c.inputs[1]!), ...at(c.outputs[0]!));
  },
});

// matmul_bias (made by the fusion pass): cuBLASLt's bias epilogue adds the bias as the GEMM writes D,
// so the product never makes a round trip through memory. Without cuBLASLt: our GEMM, then the bias
// added in place by the bias_add kernel.
function biasPlan(p: KernelParams): GemmPlan | string {
  const g = gemmPlan(p);
  if (typeof g === 'string') return g;
  if (p.inTypes[2]!.dtype !== p.outTypes[0]!.dtype) return `needs the bias in the output's storage (${p.outTypes[0]!.dtype}), got ${p.inTypes[2]!.dtype}`;
  return g.batch === 1 ? g : 'the bias epilogue takes one GEMM (batch 1 after folding)';
}

registerCuda({
  op: 'matmul_bias',
  name: 'matmul_bias_cublaslt',
  priority: 200,
  supports: (p) => {
    const g = biasPlan(p);
    return typeof g === 'string' ? g : cublasLtFound();
  },
  run: (c, ops) => {
    const g = biasPlan(c) as GemmPlan;
    ops.gemmLt!(...args(c, g), 1, ...at(c.inputs[0]!), ...at(c.inputs[1]!), ...at(c.outputs[0]!), 1, ...at(c.inputs[2]!));
  },
});

registerCuda({
  op: 'matmul_bias',
  name: 'matmul_bias_cuda_fallback',
  priority: 150,
  needs: ['gemmFallback', 'biasAdd'],
  supports: (p) => {
    const g = biasPlan(p);
    return typeof g === 'string' ? g : true;
  },
  run: (c, ops) => {
    const g = biasPlan(c) as GemmPlan;
    ops.gemmFallback!(...args(c, g), ...at(c.inputs[0]!), ...at(c.inputs[1]!), ...at(c.outputs[0]!));
    ops.biasAdd!(c.stream, DTYPE_CODE[c.outTypes[0]!.dtype]!, g.M, g.N, ...at(c.outputs[0]!), ...at(c.inputs[2]!), ...at(c.outputs[0]!));
  },
});

// matmul_bias_gelu (made by fusion): cuBLASLt's GELU_AUX_BIAS epilogue writes gelu(pre) to `out` and
// the pre-activation to `pre` (for gelu_backward) as the GEMM stores its tile. Otherwise: the GEMM
// into pre, the bias added in place, then the gelu kernel from pre to out.
registerCuda({
  op: 'matmul_bias_gelu',
  name: 'matmul_bias_gelu_cublaslt',
  priority: 200,
  needs: ['gemmLt', 'gemmLtSupported'],
  supports: (p) => {
    const g = biasPlan(p);
    return typeof g === 'string' ? g : ltSupports(p, g, EPI.geluAuxBias);
  },
  run: (c, ops) => {
    const g = biasPlan(c) as GemmPlan;
    const [out, pre] = c.outputs;
    ops.gemmLt!(...args(c, g), 1, ...at(c.inputs[0]!), ...at(c.inputs[1]!), ...at(out!), EPI.geluAuxBias, ...at(c.inputs[2]!), ...at(pre!));
  },
});

registerCuda({
  op: 'matmul_bias_gelu',
  name: 'matmul_bias_gelu_unfused',
  priority: 150,
  needs: ['gemmLtSupported', 'gemmFallback', 'biasAdd', 'gelu'],
  supports: (p) => {
    const g = biasPlan(p);
    return typeof g === 'string' ? g : true;
  },
  run: (c, ops) => {
    const g = biasPlan(c) as GemmPlan;
    const [out, pre] = c.outputs;
    const dt = DTYPE_CODE[c.outTypes[0]!.dtype]!;
    plainGemm(c, g, ops, pre!);
    ops.biasAdd!(c.stream, dt, g.M, g.N, ...at(pre!), ...at(c.inputs[2]!), ...at(pre!));
    ops.gelu!(c.stream, dt, g.M * g.N, ...at(pre!), ...at(out!));
  },
});

// matmul_bgrad (made by fusion): out = op(a)·op(b) and bgrad = the row sums of op(a), through
// cuBLASLt's BGRADB epilogue (which reduces the GEMM's left operand over K as it reads it).
// Otherwise: the GEMM, then our sum_to kernel over a.
function bgradPlan(p: KernelParams): GemmPlan | string {
  const g = gemmPlan(p);
  if (typeof g === 'string') return g;
  return g.batch === 1 ? g : 'the bias-gradient epilogue takes one GEMM';
}

registerCuda({
  op: 'matmul_bgrad',
  name: 'matmul_bgrad_cublaslt',
  priority: 200,
  needs: ['gemmLt', 'gemmLtSupported'],
  supports: (p) => {
    const g = bgradPlan(p);
    return typeof g === 'string' ? g : ltSupports(p, g, EPI.bgradb);
  },
  run: (c, ops) => {
    const g = bgradPlan(c) as GemmPlan;
    const [out, bgrad] = c.outputs;
    ops.gemmLt!(...args(c, g), 1, ...at(c.inputs[0]!), ...at(c.inputs[1]!), ...at(out!), EPI.bgradb, ...at(bgrad!));
  },
});

registerCuda({
  op: 'matmul_bgrad',
  name: 'matmul_bgrad_unfused',
  priority: 150,
  needs: ['gemmLtSupported', 'gemmFallback', 'sumTo'],
  supports: (p) => {
    const g = bgradPlan(p);
    return typeof g === 'string' ? g : true;
  },
  run: (c, ops) => {
    const g = bgradPlan(c) as GemmPlan;
    const [out, bgrad] = c.outputs;
    plainGemm(c, g, ops, out!);
    // Row sums of op(a): a is [K, M] with transA (sum over rows), else [M, K] (sum over columns).
    const [r, k] = c.inTypes[0]!.shape as [number, number];
    const to = g.ta ? [1, k] : [r, 1];
    ops.sumTo!(c.stream, DTYPE_CODE[c.inTypes[0]!.dtype]!, 2, r, k, ...to, ...at(c.inputs[0]!), ...at(bgrad!));
  },
});
