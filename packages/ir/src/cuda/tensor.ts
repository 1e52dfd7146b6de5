/**
 * CUDA candidates of the 'tensor' op family (native/ops/tensor/). Each candidate calls one native
 * entry point through its typed signature, generated from the ABI table
 * (packages/kernels-native/abi/table.mjs), where every signature is declared once.
 *
 * Computing kernels take one float storage dtype for every tensor (f32, bf16 or f16; FP32
 * arithmetic, one rounding on store); the data movers (reshape, broadcast_to, transpose, slice,
 * concat) also move i32. Shapes travel as numbers, so ops that pass shapes handle rank <= 8.
 */
import type { DTypeName } from '@deepwell/core';
import { FLOAT_STORAGE, dtypeCode as code, floatStorage, registerCuda, type CudaCall, type DevArg, type NativeEntries } from '@deepwell/kernels-native';
import { axisOf, type KernelParams } from '../op.js';
import { reduction } from '../ops/tensor/sum.js';
import { numel, sameShape, shapeStr, type ValueType } from '../types.js';

/** The most dimensions a shape passed to a native entry point may have. */
export const CUDA_MAX_RANK = 8;

const MOVABLE: readonly DTypeName[] = ['f32', 'bf16', 'f16', 'i32'];

type Check = (p: KernelParams) => true | string;
type Call = CudaCall<KernelParams>;
/** A node's tensors, less the f32[1] amax output of one asked for it (ops/amax.ts). */
const tensors = (p: KernelParams): ValueType[] => [...p.inTypes, ...(p.attrs.amax === true ? p.outTypes.slice(0, -1) : p.outTypes)];

/** Every tensor in one float storage dtype (f32, bf16 or f16). */
const oneFloat: Check = (p) => {
  const fs = floatStorage(p);
  if (fs !== true) return fs;
  const all = tensors(p);
  const bad = all.find((t) => !FLOAT_STORAGE.includes(t.dtype));
  if (bad) return `computes on float storage (f32, bf16, f16), not ${bad.dtype}`;
  const other = all.find((t) => t.dtype !== all[0]!.dtype);
  return other ? `needs one storage dtype for every tensor, not ${all[0]!.dtype} and ${other.dtype}` : true;
};

/** Inputs in one float storage dtype, outputs in one float storage dtype (cast_multi's). */
const oneFloatIn: Check = (p) => {
  for (const ts of [p.inTypes, p.outTypes]) {
    const bad = ts.find((t) => !FLOAT_STORAGE.includes(t.dtype));
    if (bad) return `computes on float storage (f32, bf16, f16), not ${bad.dtype}`;
    const other = ts.find((t) => t.dtype !== ts[0]!.dtype);
    if (other) return `needs one storage dtype for its inputs and one for its outputs, not ${ts[0]!.dtype} and ${other.dtype}`;
  }
  return true;
};

/** Every tensor in one dtype the data-movement kernels move (f32, bf16, f16, i32). */
const oneMovable: Check = (p) => {
  const all = tensors(p);
  const bad = all.find((t) => !MOVABLE.includes(t.dtype));
  if (bad) return `no CUDA kernel for ${bad.dtype} storage`;
  const other = all.find((t) => t.dtype !== all[0]!.dtype);
  return other ? `needs one dtype for every tensor, not ${all[0]!.dtype} and ${other.dtype}` : true;
};

/** Every tensor of rank <= 8 (shapes are passed as numbers). */
const smallRank: Check = (p) => {
  const big = tensors(p).find((t) => t.shape.length > CUDA_MAX_RANK);
  return big ? `handles rank <= ${CUDA_MAX_RANK}, not rank ${big.shape.length} (${shapeStr(big)})` : true;
};

const all = (...checks: Check[]): Check => (p) => {
  for (const c of checks) {
    const v = c(p);
    if (v !== true) return v;
  }
  return true;
};

