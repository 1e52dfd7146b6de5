/**
 * scale: x * alpha for a constant alpha. x: F[S...] (F a float dtype), attr alpha: float -> F[S...].
 * A constant factor is an attribute rather than a second tensor so that gradient rules (mean's
 * 1/n, for one) need no fill node and a backend can fold it into a neighbouring kernel.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, compile.test.ts,
 * dtypes.test.ts, cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp } from '../../op.js';
import { expectFloat } from '../float.js';
import { numel } from '../../types.js';

export const scaleOp = defineOp({
  name: 'scale',
  doc: 'out = x * alpha (alpha a constant attribute)',
  inputs: ['x'],
  outputs: ['out'],
  attrs: { alpha: { kind: 'float' } },
  elementwise: true,
  infer: ([x]) => {
    return [{ shape: x!.shape, dtype: expectFloat('scale', 'x', x!) }];
  },
  reference: ({ inputs: [x], outputs: [out], attrs }) => {
    const alpha = attrs.alpha as number;
    for (let i = 0; i < out!.length; i++) out![i] = x![i]! * alpha;
  },
  flops: ([x]) => numel(x!.shape),
  gradient: ({ grads: [g], attrs }) => [scale(g!, attrs.alpha as number)],
});

export function scale(x: Sym, alpha: number): Sym {
  return builderOf(x, 'x of scale').op1('scale', [x], { alpha });
}
