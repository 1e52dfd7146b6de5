/**
 * matmul on CUDA: cuBLASLt first (priority 200), then our own kernel (native/gemm/gemm_fallback.cu:
 * WMMA tensor cores for bf16/f16, FP32 FMA for f32; priority 150), then the CPU reference.
 * The fused GEMMs (matmul_bias, matmul_bias_gelu, matmul_dgelu, matmul_bgrad) take cuBLASLt's epilogues where
 * cuBLASLt has an algorithm for them (asked at compile time through gemmLtSupported), else one GEMM
 * and our elementwise / reduction kernels one after the other.
 * FP32 storage runs on TF32 tensor cores through cuBLASLt (FP32 accumulation), as PyTorch's
 * `allow_tf32`; bf16/f16 accumulate in FP32.
 *
 * Batches: each operand's batch dimensions must either match the output's (a full stride) or be all
 * ones (shared by every batch, stride 0). A shared right-hand matrix with an untransposed batched
 * left-hand side is folded into one big GEMM (rows = batch × M), which is how every Linear runs.
 */
import { EPILOGUE_CODE as EPI, FLOAT_STORAGE, dtypeCode, findLibrary, nativeEntries, registerCuda, type CudaCall, type DevArg, type NativeEntries } from '@deepwell/kernels-native';
import type { KernelParams } from '../op.js';
import { numel, sameShape } from '../types.js';
import { reduceWorkspace } from './tensor.js';

type Call = CudaCall<KernelParams>;

/**
 * The cuBLASLt workspace of one GEMM call, as the plan places it: the heuristic may pick algorithms
 * (split-K among them) that use up to this much scratch.
 */
export const GEMM_LT_WORKSPACE = 32 << 20;

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

function cublasLtFound(): true | string {
  const lib = findLibrary('cublasLt');
  return lib.found ? true : `cuBLASLt not found (${lib.tried.at(-1)?.error ?? 'no candidates'})`;
}

/** The shape arguments every GEMM entry point takes after (stream, dtype). */
const shape = (g: GemmPlan) => [g.ta ? 1 : 0, g.tb ? 1 : 0, g.M, g.N, g.K, g.batch, g.sA, g.sB, g.sD] as const;

/** true when cuBLASLt is found and has an algorithm for this GEMM with this epilogue, else why not. */
function ltSupports(p: KernelParams, g: GemmPlan, epi: number): true | string {
  const found = cublasLtFound();
  if (found !== true) return found;
  const why = nativeEntries().entries!.gemmLtSupported(dtypeCode(p.inTypes[0]!), ...shape(g), 1, epi, GEMM_LT_WORKSPACE);
  return why === '' ? true : why;
}

/** D = op(a)·op(b) + epilogue through cuBLASLt, with the call's workspace. */
function lt(c: Call, g: GemmPlan, ops: NativeEntries, d: DevArg, epi: number, bias: DevArg | null = null, aux: DevArg | null = null): void {
  ops.gemmLt(c.stream, dtypeCode(c.inTypes[0]!), ...shape(g), 1, c.inputs[0]!, c.inputs[1]!, d, epi, bias, aux, c.workspace);
}

/** Our own GEMM kernel (no epilogue, no workspace). */
function fallback(c: Call, g: GemmPlan, ops: NativeEntries, d: DevArg): void {
  ops.gemmFallback(c.stream, dtypeCode(c.inTypes[0]!), ...shape(g), c.inputs[0]!, c.inputs[1]!, d);
}

/** D = op(a)·op(b) with no epilogue: through cuBLASLt when it takes the shape, else our kernel. */
function plainGemm(c: Call, g: GemmPlan, ops: NativeEntries, d: DevArg): void {
  if (ltSupports(c, g, EPI.none) === true) lt(c, g, ops, d, EPI.none);
  else fallback(c, g, ops, d);
}

