/**
 * Running one op on the GPU for tests: inputs copied to device memory in the storage dtype asked
 * for, outputs poisoned (all bits set: NaN for floats) before the kernel, the CUDA candidate chosen
 * through the registry, results read back as float64. Compare with `reference()`, the CPU
 * reference run on the same (storage-rounded) inputs in float64.
 */
import { float16Unchecked, registry, type DTypeName } from '@deepwell/core';
import { Stream, cudaBackend, cudaStatus, type CudaBuffer, type CudaCall } from '@deepwell/kernels-native';
import { checkAttrs, getOp, numel, type AttrValue, type NumArray, type ValueType } from '../src/index.js';

export const gpu = cudaStatus().available;

export interface CudaInput {
  shape: number[];
  /** Float inputs: any float dtype; index inputs: 'i32'. */
  dtype?: DTypeName;
  data: Float64Array | Float32Array | Int32Array;
}

// Plain loops over core's unchecked converters (float16Unchecked): the checked converters through
// Array.from's callback took about 1 µs an element, seconds for the large GEMM tests.
// test/cuda-helpers-codec checks the bits against the checked converters.
export function encode(dtype: DTypeName, data: ArrayLike<number>): ArrayBufferView {
  if (dtype === 'f32') return Float32Array.from(data);
  if (dtype === 'i32') return Int32Array.from(data);
  if (dtype !== 'bf16' && dtype !== 'f16') throw new Error(`no test encoding for ${dtype}`);
  const to = dtype === 'bf16' ? float16Unchecked.f32ToBf16Bits : float16Unchecked.f32ToF16Bits;
  const out = new Uint16Array(data.length);
  for (let i = 0; i < out.length; i++) out[i] = to(data[i]!);
  return out;
}

export function decode(dtype: DTypeName, bytes: Uint8Array): Float64Array {
  const b = bytes.buffer;
  if (dtype === 'f32') return Float64Array.from(new Float32Array(b));
  if (dtype === 'i32') return Float64Array.from(new Int32Array(b));
  const h = new Uint16Array(b);
  const from = dtype === 'bf16' ? float16Unchecked.bf16BitsToF32 : float16Unchecked.f16BitsToF32;
  const out = new Float64Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = from(h[i]!);
  return out;
}

/** The values as the storage dtype holds them (for feeding the reference the same inputs). */
export function rounded(dtype: DTypeName, data: ArrayLike<number>): Float64Array {
  return decode(dtype, new Uint8Array((encode(dtype, data) as Uint8Array).buffer));
}

/**
 * `inplace`: [output, input] pairs whose output is written into the input's device buffer (as the
 * planner places an op's `inplace` pair), not into a poisoned buffer of its own. `kernel`: run this
 * candidate (by name) instead of the one the registry selects. `noWorkspace`: call it without the
 * workspace it declares (kernels with a path that needs none).
 */
