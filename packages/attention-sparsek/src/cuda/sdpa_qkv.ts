/**
 * The CUDA candidates of sdpa_qkv and sdpa_qkv_backward: the general path of sdpa
 * (native/attention/sdpa.cu) reading q, k and v where they lie in the packed qkv [B, S, H + 2·Hkv, D]:
 * one tensor argument per part, moved to its first head (q at head 0, k at H, v at H + Hkv) by a
 * byte offset, all with the packed strides (ops/attention_math.ts packedStrides, the same the
 * reference reads). The backward writes dq, dk and dv the same way into one dqkv, which covers it
 * whole. No copies, no workspace.
 */
import { dtypeCode, registerCuda, type CudaCall, type NativeEntries } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import { packedStrides } from '../ops/attention_math.js';
import { qkvDims } from '../ops/sdpa_qkv.js';
import { at, generalLimits, sizeArgs, strideArgs } from './sdpa.js';

/** The arguments of sdpaForward (and flashForward) for a call of sdpa_qkv. */
export function sdpaQkvForwardArgs(c: CudaCall<KernelParams>): Parameters<NativeEntries['sdpaForward']> {
  const [qkv] = c.inputs;
  const [out, lse] = c.outputs;
  const dt = c.inTypes[0]!.dtype;
  const n = qkvDims(c.op, c.inTypes[0]!, c.attrs);
  const st = packedStrides(n);
  return [c.stream, dtypeCode(c.inTypes[0]!), ...sizeArgs(n), at(qkv!, st.q, dt), at(qkv!, st.k, dt), at(qkv!, st.v, dt), out!, lse!, ...strideArgs(st), c.workspace];
}

/** The arguments of sdpaBackward (and flashBackward) for a call of sdpa_qkv_backward. */
export function sdpaQkvBackwardArgs(c: CudaCall<KernelParams>): Parameters<NativeEntries['sdpaBackward']> {
  const [dout, qkv, out, lse] = c.inputs;
  const [dqkv] = c.outputs;
  const dt = c.inTypes[1]!.dtype;
  const n = qkvDims(c.op, c.inTypes[1]!, c.attrs);
  const st = packedStrides(n);
  const [q, k, v] = [st.q, st.k, st.v].map((rows) => at(qkv!, rows, dt));
  const [dq, dk, dv] = [st.q, st.k, st.v].map((rows) => at(dqkv!, rows, dt));
  return [c.stream, dtypeCode(c.inTypes[1]!), ...sizeArgs(n), dout!, q!, k!, v!, out!, lse!, dq!, dk!, dv!, ...strideArgs(st), c.workspace];
}

registerCuda<KernelParams>({
  op: 'sdpa_qkv',
  name: 'sdpa_qkv_cuda_general',
  needs: ['sdpaForward'],
  supports: (p) => generalLimits(p.inTypes[0]!.dtype, qkvDims(p.op, p.inTypes[0]!, p.attrs)),
  run: (c, e) => e.sdpaForward(...sdpaQkvForwardArgs(c)),
});

registerCuda<KernelParams>({
  op: 'sdpa_qkv_backward',
  name: 'sdpa_qkv_backward_cuda_general',
  needs: ['sdpaBackward'],
  supports: (p) => generalLimits(p.inTypes[1]!.dtype, qkvDims(p.op, p.inTypes[1]!, p.attrs)),
  run: (c, e) => e.sdpaBackward(...sdpaQkvBackwardArgs(c)),
});