/** The workspace of a candidate that may run cuBLASLt. */
const ltWorkspace = (): number => (cublasLtFound() === true ? GEMM_LT_WORKSPACE : 0);

registerCuda<KernelParams>({
  op: 'matmul',
  name: 'matmul_cublaslt',
  priority: 200,
  supports: (p) => {
    const g = gemmPlan(p);
    return typeof g === 'string' ? g : cublasLtFound();
  },
  workspace: ltWorkspace,
  run: (c, ops) => lt(c, gemmPlan(c) as GemmPlan, ops, c.outputs[0]!, EPI.none),
});

registerCuda<KernelParams>({
  op: 'matmul',
  name: 'matmul_cuda_fallback',
  priority: 150,
  supports: (p) => {
    const g = gemmPlan(p);
    return typeof g === 'string' ? g : true;
  },
  run: (c, ops) => fallback(c, gemmPlan(c) as GemmPlan, ops, c.outputs[0]!),
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

registerCuda<KernelParams>({
  op: 'matmul_bias',
  name: 'matmul_bias_cublaslt',
  priority: 200,
  supports: (p) => {
    const g = biasPlan(p);
    return typeof g === 'string' ? g : cublasLtFound();
  },
  workspace: ltWorkspace,
  run: (c, ops) => lt(c, biasPlan(c) as GemmPlan, ops, c.outputs[0]!, EPI.bias, c.inputs[2]!),
});

registerCuda<KernelParams>({
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
    fallback(c, g, ops, c.outputs[0]!);
    ops.biasAdd(c.stream, dtypeCode(c.outTypes[0]!), g.M, g.N, c.outputs[0]!, c.inputs[2]!, c.outputs[0]!);
  },
});

// matmul_bias_gelu (made by fusion): cuBLASLt's GELU_AUX_BIAS epilogue writes gelu(pre) to `out` and
// the pre-activation to `pre` (for gelu_backward) as the GEMM stores its tile. Otherwise: the GEMM
// into pre, the bias added in place, then the gelu kernel from pre to out.
registerCuda<KernelParams>({
  op: 'matmul_bias_gelu',
  name: 'matmul_bias_gelu_cublaslt',
  priority: 200,
  needs: ['gemmLt', 'gemmLtSupported'],
  supports: (p) => {
    const g = biasPlan(p);
    return typeof g === 'string' ? g : ltSupports(p, g, EPI.geluAuxBias);
  },
  workspace: ltWorkspace,
  run: (c, ops) => {
    const [out, pre] = c.outputs;
    lt(c, biasPlan(c) as GemmPlan, ops, out!, EPI.geluAuxBias, c.inputs[2]!, pre!);
  },
});

registerCuda<KernelParams>({
  op: 'matmul_bias_gelu',
  name: 'matmul_bias_gelu_unfused',
  priority: 150,
  needs: ['gemmLtSupported', 'gemmFallback', 'biasAdd', 'gelu'],
  supports: (p) => {
    const g = biasPlan(p);
    return typeof g === 'string' ? g : true;
  },
  workspace: ltWorkspace,
  run: (c, ops) => {
    const g = biasPlan(c) as GemmPlan;
    const [out, pre] = c.outputs;
    const dt = dtypeCode(c.outTypes[0]!);
    plainGemm(c, g, ops, pre!);
    ops.biasAdd(c.stream, dt, g.M, g.N, pre!, c.inputs[2]!, pre!);
    ops.gelu(c.stream, dt, g.M * g.N, pre!, out!, null);
  },
});

// matmul_dgelu (made by fusion): cuBLASLt's DGELU epilogue multiplies the FP32 product by gelu'(pre)
// as the GEMM stores its tile (pre read as the aux matrix, in D's layout). Otherwise: the GEMM into
// out, then the gelu_backward kernel in place (out = out * gelu'(pre), elementwise).
function dgeluPlan(p: KernelParams): GemmPlan | string {
  const g = gemmPlan(p);
  if (typeof g === 'string') return g;
  if (p.inTypes[2]!.dtype !== p.outTypes[0]!.dtype) return `needs pre in the output's storage (${p.outTypes[0]!.dtype}), got ${p.inTypes[2]!.dtype}`;
  return g.batch === 1 ? g : 'the DGELU epilogue takes one GEMM (batch 1 after folding)';
}

registerCuda<KernelParams>({
  op: 'matmul_dgelu',
  name: 'matmul_dgelu_cublaslt',
  priority: 200,
  needs: ['gemmLt', 'gemmLtSupported'],
  supports: (p) => {
    const g = dgeluPlan(p);
    return typeof g === 'string' ? g : ltSupports(p, g, EPI.dgelu);
  },
  workspace: ltWorkspace,
  run: (c, ops) => lt(c, dgeluPlan(c) as GemmPlan, ops, c.outputs[0]!, EPI.dgelu, null, c.inputs[2]!),
});

registerCuda<KernelParams>({
  op: 'matmul_dgelu',
  name: 'matmul_dgelu_unfused',
  priority: 150,
  needs: ['gemmLtSupported', 'gemmFallback', 'geluBackward'],
  // Any batch: the GEMM runs batched, the elementwise kernel over every element.
  supports: (p) => {
    const g = gemmPlan(p);
    if (typeof g === 'string') return g;
    return p.inTypes[2]!.dtype === p.outTypes[0]!.dtype ? true : `needs pre in the output's storage (${p.outTypes[0]!.dtype}), got ${p.inTypes[2]!.dtype}`;
  },
  workspace: ltWorkspace,
  run: (c, ops) => {
    const g = gemmPlan(c) as GemmPlan;
    const out = c.outputs[0]!;
    plainGemm(c, g, ops, out);
    ops.geluBackward(c.stream, dtypeCode(c.outTypes[0]!), numel(c.outTypes[0]!.shape), out, c.inputs[2]!, out, null);
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

registerCuda<KernelParams>({
  op: 'matmul_bgrad',
  name: 'matmul_bgrad_cublaslt',
  priority: 200,
  needs: ['gemmLt', 'gemmLtSupported'],
  supports: (p) => {
    const g = bgradPlan(p);
    return typeof g === 'string' ? g : ltSupports(p, g, EPI.bgradb);
  },
  workspace: ltWorkspace,
  run: (c, ops) => {
    const [out, bgrad] = c.outputs;
    lt(c, bgradPlan(c) as GemmPlan, ops, out!, EPI.bgradb, bgrad!);
  },
});

registerCuda<KernelParams>({
  op: 'matmul_bgrad',
  name: 'matmul_bgrad_unfused',
  priority: 150,
  needs: ['gemmLtSupported', 'gemmFallback', 'sumTo'],
  supports: (p) => {
    const g = bgradPlan(p);
    return typeof g === 'string' ? g : true;
  },
  // One workspace for the GEMM, then for sum_to (one after the other on the stream).
  workspace: (p) => {
    const a = p.inTypes[0]!;
    const [r, k] = a.shape as [number, number];
    return Math.max(ltWorkspace(), reduceWorkspace(a, p.attrs.transA === true ? [1, k] : [r, 1], true));
  },
  run: (c, ops) => {
    const g = bgradPlan(c) as GemmPlan;
    const [out, bgrad] = c.outputs;
    plainGemm(c, g, ops, out!);
    // Row sums of op(a): a is [K, M] with transA (sum over rows), else [M, K] (sum over columns).
    const [r, k] = c.inTypes[0]!.shape as [number, number];
    const to = g.ta ? [1, k] : [r, 1];
    // The GEMM's workspace is done with once it returns on the stream; sum_to may reuse it.
    ops.sumTo(c.stream, dtypeCode(c.inTypes[0]!), [r, k], to, c.inputs[0]!, bgrad!, c.workspace);
  },
});
