/**
 * The CUDA candidates of sdpa and sdpa_backward: the general path (native/attention/sdpa.cu), one
 * warp per query row (dq) or key row (dk, dv), FP32 arithmetic on CUDA cores, deterministic. It takes
 * every shape the op allows with a head dimension up to 256, in either layout, and needs no
 * workspace. The fast Hopper kernels, when they come, register above it for the shapes they fit.
 */
import { dtypeCode, registerCuda } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import { attentionDims } from '../ops/sdpa.js';

const MAX_D = 256;
const FLOAT = ['f32', 'bf16', 'f16'];

/** The general kernels' limits, beyond the op's own rule. */
function general(p: KernelParams, q: KernelParams['inTypes'][number], k: KernelParams['inTypes'][number], v: KernelParams['inTypes'][number]): true | string {
  if (!FLOAT.includes(q.dtype)) return `computes on f32, bf16 or f16, not ${q.dtype}`;
  const n = attentionDims(p.op, [q, k, v], p.attrs);
  if (n.D > MAX_D) return `takes head dimensions up to ${MAX_D}, not ${n.D}`;
  if (n.B > 65535 || n.H > 65535) return `takes B and H up to 65535, not ${n.B} and ${n.H}`;
  return true;
}

/** The size arguments both entry points take after (stream, dtype). */
function sizes(p: KernelParams) {
  const n = attentionDims(p.op, p.op === 'sdpa' ? p.inTypes : p.inTypes.slice(1, 4), p.attrs);
  return [n.B, n.H, n.Hkv, n.Sq, n.Sk, n.D, n.causal ? 1 : 0, n.layout === 'bshd' ? 1 : 0, n.scale] as const;
}

registerCuda<KernelParams>({
  op: 'sdpa',
  name: 'sdpa_cuda_general',
  needs: ['sdpaForward'],
  supports: (p) => general(p, p.inTypes[0]!, p.inTypes[1]!, p.inTypes[2]!),
  run: (c, e) => {
    const [q, k, v] = c.inputs;
    const [out, lse] = c.outputs;
    e.sdpaForward(c.stream, dtypeCode(c.inTypes[0]!), ...sizes(c), q!, k!, v!, out!, lse!);
  },
});

registerCuda<KernelParams>({
  op: 'sdpa_backward',
  name: 'sdpa_backward_cuda_general',
  needs: ['sdpaBackward'],
  supports: (p) => general(p, p.inTypes[1]!, p.inTypes[2]!, p.inTypes[3]!),
  run: (c, e) => {
    const [dout, q, k, v, out, lse] = c.inputs;
    const [dq, dk, dv] = c.outputs;
    e.sdpaBackward(c.stream, dtypeCode(c.inTypes[1]!), ...sizes(c), dout!, q!, k!, v!, out!, lse!, dq!, dk!, dv!);
  },
});
