/**
 * softmax: out = exp(x - max) / sum(exp(x - max)) along one axis.
 *   x: F[...X] -> out: F[...X] (F a float dtype: f32, bf16 or f16); attribute axis (int, default -1, negative counts from the end).
 * Subtracting the row maximum first keeps exp() from overflowing (the result is the same in exact
 * arithmetic), so a masked score of -1e30 becomes exactly 0. Sums are accumulated in float64.
 *
 * softmax_backward: the fused gradient, as PyTorch's _softmax_backward_data.
 *   g: F[...X], y: F[...X] (the softmax output; one float dtype F) -> dx: F[...X],
 *   dx = y * (g - sum(g * y, axis)).
 * One op instead of mul / sum / sub / mul keeps the backward to one pass over the data and needs
 * only the forward output (not x) to be kept.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/nn.ts; the native
 * kernel is in native/ops/nn/; tested in packages/ir/test/nn.test.ts, dtypes.test.ts,
 * cuda-nn.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { axisOf, defineOp, shapeError } from '../../op.js';
import { expectFloat, sameFloat } from '../float.js';
import { numel, sameShape, shapeStr, type ValueType } from '../../types.js';

/** Split a shape around `axis`: outer * n * inner elements, the axis has stride `inner`. */
function split(shape: readonly number[], axis: number): { outer: number; n: number; inner: number } {
  return { outer: numel(shape.slice(0, axis)), n: shape[axis]!, inner: numel(shape.slice(axis + 1)) };
}

export const softmaxOp = defineOp({
  name: 'softmax',
  doc: 'out = exp(x - max(x)) / sum(exp(x - max(x))) along axis',
  inputs: ['x'],
  outputs: ['out'],
  attrs: { axis: { kind: 'int', default: -1 } },
  infer: ([x], attrs) => {
    const dtype = expectFloat('softmax', 'x', x!);
    if (x!.shape.length === 0) shapeError('softmax', `Expected rank >= 1 for input 'x' but received ${shapeStr(x!)}`);
    axisOf('softmax', attrs.axis as number, x!.shape.length);
    return [{ shape: x!.shape, dtype }];
  },
  reference: ({ inputs: [x], outputs: [out], inTypes, attrs }) => {
    const shape = inTypes[0]!.shape;
    const { outer, n, inner } = split(shape, axisOf('softmax', attrs.axis as number, shape.length));
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * n * inner + i;
        let max = -Infinity;
        for (let k = 0; k < n; k++) max = Math.max(max, x![base + k * inner]!);
        let sum = 0;
        for (let k = 0; k < n; k++) sum += Math.exp(x![base + k * inner]! - max);
        for (let k = 0; k < n; k++) out![base + k * inner] = Math.exp(x![base + k * inner]! - max) / sum;
      }
    }
  },
  flops: ([x]) => 5 * numel(x!.shape),
  gradient: ({ outputs: [y], grads: [g], attrs }) => [softmaxBackward(g!, y!, attrs.axis as number)],
});

function inferBackward(g: ValueType, y: ValueType, axis: number): ValueType[] {
  const dtype = sameFloat('softmax_backward', [['g', g], ['y', y]]);
  if (!sameShape(g.shape, y.shape)) shapeError('softmax_backward', `Expected the shape of y ${shapeStr(y)} for input 'g' but received ${shapeStr(g)}`);
  if (y.shape.length === 0) shapeError('softmax_backward', `Expected rank >= 1 for input 'y' but received ${shapeStr(y)}`);
  axisOf('softmax_backward', axis, y.shape.length);
  return [{ shape: y.shape, dtype }];
}

export const softmaxBackwardOp = defineOp({
  name: 'softmax_backward',
  doc: 'dx = y * (g - sum(g * y, axis)): the gradient of softmax from its output y',
  inputs: ['g', 'y'],
  outputs: ['dx'],
  attrs: { axis: { kind: 'int', default: -1 } },
  infer: ([g, y], attrs) => inferBackward(g!, y!, attrs.axis as number),
  reference: ({ inputs: [g, y], outputs: [dx], inTypes, attrs }) => {
    const shape = inTypes[1]!.shape;
    const { outer, n, inner } = split(shape, axisOf('softmax_backward', attrs.axis as number, shape.length));
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * n * inner + i;
        let dot = 0;
        for (let k = 0; k < n; k++) dot += g![base + k * inner]! * y![base + k * inner]!;
        for (let k = 0; k < n; k++) dx![base + k * inner] = y![base + k * inner]! * (g![base + k * inner]! - dot);
      }
    }
  },
  flops: ([g]) => 4 * numel(g!.shape),
});

export function softmax(x: Sym, axis = -1): Sym {
  return builderOf(x, 'x of softmax').op1('softmax', [x], { axis });
}

export function softmaxBackward(g: Sym, y: Sym, axis = -1): Sym {
  return builderOf(g, 'g of softmaxBackward').op1('softmax_backward', [g, y], { axis });
}
