/**
 * clip_coef: the factor that clips gradients by their global norm, as torch.nn.utils.clip_grad_norm_.
 *   sumsq: f32[1] (the sum of squares of every gradient), attribute maxNorm (> 0)
 *   -> coef: f32[1] = min(1, maxNorm / (norm + 1e-6)), norm: f32[1] = sqrt(sumsq).
 * trainingStep computes sumsq with one sum_squares node over every gradient, passes coef to each
 * adamw as its gradScale (the gradient multiplied by it inside the optimizer) and outputs the norm
 * (the figure a training log shows). Not differentiated.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/nn.ts; the native
 * kernel is in native/ops/nn/; tested in packages/ir/test/train.test.ts, cuda-nn.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, shapeError } from '../../op.js';
import { numel, shapeStr } from '../../types.js';

export const clipCoefOp = defineOp({
  name: 'clip_coef',
  doc: 'coef = min(1, maxNorm / (sqrt(sumsq) + 1e-6)), norm = sqrt(sumsq)',
  inputs: ['sumsq'],
  outputs: ['coef', 'norm'],
  attrs: { maxNorm: { kind: 'float' } },
  nonDifferentiable: true,
  infer: ([s], attrs) => {
    expectDtype('clip_coef', 'sumsq', s!, ['f32']);
    if (numel(s!.shape) !== 1) shapeError('clip_coef', `Expected f32[1] for input 'sumsq' but received ${shapeStr(s!)}`);
    const max = attrs.maxNorm as number;
    if (!(max > 0) || !Number.isFinite(max)) throw new DeepwellError('INVALID_ARGUMENT', `clip_coef: Expected a positive finite maxNorm but received ${max}`);
    return [{ shape: [1], dtype: 'f32' }, { shape: [1], dtype: 'f32' }];
  },
  reference: ({ inputs: [s], outputs: [coef, norm], attrs }) => {
    const n = Math.sqrt(s![0]!);
    norm![0] = n;
    coef![0] = Math.min(1, (attrs.maxNorm as number) / (n + 1e-6));
  },
  flops: () => 3,
});

/** [coef, norm] for clipping gradients whose squares sum to `sumsq` to the norm `maxNorm`. */
export function clipCoef(sumsq: Sym, maxNorm: number): [Sym, Sym] {
  const [c, n] = builderOf(sumsq, 'sumsq of clipCoef').op('clip_coef', [sumsq], { maxNorm });
  return [c!, n!];
}
