/**
 * The fused flash candidates of sdpa, sdpa_backward, sdpa_qkv and sdpa_qkv_backward
 * (native/attention/flash.cu): on an H200 / H100 (sm_90) the Hopper kernels (TMA, wgmma,
 * warp-specialized; flash_fwd_sm90.cuh, flash_bwd_sm90.cuh), on other GPUs from sm_80 the mma.sync
 * kernels of flash_sm80.cuh. bf16 or f16, head dimensions 64 and 128, any S, causal or not, GQA,
 * every layout (the same arguments as the general path: sizes, tensors and element strides, so no
 * copies around attention). Deterministic: the backward adds every sum in one fixed order.
 *
 * Workspace (backward only): delta, f32 [B, H, Sq], then, 256-byte aligned and on sm_90 only, the
 * Hopper backward's scratch: an f32 dQ accumulator [B, H, SqPad, D], padded lse2 and delta copies
 * [B, H, SqPad] and a semaphore per query block (SqPad = Sq rounded up to the query block, 64 rows at
 * D = 128 and 128 at D = 64). The addon defines that layout and answers its size
 * (flashBackwardWorkspace); the backward candidates declare what it answers. Priority 200: above
 * the general path (100), which takes what these decline (f32, other head dimensions, older GPUs).
 */
import { deviceProperties, nativeEntries, registerCuda } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import type { AttentionSizes } from '../ops/attention_math.js';
import { attentionDims } from '../ops/sdpa.js';
import { qkvDims } from '../ops/sdpa_qkv.js';
import { sdpaBackwardArgs, sdpaForwardArgs } from './sdpa.js';
import { sdpaQkvBackwardArgs, sdpaQkvForwardArgs } from './sdpa_qkv.js';

const PRIORITY = 200;

/** The compute capability of a 'cuda:N' device, cached. */
const capabilities = new Map<string, number>();
export function capability(device: string): number {
  let cc = capabilities.get(device);
  if (cc === undefined) {
    try {
      const p = deviceProperties(Number(device.split(':')[1] ?? 0));
      cc = p.major * 10 + p.minor;
    } catch {
      return 0; // no such device here (a plan made without the GPU): not cached, asked again later
    }
    capabilities.set(device, cc);
  }
  return cc;
}

function flashLimits(device: string, dtype: string, n: AttentionSizes): true | string {
  if (dtype !== 'bf16' && dtype !== 'f16') return `computes on bf16 or f16, not ${dtype}`;
  if (n.D !== 64 && n.D !== 128) return `takes head dimensions 64 and 128, not ${n.D}`;
  if (n.B > 65535 || n.H > 65535) return `takes B and H up to 65535, not ${n.B} and ${n.H}`;
  if (capability(device) < 80) return `needs compute capability 8.0 or newer, not ${capability(device) / 10}`;
  return true;
}

/**
 * The backward's workspace bytes on `device` (see the header), as the addon answers them. Asked only
 * of a selected candidate, so the addon is loaded and has the entry point (`needs`).
 */
function backwardWorkspace(device: string, n: AttentionSizes): number {
  const cc = capability(device);
  return nativeEntries().entries!.flashBackwardWorkspace(n.B, n.H, n.Hkv, n.Sq, n.Sk, n.D, Math.floor(cc / 10), cc % 10);
}

const sdpaSizes = (p: KernelParams) => attentionDims(p.op, p.op === 'sdpa' ? p.inTypes : p.inTypes.slice(1, 4), p.attrs);
const qkvSizes = (p: KernelParams) => qkvDims(p.op, p.op === 'sdpa_qkv' ? p.inTypes[0]! : p.inTypes[1]!, p.attrs);

registerCuda<KernelParams>({
  op: 'sdpa',
  name: 'sdpa_cuda_flash',
  priority: PRIORITY,
  needs: ['flashForward'],
  supports: (p) => flashLimits(p.device, p.inTypes[0]!.dtype, sdpaSizes(p)),
  run: (c, e) => e.flashForward(...sdpaForwardArgs(c)),
});

registerCuda<KernelParams>({
  op: 'sdpa_backward',
  name: 'sdpa_backward_cuda_flash',
  priority: PRIORITY,
  needs: ['flashBackward', 'flashBackwardWorkspace'],
  supports: (p) => flashLimits(p.device, p.inTypes[1]!.dtype, sdpaSizes(p)),
  workspace: (p) => backwardWorkspace(p.device, sdpaSizes(p)),
  run: (c, e) => e.flashBackward(...sdpaBackwardArgs(c)),
});

registerCuda<KernelParams>({
  op: 'sdpa_qkv',
  name: 'sdpa_qkv_cuda_flash',
  priority: PRIORITY,
  needs: ['flashForward'],
  supports: (p) => flashLimits(p.device, p.inTypes[0]!.dtype, qkvSizes(p)),
  run: (c, e) => e.flashForward(...sdpaQkvForwardArgs(c)),
});

registerCuda<KernelParams>({
  op: 'sdpa_qkv_backward',
  name: 'sdpa_qkv_backward_cuda_flash',
  priority: PRIORITY,
  needs: ['flashBackward', 'flashBackwardWorkspace'],
  supports: (p) => flashLimits(p.device, p.inTypes[1]!.dtype, qkvSizes(p)),
  workspace: (p) => backwardWorkspace(p.device, qkvSizes(p)),
  run: (c, e) => e.flashBackward(...sdpaQkvBackwardArgs(c)),
});
