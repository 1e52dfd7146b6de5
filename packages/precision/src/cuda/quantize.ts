/**
 * The CUDA candidate of quantize: kernels-native's fused quantize (native/quant/quantize.cu), one
 * read of x writing the rowwise codes, the columnwise (transposed) codes or both, with the block
 * scales in the GEMM's layout; tensorwise FP8 first reduces the tensor's amax on the device
 * (quantAmax, into the call's workspace) unless the node was given it (its optional amax input,
 * from the kernel that wrote x), and the quantize kernel then writes the one scale.
 * Bit-identical to the op's reference (the quantizer's GPU tests check the kernel against
 * quantize2d). It declines, with the reason, the shapes the kernel does not take: cols not a
 * multiple of 8, columnwise tensorwise FP8 with rows not a multiple of 32.
 */
import { FORMAT_CODE, QUANT_FLAGS, SCALE_MODE_CODE, dtypeCode, floatStorage, registerCuda, type CudaCall, type DevArg, type NativeEntries } from '@deepwell/kernels-native';
import { byteSizeOf, type KernelParams, type ValueType } from '@deepwell/ir';
import { batchOf, checkQuantize, isTensorwise, quantizeOutputs, type QuantizeDirection, type QuantizeFormat } from '../ops/quantize.js';

/** The tensor amax (f32[1]) of tensorwise FP8, declared as 256 bytes as fake_quant's is. */
export const QUANTIZE_WORKSPACE = 256;

function supports(p: KernelParams): true | string {
  let rows: number, cols: number;
  try {
    [rows, cols] = checkQuantize(p.op, p.inTypes[0]!, p.attrs);
  } catch (e) {
    return (e as Error).message;
  }
  const x = floatStorage({ ...p, outTypes: [] });
  if (x !== true) return x;
  if (cols % 8 !== 0) return `takes cols divisible by 8 (16-byte loads), not ${cols}`;
  const f = p.attrs.format as QuantizeFormat;
  if (isTensorwise(f) && p.attrs.direction !== 'rowwise' && rows % 32 !== 0) return `takes rows divisible by 32 for columnwise tensorwise FP8, not ${rows}`;
  return true;
}

function run(c: CudaCall<KernelParams>, ops: NativeEntries): void {
  const [rows, cols] = checkQuantize(c.op, c.inTypes[0]!, c.attrs);
  const batch = batchOf(c.inTypes[0]!);
  const f = c.attrs.format as QuantizeFormat;
  const d = c.attrs.direction as QuantizeDirection;
  const o = quantizeOutputs(f, d);
  const at = (i: number | null): DevArg | null => (i === null ? null : c.outputs[i]!);
  const x = c.inputs[0]!;
  const code = dtypeCode(c.inTypes[0]!);
  const tensorwise = isTensorwise(f);
  // x's amax: the producer's (fuse-amax's second input), else reduced here into the workspace.
  const given = c.inputs[1] ?? null;
  const amax = tensorwise ? (given ?? { ...c.workspace!, bytes: 4 }) : null;
  if (amax && !given) ops.quantAmax(c.stream, code, rows * cols, x, amax);
  const flags = (o.rowCodes !== null ? QUANT_FLAGS.rowwise : 0) | (o.colCodes !== null ? QUANT_FLAGS.columnwise : 0) | (tensorwise ? 0 : QUANT_FLAGS.gemm);
  // A batch of [rows, cols] slices (blockwise formats only: an expert's weight each): one launch a
  // slice, each output viewed at the slice's offset (every output is batch-major).
  // Slice b of a value of type t: its bytes from the type (a plan's DevArg may be padded).
  const slice = (arg: DevArg | null, t: ValueType | undefined, b: number): DevArg | null => {
    if (arg === null || t === undefined || batch === 1) return arg;
    const per = byteSizeOf(t) / batch;
    return { ...arg, offset: arg.offset + b * per, bytes: per };
  };
  const out = (i: number | null, b: number) => (i === null ? null : slice(at(i), c.outTypes[i], b));
  for (let b = 0; b < batch; b++) {
    ops.quantize(c.stream, FORMAT_CODE[f], SCALE_MODE_CODE.floor, code, rows, cols, flags, slice(x, c.inTypes[0], b)!, amax, out(o.rowCodes, b), tensorwise ? null : out(o.rowScales, b), out(o.colCodes, b), tensorwise ? null : out(o.colScales, b), tensorwise ? at(o.rowScales ?? o.colScales) : null, null);
  }
}

registerCuda<KernelParams>({
  op: 'quantize',
  name: 'quantize_cuda',
  needs: ['quantAmax', 'quantize'],
  supports,
  workspace: (p) => (isTensorwise(p.attrs.format as QuantizeFormat) && p.inTypes.length === 1 ? QUANTIZE_WORKSPACE : 0),
  run,
});
