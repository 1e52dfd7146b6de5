/**
 * add_layernorm: sum = x + residual, then layernorm of sum; sum is returned too (it is the residual
 * stream the next block adds to, and what layernorm_backward reads).
 *   x: F[...R, D], residual: F[...R, D] (the same shape: no broadcasting), weight: F[D], bias: F[D];
 *   attribute eps -> sum: F[...R, D], y: F[...R, D], mean: f32[...R], rstd: f32[...R].
 * Never written by models: the fusion pass (passes/fuse-add-layernorm.ts) makes it at compile time
 * from an add whose result feeds a layernorm (a transformer's residual connection and the next
 * pre-norm), so a GPU reads both summands once and writes the sum and the normalised row in one
 * kernel. The reference is exactly the two ops it replaces: the sum rounded to its storage, then
 * layernorm. Compile-time only: no gradient rule.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/nn.ts; the native
 * kernel is in native/ops/nn/; tested in packages/ir/test/fusion.test.ts, cuda-fused.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, shapeError } from '../../op.js';
import { roundTo } from '../../interpret.js';
import { numel, sameShape, shapeStr } from '../../types.js';
import { addOp } from '../basic/add.js';
import { layernormOp } from './layernorm.js';
import { AMAX_ATTR, withAmax, writeAmax } from '../amax.js';

export const addLayernormOp = defineOp({
  name: 'add_layernorm',
  doc: 'sum = x + residual; y, mean, rstd = layernorm(sum); made by fusion',
  inputs: ['x', 'residual', 'weight', 'bias'],
  outputs: ['sum', 'y', 'mean', 'rstd'],
  attrs: { eps: { kind: 'float', default: 1e-5 }, ...AMAX_ATTR },
  amaxOf: 1,
  infer: ([x, r, w, b], attrs) => {
    if (!sameShape(x!.shape, r!.shape)) shapeError('add_layernorm', `Expected the shape of x ${shapeStr(x!)} for input 'residual' but received ${shapeStr(r!)}`);
    const [sum] = addOp.infer([x!, r!], {});
    return withAmax([sum!, ...layernormOp.infer([sum!, w!, b!], { eps: attrs.eps! })], attrs);
  },
  reference: ({ inputs: [x, r, w, b], outputs, inTypes, outTypes, attrs }) => {
    const [sum, y, mean, rstd] = outputs;
    addOp.reference({ inputs: [x!, r!], outputs: [sum!], inTypes: inTypes.slice(0, 2), outTypes: outTypes.slice(0, 1), attrs: {} });
    roundTo(outTypes[0]!.dtype, sum!);
    layernormOp.reference({ inputs: [sum!, w!, b!], outputs: [y!, mean!, rstd!], inTypes: [outTypes[0]!, inTypes[2]!, inTypes[3]!], outTypes: outTypes.slice(1, 4), attrs: { eps: attrs.eps! } });
    writeAmax(outputs, outTypes, 1, attrs);
  },
  flops: ([x], outs) => numel(x!.shape) + layernormOp.flops!([x!], outs.slice(1), {}),
});

/** [sum, y, mean, rstd] with sum = x + residual and y = layernorm(sum). */
export function addLayernorm(x: Sym, residual: Sym, weight: Sym, bias: Sym, eps?: number): [Sym, Sym, Sym, Sym] {
  const [s, y, m, r] = builderOf(x, 'x of addLayernorm').op('add_layernorm', [x, residual, weight, bias], eps === undefined ? {} : { eps });
  return [s!, y!, m!, r!];
}
