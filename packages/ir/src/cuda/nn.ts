/**
 * CUDA candidates of the 'nn' op family (native/ops/nn/), calling the typed entry points generated
 * from the ABI table (packages/kernels-native/abi/table.mjs).
 *
 * Storage: every float tensor of a call in one of f32 / bf16 / f16 (FP32 arithmetic, rounded to
 * nearest even on store), the statistics outputs (mean, rstd) in that storage too, indices i32.
 * Exceptions: cross_entropy_backward's and cross_entropy_with_grad's g may be any float storage;
 * adamw keeps param, m, v, its gradScale and its outputs in f32 while grad, lr and step may be any
 * float storage; sum_squares takes each input in a float storage of its own.
 *
 * Bad ids / targets / indices are found on the device: the kernel skips the row and records the
 * value in a device error word, and nothing synchronises, so the launches can be captured in a
 * CUDA graph. `checkIndicesAfter` then calls the native opsErrorCheck(stream), which synchronises the
 * stream and throws INVALID_ARGUMENT naming the op and the value; a call with `checkIndices: false`
 * (graph capture, or a caller that checks later itself) skips that, and any error stays recorded
 * until the next check. adamw records a step < 1 the same way but never checks by itself (it runs
 * once per parameter), so the next check reports it.
 */
import { dtypeCode as code, floatStorage, registerCuda, type CudaCall, type NativeEntries } from '@deepwell/kernels-native';
import type { KernelParams } from '../op.js';
import { hasGradScale } from '../ops/optim/adamw_multi.js';
import { numel } from '../types.js';

export { code };

/** After an index-taking kernel: synchronise and throw INVALID_ARGUMENT for a recorded bad index. */
export function checkIndicesAfter(call: CudaCall<KernelParams>, ops: NativeEntries): void {
  if (call.checkIndices !== false) ops.opsErrorCheck(call.stream);
}

/**
 * Workspaces (placed by the compiled step's memory plan, see registerCuda): the norm backwards keep
 * per-row-group column partials of dweight (and dbias), `arrays` x D floats per group, at most
 * NORM_BWD_PARTIAL_FLOATS in all (the native grid never takes more groups than that fits, and never
 * more than there are rows); cross_entropy keeps a sum (f64) and a count (i64) per block of rows, at
 * most 4096 blocks; its backward one f32 scale.
 */
const NORM_BWD_PARTIAL_FLOATS = 4 << 20;
const normBwdWorkspace = (rows: number, D: number, arrays: number): number => 4 * Math.min(NORM_BWD_PARTIAL_FLOATS, rows * arrays * D);
const CE_MAX_PARTS = 4096;

/**
 * embedding_backward's workspace for P ids into V rows, as native/ops/nn/embedding.cu sizes it:
 * keys and positions in and out (4 × P ints), each row's run (2 × V ints), each 256-aligned, and
 * 1 MiB + 8 bytes a position for CUB's radix sort (which asks for less at these sizes). With less,
 * the kernel takes its slower scatter path.
 */
export function embeddingBackwardWorkspace(P: number, V: number): number {
  const a = (n: number) => Math.ceil(n / 256) * 256;
  return 4 * a(4 * P) + 2 * a(4 * V) + (1 << 20) + 8 * P;
}

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

registerCuda<KernelParams>({
  op: 'softmax',
  name: 'softmax_cuda',
  supports: (p) => both(oneFloatStorage(p), rowLength(splitAxis(p.inTypes[0]!.shape, p.attrs.axis as number)[1], 'a softmax row')),
  run: (call, ops) => {
    const [outer, n, inner] = splitAxis(call.inTypes[0]!.shape, call.attrs.axis as number);
    ops.softmax(call.stream, code(call.inTypes[0]!), outer, n, inner, call.inputs[0]!, call.outputs[0]!);
  },
});

registerCuda<KernelParams>({
  op: 'softmax_backward',
  name: 'softmax_backward_cuda',
  supports: (p) => both(oneFloatStorage(p), rowLength(splitAxis(p.inTypes[1]!.shape, p.attrs.axis as number)[1], 'a softmax row')),
  run: (call, ops) => {
    const [outer, n, inner] = splitAxis(call.inTypes[1]!.shape, call.attrs.axis as number);
    ops.softmaxBackward(call.stream, code(call.inTypes[0]!), outer, n, inner, call.inputs[0]!, call.inputs[1]!, call.outputs[0]!);
  },
});