export function runCuda(
  op: string,
  inputs: CudaInput[],
  attrs: Record<string, AttrValue> = {},
  options: { storage?: DTypeName; inplace?: [number, number][]; kernel?: string; noWorkspace?: boolean } = {},
): { outputs: Float64Array[]; kernel: string } {
  const storage = options.storage ?? 'f32';
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const inTypes: ValueType[] = inputs.map((x) => ({ shape: x.shape, dtype: x.dtype ?? storage }));
  // The ops' own rules give the output types (statistics and losses stay f32).
  const outTypes = def.infer(inTypes, checked);
  const backend = cudaBackend(0);
  const stream = new Stream(0);
  const bufs: CudaBuffer[] = [];
  // At least 4 bytes (and a multiple of 4), so empty tensors still get a buffer the decoders can view.
  const size = (t: ValueType) => Math.max(4, Math.ceil((numel(t.shape) * (t.dtype === 'f32' || t.dtype === 'i32' ? 4 : 2)) / 4) * 4);
  try {
    const ins = inputs.map((x, i) => {
      const buf = backend.alloc(size(inTypes[i]!));
      bufs.push(buf);
      if (numel(x.shape) > 0) backend.write(buf, encode(inTypes[i]!.dtype, x.data));
      return { base: buf.ptr, offset: 0, bytes: buf.bytes };
    });
    const outBufs = outTypes.map((t, k) => {
      const over = options.inplace?.find(([o]) => o === k);
      if (over) return bufs[over[1]]!;
      const buf = backend.alloc(size(t));
      bufs.push(buf);
      backend.memset(buf, 0xff); // poison: NaN in every float format
      return buf;
    });
    const outs = outBufs.map((buf) => ({ base: buf.ptr, offset: 0, bytes: buf.bytes }));
    backend.synchronize();
    const params = { op, device: 'cuda:0', inTypes, outTypes, attrs: checked };
    const kernel = options.kernel ? registry.candidates(op).find((k) => k.name === options.kernel)! : registry.select<CudaCall, void>(op, params as unknown as CudaCall);
    if (!kernel) throw new Error(`no kernel ${options.kernel} for ${op}`);
    if (kernel.backend !== 'cuda') throw new Error(`no CUDA kernel for ${op}: ${registry.explain(op, params).text}`);
    // The workspace the kernel declares for the call, poisoned like the outputs.
    const wsBytes = options.noWorkspace ? 0 : (kernel.workspace?.(params as unknown as CudaCall) ?? 0);
    let workspace = null;
    if (wsBytes > 0) {
      const wb = backend.alloc(wsBytes);
      bufs.push(wb);
      backend.memset(wb, 0xff);
      workspace = { base: wb.ptr, offset: 0, bytes: wsBytes };
      backend.synchronize();
    }
    kernel.run({ ...params, stream: stream.handle, inputs: ins, outputs: outs, workspace });
    stream.synchronize();
    const outputs = outTypes.map((t, k) => {
      const host = new Uint8Array(size(t));
      backend.read(outBufs[k]!, host);
      return decode(t.dtype, host).subarray(0, numel(t.shape));
    });
    return { outputs, kernel: kernel.name };
  } finally {
    stream.dispose();
    for (const b of bufs) backend.free(b);
  }
}

/** The CPU reference in float64 on the inputs as stored. Returns each output. */
export function reference(op: string, inputs: CudaInput[], attrs: Record<string, AttrValue> = {}, storage: DTypeName = 'f32'): NumArray[] {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const inTypes: ValueType[] = inputs.map((x) => ({ shape: x.shape, dtype: x.dtype === 'i32' ? 'i32' : 'f32' }));
  const outTypes = def.infer(inTypes, checked);
  const ins = inputs.map((x) => (x.dtype === 'i32' ? Int32Array.from(x.data) : rounded(x.dtype ?? storage, x.data)));
  const outs = outTypes.map((t) => (t.dtype === 'i32' ? new Int32Array(numel(t.shape)) : new Float64Array(numel(t.shape)).fill(NaN)));
  def.reference({ inputs: ins, outputs: outs, inTypes, outTypes, attrs: checked });
  return outs;
}

/** Unit roundoff of a storage dtype: the relative error of one rounding. */
export const UNIT_ROUNDOFF: Partial<Record<DTypeName, number>> = { f32: 2 ** -24, bf16: 2 ** -8, f16: 2 ** -11 };

/**
 * Max |got - want| / (|want| + scale) over elements, failing on NaN (an unwritten, poisoned element).
 * `scale` is the magnitude below which absolute error is what matters (e.g. the row's max).
 */
export function maxError(got: ArrayLike<number>, want: ArrayLike<number>, scale = 1): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} vs ${want.length}`);
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(got[i]!) && !Number.isNaN(want[i]!)) throw new Error(`element ${i} is NaN (unwritten?), want ${want[i]}`);
    worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (Math.abs(want[i]!) + scale));
  }
  return worst;
}
