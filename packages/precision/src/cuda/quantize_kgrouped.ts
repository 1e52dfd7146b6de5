/**
 * quantize_kgrouped's CUDA candidate: kernels-native's quantizeKgrouped (native/quant/
 * quantize_kgrouped.cu). One CTA per (128-token block, 64 channels): it finds the block's expert by
 * a block-wide scan of the offsets, takes each channel's amax over the block's 128 tokens (zeros
 * past the expert's rows) and writes the channel's 128 codes as one contiguous run of the
 * transposed output, with formats.cuh's blockwise FP8 rule, so the reference's bits. Bad offsets
 * are recorded on the device and thrown by the error check after the call (INVALID_ARGUMENT naming
 * the entry), unless the call says `checkIndices: false` (a captured step checks later).
 * Its test is test/kgrouped_gpu.test.ts (written and compiled in session 20; not yet run on a GPU).
 */
import { dtypeCode, floatStorage, registerCuda, type CudaCall, type NativeEntries } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import { checkQuantizeKgrouped } from '../ops/quantize_kgrouped.js';

const MAX_INT = 2 ** 31 - 1;

function supports(p: KernelParams): true | string {
  let d: ReturnType<typeof checkQuantizeKgrouped>;
  try {
    d = checkQuantizeKgrouped(p.inTypes, p.attrs);
  } catch (e) {
    return (e as Error).message;
  }
  const x = floatStorage({ ...p, inTypes: [p.inTypes[0]!], outTypes: [] });
  if (x !== true) return x;
  if (Math.max(d.R, d.C, d.P) > MAX_INT) return `takes R, C and P up to 2^31 - 1, not ${d.R}, ${d.C} and ${d.P}`;
  if (Math.ceil(d.C / 64) > 65535) return `takes C up to ${65535 * 64}, not ${d.C}`;
  if (d.E > 8192) return `takes at most 8192 experts, not ${d.E}`;
  return true;
}

function run(c: CudaCall<KernelParams>, ops: NativeEntries): void {
  const d = checkQuantizeKgrouped(c.inTypes, c.attrs);
  const [x, offsets] = c.inputs;
  ops.quantizeKgrouped(c.stream, dtypeCode(c.inTypes[0]!), d.R, d.C, d.E, d.P, x!, offsets!, c.outputs[0]!, c.outputs[1]!);
  if (c.checkIndices !== false) ops.opsErrorCheck(c.stream);
}

registerCuda<KernelParams>({ op: 'quantize_kgrouped', name: 'quantize_kgrouped_cuda', needs: ['quantizeKgrouped', 'opsErrorCheck'], supports, run });
