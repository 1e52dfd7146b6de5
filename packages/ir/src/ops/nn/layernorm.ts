/**
 * layernorm: normalise each row over the last dimension, then scale and shift.
 *   x: F[...R, D], weight: F[D], bias: F[D] (F one float dtype: f32, bf16 or f16); attribute eps
 *   (float, default 1e-5) -> y: F[...R, D], mean: f32[...R], rstd: f32[...R]
 *   mean = sum(x) / D, var = sum((x - mean)^2) / D (biased, as torch.nn.LayerNorm),
 *   rstd = 1 / sqrt(var + eps), y = (x - mean) * rstd * weight + bias.
 * Like PyTorch's native_layer_norm it also returns mean and rstd, so the backward does not have to
 * recompute the row statistics. The variance is taken in two passes (around the mean) in float64.
 * The statistics are f32 whatever F is (as in mixed-precision training, where a bf16 activation's
 * mean and rstd are kept in f32 for the backward).
 *
 * layernorm_backward: the fused gradient, as native_layer_norm_backward.
 *   g: F[...R, D], x: F[...R, D], weight: F[D] (one float dtype F), mean: f32[...R], rstd: f32[...R]
 *   -> dx: F[...R, D], dweight: F[D], dbias: F[D]
 *   xhat = (x - mean) * rstd, gw = g * weight,
 *   dx = rstd * (gw - mean_D(gw) - xhat * mean_D(gw * xhat)),
 *   dweight = sum_R(g * xhat), dbias = sum_R(g).
 * Gradients reaching the mean and rstd outputs are not supported (nothing needs them).
 * An optional last input addend: F[...R, D] (made by passes/fuse-norm-residual.ts, never by
 * autodiff) is added to dx as the add it replaces did: dx rounded to F first, then the sum rounded
 * again, so a pre-norm residual stream's gradient (the residual branch's plus the norm's) comes out
 * of the same kernel, one read of the addend instead of a read of dx and a pass of its own.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/nn.ts; the native
 * kernel is in native/ops/nn/layernorm.cu (rows of 16-byte chunks up to 6144 bf16 / 4096 f32
 * elements through the register-row kernels of reg_rows.cuh, one warp per row up to 768 bf16, the
 * backward's dweight/dbias as per-block column sums added in a fixed order: deterministic; other rows
 * through the row framework); tested in packages/ir/test/nn.test.ts, dtypes.test.ts,
 * fusion.test.ts, cuda-nn.test.ts; timed by bench/layernorm.mjs.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, expectRank, shapeError } from '../../op.js';
import { numel, sameShape, shapeStr, type ValueType } from '../../types.js';
import { sameFloat } from '../float.js';
import { roundTo } from '../../interpret.js';

/** Check the shapes of x and the [D] vectors (their dtypes are checked first); returns the row shape and D. */
function rowsOf(op: string, x: ValueType, vectors: [string, ValueType][]): { rows: readonly number[]; D: number } {
  expectRank(op, 'x', x, 1, Infinity);
  const D = x.shape.at(-1)!;
  for (const [name, t] of vectors) {
    if (!sameShape(t.shape, [D])) shapeError(op, `Expected ${x.dtype}[${D}] (the last dimension of x ${shapeStr(x)}) for input '${name}' but received ${shapeStr(t)}`);
  }
  return { rows: x.shape.slice(0, -1), D };
}