registerCuda<KernelParams>({
  op: 'layernorm',
  name: 'layernorm_cuda',
  supports: (p) => both(oneFloatStorage(p, [], [1, 2]), rowLength(p.inTypes[0]!.shape.at(-1)!, 'a layernorm row'), nonEmptyRow(p.inTypes[0]!.shape.at(-1)!, 'a layernorm row')),
  run: (call, ops) => {
    const [rows, D] = rowsAndD(call.inTypes[0]!.shape);
    const [x, w, b] = call.inputs;
    const [y, mean, rstd] = call.outputs;
    ops.layernorm(call.stream, code(call.inTypes[0]!), rows, D, call.attrs.eps as number, x!, w!, b!, y!, mean!, rstd!);
  },
});

// add_layernorm (made by fusion): the layernorm kernel reading x and the residual, writing their sum.
registerCuda<KernelParams>({
  op: 'add_layernorm',
  name: 'add_layernorm_cuda',
  needs: ['addLayernorm'],
  supports: (p) => {
    // mean, rstd and (asked for) the amax are f32.
    return both(oneFloatStorage(p, [], p.attrs.amax === true ? [2, 3, 4] : [2, 3]), rowLength(p.inTypes[0]!.shape.at(-1)!, 'a layernorm row'), nonEmptyRow(p.inTypes[0]!.shape.at(-1)!, 'a layernorm row'));
  },
  run: (call, ops) => {
    const [rows, D] = rowsAndD(call.inTypes[0]!.shape);
    const [x, r, w, b] = call.inputs;
    const [sum, y, mean, rstd, amax] = call.outputs;
    ops.addLayernorm(call.stream, code(call.inTypes[0]!), rows, D, call.attrs.eps as number, x!, r!, w!, b!, sum!, y!, mean!, rstd!, call.attrs.amax === true ? amax! : null);
  },
});

registerCuda<KernelParams>({
  op: 'layernorm_backward',
  name: 'layernorm_backward_cuda',
  // D is also bounded by the 16 MiB of partial sums: 2 * D floats per row group.
  supports: (p) => both(oneFloatStorage(p, [], [], [3, 4]), p.inTypes[1]!.shape.at(-1)! <= 2 ** 21 ? true : 'a layernorm row longer than 2^21 elements'),
  workspace: (p) => normBwdWorkspace(...rowsAndD(p.inTypes[1]!.shape), 2),
  run: (call, ops) => {
    const [rows, D] = rowsAndD(call.inTypes[1]!.shape);
    const [g, x, w, mean, rstd, addend] = call.inputs;
    const [dx, dw, db] = call.outputs;
    ops.layernormBackward(call.stream, code(call.inTypes[0]!), rows, D, g!, x!, w!, mean!, rstd!, dx!, dw!, db!, addend ?? null, call.workspace);
  },
});

registerCuda<KernelParams>({
  op: 'rmsnorm',
  name: 'rmsnorm_cuda',
  supports: (p) => both(oneFloatStorage(p, [], [1]), rowLength(p.inTypes[0]!.shape.at(-1)!, 'an rmsnorm row'), nonEmptyRow(p.inTypes[0]!.shape.at(-1)!, 'an rmsnorm row')),
  run: (call, ops) => {
    const [rows, D] = rowsAndD(call.inTypes[0]!.shape);
    const [x, w] = call.inputs;
    const [y, rstd] = call.outputs;
    ops.rmsnorm(call.stream, code(call.inTypes[0]!), rows, D, call.attrs.eps as number, x!, w!, y!, rstd!);
  },
});

registerCuda<KernelParams>({
  op: 'rmsnorm_backward',
  name: 'rmsnorm_backward_cuda',
  supports: (p) => both(oneFloatStorage(p, [], [], [3]), p.inTypes[1]!.shape.at(-1)! <= 2 ** 22 ? true : 'an rmsnorm row longer than 2^22 elements'),
  workspace: (p) => normBwdWorkspace(...rowsAndD(p.inTypes[1]!.shape), 1),
  run: (call, ops) => {
    const [rows, D] = rowsAndD(call.inTypes[1]!.shape);
    const [g, x, w, rstd] = call.inputs;
    const [dx, dw] = call.outputs;
    ops.rmsnormBackward(call.stream, code(call.inTypes[0]!), rows, D, g!, x!, w!, rstd!, dx!, dw!, call.workspace);
  },
});