/** Registers `<op>_cuda`, calling the native entry point `entry`. */
function cuda<E extends keyof NativeEntries>(
  op: string,
  entry: E,
  supports: Check,
  run: (c: Call, fn: NativeEntries[E]) => void,
  workspace?: (p: KernelParams) => number,
): void {
  registerCuda<KernelParams>({
    op,
    name: `${op}_cuda`,
    needs: [entry],
    supports,
    workspace,
    run: (c, entries) => run(c, entries[entry].bind(entries) as NativeEntries[E]),
  });
}

const input = (c: Call, i: number): DevArg => c.inputs[i]!;
const output = (c: Call): DevArg => c.outputs[0]!;
const inType = (c: Pick<KernelParams, 'inTypes'>, i = 0): ValueType => c.inTypes[i]!;
const outType = (c: Pick<KernelParams, 'outTypes'>): ValueType => c.outTypes[0]!;
/** The amax output (the last) of an op asked for it (ops/amax.ts), else null. */
const amaxOut = (c: Call): DevArg | null => (c.attrs.amax === true ? c.outputs.at(-1)! : null);

/** `shape` right-aligned to `rank` with leading 1s. */
const padTo = (shape: readonly number[], rank: number): number[] => [...new Array<number>(rank - shape.length).fill(1), ...shape];

// ---- elementwise ------------------------------------------------------------------------------

cuda('fill', 'fill', oneFloat, (c, fn) => {
  const o = outType(c);
  fn(c.stream, code(o), numel(o.shape), c.attrs.value as number, output(c));
});

cuda('scale', 'scale', oneFloat, (c, fn) => {
  const x = inType(c);
  fn(c.stream, code(x), numel(x.shape), c.attrs.alpha as number, input(c, 0), output(c));
});

cuda('gelu', 'gelu', oneFloat, (c, fn) => {
  const x = inType(c);
  fn(c.stream, code(x), numel(x.shape), input(c, 0), output(c), amaxOut(c));
});

cuda('silu', 'silu', oneFloat, (c, fn) => {
  const x = inType(c);
  fn(c.stream, code(x), numel(x.shape), input(c, 0), output(c));
});

cuda('gelu_backward', 'geluBackward', oneFloat, (c, fn) => {
  const o = outType(c);
  fn(c.stream, code(o), numel(o.shape), input(c, 0), input(c, 1), output(c), amaxOut(c));
});

// (g, x) for silu_backward, (gate, up) for swiglu: the op's input order.
for (const [op, entry] of [['silu_backward', 'siluBackward'], ['swiglu', 'swiglu']] as const) {
  cuda(op, entry, oneFloat, (c, fn) => {
    const o = outType(c);
    fn(c.stream, code(o), numel(o.shape), input(c, 0), input(c, 1), output(c));
  });
}

cuda('bias_add', 'biasAdd', oneFloat, (c, fn) => {
  const x = inType(c);
  const cols = x.shape.at(-1)!;
  fn(c.stream, code(x), numel(x.shape.slice(0, -1)), cols, input(c, 0), input(c, 1), output(c));
});

/** With its amax (ops/amax.ts), add takes same-shape operands: the broadcasting kernels reduce none. */
const amaxSameShape: Check = (p) => (p.attrs.amax !== true || p.inTypes.every((t) => sameShape(t.shape, p.outTypes[0]!.shape)) ? true : 'computes the amax of an add of same-shape operands only');

cuda('add', 'add', all(oneFloat, smallRank, amaxSameShape), (c, fn) => {
  const o = outType(c);
  const r = o.shape.length;
  fn(c.stream, code(o), o.shape, padTo(inType(c, 0).shape, r), padTo(inType(c, 1).shape, r), input(c, 0), input(c, 1), output(c), amaxOut(c));
});

cuda('mul', 'mul', all(oneFloat, smallRank), (c, fn) => {
  const o = outType(c);
  const r = o.shape.length;
  fn(c.stream, code(o), o.shape, padTo(inType(c, 0).shape, r), padTo(inType(c, 1).shape, r), input(c, 0), input(c, 1), output(c));
});

