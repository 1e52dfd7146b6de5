/**
 * CUDA candidates of the 'nn' op family (native/ops/nn/, whose files' headers document each entry
 * point's signature: stream, dtype code(s), sizes, attributes, then each tensor as (base, offset)).
 *
 * Storage: every float tensor of a call in one of f32 / bf16 / f16 (FP32 arithmetic, rounded to
 * nearest even on store), the statistics outputs (mean, rstd) in that storage too, indices i32.
 * Exceptions: cross_entropy_backward's g may be any float storage; adamw keeps param, m, v and its
 * outputs in f32 while grad, lr and step may be any float storage.
 *
 * Bad ids / targets / indices are found on the device: the kernel skips the row and records the
 * value in a device error word, and nothing synchronises, so the launches can be captured in a
 * CUDA graph. `checkIndicesAfter` then calls the native opsErrorCheck(stream), which synchronises the
 * stream and throws INVALID_ARGUMENT naming the op and the value; a call with `checkIndices: false`
 * (graph capture, or a caller that checks later itself) skips that, and any error stays recorded
 * until the next check. adamw records a step < 1 the same way but never checks by itself (it runs
 * once per parameter), so the next check reports it.
 */
import type { KernelParams } from '../op.js';
import { numel, type ValueType } from '../types.js';
import { DTYPE_CODE, at, floatStorage, registerCuda, type CudaCall, type NativeOps } from './kernels.js';

/** A kernel call that may opt out of the synchronising index check. */
export type CheckedCudaCall = CudaCall & { checkIndices?: boolean };

/** After an index-taking kernel: synchronise and throw INVALID_ARGUMENT for a recorded bad index. */
export function checkIndicesAfter(call: CudaCall, ops: NativeOps): void {
  if ((call as CheckedCudaCall).checkIndices !== false) ops.opsErrorCheck!(call.stream);
}

export const code = (t: ValueType): number => DTYPE_CODE[t.dtype]!;

const I32_MAX = 2 ** 31 - 1;

/**
 * supports() for kernels that take every float tensor in one storage dtype: floatStorage, then the
 * float tensors other than the `except` inputs all alike.
 */
export function oneFloatStorage(p: KernelParams, exceptInputs: readonly number[] = [], f32Outputs: readonly number[] = [], f32Inputs: readonly number[] = []): true | string {
  const base = floatStorage(p);
  if (base !== true) return base;
  // Statistics and losses are f32 whatever the storage of the rest (the ops' rules).
  for (const [list, types, what] of [[f32Outputs, p.outTypes, 'output'], [f32Inputs, p.inTypes, 'input']] as const) {
    for (const i of list) if (types[i]!.dtype !== 'f32') return `expects ${what} ${i} in f32, got ${types[i]!.dtype}`;
  }
  const floats = [...p.inTypes.filter((_, i) => !exceptInputs.includes(i) && !f32Inputs.includes(i)), ...p.outTypes.filter((_, i) => !f32Outputs.includes(i))].filter((t) => t.dtype !== 'i32');
  const first = floats[0]?.dtype;
  for (const t of floats) if (t.dtype !== first) return `expects its float tensors in one storage dtype, got ${first} and ${t.dtype}`;
  return true;
}

function rowLength(n: number, what: string): true | string {
  return n <= I32_MAX ? true : `${what} of ${n} elements is longer than 2^31 - 1`;
}

/** Norms of empty rows (D = 0: NaN statistics) are left to the reference. */
const nonEmptyRow = (D: number, what: string): true | string => (D > 0 ? true : `${what} of 0 elements`);

const both = (...checks: (true | string)[]): true | string => checks.find((c) => c !== true) ?? true;

/** [outer, n, inner] of a shape split around `axis` (negative counts from the end). */
function splitAxis(shape: readonly number[], axis: number): [number, number, number] {
  const a = axis < 0 ? axis + shape.length : axis;
  return [numel(shape.slice(0, a)), shape[a]!, numel(shape.slice(a + 1))];
}

const rowsAndD = (shape: readonly number[]): [number, number] => [numel(shape.slice(0, -1)), shape.at(-1)!];

