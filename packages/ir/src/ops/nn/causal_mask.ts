/**
 * causal_mask: hide the future in attention scores.
 *   x: F[..., T, S] with S >= T, F a float dtype; attribute value (float, default -1e30)
 *   -> out: F[..., T, S]
 *   out[..., i, j] = x[..., i, j] when j <= i + (S - T), else value.
 * The offset S - T aligns the T queries with the last T of the S keys (decoding with a cache of
 * S - T earlier positions). The default fill is finite, so attributes round-trip through JSON, and
 * far enough below any score that softmax turns it into exactly 0; the diagonal is never masked, so
 * no row is all fill. With value 0 the same op is its own gradient: g with the masked positions zeroed.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/nn.ts; the native
 * kernel is in native/ops/nn/; tested in packages/ir/test/nn.test.ts, dtypes.test.ts,
 * cuda-nn.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectRank, shapeError } from '../../op.js';
import { expectFloat } from '../float.js';
import { numel, shapeStr } from '../../types.js';

export const causalMaskOp = defineOp({
  name: 'causal_mask',
  doc: 'out[..., i, j] = x[..., i, j] if j <= i + (S - T) else value',
  inputs: ['x'],
  outputs: ['out'],
  attrs: { value: { kind: 'float', default: -1e30 } },
  infer: ([x]) => {
    const dtype = expectFloat('causal_mask', 'x', x!);
    expectRank('causal_mask', 'x', x!, 2, Infinity);
    const [T, S] = x!.shape.slice(-2) as [number, number];
    if (S < T) shapeError('causal_mask', `Expected at least as many keys as queries (S >= T) for input 'x' [..., T, S] but received ${shapeStr(x!)}`);
    return [{ shape: x!.shape, dtype }];
  },
  reference: ({ inputs: [x], outputs: [out], inTypes, attrs }) => {
    const [T, S] = inTypes[0]!.shape.slice(-2) as [number, number];
    const B = numel(inTypes[0]!.shape.slice(0, -2));
    const value = attrs.value as number;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < S; j++) {
          const k = (b * T + i) * S + j;
          out![k] = j <= i + (S - T) ? x![k]! : value;
        }
      }
    }
  },
  gradient: ({ grads: [g] }) => [causalMask(g!, 0)],
});

/** x with the positions after each query's own (its future) set to `value`. */
export function causalMask(x: Sym, value = -1e30): Sym {
  return builderOf(x, 'x of causalMask').op1('causal_mask', [x], { value });
}
