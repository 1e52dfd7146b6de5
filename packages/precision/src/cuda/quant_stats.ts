/**
 * The CUDA candidate of quant_stats (native quantStats): the blocks of fake_quant's kernel, each
 * element counted (non-finite, underflowed, clamped) and each usable block's decode scale kept as a
 * range, reduced per warp and accumulated with atomics; one thread finishes the six values. The
 * counts equal the reference's; the log2 of a scale that is not a power of two may differ from
 * Math.log2's in the last place (the device's double log2, rounded to f32).
 */
import { registerCuda } from '@deepwell/ir';
import { FORMAT_CODE, type AnyFormat } from './native.js';
import { supportsBlocks, view } from './fake_quant.js';

const CODE = { f32: 0, bf16: 1, f16: 2 } as Record<string, number>;

registerCuda({
  op: 'quant_stats',
  name: 'quant_stats_cuda',
  needs: ['quantStats'],
  supports: supportsBlocks,
  run: (call, ops) => {
    const [outer, len, inner] = view(call);
    ops.quantStats!(call.stream, FORMAT_CODE[call.attrs.format as AnyFormat], call.attrs.scaleMode === 'rceil' ? 1 : 0, CODE[call.inTypes[0]!.dtype]!, outer, len, inner, call.inputs[0]!.base, call.inputs[0]!.offset, call.outputs[0]!.base, call.outputs[0]!.offset);
  },
});
