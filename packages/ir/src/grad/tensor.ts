/** Gradient rules of the tensor family (elementwise, shape and reduction ops). */
import type { GradRule } from '../gradients.js';
import type { Sym } from '../builder.js';
import { broadcastTo } from '../ops/basic/broadcast_to.js';
import { reshape } from '../ops/basic/reshape.js';
import { sumTo } from '../ops/basic/sum_to.js';
import { mul } from '../ops/tensor/mul.js';
import { scale } from '../ops/tensor/scale.js';
import { geluBackward } from '../ops/tensor/gelu_backward.js';
import { silu } from '../ops/tensor/silu.js';
import { siluBackward } from '../ops/tensor/silu_backward.js';
import { inversePerm, transpose } from '../ops/tensor/transpose.js';
import { slice } from '../ops/tensor/slice.js';
import { sliceBackward } from '../ops/tensor/slice_backward.js';
import { maxBackward } from '../ops/tensor/max_backward.js';
import { reduction } from '../ops/tensor/sum.js';
import { cast, type CastDType } from '../ops/tensor/cast.js';
import { sameShape } from '../types.js';

/** g of a reduction of x, reshaped to the keepdims shape and broadcast back over x. */
function spread(g: Sym, x: Sym, keepShape: readonly number[]): Sym {
  return broadcastTo(sameShape(g.shape, keepShape) ? g : reshape(g, keepShape), x.shape);
}

const FLOAT = new Set(['f32', 'f16', 'bf16']);

export const tensorGrads: Record<string, GradRule> = {
  mul: ({ inputs: [a, b], grads: [g] }) => [sumTo(mul(g!, b!), a!.shape), sumTo(mul(g!, a!), b!.shape)],
  scale: ({ grads: [g], attrs }) => [scale(g!, attrs.alpha as number)],
  bias_add: ({ inputs: [, bias], grads: [g] }) => [g!, sumTo(g!, bias!.shape)],
  gelu: ({ inputs: [x], grads: [g] }) => [geluBackward(g!, x!)],
  silu: ({ inputs: [x], grads: [g] }) => [siluBackward(g!, x!)],
  swiglu: ({ inputs: [gate, up], grads: [g] }) => [siluBackward(mul(g!, up!), gate!), mul(g!, silu(gate!))],
  transpose: ({ grads: [g], attrs }) => [transpose(g!, inversePerm(attrs.perm as readonly number[]))],
  slice: ({ inputs: [x], grads: [g], attrs }) => [sliceBackward(g!, x!.shape, attrs.axis as number, attrs.start as number)],
  // Linear in g: its gradient is the slice it undoes.
  slice_backward: ({ inputs: [g], grads: [gg], attrs }) => {
    const start = attrs.start as number;
    const axis = attrs.axis as number;
    const length = g!.shape[axis < 0 ? axis + g!.rank : axis]!;
    return [slice(gg!, axis, start, start + length)];
  },
  concat: ({ inputs, grads: [g], attrs }) => {
    const rank = inputs[0]!.rank;
    const axis = (attrs.axis as number) < 0 ? (attrs.axis as number) + rank : (attrs.axis as number);
    let offset = 0;
    return inputs.map((x) => {
      const size = x.shape[axis]!;
      offset += size;
      return slice(g!, axis, offset - size, offset);
    });
  },
  sum: ({ inputs: [x], grads: [g], attrs }) => [spread(g!, x!, reduction('sum', x!.type, attrs).keepShape)],
  mean: ({ inputs: [x], grads: [g], attrs }) => {
    const r = reduction('mean', x!.type, attrs);
    return [spread(scale(g!, 1 / r.count), x!, r.keepShape)];
  },
  max: ({ inputs: [x], grads: [g], attrs }) => [maxBackward(g!, x!, attrs.axes as readonly number[], attrs.keepdims === true)],
  cast: ({ inputs: [x], outputs: [y], grads: [g] }) => (FLOAT.has(x!.dtype) && FLOAT.has(y!.dtype) ? [cast(g!, x!.dtype as CastDType)] : [null]),
};
