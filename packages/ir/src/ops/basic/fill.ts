/**
 * fill: a tensor of one value. fill(shape, value, dtype) -> dtype[shape], dtype a float dtype (f32,
 * bf16 or f16; default f32). No inputs; used to seed the loss gradient and for the zero gradient of
 * values the loss does not depend on (in the dtype of the value, so a bf16 value gets bf16 zeros).
 * The value is stored as given; rounding it to a narrow dtype is the interpreter's job.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/basic.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { checkShape, invalid } from '@deepwell/core';
import { GraphBuilder, type Sym } from '../../builder.js';
import { defineOp } from '../../op.js';
import { FLOAT_DTYPES, type FloatDType } from '../float.js';

export const fillOp = defineOp({
  name: 'fill',
  doc: 'out[...] = value',
  inputs: [],
  outputs: ['out'],
  attrs: { shape: { kind: 'ints' }, value: { kind: 'float' }, dtype: { kind: 'string', oneOf: FLOAT_DTYPES, default: 'f32' } },
  infer: (_, attrs) => [{ shape: checkShape(attrs.shape, 'fill shape'), dtype: attrs.dtype as FloatDType }],
  reference: ({ outputs, attrs }) => {
    outputs[0]!.fill(attrs.value as number);
  },
  gradient: () => [],
});

export function fill(b: GraphBuilder, shape: readonly number[], value: number, dtype: FloatDType = 'f32'): Sym {
  if (!(b instanceof GraphBuilder)) invalid('a GraphBuilder', 'the builder of fill', b);
  return b.op1('fill', [], { shape, value, dtype });
}