// ---- data movement ----------------------------------------------------------------------------

cuda('reshape', 'reshape', oneMovable, (c, fn) => {
  const x = inType(c);
  fn(c.stream, code(x), numel(x.shape), input(c, 0), output(c));
});

cuda('broadcast_to', 'broadcastTo', all(oneMovable, smallRank), (c, fn) => {
  const o = outType(c);
  const r = o.shape.length;
  fn(c.stream, code(o), o.shape, padTo(inType(c).shape, r), input(c, 0), output(c));
});

cuda('transpose', 'transpose', all(oneMovable, smallRank), (c, fn) => {
  const x = inType(c);
  fn(c.stream, code(x), x.shape, c.attrs.perm as readonly number[], input(c, 0), output(c));
});

/** [outer, size, inner] around `axis` of `shape`. */
function around(shape: readonly number[], axis: number): [number, number, number] {
  return [numel(shape.slice(0, axis)), shape[axis]!, numel(shape.slice(axis + 1))];
}

// slice and concat pass [outer, size, inner] views, so they have no rank limit.
cuda('slice', 'slice', oneMovable, (c, fn) => {
  const x = inType(c);
  const axis = axisOf('slice', c.attrs.axis as number, x.shape.length);
  const start = c.attrs.start as number;
  const end = c.attrs.end as number;
  fn(c.stream, code(x), ...around(x.shape, axis), start, end - start, input(c, 0), output(c));
});

cuda('slice_backward', 'sliceBackward', oneFloat, (c, fn) => {
  const g = inType(c);
  const o = outType(c);
  const axis = axisOf('slice_backward', c.attrs.axis as number, o.shape.length);
  fn(c.stream, code(o), ...around(o.shape, axis), c.attrs.start as number, g.shape[axis]!, input(c, 0), output(c));
});

cuda('concat', 'concat', oneMovable, (c, fn) => {
  const o = outType(c);
  const axis = axisOf('concat', c.attrs.axis as number, o.shape.length);
  const [outer, , inner] = around(o.shape, axis);
  const sizes = c.inTypes.map((t) => t.shape[axis]!);
  fn(c.stream, code(o), outer, inner, sizes, c.inputs, output(c));
});

cuda('cast', 'cast', (p) => {
  const bad = tensors(p).find((t) => !MOVABLE.includes(t.dtype));
  return bad ? `no CUDA kernel for ${bad.dtype} storage` : true;
}, (c, fn) => {
  const x = inType(c);
  fn(c.stream, code(x), code(outType(c)), numel(x.shape), input(c, 0), output(c), amaxOut(c));
});

// cast_multi (made by fusion from the weight casts): up to 128 tensors per launch, by value; one
// input dtype and one output dtype per node (the op's rule).
cuda('cast_multi', 'castMulti', oneFloatIn, (c, fn) => {
  const tensors = c.inputs.map((x, k) => ({ n: numel(c.inTypes[k]!.shape), x: x!, out: c.outputs[k]! }));
  fn(c.stream, code(c.inTypes[0]!), code(c.outTypes[0]!), tensors);
});

// ---- reductions -------------------------------------------------------------------------------

/**
 * The reductions' workspace. Two modes of native/ops/tensor/reduce.cu cut long reductions into
 * slices whose partial results go to the workspace, one 16-byte slot per slice and output, and a
 * second kernel combines them in a fixed order:
 *   - split row mode: at most 64 outputs over at least 65536 elements each (a whole tensor summed),
 *     about 1024 slices in all; declared as that bound, 1024 + 63 slots;
 *   - split column mode: the innermost dimension kept (a bias gradient, dy summed over its rows)
 *     with fewer than 1024 blocks of 32 outputs and at least 2048 rows: S = min(ceil(1024 /
 *     blocks), ceil(rows / 1024)) slices when that is 2 or more, S · nOut slots;
 *   - column vector mode, before it, for sums (sum, mean, sum_to) over the rows of a row-major
 *     [rows, nOut] (every reduced dimension of size > 1 before every kept one), nOut a multiple of
 *     8, at least 2048 rows: S = min(ceil(2048 / ceil(nOut / 2048)), ceil(rows / 32)) slices when
 *     that is 2 to 65535, S · nOut f32 partials.
 * The rules mirror planReduce's, which launches from them.
 */
