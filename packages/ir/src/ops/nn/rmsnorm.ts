/**
 * rmsnorm: scale each row by the reciprocal of its root mean square over the last dimension.
 *   x: F[...R, D], weight: F[D] (F one float dtype: f32, bf16 or f16); attribute eps (float,
 *   default 1e-6) -> y: F[...R, D], rstd: f32[...R] (f32 whatever F is, as layernorm's statistics)
 *   rstd = 1 / sqrt(sum(x^2) / D + eps), y = x * rstd * weight.
 * No mean is subtracted and there is no bias (Zhang & Sennrich 2019, as LLaMA uses it). rstd is an
 * output so the backward need not recompute it; the sum of squares accumulates in float64.
 *
 * rmsnorm_backward: the fused gradient.
 *   g: F[...R, D], x: F[...R, D], weight: F[D] (one float dtype F), rstd: f32[...R]
 *   -> dx: F[...R, D], dweight: F[D]
 *   gw = g * weight, dx = rstd * (gw - x * rstd^2 * mean_D(gw * x)), dweight = sum_R(g * x * rstd).
 * Gradients reaching the rstd output are not supported (nothing needs them).
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/nn.ts; the native
 * kernel is in native/ops/nn/; tested in packages/ir/test/nn.test.ts, dtypes.test.ts,
 * cuda-nn.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, expectRank, shapeError } from '../../op.js';
import { numel, sameShape, shapeStr, type ValueType } from '../../types.js';
import { sameFloat } from '../float.js';
import { gradOfY } from './layernorm.js';

/** Check the shapes of x and weight (their dtypes are checked first); returns the row shape and D. */
function rowsOf(op: string, x: ValueType, w: ValueType): { rows: readonly number[]; D: number } {
  expectRank(op, 'x', x, 1, Infinity);
  const D = x.shape.at(-1)!;
  if (!sameShape(w.shape, [D])) shapeError(op, `Expected ${x.dtype}[${D}] (the last dimension of x ${shapeStr(x)}) for input 'weight' but received ${shapeStr(w)}`);
  return { rows: x.shape.slice(0, -1), D };
}

export const rmsnormOp = defineOp({
  name: 'rmsnorm',
  doc: 'y = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps) over the last dim; also returns rstd',
  inputs: ['x', 'weight'],
  outputs: ['y', 'rstd'],
  attrs: { eps: { kind: 'float', default: 1e-6 } },
  infer: ([x, w]) => {
    const dtype = sameFloat('rmsnorm', [['x', x!], ['weight', w!]]);
    const { rows } = rowsOf('rmsnorm', x!, w!);
    return [{ shape: x!.shape, dtype }, { shape: rows, dtype: 'f32' }];
  },
  reference: ({ inputs: [x, w], outputs: [y, rstdOut], inTypes, attrs }) => {
    const D = inTypes[0]!.shape.at(-1)!;
    const R = numel(inTypes[0]!.shape.slice(0, -1));
    const eps = attrs.eps as number;
    for (let r = 0; r < R; r++) {
      const o = r * D;
      let sq = 0;
      for (let d = 0; d < D; d++) sq += x![o + d]! * x![o + d]!;
      const rstd = 1 / Math.sqrt(sq / D + eps);
      for (let d = 0; d < D; d++) y![o + d] = x![o + d]! * rstd * w![d]!;
      rstdOut![r] = rstd;
    }
  },
  flops: ([x]) => 4 * numel(x!.shape),
  gradient: ({ inputs: [x, w], outputs: [, rstd], grads }) => rmsnormBackward(gradOfY('rmsnorm', grads), x!, w!, rstd!),
});

export const rmsnormBackwardOp = defineOp({
  name: 'rmsnorm_backward',
  doc: 'dx, dweight of rmsnorm from g, x, weight and the saved rstd',
  inputs: ['g', 'x', 'weight', 'rstd'],
  outputs: ['dx', 'dweight'],
  attrs: {},
  infer: ([g, x, w, rstd]) => {
    const op = 'rmsnorm_backward';
    const dtype = sameFloat(op, [['g', g!], ['x', x!], ['weight', w!]]);
    expectDtype(op, 'rstd', rstd!, ['f32']);
    const { rows, D } = rowsOf(op, x!, w!);
    if (!sameShape(g!.shape, x!.shape)) shapeError(op, `Expected the shape of x ${shapeStr(x!)} for input 'g' but received ${shapeStr(g!)}`);
    if (!sameShape(rstd!.shape, rows)) shapeError(op, `Expected f32[${rows.join(', ')}] (the rows of x ${shapeStr(x!)}) for input 'rstd' but received ${shapeStr(rstd!)}`);
    return [{ shape: x!.shape, dtype }, { shape: [D], dtype }];
  },
  reference: ({ inputs: [g, x, w, rstdIn], outputs: [dx, dw], inTypes }) => {
    const D = inTypes[1]!.shape.at(-1)!;
    const R = numel(inTypes[1]!.shape.slice(0, -1));
    const accW = new Float64Array(D);
    for (let r = 0; r < R; r++) {
      const o = r * D;
      const rstd = rstdIn![r]!;
      let sumGwX = 0;
      for (let d = 0; d < D; d++) {
        sumGwX += g![o + d]! * w![d]! * x![o + d]!;
        accW[d]! += g![o + d]! * x![o + d]! * rstd;
      }
      const c = (rstd * rstd * sumGwX) / D;
      for (let d = 0; d < D; d++) dx![o + d] = rstd * (g![o + d]! * w![d]! - x![o + d]! * c);
    }
    dw!.set(accW);
  },
  flops: ([g]) => 8 * numel(g!.shape),
});

/** RMS normalisation over the last dimension; returns y (the node also outputs rstd). */
export function rmsnorm(x: Sym, weight: Sym, eps = 1e-6): Sym {
  return builderOf(x, 'x of rmsnorm').op('rmsnorm', [x, weight], { eps })[0]!;
}

/** [dx, dweight] of rmsnorm. */
export function rmsnormBackward(g: Sym, x: Sym, weight: Sym, rstd: Sym): [Sym, Sym] {
  const [dx, dw] = builderOf(g, 'g of rmsnormBackward').op('rmsnorm_backward', [g, x, weight, rstd]);
  return [dx!, dw!];
}