/** The gradient of a norm's y (layernorm, rmsnorm); its statistics outputs are saved for the backward only. */
export function gradOfY(op: string, grads: readonly (Sym | null)[]): Sym {
  if (grads.slice(1).some((g) => g !== null) || !grads[0]) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected a loss that uses the statistics outputs of ${op} only through y, for the gradient of ${op} but received one that uses them directly`);
  }
  return grads[0];
}

export const layernormOp = defineOp({
  name: 'layernorm',
  doc: 'y = (x - mean) * rstd * weight + bias over the last dim; also returns mean and rstd',
  inputs: ['x', 'weight', 'bias'],
  outputs: ['y', 'mean', 'rstd'],
  attrs: { eps: { kind: 'float', default: 1e-5 } },
  infer: ([x, w, b]) => {
    const dtype = sameFloat('layernorm', [['x', x!], ['weight', w!], ['bias', b!]]);
    const { rows } = rowsOf('layernorm', x!, [['weight', w!], ['bias', b!]]);
    return [{ shape: x!.shape, dtype }, { shape: rows, dtype: 'f32' }, { shape: rows, dtype: 'f32' }];
  },
  reference: ({ inputs: [x, w, b], outputs: [y, meanOut, rstdOut], inTypes, attrs }) => {
    const D = inTypes[0]!.shape.at(-1)!;
    const R = numel(inTypes[0]!.shape.slice(0, -1));
    const eps = attrs.eps as number;
    for (let r = 0; r < R; r++) {
      const o = r * D;
      let sum = 0;
      for (let d = 0; d < D; d++) sum += x![o + d]!;
      const mean = sum / D;
      let sq = 0;
      for (let d = 0; d < D; d++) sq += (x![o + d]! - mean) ** 2;
      const rstd = 1 / Math.sqrt(sq / D + eps);
      for (let d = 0; d < D; d++) y![o + d] = (x![o + d]! - mean) * rstd * w![d]! + b![d]!;
      meanOut![r] = mean;
      rstdOut![r] = rstd;
    }
  },
  flops: ([x]) => 8 * numel(x!.shape),
  gradient: ({ inputs: [x, w], outputs: [, mean, rstd], grads }) => layernormBackward(gradOfY('layernorm', grads), x!, w!, mean!, rstd!),
});

export const layernormBackwardOp = defineOp({
  name: 'layernorm_backward',
  doc: 'dx, dweight, dbias of layernorm from g, x, weight and the saved mean and rstd',
  inputs: ['g', 'x', 'weight', 'mean', 'rstd', 'addend?'],
  outputs: ['dx', 'dweight', 'dbias'],
  attrs: {},
  infer: ([g, x, w, mean, rstd, addend]) => {
    const op = 'layernorm_backward';
    const dtype = sameFloat(op, [['g', g!], ['x', x!], ['weight', w!], ...(addend ? [['addend', addend] as [string, ValueType]] : [])]);
    if (addend && !sameShape(addend.shape, x!.shape)) shapeError(op, `Expected the shape of x ${shapeStr(x!)} for input 'addend' but received ${shapeStr(addend)}`);
    for (const [name, t] of [['mean', mean!], ['rstd', rstd!]] as const) expectDtype(op, name, t, ['f32']);
    const { rows, D } = rowsOf(op, x!, [['weight', w!]]);
    if (!sameShape(g!.shape, x!.shape)) shapeError(op, `Expected the shape of x ${shapeStr(x!)} for input 'g' but received ${shapeStr(g!)}`);
    for (const [name, t] of [['mean', mean!], ['rstd', rstd!]] as const) {
      if (!sameShape(t.shape, rows)) shapeError(op, `Expected f32[${rows.join(', ')}] (the rows of x ${shapeStr(x!)}) for input '${name}' but received ${shapeStr(t)}`);
    }
    return [{ shape: x!.shape, dtype }, { shape: [D], dtype }, { shape: [D], dtype }];
  },
  reference: ({ inputs: [g, x, w, meanIn, rstdIn, addend], outputs: [dx, dw, db], inTypes, outTypes }) => {
    const D = inTypes[1]!.shape.at(-1)!;
    const R = numel(inTypes[1]!.shape.slice(0, -1));
    const accW = new Float64Array(D);
    const accB = new Float64Array(D);
    for (let r = 0; r < R; r++) {
      const o = r * D;
      const mean = meanIn![r]!;
      const rstd = rstdIn![r]!;
      let sumGw = 0;
      let sumGwXhat = 0;
      for (let d = 0; d < D; d++) {
        const xhat = (x![o + d]! - mean) * rstd;
        const gw = g![o + d]! * w![d]!;
        sumGw += gw;
        sumGwXhat += gw * xhat;
        accW[d]! += g![o + d]! * xhat;
        accB[d]! += g![o + d]!;
      }
      const meanGw = sumGw / D;
      const meanGwXhat = sumGwXhat / D;
      for (let d = 0; d < D; d++) {
        const xhat = (x![o + d]! - mean) * rstd;
        dx![o + d] = rstd * (g![o + d]! * w![d]! - meanGw - xhat * meanGwXhat);
      }
    }
    if (addend) {
      // As the unfused graph: dx stored in its format, then the add (whose result the caller rounds).
      roundTo(outTypes[0]!.dtype, dx!);
      for (let i = 0; i < dx!.length; i++) dx![i] = dx![i]! + addend[i]!;
    }
    dw!.set(accW);
    db!.set(accB);
  },
  // The addend's add counted as the add node it replaces was.
  flops: ([g, , , , , addend]) => (addend ? 13 : 12) * numel(g!.shape),
});

/** Layer normalisation over the last dimension; returns y (the node also outputs mean and rstd). */
export function layernorm(x: Sym, weight: Sym, bias: Sym, eps = 1e-5): Sym {
  return builderOf(x, 'x of layernorm').op('layernorm', [x, weight, bias], { eps })[0]!;
}

/** [dx, dweight, dbias] of layernorm. */
export function layernormBackward(g: Sym, x: Sym, weight: Sym, mean: Sym, rstd: Sym): [Sym, Sym, Sym] {
  const [dx, dw, db] = builderOf(g, 'g of layernormBackward').op('layernorm_backward', [g, x, weight, mean, rstd]);
  return [dx!, dw!, db!];
}

