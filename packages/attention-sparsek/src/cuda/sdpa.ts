/**
 * The CUDA candidates of sdpa and sdpa_backward: the general path (native/attention/sdpa.cu), one
 * warp per query row (dq) or key row (dk, dv), FP32 arithmetic on CUDA cores, deterministic. It takes
 * every shape the op allows with a head dimension up to 256, and needs no workspace. The native entry
 * points take element strides, not a layout: each layout is its strides (ops/sdpa.ts layoutStrides,
 * the same the reference reads), and sdpa_qkv passes q, k and v inside one packed buffer the same way
 * (src/cuda/sdpa_qkv.ts). The fused flash kernels (src/cuda/flash.ts) register above it for the
 * shapes they fit (bf16 / f16, head dimensions 64 and 128); this path takes the rest.
 */
import { dtypeInfo, type DTypeName } from '@deepwell/core';
import { dtypeCode, registerCuda, type CudaCall, type DevArg, type NativeEntries } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import type { AttentionSizes, AttentionStrides, RowStrides } from '../ops/attention_math.js';
import { attentionDims, layoutStrides } from '../ops/sdpa.js';

const MAX_D = 256;
const FLOAT = ['f32', 'bf16', 'f16'];

/** The general kernels' limits, beyond the op's own rule. */
export function generalLimits(dtype: DTypeName, n: AttentionSizes): true | string {
  if (!FLOAT.includes(dtype)) return `computes on f32, bf16 or f16, not ${dtype}`;
  if (n.D > MAX_D) return `takes head dimensions up to ${MAX_D}, not ${n.D}`;
  if (n.B > 65535 || n.H > 65535) return `takes B and H up to 65535, not ${n.B} and ${n.H}`;
  return true;
}

/** The size and attribute arguments every attention entry point takes after (stream, dtype). */
export const sizeArgs = (n: AttentionSizes) => [n.B, n.H, n.Hkv, n.Sq, n.Sk, n.D, n.causal ? 1 : 0, n.scale] as const;

/** The stride arguments (q's, then k's and v's, then out's), after the tensors. */
export function strideArgs(st: AttentionStrides) {
  const same = (a: RowStrides, b: RowStrides) => a.b === b.b && a.h === b.h && a.s === b.s;
  if (!same(st.k, st.v)) throw new Error('attention entry points take one set of strides for k and v');
  return [st.q.b, st.q.h, st.q.s, st.k.b, st.k.h, st.k.s, st.out.b, st.out.h, st.out.s] as const;
}

/** A tensor argument moved `rows.offset` elements of `dtype` into its buffer (a head offset in a packed tensor). */
export function at(arg: DevArg, rows: RowStrides, dtype: DTypeName): DevArg {
  const bytes = (rows.offset * dtypeInfo(dtype).bits) / 8;
  return { base: arg.base, offset: arg.offset + bytes, bytes: arg.bytes - bytes };
}

/** The arguments of sdpaForward (and flashForward, which takes the same) for a call of sdpa. */
export function sdpaForwardArgs(c: CudaCall<KernelParams>): Parameters<NativeEntries['sdpaForward']> {
  const [q, k, v] = c.inputs;
  const [out, lse] = c.outputs;
  const n = attentionDims(c.op, c.inTypes, c.attrs);
  return [c.stream, dtypeCode(c.inTypes[0]!), ...sizeArgs(n), q!, k!, v!, out!, lse!, ...strideArgs(layoutStrides(n)), c.workspace];
}

/** The arguments of sdpaBackward (and flashBackward) for a call of sdpa_backward. */
export function sdpaBackwardArgs(c: CudaCall<KernelParams>): Parameters<NativeEntries['sdpaBackward']> {
  const [dout, q, k, v, out, lse] = c.inputs;
  const [dq, dk, dv] = c.outputs;
  const n = attentionDims(c.op, c.inTypes.slice(1, 4), c.attrs);
  return [c.stream, dtypeCode(c.inTypes[1]!), ...sizeArgs(n), dout!, q!, k!, v!, out!, lse!, dq!, dk!, dv!, ...strideArgs(layoutStrides(n)), c.workspace];
}

registerCuda<KernelParams>({
  op: 'sdpa',
  name: 'sdpa_cuda_general',
  needs: ['sdpaForward'],
  supports: (p) => generalLimits(p.inTypes[0]!.dtype, attentionDims(p.op, p.inTypes, p.attrs)),
  run: (c, e) => e.sdpaForward(...sdpaForwardArgs(c)),
});

registerCuda<KernelParams>({
  op: 'sdpa_backward',
  name: 'sdpa_backward_cuda_general',
  needs: ['sdpaBackward'],
  supports: (p) => generalLimits(p.inTypes[1]!.dtype, attentionDims(p.op, p.inTypes.slice(1, 4), p.attrs)),
  run: (c, e) => e.sdpaBackward(...sdpaBackwardArgs(c)),
});
