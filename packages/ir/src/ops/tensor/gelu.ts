/**
 * gelu: the tanh approximation of the Gaussian error linear unit (as GPT-2 and PyTorch's
 * approximate='tanh'). x: F[S...] -> F[S...] (F a float dtype: f32, bf16 or f16),
 *   out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 * Its gradient is one dedicated op (gelu_backward) rather than a dozen primitive nodes, so the
 * backward pass stays one elementwise kernel and keeps no intermediates alive.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * fusion.test.ts, cuda-tensor.test.ts.
 */
import { invalid } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp } from '../../op.js';
import { expectFloat } from '../float.js';
import { numel } from '../../types.js';
import { AMAX_ATTR, withAmax, writeAmax } from '../amax.js';
import { geluBackward } from './gelu_backward.js';

export const GELU_C = Math.sqrt(2 / Math.PI);
export const GELU_K = 0.044715;

/** gelu of one value, in float64. */
export function geluScalar(x: number): number {
  if (typeof x !== 'number') invalid('a number', 'geluScalar', x);
  return 0.5 * x * (1 + Math.tanh(GELU_C * (x + GELU_K * x * x * x)));
}

export const geluOp = defineOp({
  name: 'gelu',
  doc: 'out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))',
  inputs: ['x'],
  outputs: ['out'],
  attrs: { ...AMAX_ATTR },
  elementwise: true,
  amaxOf: 0,
  infer: ([x], attrs) => withAmax([{ shape: x!.shape, dtype: expectFloat('gelu', 'x', x!) }], attrs),
  reference: ({ inputs: [x], outputs, outTypes, attrs }) => {
    const out = outputs[0]!;
    for (let i = 0; i < out.length; i++) out[i] = geluScalar(x![i]!);
    writeAmax(outputs, outTypes, 0, attrs);
  },
  // x^3 (2), fma-free polynomial (3), tanh (counted as 1), 1 + t, x * (...), * 0.5.
  flops: ([x]) => 9 * numel(x!.shape),
  gradient: ({ inputs: [x], grads: [g] }) => [geluBackward(g!, x!)],
});

export function gelu(x: Sym): Sym {
  return builderOf(x, 'x of gelu').op1('gelu', [x]);
}
