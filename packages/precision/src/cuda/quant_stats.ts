/**
 * The CUDA candidate of quant_stats (native quantStats): the blocks of fake_quant's kernel, each
 * element counted (non-finite, underflowed, clamped) and each usable block's decode scale kept as a
 * range, reduced per warp and accumulated with atomics; one thread finishes the six values. The
 * counts equal the reference's; the log2 of a scale that is not a power of two may differ from
 * Math.log2's in the last place (the device's double log2, rounded to f32).
 */
import { registerCuda } from '@deepwell/kernels-native';
import type { KernelParams } from '@deepwell/ir';
import { BLOCKED_WORKSPACE, runBlocked, supportsBlocks } from './fake_quant.js';

registerCuda<KernelParams>({
  op: 'quant_stats',
  name: 'quant_stats_cuda',
  needs: ['quantStats'],
  supports: supportsBlocks,
  workspace: () => BLOCKED_WORKSPACE,
  run: runBlocked('quantStats'),
});
