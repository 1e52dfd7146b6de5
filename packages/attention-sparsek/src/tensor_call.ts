/**
 * What the Tensor-level calls of this package (scaledDotProductAttention in tensor.ts, sparseKAttention
 * in tensor_sparsek.ts) share: checking the tensors, and running an op's best kernel for their device
 * through the kernel registry, on the CPU (the float64 reference, its results stored as a compiled
 * CPU step stores them) or on a GPU (the CUDA candidate on the legacy default stream, its outputs and
 * its workspace allocated as device tensors).
 */
import { DeepwellError, Tensor, bf16BitsToF32, describe, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, registry, type DTypeName, type KernelCandidate } from '@deepwell/core';
import type { CudaCall, DevArg } from '@deepwell/kernels-native';
import { getOp, type Attrs, type KernelCall, type KernelParams, type NumArray, type ValueType } from '@deepwell/ir';

/** Checks that each named argument is a Tensor, all on one device, and that options is an object of known keys. */
export function checkCall(caller: string, tensors: Readonly<Record<string, unknown>>, options: unknown, known: readonly string[]): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (!(t instanceof Tensor)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a Tensor for ${name} but received ${describe(t)}`);
  }
  const ts = Object.values(tensors) as Tensor[];
  if (ts.some((t) => t.device !== ts[0]!.device)) {
    const names = Object.keys(tensors);
    throw new DeepwellError('INVALID_ARGUMENT', `Expected ${names.slice(0, -1).join(', ')} and ${names.at(-1)} on one device but received ${ts.slice(0, -1).map((t) => t.device).join(', ')} and ${ts.at(-1)!.device}`);
  }
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new DeepwellError('INVALID_ARGUMENT', `Expected an options object for ${caller} but received ${describe(options)}`);
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${known.join(', ')} for an option of ${caller} but received ${describe(key)}`);
  }
}

/** Checks an optional boolean option. */
export function optionalBoolean(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `Expected a boolean for ${name} but received ${describe(value)}`);
}

/** Checks an optional scale option: a finite number > 0 (absent: the default, 1 / sqrt(D)). */
export function optionalScale(value: unknown): void {
  if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected a finite number > 0 for scale but received ${describe(value)}`);
  }
}

/** A tensor's values as f32 (16-bit floats widened). */
export function hostValues(t: Tensor): Float32Array | Int32Array {
  const h = t.toHost();
  if (t.dtype === 'f32' || t.dtype === 'i32') return h as Float32Array | Int32Array;
  const conv = t.dtype === 'bf16' ? bf16BitsToF32 : f16BitsToF32;
  return Float32Array.from(h as Uint16Array, (b) => conv(b));
}

/**
 * The reference's float64 results as the host array a Tensor of `dtype` holds: rounded to f32, then
 * (bf16, f16) to nearest even in the 16-bit format, as a compiled CPU step stores a reference's
 * outputs; i32 as it is.
 */
export function stored(values: NumArray, dtype: DTypeName): Float32Array | Uint16Array | Int32Array {
  if (dtype === 'i32') return Int32Array.from(values);
  const f = Float32Array.from(values);
  if (dtype === 'f32') return f;
  const conv = dtype === 'bf16' ? f32ToBf16Bits : f32ToF16Bits;
  return Uint16Array.from(f, (x) => conv(x));
}

const devArg = (t: Tensor, bytes = t.buffer.bytes): DevArg => ({ base: (t.buffer as unknown as { ptr: number }).ptr, offset: 0, bytes });

/**
 * A CUDA kernel's call on device tensors: every output allocated on the inputs' device, and the
 * workspace the kernel declares (an f32 tensor of ceil(bytes / 4) elements). Returns the outputs
 * `keep` names, in order; the others and the workspace are freed once the device has finished.
 */
function onDevice(kernel: KernelCandidate<any, void>, params: KernelParams, inputs: readonly Tensor[], keep: readonly number[]): Tensor[] {
  const device = inputs[0]!.device;
  const outs: Tensor[] = [];
  let workspace: Tensor | null = null;
  let ok = false;
  try {
    for (const t of params.outTypes) outs.push(Tensor.empty(t.shape, t.dtype, { device }));
    const wsBytes = kernel.workspace?.(params) ?? 0;
    if (wsBytes > 0) workspace = Tensor.empty([Math.ceil(wsBytes / 4)], 'f32', { device });
    const call: CudaCall<KernelParams> = { ...params, stream: 0, inputs: inputs.map((t) => devArg(t)), outputs: outs.map((t) => devArg(t)), workspace: workspace ? devArg(workspace, wsBytes) : null };
    kernel.run(call);
    ok = true;
  } finally {
    // The outputs not returned and the workspace are the kernel's only; the caching allocator may
    // hand their blocks to work on another stream, so the device finishes the kernel before they are
    // freed (all of them, the kept ones too, when the call failed).
    inputs[0]!.backend.synchronize();
    workspace?.dispose();
    outs.forEach((t, i) => (!ok || !keep.includes(i)) && t.dispose());
  }
  return keep.map((i) => outs[i]!);
}

/**
 * Runs op `opName`'s best kernel for the inputs' device on `inputs` with `attrs` (checked), through
 * the kernel registry: the outputs `keep` names, in order, as Tensors on the inputs' device. A device
 * whose kernels cannot serve the call is NO_KERNEL, with every candidate and its reason.
 */
export function runOp(caller: string, opName: string, inputs: readonly Tensor[], attrs: Attrs, keep: readonly number[]): Tensor[] {
  const op = getOp(opName);
  const device = inputs[0]!.device;
  const inTypes: ValueType[] = inputs.map((t) => ({ shape: t.shape, dtype: t.dtype }));
  const outTypes = op.infer(inTypes, attrs);
  const params: KernelParams = { op: opName, device, inTypes, outTypes, attrs };
  let kernel;
  try {
    kernel = registry.select<KernelParams, void>(opName, params);
  } catch (e) {
    throw new DeepwellError('NO_KERNEL', `${caller} on ${device}: ${(e as Error).message}`, { cause: e });
  }
  if (kernel.backend === 'cuda') return onDevice(kernel, params, inputs, keep);
  const outs = outTypes.map((t) => (t.dtype === 'i32' ? new Int32Array(t.shape.reduce((a, b) => a * b, 1)) : new Float64Array(t.shape.reduce((a, b) => a * b, 1))));
  kernel.run({ ...params, inputs: inputs.map(hostValues), outputs: outs } as KernelCall);
  return keep.map((i) => Tensor.from(stored(outs[i]!, outTypes[i]!.dtype), outTypes[i]!.shape, outTypes[i]!.dtype));
}