registerCuda({
  op: 'softmax',
  name: 'softmax_cuda',
  supports: (p) => both(oneFloatStorage(p), rowLength(splitAxis(p.inTypes[0]!.shape, p.attrs.axis as number)[1], 'a softmax row')),
  run: (call, ops) => {
    const [outer, n, inner] = splitAxis(call.inTypes[0]!.shape, call.attrs.axis as number);
    ops.softmax!(call.stream, code(call.inTypes[0]!), outer, n, inner, ...at(call.inputs[0]!), ...at(call.outputs[0]!));
  },
});

registerCuda({
  op: 'softmax_backward',
  name: 'softmax_backward_cuda',
  supports: (p) => both(oneFloatStorage(p), rowLength(splitAxis(p.inTypes[1]!.shape, p.attrs.axis as number)[1], 'a softmax row')),
  run: (call, ops) => {
    const [outer, n, inner] = splitAxis(call.inTypes[1]!.shape, call.attrs.axis as number);
    ops.softmaxBackward!(call.stream, code(call.inTypes[0]!), outer, n, inner, ...at(call.inputs[0]!), ...at(call.inputs[1]!), ...at(call.outputs[0]!));
  },
});

registerCuda({
  op: 'layernorm',
  name: 'layernorm_cuda',
  supports: (p) => both(oneFloatStorage(p, [], [1, 2]), rowLength(p.inTypes[0]!.shape.at(-1)!, 'a layernorm row'), nonEmptyRow(p.inTypes[0]!.shape.at(-1)!, 'a layernorm row')),
  run: (call, ops) => {
    const [rows, D] = rowsAndD(call.inTypes[0]!.shape);
    const [x, w, b] = call.inputs;
    const [y, mean, rstd] = call.outputs;
    ops.layernorm!(call.stream, code(call.inTypes[0]!), rows, D, call.attrs.eps as number, ...at(x!), ...at(w!), ...at(b!), ...at(y!), ...at(mean!), ...at(rstd!));
  },
});

// add_layernorm (made by fusion): the layernorm kernel reading x and the residual, writing their sum.
registerCuda({
  op: 'add_layernorm',
  name: 'add_layernorm_cuda',
  needs: ['addLayernorm'],
  supports: (p) => {
    return both(oneFloatStorage(p, [], [2, 3]), rowLength(p.inTypes[0]!.shape.at(-1)!, 'a layernorm row'), nonEmptyRow(p.inTypes[0]!.shape.at(-1)!, 'a layernorm row'));
  },
  run: (call, ops) => {
    const [rows, D] = rowsAndD(call.inTypes[0]!.shape);
    const [x, r, w, b] = call.inputs;
    const [sum, y, mean, rstd] = call.outputs;
    ops.addLayernorm!(call.stream, code(call.inTypes[0]!), rows, D, call.attrs.eps as number, ...at(x!), ...at(r!), ...at(w!), ...at(b!), ...at(sum!), ...at(y!), ...at(mean!), ...at(rstd!));
  },
});

registerCuda({
  op: 'layernorm_backward',
  name: 'layernorm_backward_cuda',
  // D is also bounded by the 16 MiB partial-sum scratch: 2 * D floats per block.
  supports: (p) => both(oneFloatStorage(p, [], [], [3, 4]), p.inTypes[1]!.shape.at(-1)! <= 2 ** 21 ? true : 'a layernorm row longer than 2^21 elements'),
  run: (call, ops) => {
    const [rows, D] = rowsAndD(call.inTypes[1]!.shape);
    const [g, x, w, mean, rstd] = call.inputs;
    const [dx, dw, db] = call.outputs;
    ops.layernormBackward!(call.stream, code(call.inTypes[0]!), rows, D, ...at(g!), ...at(x!), ...at(w!), ...at(mean!), ...at(rstd!), ...at(dx!), ...at(dw!), ...at(db!));
  },
});

registerCuda({
  op: 'rmsnorm',
  name: 'rmsnorm_cuda',
  supports: (p) => both(oneFloatStorage(p, [], [1]), rowLength(p.inTypes[0]!.shape.at(-1)!, 'an rmsnorm row'), nonEmptyRow(p.inTypes[0]!.shape.at(-1)!, 'an rmsnorm row')),
  run: (call, ops) => {
    const [rows, D] = rowsAndD(call.inTypes[0]!.shape);
    const [x, w] = call.inputs;
    const [y, rstd] = call.outputs;
    ops.rmsnorm!(call.stream, code(call.inTypes[0]!), rows, D, call.attrs.eps as number, ...at(x!), ...at(w!), ...at(y!), ...at(rstd!));
  },
});