const SPLIT_MAX_OUTPUTS = 64;
const SPLIT_MIN_COUNT = 65536;
const SPLIT_SLOT_BYTES = 16;
const COL_SPLIT_MIN_COUNT = 2048;
export function reduceWorkspace(x: ValueType, keep: readonly number[], sum: boolean): number {
  const nOut = numel(keep);
  const count = numel(x.shape) / Math.max(1, nOut);
  const row = nOut <= SPLIT_MAX_OUTPUTS && count >= SPLIT_MIN_COUNT ? (1024 + SPLIT_MAX_OUTPUTS - 1) * SPLIT_SLOT_BYTES : 0;
  // Column mode: the innermost dimension of size > 1 is kept (keep is x's shape right-aligned).
  const inner = x.shape.map((d, i) => (d > 1 ? i : -1)).reduce((a, b) => Math.max(a, b), -1);
  const offset = x.shape.length - keep.length;
  const column = inner >= 0 && keep[inner - offset] !== 1;
  const order = x.shape.map((d, i) => (d <= 1 ? '' : i < offset || keep[i - offset] === 1 ? 'r' : 'k')).join('');
  if (sum && column && /^r+k+$/.test(order) && nOut % 8 === 0 && count >= COL_SPLIT_MIN_COUNT) {
    const S = Math.min(Math.ceil(2048 / Math.ceil(nOut / 2048)), Math.ceil(count / 32));
    if (S >= 2 && S <= 65535) return Math.max(row, S * nOut * 4);
  }
  let col = 0;
  if (column && nOut > 0 && count >= COL_SPLIT_MIN_COUNT) {
    const blocks = Math.ceil(nOut / 32);
    const S = Math.min(Math.ceil(1024 / blocks), Math.ceil(count / 1024));
    if (S >= 2) col = S * nOut * SPLIT_SLOT_BYTES;
  }
  return Math.max(row, col);
}

for (const [op, entry] of [['sum', 'sum'], ['mean', 'mean'], ['max', 'max']] as const) {
  const keepOf = (p: KernelParams) => reduction(op, inType(p), p.attrs).keepShape;
  cuda(
    op,
    entry,
    all(oneFloat, smallRank),
    (c, fn) => fn(c.stream, code(inType(c)), inType(c).shape, keepOf(c), input(c, 0), output(c), c.workspace),
    (p) => reduceWorkspace(inType(p), keepOf(p), op !== 'max'),
  );
}

const maxBackwardKeep = (p: KernelParams) => reduction('max_backward', inType(p, 1), p.attrs).keepShape;
cuda(
  'max_backward',
  'maxBackward',
  all(oneFloat, smallRank),
  (c, fn) => fn(c.stream, code(inType(c, 1)), inType(c, 1).shape, maxBackwardKeep(c), input(c, 0), input(c, 1), output(c), c.workspace),
  (p) => reduceWorkspace(inType(p, 1), maxBackwardKeep(p), false),
);

// sum_to reduces x to its target shape, right-aligned: the target is the keepdims shape.
const sumToKeep = (p: KernelParams) => padTo(outType(p).shape, inType(p).shape.length);
cuda(
  'sum_to',
  'sumTo',
  all(oneFloat, smallRank),
  (c, fn) => fn(c.stream, code(inType(c)), inType(c).shape, sumToKeep(c), input(c, 0), output(c), c.workspace),
  (p) => reduceWorkspace(inType(p), sumToKeep(p), true),
);
