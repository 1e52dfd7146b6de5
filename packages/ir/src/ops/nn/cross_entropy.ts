/**
 * cross_entropy: mean softmax cross-entropy of rows of logits against integer targets.
 *   logits: F[N, V] (F a float dtype: f32, bf16 or f16), targets: i32[N]; attribute ignoreIndex
 *   (int, default -1) -> loss: f32[1] (f32 whatever F is: the loss of a mixed-precision model is f32)
 *   loss = sum over rows r with targets[r] != ignoreIndex of (logsumexp(logits[r, :]) - logits[r, t_r])
 *          / (number of such rows); 0 when every row is ignored.
 * Fused (not softmax then log then gather) because logsumexp taken around the row maximum is exact
 * where log(softmax) underflows, and the backward needs only the logits, as torch's cross_entropy.
 * A target outside [0, V) that is not ignoreIndex is an INVALID_ARGUMENT naming its row.
 *
 * cross_entropy_backward: the fused gradient.
 *   logits: F[N, V], targets: i32[N], g: f32[1] (the gradient of the f32 loss) -> dlogits: F[N, V]
 *   dlogits[r, :] = (softmax(logits[r, :]) - onehot(t_r)) * g[0] / count, zero rows where ignored.
 * The targets take no gradient. dlogits may be written over logits (the `inplace` pair [0, 0]; the
 * planner takes it where the logits die at this node, as they do in a training step, so the step
 * never holds both): the reference and the kernel read each whole row (its maximum and sum) before
 * writing any of it, and each element of the row just before writing it.
 *
 * cross_entropy_with_grad: both at once, from one read of the logits (llm.c's fused classifier).
 *   logits: F[N, V], targets: i32[N], g: f32[1] -> loss: f32[1], dlogits: F[N, V]
 *   loss as cross_entropy, dlogits as cross_entropy_backward with the same g. Made by the
 *   fuse-cross-entropy pass after autodiff where the loss's gradient g does not depend on the loss
 *   (a training step's seed, the fill of 1, possibly scaled); never differentiated. Its reference is
 *   exactly the two it replaces, loss first. dlogits may be written over logits (`inplace` [1, 0]):
 *   the loss is taken from each row before the row is overwritten.
 *
 * Kernels and tests: the CUDA candidates are registered in packages/ir/src/cuda/nn.ts; the native
 * kernels are in native/ops/nn/cross_entropy.cu; the pass in src/passes/fuse-cross-entropy.ts;
 * tested in packages/ir/test/nn.test.ts, compile.test.ts, dtypes.test.ts, inplace.test.ts,
 * fuse-cross-entropy.test.ts, fusion.test.ts, cuda-nn.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, expectRank, shapeError, type IndexInput } from '../../op.js';
import { numel, sameShape, shapeStr, type NumArray, type ValueType } from '../../types.js';
import { expectFloat, type FloatDType } from '../float.js';

/** Check logits and targets; returns the logits' dtype. */
function check(op: string, logits: ValueType, targets: ValueType): FloatDType {
  const dtype = expectFloat(op, 'logits', logits);
  expectDtype(op, 'targets', targets, ['i32']);
  expectRank(op, 'logits', logits, 2);
  expectRank(op, 'targets', targets, 1);
  if (targets.shape[0] !== logits.shape[0]) {
    shapeError(op, `Expected i32[${logits.shape[0]}] (one target per row of logits ${shapeStr(logits)}) for input 'targets' but received ${shapeStr(targets)}`);
  }
  if (logits.shape[1] === 0) shapeError(op, `Expected at least one class for input 'logits' but received ${shapeStr(logits)}`);
  return dtype;
}