registerCuda({
  op: 'rmsnorm_backward',
  name: 'rmsnorm_backward_cuda',
  supports: (p) => both(oneFloatStorage(p, [], [], [3]), p.inTypes[1]!.shape.at(-1)! <= 2 ** 22 ? true : 'an rmsnorm row longer than 2^22 elements'),
  run: (call, ops) => {
    const [rows, D] = rowsAndD(call.inTypes[1]!.shape);
    const [g, x, w, rstd] = call.inputs;
    const [dx, dw] = call.outputs;
    ops.rmsnormBackward!(call.stream, code(call.inTypes[0]!), rows, D, ...at(g!), ...at(x!), ...at(w!), ...at(rstd!), ...at(dx!), ...at(dw!));
  },
});

registerCuda({
  op: 'embedding',
  name: 'embedding_cuda',
  supports: (p) => both(oneFloatStorage(p), rowLength(p.inTypes[0]!.shape[1]!, 'an embedding row')),
  run: (call, ops) => {
    const [V, D] = call.inTypes[0]!.shape as [number, number];
    const P = numel(call.inTypes[1]!.shape);
    ops.embedding!(call.stream, code(call.inTypes[0]!), P, V, D, ...at(call.inputs[0]!), ...at(call.inputs[1]!), ...at(call.outputs[0]!));
    checkIndicesAfter(call, ops);
  },
});

registerCuda({
  op: 'embedding_backward',
  name: 'embedding_backward_cuda',
  supports: (p) => both(oneFloatStorage(p), rowLength(p.inTypes[1]!.shape.at(-1)!, 'an embedding row')),
  run: (call, ops) => {
    const P = numel(call.inTypes[0]!.shape);
    const [V, D] = call.outTypes[0]!.shape as [number, number];
    ops.embeddingBackward!(call.stream, code(call.inTypes[1]!), P, V, D, ...at(call.inputs[0]!), ...at(call.inputs[1]!), ...at(call.outputs[0]!));
    checkIndicesAfter(call, ops);
  },
});

const ignoreOk = (p: KernelParams): true | string => {
  const ig = p.attrs.ignoreIndex as number;
  return Number.isInteger(ig) && Math.abs(ig) <= I32_MAX ? true : `an ignoreIndex outside the i32 range (${ig})`;
};

registerCuda({
  op: 'cross_entropy',
  name: 'cross_entropy_cuda',
  supports: (p) => both(oneFloatStorage(p, [], [0]), rowLength(p.inTypes[0]!.shape[1]!, 'a row of logits'), ignoreOk(p)),
  run: (call, ops) => {
    const [N, V] = call.inTypes[0]!.shape as [number, number];
    ops.crossEntropy!(call.stream, code(call.inTypes[0]!), N, V, call.attrs.ignoreIndex as number, ...at(call.inputs[0]!), ...at(call.inputs[1]!), ...at(call.outputs[0]!));
    checkIndicesAfter(call, ops);
  },
});

registerCuda({
  op: 'cross_entropy_backward',
  name: 'cross_entropy_backward_cuda',
  supports: (p) => both(oneFloatStorage(p, [2]), rowLength(p.inTypes[0]!.shape[1]!, 'a row of logits'), ignoreOk(p)),
  run: (call, ops) => {
    const [N, V] = call.inTypes[0]!.shape as [number, number];
    const [logits, targets, g] = call.inputs;
    ops.crossEntropyBackward!(
      call.stream,
      code(call.inTypes[0]!),
      code(call.inTypes[2]!),
      N,
      V,
      call.attrs.ignoreIndex as number,
      ...at(logits!),
      ...at(targets!),
      ...at(g!),
      ...at(call.outputs[0]!),
    );
    checkIndicesAfter(call, ops);
  },
});

