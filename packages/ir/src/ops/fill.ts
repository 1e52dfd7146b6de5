/**
 * fill: a tensor of one value. fill(shape, value) -> f32[shape]. No inputs; used to seed the loss
 * gradient and for the zero gradient of values the loss does not depend on.
 */
import { checkShape } from '@deepwell/core';
import type { GraphBuilder, Sym } from '../builder.js';
import { defineOp } from '../op.js';

export const fillOp = defineOp({
  name: 'fill',
  doc: 'out[...] = value',
  inputs: [],
  outputs: ['out'],
  attrs: { shape: { kind: 'ints' }, value: { kind: 'float' } },
  infer: (_, attrs) => [{ shape: checkShape(attrs.shape, 'fill shape'), dtype: 'f32' }],
  reference: ({ outputs, attrs }) => {
    outputs[0]!.fill(attrs.value as number);
  },
});

export function fill(b: GraphBuilder, shape: readonly number[], value: number): Sym {
  return b.op1('fill', [], { shape, value });
}