/** Whether row r counts; throws for a target that is neither a class nor the ignore index. */
function counts(op: string, targets: NumArray, r: number, V: number, ignore: number): boolean {
  const t = targets[r]!;
  if (t === ignore) return false;
  if (!Number.isInteger(t) || t < 0 || t >= V) {
    throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected a target in [0, ${V}) or the ignore index ${ignore} for row ${r} but received ${t}`, { details: { row: r, target: t } });
  }
  return true;
}

/** max and log(sum(exp(row - max))) of row r. */
function rowStats(logits: NumArray, r: number, V: number): { max: number; lse: number } {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[r * V + v]!);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[r * V + v]! - max);
  return { max, lse: max + Math.log(sum) };
}

/** The targets index the logits' last dimension; ignoreIndex is allowed too. */
const TARGETS: IndexInput = { input: 1, bound: ([logits]) => logits!.shape.at(-1)!, allow: (attrs) => attrs.ignoreIndex as number };

export const crossEntropyOp = defineOp({
  name: 'cross_entropy',
  doc: 'loss = mean over non-ignored rows of logsumexp(logits[r]) - logits[r, targets[r]]',
  inputs: ['logits', 'targets'],
  outputs: ['loss'],
  attrs: { ignoreIndex: { kind: 'int', default: -1 } },
  indexInputs: [TARGETS],
  infer: ([logits, targets]) => {
    check('cross_entropy', logits!, targets!);
    return [{ shape: [1], dtype: 'f32' }];
  },
  reference: ({ inputs: [logits, targets], outputs: [loss], inTypes, attrs }) => {
    const [N, V] = inTypes[0]!.shape as [number, number];
    const ignore = attrs.ignoreIndex as number;
    let total = 0;
    let count = 0;
    for (let r = 0; r < N; r++) {
      if (!counts('cross_entropy', targets!, r, V, ignore)) continue;
      total += rowStats(logits!, r, V).lse - logits![r * V + targets![r]!]!;
      count++;
    }
    loss![0] = count === 0 ? 0 : total / count;
  },
  flops: ([logits]) => 4 * numel(logits!.shape),
  gradient: ({ inputs: [logits, targets], grads: [g], attrs }) => [crossEntropyBackward(logits!, targets!, g!, attrs.ignoreIndex as number), null],
});

export const crossEntropyBackwardOp = defineOp({
  name: 'cross_entropy_backward',
  doc: 'dlogits = (softmax(logits) - onehot(targets)) * g / count, zero rows where ignored',
  inputs: ['logits', 'targets', 'g'],
  outputs: ['dlogits'],
  attrs: { ignoreIndex: { kind: 'int', default: -1 } },
  indexInputs: [TARGETS],
  inplace: [[0, 0]],
  infer: ([logits, targets, g]) => {
    const dtype = check('cross_entropy_backward', logits!, targets!);
    expectDtype('cross_entropy_backward', 'g', g!, ['f32']);
    if (!sameShape(g!.shape, [1])) shapeError('cross_entropy_backward', `Expected f32[1] for input 'g' but received ${shapeStr(g!)}`);
    return [{ shape: logits!.shape, dtype }];
  },
  reference: ({ inputs: [logits, targets, g], outputs: [dlogits], inTypes, attrs }) => {
    const [N, V] = inTypes[0]!.shape as [number, number];
    const ignore = attrs.ignoreIndex as number;
    let count = 0;
    for (let r = 0; r < N; r++) if (counts('cross_entropy_backward', targets!, r, V, ignore)) count++;
    const scale = count === 0 ? 0 : g![0]! / count;
    for (let r = 0; r < N; r++) {
      if (targets![r] === ignore) {
        for (let v = 0; v < V; v++) dlogits![r * V + v] = 0;
        continue;
      }
      const { lse } = rowStats(logits!, r, V);
      for (let v = 0; v < V; v++) {
        const p = Math.exp(logits![r * V + v]! - lse);
        dlogits![r * V + v] = (p - (v === targets![r] ? 1 : 0)) * scale;
      }
    }
  },
  flops: ([logits]) => 5 * numel(logits!.shape),
});

export const crossEntropyWithGradOp = defineOp({
  name: 'cross_entropy_with_grad',
  doc: 'cross_entropy and cross_entropy_backward of the same logits in one pass: loss and dlogits',
  inputs: ['logits', 'targets', 'g'],
  outputs: ['loss', 'dlogits'],
  attrs: { ignoreIndex: { kind: 'int', default: -1 } },
  indexInputs: [TARGETS],
  inplace: [[1, 0]],
  nonDifferentiable: true,
  infer: ([logits, targets, g]) => {
    const dtype = check('cross_entropy_with_grad', logits!, targets!);
    expectDtype('cross_entropy_with_grad', 'g', g!, ['f32']);
    if (!sameShape(g!.shape, [1])) shapeError('cross_entropy_with_grad', `Expected f32[1] for input 'g' but received ${shapeStr(g!)}`);
    return [{ shape: [1], dtype: 'f32' }, { shape: logits!.shape, dtype }];
  },
  reference: ({ inputs: [logits, targets, g], outputs: [loss, dlogits], inTypes, outTypes, attrs }) => {
    // The loss first: in place, the backward's reference then overwrites each row after reading it.
    crossEntropyOp.reference({ inputs: [logits!, targets!], outputs: [loss!], inTypes: inTypes.slice(0, 2), outTypes: [outTypes[0]!], attrs });
    crossEntropyBackwardOp.reference({ inputs: [logits!, targets!, g!], outputs: [dlogits!], inTypes, outTypes: [outTypes[1]!], attrs });
  },
  flops: ([logits]) => 9 * numel(logits!.shape),
});

export function crossEntropy(logits: Sym, targets: Sym, ignoreIndex = -1): Sym {
  return builderOf(logits, 'logits of crossEntropy').op1('cross_entropy', [logits, targets], { ignoreIndex });
}

export function crossEntropyBackward(logits: Sym, targets: Sym, g: Sym, ignoreIndex = -1): Sym {
  return builderOf(logits, 'logits of crossEntropyBackward').op1('cross_entropy_backward', [logits, targets, g], { ignoreIndex });
}
