/**
 * The CUDA candidate of fake_quant (native fakeQuant): blocks along the last axis take B / 4 lanes
 * each (4 consecutive elements a lane, coalesced), blocks down another axis one thread each (threads
 * side by side along the contiguous axis), one thread per element for tensorwise FP8 and one CTA per
 * tile for fp8-block128x128; bit-identical to the op's
 * reference. Tensorwise FP8 and NVFP4 first reduce the tensor amax on the device. quant_stats'
 * candidate (cuda/quant_stats.ts) shares the view and the shape rules.
 */
import { FORMAT_CODE, SCALE_MODE_CODE, dtypeCode, floatStorage, registerCuda, type CudaCall, type NativeEntries } from '@deepwell/kernels-native';
import { axisOf, numel, type KernelParams } from '@deepwell/ir';
import { blockAlong, type AnyFormat } from './native.js';

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

/** run() of a candidate whose entry point takes (stream, format, scaleMode, dtype, outer, len, inner, x, out, workspace). */
export const runBlocked =
  (entry: 'fakeQuant' | 'quantStats') =>
  (call: CudaCall<KernelParams>, ops: NativeEntries): void => {
    const [outer, len, inner] = view(call);
    const f = FORMAT_CODE[call.attrs.format as AnyFormat];
    const mode = SCALE_MODE_CODE[call.attrs.scaleMode === 'rceil' ? 'rceil' : 'floor'];
    ops[entry](call.stream, f, mode, dtypeCode(call.inTypes[0]!), outer, len, inner, call.inputs[0]!, call.outputs[0]!, call.workspace);
  };

/**
 * The workspace of fakeQuant and quantStats: one device word for the tensor amax (tensorwise FP8,
 * NVFP4) or the statistics' accumulators (quantStats): at most 64 bytes, declared as 256.
 */
export const BLOCKED_WORKSPACE = 256;

registerCuda<KernelParams>({
  op: 'fake_quant',
  name: 'fake_quant_cuda',
  needs: ['fakeQuant'],
  supports: (p) => (p.inTypes[0]!.dtype !== p.outTypes[0]!.dtype ? `expects x and y in one storage dtype, got ${p.inTypes[0]!.dtype} and ${p.outTypes[0]!.dtype}` : supportsBlocks(p)),
  workspace: () => BLOCKED_WORKSPACE,
  run: runBlocked('fakeQuant'),
});