registerCuda({
  op: 'causal_mask',
  name: 'causal_mask_cuda',
  supports: (p) => oneFloatStorage(p),
  run: (call, ops) => {
    const shape = call.inTypes[0]!.shape;
    const [T, S] = shape.slice(-2) as [number, number];
    ops.causalMask!(call.stream, code(call.inTypes[0]!), numel(shape.slice(0, -2)), T, S, call.attrs.value as number, ...at(call.inputs[0]!), ...at(call.outputs[0]!));
  },
});

registerCuda({
  op: 'adamw',
  name: 'adamw_cuda',
  supports: (p) => {
    const base = floatStorage(p);
    if (base !== true) return base;
    const names = ['param', 'grad', 'm', 'v', 'lr', 'step'];
    for (const i of [0, 2, 3]) if (p.inTypes[i]!.dtype !== 'f32') return `keeps ${names[i]} in f32 (master weights and moments), got ${p.inTypes[i]!.dtype}`;
    for (const t of p.outTypes) if (t.dtype !== 'f32') return `writes param, m and v in f32, got ${t.dtype}`;
    return true;
  },
  run: (call, ops) => {
    const [param, grad, m, v, lr, step] = call.inputs;
    const [p2, m2, v2] = call.outputs;
    const a = call.attrs;
    ops.adamw!(
      call.stream,
      code(call.inTypes[1]!),
      code(call.inTypes[4]!),
      code(call.inTypes[5]!),
      numel(call.inTypes[0]!.shape),
      a.beta1 as number,
      a.beta2 as number,
      a.eps as number,
      a.weightDecay as number,
      ...at(param!),
      ...at(grad!),
      ...at(m!),
      ...at(v!),
      ...at(lr!),
      ...at(step!),
      ...at(p2!),
      ...at(m2!),
      ...at(v2!),
    );
  },
});

// adamw_multi (made by fusion): every parameter in a few launches (32 tensors per launch, passed
// by value as kernel parameters, so a captured graph holds them). One gradient dtype per node (the
// fusion groups by it).
registerCuda({
  op: 'adamw_multi',
  name: 'adamw_multi_cuda',
  needs: ['adamwMulti'],
  supports: (p) => {
    const base = floatStorage(p);
    if (base !== true) return base;
    const grad = p.inTypes[3]!.dtype;
    for (let k = 2; k < p.inTypes.length; k += 4) {
      for (const j of [0, 2, 3]) if (p.inTypes[k + j]!.dtype !== 'f32') return `keeps param, m and v in f32 (master weights and moments), got ${p.inTypes[k + j]!.dtype}`;
      if (p.inTypes[k + 1]!.dtype !== grad) return `takes one gradient dtype per node, got ${grad} and ${p.inTypes[k + 1]!.dtype}`;
    }
    for (const t of p.outTypes) if (t.dtype !== 'f32') return `writes param, m and v in f32, got ${t.dtype}`;
    return true;
  },
  run: (call, ops) => {
    const a = call.attrs;
    const tensors: number[] = [];
    for (let k = 0; 2 + 4 * k < call.inputs.length; k++) {
      const [param, grad, m, v] = call.inputs.slice(2 + 4 * k, 6 + 4 * k);
      const [p2, m2, v2] = call.outputs.slice(3 * k, 3 * k + 3);
      tensors.push(numel(call.inTypes[2 + 4 * k]!.shape), ...at(param!), ...at(grad!), ...at(m!), ...at(v!), ...at(p2!), ...at(m2!), ...at(v2!));
    }
    ops.adamwMulti!(
      call.stream,
      code(call.inTypes[3]!),
      code(call.inTypes[0]!),
      code(call.inTypes[1]!),
      (call.inputs.length - 2) / 4,
      a.beta1 as number,
      a.beta2 as number,
      a.eps as number,
      a.weightDecay as number,
      ...at(call.inputs[0]!),
      ...at(call.inputs[1]!),
      ...tensors,
    );
  },
});

// clip_coef: one thread turns the gradients' sum of squares into the clipping factor and the norm.
registerCuda({
  op: 'clip_coef',
  name: 'clip_coef_cuda',
  needs: ['clipCoef'],
  supports: floatStorage,
  run: (call, ops) => {
    ops.clipCoef!(call.stream, ...at(call.inputs[0]!), ...at(call.outputs[0]!), ...at(call.outputs[1]!), call.attrs.maxNorm as number);
  },
});
