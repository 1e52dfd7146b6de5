/**
 * scaledDotProductAttention on @deepwell/core Tensors, as torch.nn.functional.scaled_dot_product_attention:
 *
 *   scaledDotProductAttention(q, k, v, { causal?, scale?, enableGqa?, layout? }) -> out
 *     q: F[B, H, Sq, D], k and v: F[B, Hkv, Sk, D] (layout 'bhsd', the default; 'bshd' takes
 *     [B, S, heads, D]), F one of f32, bf16, f16, all on one device. Without enableGqa, H must equal
 *     Hkv (as PyTorch's); with it, H must be a multiple of Hkv. scale defaults to 1 / sqrt(D).
 *     out: F, shaped as q.
 *
 * It runs the sdpa op's best kernel for the tensors' device, through the kernel registry: on the CPU
 * the float64 reference (its results rounded to F as a compiled CPU step stores them), on a GPU the
 * best CUDA kernel that fits (the fused flash kernels for bf16 / f16 at head dimensions 64 and 128,
 * Hopper's on sm_90; else the general path) on the
 * legacy default stream. A device whose kernels cannot serve the call gets NO_KERNEL with every
 * candidate and its reason.
 */
import { DeepwellError, Tensor, bf16BitsToF32, describe, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, registry, type DTypeName, type KernelCandidate } from '@deepwell/core';
import type { CudaCall, DevArg } from '@deepwell/kernels-native';
import { checkAttrs, getOp, type KernelCall, type KernelParams, type ValueType } from '@deepwell/ir';
import { attentionDims, type AttentionLayout } from './ops/sdpa.js';

export interface ScaledDotProductAttentionOptions {
  causal?: boolean;
  /** Default 1 / sqrt(D). */
  scale?: number;
  /** Let q have more heads than k and v (a multiple of theirs): grouped-query attention. */
  enableGqa?: boolean;
  layout?: AttentionLayout;
}

const OPTIONS = ['causal', 'scale', 'enableGqa', 'layout'];

/** A tensor's values as f32 (16-bit floats widened). */
function hostValues(t: Tensor): Float32Array {
  const h = t.toHost();
  if (t.dtype === 'f32') return h as Float32Array;
  const conv = t.dtype === 'bf16' ? bf16BitsToF32 : f16BitsToF32;
  return Float32Array.from(h as Uint16Array, (b) => conv(b));
}

/**
 * The reference's float64 results as the host array a Tensor of `dtype` holds: rounded to f32, then
 * (bf16, f16) to nearest even in the 16-bit format, as a compiled CPU step stores a reference's outputs.
 */
function stored(values: Float64Array, dtype: DTypeName): Float32Array | Uint16Array {
  const f = Float32Array.from(values);
  if (dtype === 'f32') return f;
  const conv = dtype === 'bf16' ? f32ToBf16Bits : f32ToF16Bits;
  return Uint16Array.from(f, (x) => conv(x));
}

/** A CUDA kernel's call on device tensors: out and lse allocated on the device, lse then freed. */
function onDevice(kernel: KernelCandidate<any, void>, params: KernelParams, q: Tensor, k: Tensor, v: Tensor): Tensor {
  const [outType, lseType] = params.outTypes;
  const out = Tensor.empty(outType!.shape, outType!.dtype, { device: q.device });
  const lse = Tensor.empty(lseType!.shape, lseType!.dtype, { device: q.device });
  const arg = (t: Tensor): DevArg => ({ base: (t.buffer as unknown as { ptr: number }).ptr, offset: 0, bytes: t.buffer.bytes });
  if ((kernel.workspace?.(params) ?? 0) > 0) throw new DeepwellError('INTERNAL', `scaledDotProductAttention: kernel '${kernel.name}' needs a workspace, which the Tensor call does not give yet`);
  try {
    const call: CudaCall<KernelParams> = { ...params, stream: 0, inputs: [arg(q), arg(k), arg(v)], outputs: [arg(out), arg(lse)], workspace: null };
    kernel.run(call);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    // lse is the kernel's output only; the caching allocator may hand its block to work on another
    // stream, so the device finishes the kernel before it is freed.
    out.backend.synchronize();
    lse.dispose();
  }
  return out;
}

export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: ScaledDotProductAttentionOptions = {}): Tensor {
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (!(t instanceof Tensor)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a Tensor for ${name} but received ${describe(t)}`);
  }
  if (options === null || typeof options !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `Expected an options object but received ${describe(options)}`);
  for (const key of Object.keys(options)) {
    if (!OPTIONS.includes(key)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${OPTIONS.join(', ')} for an option of scaledDotProductAttention but received ${describe(key)}`);
  }
  if (options.causal !== undefined && typeof options.causal !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `Expected a boolean for causal but received ${describe(options.causal)}`);
  if (options.enableGqa !== undefined && typeof options.enableGqa !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `Expected a boolean for enableGqa but received ${describe(options.enableGqa)}`);
  if (options.scale !== undefined && !(typeof options.scale === 'number' && Number.isFinite(options.scale) && options.scale > 0)) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected a finite number > 0 for scale but received ${describe(options.scale)}`);
  }
  if (k.device !== q.device || v.device !== q.device) throw new DeepwellError('INVALID_ARGUMENT', `Expected q, k and v on one device but received ${q.device}, ${k.device} and ${v.device}`);
  const op = getOp('sdpa');
  const attrs = checkAttrs(op, { causal: options.causal ?? false, scale: options.scale ?? 0, layout: options.layout ?? 'bhsd' });
  const inTypes: ValueType[] = [q, k, v].map((t) => ({ shape: t.shape, dtype: t.dtype }));
  const n = attentionDims('scaledDotProductAttention', inTypes, attrs);
  if (!options.enableGqa && n.H !== n.Hkv) {
    throw new DeepwellError('SHAPE_MISMATCH', `scaledDotProductAttention: Expected as many heads in k and v as in q (${n.H}) but received ${n.Hkv}; pass enableGqa: true for grouped-query attention`);
  }
  const outTypes = op.infer(inTypes, attrs);
  const params: KernelParams = { op: 'sdpa', device: q.device, inTypes, outTypes, attrs };
  let kernel;
  try {
    kernel = registry.select<KernelParams, void>('sdpa', params);
  } catch (e) {
    throw new DeepwellError('NO_KERNEL', `scaledDotProductAttention on ${q.device}: ${(e as Error).message}`, { cause: e });
  }
  if (kernel.backend === 'cuda') return onDevice(kernel, params, q, k, v);
  const out = new Float64Array(q.numel);
  const lse = new Float64Array(n.B * n.H * n.Sq);
  kernel.run({ ...params, inputs: [hostValues(q), hostValues(k), hostValues(v)], outputs: [out, lse] } as KernelCall);
  return Tensor.from(stored(out, q.dtype), q.shape, q.dtype);
}
