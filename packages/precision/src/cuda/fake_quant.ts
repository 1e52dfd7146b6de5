/**
 * The CUDA candidate of fake_quant (native fakeQuant): one thread per block along the axis (one
 * per element for tensorwise FP8, one CTA per tile for fp8-block128x128), bit-identical to the op's
 * reference. Tensorwise FP8 and NVFP4 first reduce the tensor amax on the device. quant_stats'
 * candidate (cuda/quant_stats.ts) shares the view and the shape rules.
 */
import { DTYPE_CODE, at, axisOf, floatStorage, numel, registerCuda, type CudaCall, type KernelParams, type NativeOps } from '@deepwell/ir';
import { FORMAT_CODE, blockAlong, type AnyFormat } from './native.js';

/** x as [outer, len, inner] around the blocks' axis (the last two axes for 128 × 128 tiles). */
export function view(p: Pick<KernelParams, 'inTypes' | 'attrs'>): [number, number, number] {
  const shape = p.inTypes[0]!.shape;
  if (p.attrs.format === 'fp8-block128x128') return [numel(shape.slice(0, -2)), shape.at(-2) ?? 1, shape.at(-1)!];
  const axis = axisOf('fake_quant', p.attrs.axis as number, shape.length);
  return [numel(shape.slice(0, axis)), shape[axis]!, numel(shape.slice(axis + 1))];
}

/** What the fakeQuant and quantStats kernels accept: a known format, whole blocks. */
export function supportsBlocks(p: KernelParams): true | string {
  const base = floatStorage(p);
  if (base !== true) return base;
  const f = p.attrs.format as AnyFormat;
  if (!(f in FORMAT_CODE)) return `no kernel for format ${String(f)}`;
  const [, len, inner] = view(p);
  const block = blockAlong(f);
  if (block !== null && len % block !== 0) return `the axis length ${len} is not a whole number of ${block}-element blocks`;
  if (f === 'fp8-block128x128' && inner % 128 !== 0) return `the last dimension ${inner} is not a multiple of 128`;
  return true;
}

/** run() of a candidate whose entry point takes (stream, format, scaleMode, dtype, outer, len, inner, x, out). */
export const runBlocked =
  (entry: 'fakeQuant' | 'quantStats') =>
  (call: CudaCall, ops: NativeOps): void => {
    const [outer, len, inner] = view(call);
    ops[entry]!(call.stream, FORMAT_CODE[call.attrs.format as AnyFormat], call.attrs.scaleMode === 'rceil' ? 1 : 0, DTYPE_CODE[call.inTypes[0]!.dtype]!, outer, len, inner, ...at(call.inputs[0]!), ...at(call.outputs[0]!));
  };

registerCuda({
  op: 'fake_quant',
  name: 'fake_quant_cuda',
  needs: ['fakeQuant'],
  supports: (p) => (p.inTypes[0]!.dtype !== p.outTypes[0]!.dtype ? `expects x and y in one storage dtype, got ${p.inTypes[0]!.dtype} and ${p.outTypes[0]!.dtype}` : supportsBlocks(p)),
  run: runBlocked('fakeQuant'),
});