registerCuda<KernelParams>({
  op: 'embedding',
  name: 'embedding_cuda',
  supports: (p) => both(oneFloatStorage(p), rowLength(p.inTypes[0]!.shape[1]!, 'an embedding row')),
  run: (call, ops) => {
    const [V, D] = call.inTypes[0]!.shape as [number, number];
    const P = numel(call.inTypes[1]!.shape);
    ops.embedding(call.stream, code(call.inTypes[0]!), P, V, D, call.inputs[0]!, call.inputs[1]!, call.outputs[0]!);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'embedding_backward',
  name: 'embedding_backward_cuda',
  supports: (p) => both(oneFloatStorage(p), rowLength(p.inTypes[1]!.shape.at(-1)!, 'an embedding row')),
  workspace: (p) => embeddingBackwardWorkspace(numel(p.inTypes[0]!.shape), p.outTypes[0]!.shape[0]!),
  run: (call, ops) => {
    const P = numel(call.inTypes[0]!.shape);
    const [V, D] = call.outTypes[0]!.shape as [number, number];
    ops.embeddingBackward(call.stream, code(call.inTypes[1]!), P, V, D, call.inputs[0]!, call.inputs[1]!, call.outputs[0]!, call.workspace);
    checkIndicesAfter(call, ops);
  },
});

const ignoreOk = (p: KernelParams): true | string => {
  const ig = p.attrs.ignoreIndex as number;
  return Number.isInteger(ig) && Math.abs(ig) <= I32_MAX ? true : `an ignoreIndex outside the i32 range (${ig})`;
};

registerCuda<KernelParams>({
  op: 'cross_entropy',
  name: 'cross_entropy_cuda',
  supports: (p) => both(oneFloatStorage(p, [], [0]), rowLength(p.inTypes[0]!.shape[1]!, 'a row of logits'), ignoreOk(p)),
  workspace: (p) => 16 * Math.max(1, Math.min(CE_MAX_PARTS, p.inTypes[0]!.shape[0]!)),
  run: (call, ops) => {
    const [N, V] = call.inTypes[0]!.shape as [number, number];
    ops.crossEntropy(call.stream, code(call.inTypes[0]!), N, V, call.attrs.ignoreIndex as number, call.inputs[0]!, call.inputs[1]!, call.outputs[0]!, call.workspace);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'cross_entropy_backward',
  name: 'cross_entropy_backward_cuda',
  supports: (p) => both(oneFloatStorage(p, [2]), rowLength(p.inTypes[0]!.shape[1]!, 'a row of logits'), ignoreOk(p)),
  workspace: () => 4,
  run: (call, ops) => {
    const [N, V] = call.inTypes[0]!.shape as [number, number];
    const [logits, targets, g] = call.inputs;
    ops.crossEntropyBackward(
      call.stream,
      code(call.inTypes[0]!),
      code(call.inTypes[2]!),
      N,
      V,
      call.attrs.ignoreIndex as number,
      logits!,
      targets!,
      g!,
      call.outputs[0]!,
      call.workspace,
    );
    checkIndicesAfter(call, ops);
  },
});

// Both candidates of cross_entropy_with_grad take the same calls and the same workspace.
const ceWithGradSupports = (p: KernelParams) => both(oneFloatStorage(p, [2], [0]), rowLength(p.inTypes[0]!.shape[1]!, 'a row of logits'), ignoreOk(p));
const ceWithGradWorkspace = (p: KernelParams) => 16 * Math.max(1, Math.min(CE_MAX_PARTS, p.inTypes[0]!.shape[0]!)) + 4;

// The loss and dlogits from one read of the logits (the fuse-cross-entropy pass's op). Workspace:
// the loss's per-block partials (16 bytes a block, min(N, 4096) blocks) and the gradient's scale.
registerCuda<KernelParams>({
  op: 'cross_entropy_with_grad',
  name: 'cross_entropy_with_grad_cuda',
  needs: ['crossEntropyWithGrad'],
  supports: ceWithGradSupports,
  workspace: ceWithGradWorkspace,
  run: (call, ops) => {
    const [N, V] = call.inTypes[0]!.shape as [number, number];
    const [logits, targets, g] = call.inputs;
    const [loss, dlogits] = call.outputs;
    ops.crossEntropyWithGrad(call.stream, code(call.inTypes[0]!), code(call.inTypes[2]!), N, V, call.attrs.ignoreIndex as number, logits!, targets!, g!, loss!, dlogits!, call.workspace);
    checkIndicesAfter(call, ops);
  },
});

// The two kernels in turn, where the addon has no crossEntropyWithGrad (an older build): the loss
// first (it reads the logits), then dlogits (in place too). The same workspace serves both, one
// after the other on the stream.
registerCuda<KernelParams>({
  op: 'cross_entropy_with_grad',
  name: 'cross_entropy_with_grad_unfused',
  priority: 50,
  supports: ceWithGradSupports,
  workspace: ceWithGradWorkspace,
  run: (call, ops) => {
    const [N, V] = call.inTypes[0]!.shape as [number, number];
    const [logits, targets, g] = call.inputs;
    const [loss, dlogits] = call.outputs;
    const dt = code(call.inTypes[0]!);
    const ignore = call.attrs.ignoreIndex as number;
    ops.crossEntropy(call.stream, dt, N, V, ignore, logits!, targets!, loss!, call.workspace);
    ops.crossEntropyBackward(call.stream, dt, code(call.inTypes[2]!), N, V, ignore, logits!, targets!, g!, dlogits!, call.workspace);
    checkIndicesAfter(call, ops);
  },
});

registerCuda<KernelParams>({
  op: 'causal_mask',
  name: 'causal_mask_cuda',
  supports: (p) => oneFloatStorage(p),
  run: (call, ops) => {
    const shape = call.inTypes[0]!.shape;
    const [T, S] = shape.slice(-2) as [number, number];
    ops.causalMask(call.stream, code(call.inTypes[0]!), numel(shape.slice(0, -2)), T, S, call.attrs.value as number, call.inputs[0]!, call.outputs[0]!);
  },
});

registerCuda<KernelParams>({
  op: 'adamw',
  name: 'adamw_cuda',
  supports: (p) => {
    const base = floatStorage(p);
    if (base !== true) return base;
    const names = ['param', 'grad', 'm', 'v', 'lr', 'step'];
    for (const i of [0, 2, 3]) if (p.inTypes[i]!.dtype !== 'f32') return `keeps ${names[i]} in f32 (master weights and moments), got ${p.inTypes[i]!.dtype}`;
    if (p.inTypes[6] && p.inTypes[6].dtype !== 'f32') return `reads gradScale in f32, got ${p.inTypes[6].dtype}`;
    for (const t of p.outTypes) if (t.dtype !== 'f32') return `writes param, m and v in f32, got ${t.dtype}`;
    return true;
  },
  run: (call, ops) => {
    const [param, grad, m, v, lr, step, gradScale] = call.inputs;
    const [p2, m2, v2] = call.outputs;
    const a = call.attrs;
    ops.adamw(
      call.stream,
      code(call.inTypes[1]!),
      code(call.inTypes[4]!),
      code(call.inTypes[5]!),
      numel(call.inTypes[0]!.shape),
      a.beta1 as number,
      a.beta2 as number,
      a.eps as number,
      a.weightDecay as number,
      param!,
      grad!,
      m!,
      v!,
      lr!,
      step!,
      p2!,
      m2!,
      v2!,
      gradScale ?? null,
    );
  },
});

// adamw_multi (made by fusion): every parameter in a few launches (32 tensors per launch, passed
// by value as kernel parameters, so a captured graph holds them). One gradient dtype per node (the
// fusion groups by it); the optional last input, gradScale (f32[1]), is shared by every tensor.
registerCuda<KernelParams>({
  op: 'adamw_multi',
  name: 'adamw_multi_cuda',
  needs: ['adamwMulti'],
  supports: (p) => {
    const base = floatStorage(p);
    if (base !== true) return base;
    const grad = p.inTypes[3]!.dtype;
    const scaled = hasGradScale(p.inTypes.length);
    if (scaled && p.inTypes.at(-1)!.dtype !== 'f32') return `reads gradScale in f32, got ${p.inTypes.at(-1)!.dtype}`;
    for (let k = 2; k + 3 < p.inTypes.length; k += 4) {
      for (const j of [0, 2, 3]) if (p.inTypes[k + j]!.dtype !== 'f32') return `keeps param, m and v in f32 (master weights and moments), got ${p.inTypes[k + j]!.dtype}`;
      if (p.inTypes[k + 1]!.dtype !== grad) return `takes one gradient dtype per node, got ${grad} and ${p.inTypes[k + 1]!.dtype}`;
    }
    for (const t of p.outTypes) if (t.dtype !== 'f32') return `writes param, m and v in f32, got ${t.dtype}`;
    return true;
  },
  run: (call, ops) => {
    const a = call.attrs;
    const tensors = [];
    const scaled = hasGradScale(call.inputs.length);
    for (let k = 0; 2 + 4 * k + 3 < call.inputs.length; k++) {
      const [param, grad, m, v] = call.inputs.slice(2 + 4 * k, 6 + 4 * k);
      const [param2, m2, v2] = call.outputs.slice(3 * k, 3 * k + 3);
      tensors.push({ n: numel(call.inTypes[2 + 4 * k]!.shape), param: param!, grad: grad!, m: m!, v: v!, param2: param2!, m2: m2!, v2: v2! });
    }
    ops.adamwMulti(
      call.stream,
      code(call.inTypes[3]!),
      code(call.inTypes[0]!),
      code(call.inTypes[1]!),
      a.beta1 as number,
      a.beta2 as number,
      a.eps as number,
      a.weightDecay as number,
      call.inputs[0]!,
      call.inputs[1]!,
      scaled ? call.inputs.at(-1)! : null,
      tensors,
    );
  },
});

// clip_coef: one thread turns the gradients' sum of squares into the clipping factor and the norm.
registerCuda<KernelParams>({
  op: 'clip_coef',
  name: 'clip_coef_cuda',
  needs: ['clipCoef'],
  supports: floatStorage,
  run: (call, ops) => {
    ops.clipCoef(call.stream, call.inputs[0]!, call.outputs[0]!, call.outputs[1]!, call.attrs.maxNorm as number);
  },
});

/**
 * sum_squares: up to 128 tensors per launch (by value), one block per chunk of SUM_SQUARES_CHUNK
 * elements of one tensor, each block's f64 partial in the workspace (8 bytes per chunk: the
 * native side's kSsChunk, native/ops/nn/sum_squares.cu, must equal this), then one block adds them
 * in order. Each input in its own float storage.
 */
export const SUM_SQUARES_CHUNK = 16384;
/** The chunks of SUM_SQUARES_CHUNK elements over all inputs: one block and one f64 partial each. */
const sumSquaresChunks = (inTypes: readonly { shape: readonly number[] }[]): number => inTypes.reduce((a, t) => a + Math.ceil(numel(t.shape) / SUM_SQUARES_CHUNK), 0);
export const sumSquaresWorkspace = (inTypes: readonly { shape: readonly number[] }[]): number => Math.max(256, 8 * sumSquaresChunks(inTypes));

registerCuda<KernelParams>({
  op: 'sum_squares',
  name: 'sum_squares_cuda',
  needs: ['sumSquares'],
  supports: (p) => {
    const base = floatStorage(p);
    if (base !== true) return base;
    if (p.outTypes[0]!.dtype !== 'f32') return `writes the sum in f32, got ${p.outTypes[0]!.dtype}`;
    const chunks = sumSquaresChunks(p.inTypes);
    return chunks <= I32_MAX ? true : `takes at most 2^31 - 1 chunks of ${SUM_SQUARES_CHUNK} elements in all, got ${chunks}`;
  },
  workspace: (p) => sumSquaresWorkspace(p.inTypes),
  run: (call, ops) => {
    const tensors = call.inputs.map((x, k) => ({ dtype: code(call.inTypes[k]!), n: numel(call.inTypes[k]!.shape), x: x! }));
    ops.sumSquares(call.stream, call.outputs[0]!, call.workspace, tensors);
  },
});
