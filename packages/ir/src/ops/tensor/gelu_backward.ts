/**
 * gelu_backward: the gradient of gelu (tanh approximation). g: F[S...], x: F[S...] (the forward
 * input; F one float dtype shared by both) -> F[S...],
 *   out = g * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)),
 *   t = tanh(sqrt(2/pi) (x + 0.044715 x^3)).
 * One op from (g, x) so the backward pass recomputes t instead of keeping it from the forward.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, shapeError } from '../../op.js';
import { sameFloat } from '../float.js';
import { numel, sameShape } from '../../types.js';
import { GELU_C, GELU_K } from './gelu.js';
import { AMAX_ATTR, withAmax, writeAmax } from '../amax.js';

/** d gelu / dx at one value, in float64. */
export function geluGradScalar(x: number): number {
  const t = Math.tanh(GELU_C * (x + GELU_K * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * GELU_K * x * x);
}

export const geluBackwardOp = defineOp({
  name: 'gelu_backward',
  doc: "out = g * gelu'(x)",
  inputs: ['g', 'x'],
  outputs: ['out'],
  attrs: { ...AMAX_ATTR },
  elementwise: true,
  amaxOf: 0,
  infer: ([g, x], attrs) => {
    const dtype = sameFloat('gelu_backward', [['g', g!], ['x', x!]]);
    if (!sameShape(g!.shape, x!.shape)) {
      shapeError('gelu_backward', `Expected the shape of x [${x!.shape.join(', ')}] for input 'g' but received [${g!.shape.join(', ')}]`);
    }
    return withAmax([{ shape: x!.shape, dtype }], attrs);
  },
  reference: ({ inputs: [g, x], outputs, outTypes, attrs }) => {
    const out = outputs[0]!;
    for (let i = 0; i < out.length; i++) out[i] = g![i]! * geluGradScalar(x![i]!);
    writeAmax(outputs, outTypes, 0, attrs);
  },
  flops: ([, x]) => 16 * numel(x!.shape),
});

export function geluBackward(g: Sym, x: Sym): Sym {
  const builder = builderOf(g, 'g of geluBackward');
  if (builder !== builderOf(x, 'x of geluBackward')) shapeError('gelu_backward', 'Expected symbolic tensors of one graph');
  return builder.op1('gelu_backward', [g, x]);
}
