/**
 * The CUDA candidates of sparsek_attention and sparsek_attention_backward (native/attention/sparsek.cu):
 * the block means and top-k selection (sparsek_select.cuh), then the block-sparse forward, or the
 * deterministic block-sparse backward over the forward's indices. Block size 128 on sm_90: the
 * Hopper flash kernels walking the selection (TMA, wgmma); otherwise the portable mma.sync kernels
 * (sparsek_sm80.cuh: every GPU from sm_80, the H200 included; on sm_100 compiled, never run here). bf16 or f16, head
 * dimensions 64 and 128, block sizes 64 and 128, any S, causal or not, GQA and MQA, both layouts
 * (the same element strides as the flash candidates). What they decline has no other CUDA kernel:
 * the call fails with NO_KERNEL, naming the reason.
 *
 * Workspace: the forward's block means (qbar, kbar: f32 [B, Hkv, nB, D] each), the backward's delta
 * (f32 [B, H, S]) and, for the Hopper backward, its dQ accumulator and padded statistics; the addon
 * defines their size for the device's compute capability (sparsekWorkspace) and the candidates
 * declare it.
 */
import { dtypeCode, nativeEntries, registerCuda, type CudaCall, type NativeEntries } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import { layoutStrides } from '../ops/sdpa.js';
import { sparsekDims, type SparsekDims } from '../ops/sparsek.js';
import { capability } from './flash.js';
import { sizeArgs, strideArgs } from './sdpa.js';

const PRIORITY = 200;
const MAX_BLOCKS = 16384;

function limits(device: string, dtype: string, n: SparsekDims): true | string {
  if (dtype !== 'bf16' && dtype !== 'f16') return `computes on bf16 or f16, not ${dtype}`;
  if (n.D !== 64 && n.D !== 128) return `takes head dimensions 64 and 128, not ${n.D}`;
  if (n.blockSize !== 64 && n.blockSize !== 128) return `takes block sizes 64 and 128, not ${n.blockSize}`;
  if (n.nB > MAX_BLOCKS) return `takes up to ${MAX_BLOCKS} blocks (S / blockSize), not ${n.nB}`;
  if (n.B > 65535 || n.H > 65535) return `takes B and H up to 65535, not ${n.B} and ${n.H}`;
  if (capability(device) < 80) return `needs compute capability 8.0 or newer, not ${capability(device) / 10}`;
  return true;
}

const sparseArgs = (n: SparsekDims) => [n.blockSize, n.topK, n.first ? 1 : 0, n.window] as const;
const forwardDims = (p: KernelParams) => sparsekDims(p.op, p.inTypes, p.attrs);
const backwardDims = (p: KernelParams) => sparsekDims(p.op, p.inTypes.slice(1, 4), p.attrs);

function workspace(device: string, n: SparsekDims, backward: boolean): number {
  const cc = capability(device);
  return nativeEntries().entries!.sparsekWorkspace(n.B, n.H, n.Hkv, n.Sq, n.Sk, n.D, n.blockSize, backward ? 1 : 0, Math.floor(cc / 10), cc % 10);
}

function forwardArgs(c: CudaCall<KernelParams>): Parameters<NativeEntries['sparsekForward']> {
  const [q, k, v] = c.inputs;
  const [out, lse, indices] = c.outputs;
  const n = forwardDims(c);
  return [c.stream, dtypeCode(c.inTypes[0]!), ...sizeArgs(n), ...sparseArgs(n), q!, k!, v!, out!, lse!, indices!, ...strideArgs(layoutStrides(n)), c.workspace];
}

function backwardArgs(c: CudaCall<KernelParams>): Parameters<NativeEntries['sparsekBackward']> {
  const [dout, q, k, v, out, lse, indices] = c.inputs;
  const [dq, dk, dv] = c.outputs;
  const n = backwardDims(c);
  return [c.stream, dtypeCode(c.inTypes[1]!), ...sizeArgs(n), ...sparseArgs(n), dout!, q!, k!, v!, out!, lse!, indices!, dq!, dk!, dv!, ...strideArgs(layoutStrides(n)), c.workspace];
}

registerCuda<KernelParams>({
  op: 'sparsek_attention',
  name: 'sparsek_attention_cuda',
  priority: PRIORITY,
  needs: ['sparsekForward', 'sparsekWorkspace'],
  supports: (p) => limits(p.device, p.inTypes[0]!.dtype, forwardDims(p)),
  workspace: (p) => workspace(p.device, forwardDims(p), false),
  run: (c, e) => e.sparsekForward(...forwardArgs(c)),
});

registerCuda<KernelParams>({
  op: 'sparsek_attention_backward',
  name: 'sparsek_attention_backward_cuda',
  priority: PRIORITY,
  needs: ['sparsekBackward', 'sparsekWorkspace'],
  supports: (p) => limits(p.device, p.inTypes[1]!.dtype, backwardDims(p)),
  workspace: (p) => workspace(p.device, backwardDims(p), true),
  run: (c, e) => e.sparsekBackward(...backwardArgs(c)),
});
