/**
 * adamw: one AdamW step (Loshchilov & Hutter, as torch.optim.AdamW) on one parameter.
 *   param: f32[P...], grad: F[P...] (F any float dtype: f32, bf16 or f16), m: f32[P...],
 *   v: f32[P...], lr: f32[1], step: f32[1], optionally gradScale: f32[1]
 *   attributes beta1 (0.9), beta2 (0.95), eps (1e-8), weightDecay (0)
 *   -> param2: f32[P...], m2: f32[P...], v2: f32[P...]
 *   g = grad, or with gradScale g = f32(grad * gradScale[0]) (the product rounded to f32, exactly
 *       what mul(grad, gradScale) stored in f32 gave before: trainingStep passes the clipping factor
 *       here instead of scaling each gradient with a launch of its own)
 *   p = p * (1 - lr * wd)                     (decoupled weight decay, before the moment update)
 *   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2
 *   p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),  t = step[0] (counts from 1).
 * lr and step are tensors, not attributes, so a schedule changes them without rebuilding the graph.
 * The outputs may share storage with param, m and v (the `inplace` pairs): the reference reads every
 * input element before writing the same element of any output, so it is correct in place. It is
 * not differentiated (an optimizer step is not part of the loss). The master weights and moments
 * stay f32 while the gradient may come from a bf16 or f16 backward pass (mixed precision); grad is
 * read at its exact value whatever its storage (`anyFloatInputs`), so autocast's widening bf16 ->
 * f32 gradient cast may be skipped (passes/elide-casts.ts).
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/nn.ts; the native
 * kernel is in native/ops/nn/; tested in packages/ir/test/nn.test.ts, compile.test.ts,
 * dtypes.test.ts, fusion.test.ts, optim.test.ts, cuda-fused.test.ts, cuda-nn.test.ts,
 * cuda-optim.test.ts.
 */
import { DeepwellError, checkKeys } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { checkAdamWAttrs } from './adamw-attrs.js';
import { defineOp, expectDtype, shapeError } from '../../op.js';
import { numel, sameShape, shapeStr } from '../../types.js';
import { expectFloat } from '../float.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** The hyperparameter inputs the executable checks before a step: lr (finite, >= 0) and step (finite, >= 1). */
const ADAMW_SCALARS = [
  { input: 4, name: 'lr', min: 0 },
  { input: 5, name: 'step', min: 1 },
] as const;

export const adamwOp = defineOp({
  name: 'adamw',
  doc: 'param, m, v after one AdamW step with decoupled weight decay',
  inputs: ['param', 'grad', 'm', 'v', 'lr', 'step', 'gradScale?'],
  outputs: ['param2', 'm2', 'v2'],
  attrs: {
    beta1: { kind: 'float', default: 0.9 },
    beta2: { kind: 'float', default: 0.95 },
    eps: { kind: 'float', default: 1e-8 },
    weightDecay: { kind: 'float', default: 0 },
  },
  inplace: [[0, 0], [1, 2], [2, 3]],
  nonDifferentiable: true,
  anyFloatInputs: () => [1],
  scalarInputs: () => ADAMW_SCALARS,
  infer: ([param, grad, m, v, lr, step, scale], attrs) => {
    checkAdamWAttrs(attrs, 'adamw');
    const names = ['param', 'grad', 'm', 'v', 'lr', 'step'] as const;
    [param, grad, m, v, lr, step].forEach((t, i) => {
      if (names[i] === 'grad') expectFloat('adamw', 'grad', t!);
      else expectDtype('adamw', names[i]!, t!, ['f32']);
    });
    for (const [name, t] of [['grad', grad!], ['m', m!], ['v', v!]] as const) {
      if (!sameShape(t.shape, param!.shape)) shapeError('adamw', `Expected the shape of param ${shapeStr(param!)} for input '${name}' but received ${shapeStr(t)}`);
    }
    for (const [name, t] of [['lr', lr!], ['step', step!]] as const) {
      if (numel(t.shape) !== 1) shapeError('adamw', `Expected f32[1] for input '${name}' but received ${shapeStr(t)}`);
    }
    if (scale) {
      expectDtype('adamw', 'gradScale', scale, ['f32']);
      if (numel(scale.shape) !== 1) shapeError('adamw', `Expected f32[1] for input 'gradScale' but received ${shapeStr(scale)}`);
    }
    return [param!, param!, param!].map((t) => ({ shape: t.shape, dtype: 'f32' as const }));
  },
  reference: ({ inputs: [param, grad, m, v, lrIn, stepIn, scaleIn], outputs: [p2, m2, v2], attrs }) => {
    const b1 = attrs.beta1 as number;
    const b2 = attrs.beta2 as number;
    const eps = attrs.eps as number;
    const wd = attrs.weightDecay as number;
    const lr = lrIn![0]!;
    const t = stepIn![0]!;
    if (!(Number.isFinite(lr) && lr >= 0)) throw new DeepwellError('INVALID_ARGUMENT', `adamw: Expected a finite learning rate >= 0 for input 'lr' but received ${lr}`);
    if (!(t >= 1 && Number.isFinite(t))) throw new DeepwellError('INVALID_ARGUMENT', `adamw: Expected a step count >= 1 for input 'step' but received ${t}`);
    const c1 = 1 - b1 ** t;
    const c2 = 1 - b2 ** t;
    // The scaled gradient as mul(grad, gradScale) stored it: rounded to f32 (the interpreter's f32
    // storage; a float64 gradient check keeps it exact, as it keeps every f32 value).
    const s = scaleIn?.[0];
    const round = p2 instanceof Float32Array ? Math.fround : (x: number) => x;
    for (let i = 0; i < param!.length; i++) {
      // Read every input element first: outputs may be the input arrays themselves.
      const g = s === undefined ? grad![i]! : round(grad![i]! * s);
      const mNew = b1 * m![i]! + (1 - b1) * g;
      const vNew = b2 * v![i]! + (1 - b2) * g * g;
      const p = param![i]! * (1 - lr * wd);
      p2![i] = p - (lr * (mNew / c1)) / (Math.sqrt(vNew / c2) + eps);
      m2![i] = mNew;
      v2![i] = vNew;
    }
  },
  flops: ([param]) => 16 * numel(param!.shape),
});

/**
 * [param2, m2, v2] after one AdamW step; lr and step are f32[1] values (step counts from 1); the
 * gradient is first multiplied by `gradScale` (f32[1]) when one is given.
 */
export function adamw(param: Sym, grad: Sym, m: Sym, v: Sym, lr: Sym, step: Sym, opts: AdamWOptions = {}, gradScale?: Sym): [Sym, Sym, Sym] {
  checkKeys(opts, ['beta1', 'beta2', 'eps', 'weightDecay'], 'adamw');
  checkAdamWAttrs(opts as Record<string, unknown>, 'adamw');
  const attrs: Record<string, number> = {};
  for (const k of ['beta1', 'beta2', 'eps', 'weightDecay'] as const) if (opts[k] !== undefined) attrs[k] = opts[k];
  const [p2, m2, v2] = builderOf(param, 'param of adamw').op('adamw', [param, grad, m, v, lr, step, ...(gradScale ? [gradScale] : [])], attrs);
  return [p2!, m2!, v2!];
}
