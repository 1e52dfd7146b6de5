// The dtype rules of the ops for mixed precision: every float input may be f32, bf16 or f16; the
// float inputs of one op share one dtype and its float outputs take it, except where a rule says
// otherwise (cross_entropy's loss, the norms' statistics, adamw's f32 state, one_hot's mask, fill's
// attribute). And the gradient rules still build consistent graphs through bf16 values.
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, type DTypeName } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  add,
  biasAdd,
  broadcastTo,
  cast,
  causalMask,
  concat,
  crossEntropy,
  differentiate,
  embedding,
  fill,
  gatherRows,
  gelu,
  interpret,
  layernorm,
  listOps,
  matmul,
  max,
  mean,
  mul,
  numel,
  reshape,
  rmsnorm,
  scale,
  scatterAddRows,
  silu,
  slice,
  softmax,
  sum,
  swiglu,
  topk,
  transpose,
  type AttrValue,
  type CastDType,
  type NumArray,
  type Sym,
} from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

type Spec = readonly [shape: number[], dtype: DTypeName];

/** The output dtypes `op` infers for inputs of the given types. */
function outDtypes(op: string, specs: readonly Spec[], attrs: Record<string, AttrValue> = {}): DTypeName[] {
  const b = new GraphBuilder();
  const syms = specs.map(([shape, dtype], i) => b.input(`x${i}`, shape, dtype));
  return b.op(op, syms, attrs).map((s) => s.dtype);
}

/** The error `op` throws for inputs of the given types. */
function errorFor(op: string, specs: readonly Spec[], attrs: Record<string, AttrValue> = {}) {
  return errorOf(() => outDtypes(op, specs, attrs));
}

// ---- output dtypes ----------------------------------------------------------------------------

/**
 * Every op with inputs of float dtype F (F for each float input, i32 for indices) and the output
 * dtypes it must infer. One entry per op, so a new op without a case fails the coverage check below.
 */
function cases(F: DTypeName): Record<string, { inputs: Spec[]; attrs?: Record<string, AttrValue>; want: DTypeName[] }> {
  const i32 = 'i32' as const;
  const f32 = 'f32' as const;
  return {
    fill: { inputs: [], attrs: { shape: [2, 3], value: 1, dtype: F }, want: [F] },
    add: { inputs: [[[2, 3], F], [[3], F]], want: [F] },
    mul: { inputs: [[[2, 1], F], [[1, 3], F]], want: [F] },
    bias_add: { inputs: [[[2, 3], F], [[3], F]], want: [F] },
    matmul: { inputs: [[[4, 2, 3], F], [[3, 5], F]], want: [F] },
    matmul_bias: { inputs: [[[4, 2, 3], F], [[3, 5], F], [[5], F]], want: [F] },
    matmul_bias_gelu: { inputs: [[[4, 2, 3], F], [[3, 5], F], [[5], F]], want: [F, F] },
    matmul_bgrad: { inputs: [[[4, 3], F], [[4, 5], F]], attrs: { transA: true }, want: [F, F] },
    matmul_dgelu: { inputs: [[[4, 2, 3], F], [[3, 5], F], [[4, 2, 5], F]], want: [F] },
    sum_to: { inputs: [[[2, 3], F]], attrs: { shape: [1, 3] }, want: [F] },
    broadcast_to: { inputs: [[[3], F]], attrs: { shape: [2, 3] }, want: [F] },
    reshape: { inputs: [[[2, 3], F]], attrs: { shape: [6] }, want: [F] },
    transpose: { inputs: [[[2, 3], F]], attrs: { perm: [1, 0] }, want: [F] },
    slice: { inputs: [[[2, 5], F]], attrs: { axis: 1, start: 1, end: 4 }, want: [F] },
    slice_backward: { inputs: [[[2, 3], F]], attrs: { shape: [2, 5], axis: 1, start: 1 }, want: [F] },
    concat: { inputs: [[[2, 1], F], [[2, 4], F]], attrs: { axis: 1 }, want: [F] },
    scale: { inputs: [[[2, 3], F]], attrs: { alpha: 0.5 }, want: [F] },
    gelu: { inputs: [[[2, 3], F]], want: [F] },
    gelu_backward: { inputs: [[[2, 3], F], [[2, 3], F]], want: [F] },
    silu: { inputs: [[[2, 3], F]], want: [F] },
    silu_backward: { inputs: [[[2, 3], F], [[2, 3], F]], want: [F] },
    swiglu: { inputs: [[[2, 3], F], [[2, 3], F]], want: [F] },
    sum: { inputs: [[[2, 3], F]], attrs: { axes: [1] }, want: [F] },
    mean: { inputs: [[[2, 3], F]], attrs: { axes: [0], keepdims: true }, want: [F] },
    max: { inputs: [[[2, 3], F]], want: [F] },
    max_backward: { inputs: [[[2], F], [[2, 3], F]], attrs: { axes: [1] }, want: [F] },
    cast: { inputs: [[[2, 3], F]], attrs: { dtype: 'f32' }, want: [f32] },
    softmax: { inputs: [[[2, 3], F]], want: [F] },
    softmax_backward: { inputs: [[[2, 3], F], [[2, 3], F]], want: [F] },
    causal_mask: { inputs: [[[3, 3], F]], want: [F] },
    // The statistics stay f32.
    layernorm: { inputs: [[[2, 3], F], [[3], F], [[3], F]], want: [F, f32, f32] },
    add_layernorm: { inputs: [[[2, 3], F], [[2, 3], F], [[3], F], [[3], F]], want: [F, F, f32, f32] },
    layernorm_backward: { inputs: [[[2, 3], F], [[2, 3], F], [[3], F], [[2], f32], [[2], f32]], want: [F, F, F] },
    rmsnorm: { inputs: [[[2, 3], F], [[3], F]], want: [F, f32] },
    rmsnorm_backward: { inputs: [[[2, 3], F], [[2, 3], F], [[3], F], [[2], f32]], want: [F, F] },
    embedding: { inputs: [[[7, 3], F], [[2, 4], i32]], want: [F] },
    embedding_backward: { inputs: [[[2, 4], i32], [[2, 4, 3], F]], attrs: { vocab: 7 }, want: [F] },
    // The loss is f32 whatever the logits; its gradient g is f32, dlogits take the logits' dtype.
    cross_entropy: { inputs: [[[4, 5], F], [[4], i32]], want: [f32] },
    cross_entropy_backward: { inputs: [[[4, 5], F], [[4], i32], [[1], f32]], want: [F] },
    cross_entropy_with_grad: { inputs: [[[4, 5], F], [[4], i32], [[1], f32]], want: [f32, F] },
    // Master weights and moments stay f32; the gradient may be narrow.
    adamw: { inputs: [[[2, 3], f32], [[2, 3], F], [[2, 3], f32], [[2, 3], f32], [[1], f32], [[1], f32]], want: [f32, f32, f32] },
    adamw_multi: { inputs: [[[1], f32], [[1], f32], [[2], f32], [[2], F], [[2], f32], [[2], f32], [[3], f32], [[3], F], [[3], f32], [[3], f32]], want: [f32, f32, f32, f32, f32, f32] },
    clip_coef: { inputs: [[[1], f32]], attrs: { maxNorm: 1 }, want: [f32, f32] },
    // The sum of squares is f32 whatever its inputs, which may each have a dtype of their own.
    sum_squares: { inputs: [[[2, 3], F], [[4], f32], [[1], F]], want: [f32] },
    // Each tensor keeps its dtype (a bucket may mix them).
    all_reduce: { inputs: [[[2, 3], F], [[4], f32]], attrs: { worldSize: 1 }, want: [F, f32] },
    // ZeRO-1's: flat tensors of one dtype, kept.
    reduce_scatter: { inputs: [[[6], F]], attrs: { worldSize: 1 }, want: [F] },
    all_gather: { inputs: [[[6], F]], attrs: { worldSize: 1 }, want: [F] },
    // One dtype in, the attribute's out.
    cast_multi: { inputs: [[[2, 3], F], [[4], F]], attrs: { dtype: 'f32' }, want: [f32, f32] },
    topk: { inputs: [[[4, 6], F]], attrs: { k: 2 }, want: [F, i32] },
    topk_backward: { inputs: [[[4, 2], F], [[4, 2], i32]], attrs: { size: 6 }, want: [F] },
    gather_rows: { inputs: [[[5, 3], F], [[4], i32]], want: [F] },
    scatter_add_rows: { inputs: [[[4, 3], F], [[4], i32]], attrs: { rows: 5 }, want: [F] },
    moe_plan: { inputs: [[[4, 2], i32]], attrs: { numExperts: 3, capacity: 2 }, want: [i32, i32] },
    moe_sort: { inputs: [[[4, 2], i32]], attrs: { numExperts: 3 }, want: [i32, i32, i32] },
    grouped_matmul: { inputs: [[[5, 3], F], [[2, 3, 4], F], [[3], i32]], want: [F] },
    grouped_matmul_wgrad: { inputs: [[[5, 3], F], [[5, 4], F], [[3], i32]], attrs: { experts: 2 }, want: [F] },
    grouped_matmul_gelu: { inputs: [[[5, 3], F], [[2, 3, 4], F], [[3], i32]], want: [F, F] },
    grouped_matmul_dgelu: { inputs: [[[5, 3], F], [[2, 3, 4], F], [[3], i32], [[5, 4], F]], want: [F] },
    grouped_matmul_swiglu: { inputs: [[[5, 3], F], [[2, 3, 4], F], [[2, 3, 4], F], [[3], i32]], want: [F, F, F] },
    // Routing: the token rows take x's dtype; routing weights may have their own (and the gradient
    // of the weights is f32); the router's probabilities and weights are f32 whatever the logits.
    moe_permute: { inputs: [[[4, 3], F], [[8], i32], [[4, 2], i32], [[4, 2], f32]], want: [F] },
    moe_unpermute: { inputs: [[[8, 3], F], [[8], i32], [[4, 2], i32], [[4, 2], f32]], want: [F] },
    moe_weight_grad: { inputs: [[[4, 3], F], [[8, 3], F], [[8], i32], [[4, 2], i32]], want: [f32] },
    moe_route: { inputs: [[[4, 6], F]], attrs: { k: 2 }, want: [f32, f32, i32] },
    moe_route_backward: { inputs: [[[4, 6], f32], [[4, 2], i32], [[4, 2], f32]], want: [f32] },
    moe_aux_loss: { inputs: [[[4, 6], F], [[4, 2], i32]], want: [f32, f32] },
    // A mask of integers: f32 whatever else the graph holds.
    one_hot: { inputs: [[[4], i32]], attrs: { classes: 3 }, want: [f32] },
  };
}

describe('output dtypes', () => {
  for (const F of ['bf16', 'f16', 'f32'] as const) {
    it(`follow the float inputs' dtype (${F}), with the exceptions`, () => {
      for (const [op, c] of Object.entries(cases(F))) {
        expect([op, outDtypes(op, c.inputs, c.attrs)]).toEqual([op, c.want]);
      }
    });
  }

  it('cover every op', () => {
    expect(listOps().filter((op) => !(op in cases('bf16')))).toEqual([]);
  });

  it('come from the Sym helpers too', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3], 'bf16');
    const v = b.input('v', [3], 'bf16');
    const w = b.input('w', [3, 4], 'bf16');
    const ids = b.input('ids', [2], 'i32');
    expect(add(x, v).dtype).toBe('bf16');
    expect(mul(x, x).dtype).toBe('bf16');
    expect(biasAdd(x, v).dtype).toBe('bf16');
    expect(matmul(x, w).dtype).toBe('bf16');
    expect(matmul(w, x, { transA: true, transB: true }).dtype).toBe('bf16');
    expect(gelu(x).dtype).toBe('bf16');
    expect(silu(x).dtype).toBe('bf16');
    expect(swiglu(x, x).dtype).toBe('bf16');
    expect(scale(x, 2).dtype).toBe('bf16');
    expect(softmax(x).dtype).toBe('bf16');
    expect(causalMask(x).dtype).toBe('bf16');
    expect(sum(x).type).toEqual({ shape: [], dtype: 'bf16' });
    expect(mean(x, [1]).dtype).toBe('bf16');
    expect(max(x, [0], true).dtype).toBe('bf16');
    expect(broadcastTo(v, [4, 3]).dtype).toBe('bf16');
    expect(transpose(x, [1, 0]).dtype).toBe('bf16');
    expect(slice(x, 1, 0, 2).dtype).toBe('bf16');
    expect(concat([x, x], 0).dtype).toBe('bf16');
    expect(layernorm(x, v, v).dtype).toBe('bf16');
    expect(rmsnorm(x, v).dtype).toBe('bf16');
    expect(embedding(w, ids).type).toEqual({ shape: [2, 4], dtype: 'bf16' });
    expect(crossEntropy(x, ids).type).toEqual({ shape: [1], dtype: 'f32' });
    const [values, indices] = topk(x, 2);
    expect([values!.dtype, indices!.dtype]).toEqual(['bf16', 'i32']);
    expect(gatherRows(x, ids).dtype).toBe('bf16');
    expect(scatterAddRows(x, ids, 5).dtype).toBe('bf16');
  });

  it('keep the integer paths of the data-movement ops', () => {
    const i32 = 'i32' as const;
    expect(outDtypes('reshape', [[[2, 3], i32]], { shape: [3, 2] })).toEqual([i32]);
    expect(outDtypes('transpose', [[[2, 3], i32]], { perm: [1, 0] })).toEqual([i32]);
    expect(outDtypes('slice', [[[2, 3], i32]], { axis: 0, start: 0, end: 1 })).toEqual([i32]);
    expect(outDtypes('concat', [[[2], i32], [[3], i32]], { axis: 0 })).toEqual([i32]);
    expect(outDtypes('cast', [[[2], 'bf16']], { dtype: 'i32' })).toEqual([i32]);
    expect(outDtypes('cast', [[[2], i32]], { dtype: 'f16' })).toEqual(['f16']);
  });
});

// ---- fill -------------------------------------------------------------------------------------

describe('fill', () => {
  it('takes an optional float dtype, f32 by default', () => {
    const b = new GraphBuilder();
    expect(fill(b, [2], 1).type).toEqual({ shape: [2], dtype: 'f32' });
    expect(fill(b, [2, 2], 0, 'bf16').type).toEqual({ shape: [2, 2], dtype: 'bf16' });
    expect(fill(b, [3], 0, 'f16').dtype).toBe('f16');
    expect(outDtypes('fill', [], { shape: [1], value: 0 })).toEqual(['f32']);
    b.output('z', fill(b, [2], 3, 'bf16'));
    b.graph.verify();
  });

  it('refuses a dtype that is not a float', () => {
    for (const dtype of ['i32', 'f64', 'f8e4m3']) {
      const e = errorFor('fill', [], { shape: [2], value: 0, dtype });
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(/'f32', 'bf16', 'f16'/);
    }
  });
});

// ---- mixed float dtypes -----------------------------------------------------------------------

describe('mixed float dtypes', () => {
  /** Ops whose float inputs share one dtype: [op, the inputs with one of them f32, attrs, the f32 input's name, the other's name]. */
  const mixed: [string, Spec[], Record<string, AttrValue>, string, string][] = [
    ['add', [[[2, 3], 'bf16'], [[3], 'f32']], {}, 'b', 'a'],
    ['mul', [[[2, 3], 'f32'], [[2, 3], 'bf16']], {}, 'a', 'b'],
    ['bias_add', [[[2, 3], 'bf16'], [[3], 'f32']], {}, 'bias', 'x'],
    ['matmul', [[[2, 3], 'bf16'], [[3, 4], 'f32']], {}, 'b', 'a'],
    ['matmul', [[[2, 3], 'f32'], [[3, 4], 'bf16']], {}, 'a', 'b'],
    ['swiglu', [[[2, 3], 'bf16'], [[2, 3], 'f32']], {}, 'up', 'gate'],
    ['gelu_backward', [[[2, 3], 'f32'], [[2, 3], 'bf16']], {}, 'g', 'x'],
    ['silu_backward', [[[2, 3], 'bf16'], [[2, 3], 'f32']], {}, 'x', 'g'],
    ['softmax_backward', [[[2, 3], 'f32'], [[2, 3], 'bf16']], {}, 'g', 'y'],
    ['max_backward', [[[2], 'bf16'], [[2, 3], 'f32']], { axes: [1] }, 'x', 'g'],
    ['layernorm', [[[2, 3], 'bf16'], [[3], 'f32'], [[3], 'bf16']], {}, 'weight', 'x'],
    ['layernorm', [[[2, 3], 'bf16'], [[3], 'bf16'], [[3], 'f32']], {}, 'bias', 'x'],
    ['layernorm_backward', [[[2, 3], 'f32'], [[2, 3], 'bf16'], [[3], 'bf16'], [[2], 'f32'], [[2], 'f32']], {}, 'g', 'x'],
    ['rmsnorm', [[[2, 3], 'bf16'], [[3], 'f32']], {}, 'weight', 'x'],
    ['rmsnorm_backward', [[[2, 3], 'bf16'], [[2, 3], 'bf16'], [[3], 'f32'], [[2], 'f32']], {}, 'weight', 'g'],
  ];

  it('are an INVALID_DTYPE error naming both inputs and both dtypes', () => {
    for (const [op, specs, attrs, f32Name, otherName] of mixed) {
      const e = errorFor(op, specs, attrs);
      expect([op, e.code]).toEqual([op, 'INVALID_DTYPE']);
      expect(e.message).toMatch(new RegExp(`\\(${op}\\): ${op}: Expected `));
      expect(e.message).toMatch(/Expected (bf16|f32) .*but received (bf16|f32)\[/);
      expect(e.message).toContain('bf16');
      expect(e.message).toContain('f32');
      expect(e.message).toContain(`'${f32Name}'`);
      expect(e.message).toContain(`'${otherName}'`);
    }
  });

  it('say which dtype was expected where', () => {
    const e = errorFor('add', [[[2, 3], 'bf16'], [[3], 'f32']]);
    expect(e.message).toMatch(/add: Expected bf16 for input 'b' but received f32\[3\] \(the dtype of input 'a' bf16\[2, 3\]/);
    const e2 = errorFor('matmul', [[[2, 3], 'f16'], [[3, 4], 'bf16']]);
    expect(e2.message).toMatch(/matmul: Expected f16 for input 'b' but received bf16\[3, 4\]/);
    expect(e2.message).toContain("input 'a' f16[2, 3]");
  });

  it('concat refuses mixed float pieces', () => {
    const e = errorFor('concat', [[[2], 'bf16'], [[2], 'f32']], { axis: 0 });
    expect(e.code).toBe('INVALID_DTYPE');
    expect(e.message).toMatch(/Expected bf16 \(the dtype of xs\[0\]\) for input 'xs\[1\]' but received f32\[2\]/);
  });

  it('f32-only inputs of the exceptions refuse narrow floats', () => {
    const bad: [string, Spec[], Record<string, AttrValue>, string][] = [
      ['layernorm_backward', [[[2, 3], 'bf16'], [[2, 3], 'bf16'], [[3], 'bf16'], [[2], 'bf16'], [[2], 'f32']], {}, 'mean'],
      ['layernorm_backward', [[[2, 3], 'bf16'], [[2, 3], 'bf16'], [[3], 'bf16'], [[2], 'f32'], [[2], 'f16']], {}, 'rstd'],
      ['rmsnorm_backward', [[[2, 3], 'bf16'], [[2, 3], 'bf16'], [[3], 'bf16'], [[2], 'bf16']], {}, 'rstd'],
      ['cross_entropy_backward', [[[4, 5], 'bf16'], [[4], 'i32'], [[1], 'bf16']], {}, 'g'],
      ['cross_entropy_with_grad', [[[4, 5], 'bf16'], [[4], 'i32'], [[1], 'bf16']], {}, 'g'],
      ['adamw', [[[2], 'bf16'], [[2], 'bf16'], [[2], 'f32'], [[2], 'f32'], [[1], 'f32'], [[1], 'f32']], {}, 'param'],
      ['adamw', [[[2], 'f32'], [[2], 'bf16'], [[2], 'bf16'], [[2], 'f32'], [[1], 'f32'], [[1], 'f32']], {}, 'm'],
      ['adamw', [[[2], 'f32'], [[2], 'f32'], [[2], 'f32'], [[2], 'f16'], [[1], 'f32'], [[1], 'f32']], {}, 'v'],
      ['adamw', [[[2], 'f32'], [[2], 'f16'], [[2], 'f32'], [[2], 'f32'], [[1], 'bf16'], [[1], 'f32']], {}, 'lr'],
      ['adamw', [[[2], 'f32'], [[2], 'f16'], [[2], 'f32'], [[2], 'f32'], [[1], 'f32'], [[1], 'bf16']], {}, 'step'],
      ['adamw', [[[2], 'f32'], [[2], 'f16'], [[2], 'f32'], [[2], 'f32'], [[1], 'f32'], [[1], 'f32'], [[1], 'bf16']], {}, 'gradScale'],
    ];
    for (const [op, specs, attrs, name] of bad) {
      const e = errorFor(op, specs, attrs);
      expect([op, name, e.code]).toEqual([op, name, 'INVALID_DTYPE']);
      expect(e.message).toMatch(new RegExp(`${op}: Expected f32 for input '${name}' but received (bf16|f16)\\[`));
    }
  });
});

// ---- integers into float inputs ---------------------------------------------------------------

describe('i32 into float inputs', () => {
  it('is still an INVALID_DTYPE error, alone or beside a narrow float', () => {
    const i = (shape: number[]): Spec => [shape, 'i32'];
    const h = (shape: number[]): Spec => [shape, 'bf16'];
    const bad: [string, Spec[], Record<string, AttrValue>][] = [
      ['add', [i([2]), h([2])], {}],
      ['add', [h([2]), i([2])], {}],
      ['add', [i([2]), i([2])], {}],
      ['mul', [h([2]), i([2])], {}],
      ['bias_add', [h([2, 3]), i([3])], {}],
      ['matmul', [h([2, 3]), i([3, 2])], {}],
      ['matmul', [i([2, 3]), i([3, 2])], {}],
      ['swiglu', [i([2]), h([2])], {}],
      ['sum_to', [i([2, 3])], { shape: [3] }],
      ['broadcast_to', [i([3])], { shape: [2, 3] }],
      ['scale', [i([2])], { alpha: 2 }],
      ['gelu', [i([2])], {}],
      ['silu', [i([2])], {}],
      ['gelu_backward', [h([2]), i([2])], {}],
      ['silu_backward', [i([2]), h([2])], {}],
      ['sum', [i([2])], {}],
      ['mean', [i([2])], {}],
      ['max', [i([2])], {}],
      ['max_backward', [i([]), h([2])], {}],
      ['softmax', [i([2])], {}],
      ['softmax_backward', [h([2]), i([2])], {}],
      ['causal_mask', [i([2, 2])], {}],
      ['slice_backward', [i([2])], { shape: [3], axis: 0, start: 0 }],
      ['layernorm', [h([2, 3]), i([3]), h([3])], {}],
      ['layernorm', [i([2, 3]), h([3]), h([3])], {}],
      ['layernorm_backward', [h([2, 3]), h([2, 3]), h([3]), i([2]), [[2], 'f32']], {}],
      ['rmsnorm', [i([2, 3]), h([3])], {}],
      ['rmsnorm_backward', [h([2, 3]), h([2, 3]), h([3]), i([2])], {}],
      ['embedding', [i([7, 3]), i([2])], {}],
      ['embedding', [h([7, 3]), h([2])], {}],
      ['embedding_backward', [i([2]), i([2, 3])], { vocab: 7 }],
      ['cross_entropy', [i([4, 5]), i([4])], {}],
      ['cross_entropy', [h([4, 5]), h([4])], {}],
      ['cross_entropy_backward', [h([4, 5]), i([4]), i([1])], {}],
      ['cross_entropy_with_grad', [h([4, 5]), i([4]), i([1])], {}],
      ['adamw', [[[2], 'f32'], i([2]), [[2], 'f32'], [[2], 'f32'], [[1], 'f32'], [[1], 'f32']], {}],
      ['topk', [i([4, 6])], { k: 2 }],
      ['topk_backward', [i([4, 2]), i([4, 2])], { size: 6 }],
      ['topk_backward', [h([4, 2]), h([4, 2])], { size: 6 }],
      ['gather_rows', [i([5, 3]), i([4])], {}],
      ['gather_rows', [h([5, 3]), h([4])], {}],
      ['scatter_add_rows', [i([4, 3]), i([4])], { rows: 5 }],
      ['one_hot', [h([4])], { classes: 3 }],
      ['moe_plan', [h([4, 2])], { numExperts: 3, capacity: 2 }],
    ];
    for (const [op, specs, attrs] of bad) {
      const e = errorFor(op, specs, attrs);
      expect([op, e.code]).toEqual([op, 'INVALID_DTYPE']);
      expect(e.message).toMatch(new RegExp(`${op}: Expected .* but received (i32|bf16)\\[`));
    }
  });

  it('names the dtype to match when another input is a float', () => {
    const e = errorFor('mul', [[[2], 'i32'], [[2], 'bf16']]);
    expect(e.message).toMatch(/mul: Expected bf16 for input 'a' but received i32\[2\] \(a float dtype, the same as input 'b' bf16\[2\]\)/);
    const e2 = errorFor('gelu', [[[2], 'i32']]);
    expect(e2.message).toMatch(/gelu: Expected f32 or bf16 or f16 for input 'x' but received i32\[2\]/);
  });
});

// ---- gradients through bf16 -------------------------------------------------------------------

/** n values that bf16 holds exactly, so a cast to bf16 changes nothing. */
function bf16Data(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => bf16BitsToF32(f32ToBf16Bits(Math.random() * 4 - 2)));
}

interface GradCase {
  /** The shape of the f32 parameter w. */
  w: number[];
  /** y from x (w cast to dt) and other inputs of dtype dt made with `inp`; `loss: true` when y is the f32 loss itself. */
  build: (x: Sym, inp: (name: string, shape: number[], dtype?: DTypeName, data?: () => NumArray) => Sym, dt: DTypeName) => Sym;
  loss?: boolean;
}

const ints = (n: number, lo: number, hi: number) => () => Int32Array.from({ length: n }, () => lo + Math.floor(Math.random() * (hi - lo)));

const GRAD_CASES: Record<string, GradCase> = {
  matmul: { w: [3, 4], build: (x, inp) => matmul(inp('a', [2, 5, 3]), x) },
  'matmul (transposed, w first)': { w: [4, 3], build: (x, inp) => matmul(x, inp('a', [4, 2]), { transA: true }) },
  'add (broadcast)': { w: [3], build: (x, inp) => add(inp('a', [2, 3]), x) },
  'add (broadcast, w first)': { w: [2, 1], build: (x, inp) => add(x, inp('a', [2, 3])) },
  'mul (broadcast)': { w: [1, 3], build: (x, inp) => mul(inp('a', [2, 3]), x) },
  gelu: { w: [2, 3], build: (x) => gelu(x) },
  silu: { w: [2, 3], build: (x) => silu(x) },
  swiglu: { w: [2, 3], build: (x, inp) => swiglu(x, inp('up', [2, 3])) },
  bias_add: { w: [3], build: (x, inp) => biasAdd(inp('a', [2, 3]), x) },
  scale: { w: [2, 3], build: (x) => scale(x, 0.5) },
  'layernorm (x)': { w: [2, 4], build: (x, inp) => layernorm(x, inp('weight', [4]), inp('bias', [4])) },
  'layernorm (weight)': { w: [4], build: (x, inp) => layernorm(inp('x', [3, 4]), x, inp('bias', [4])) },
  'rmsnorm (x)': { w: [2, 4], build: (x, inp) => rmsnorm(x, inp('weight', [4])) },
  softmax: { w: [2, 5], build: (x) => softmax(x) },
  causal_mask: { w: [3, 3], build: (x) => softmax(causalMask(x)) },
  embedding: { w: [6, 3], build: (x, inp) => embedding(x, inp('ids', [2, 4], 'i32', ints(8, 0, 6))) },
  cross_entropy: { w: [4, 5], loss: true, build: (x, inp) => crossEntropy(matmul(x, inp('a', [5, 5])), inp('targets', [4], 'i32', ints(4, 0, 5))) },
  transpose: { w: [2, 3], build: (x) => transpose(x, [1, 0]) },
  reshape: { w: [2, 3], build: (x) => reshape(x, [3, 2]) },
  broadcast_to: { w: [3], build: (x) => broadcastTo(x, [2, 3]) },
  slice: { w: [2, 5], build: (x) => slice(x, 1, 1, 4) },
  concat: { w: [2, 3], build: (x, inp) => concat([inp('a', [2, 2]), x], 1) },
  sum: { w: [2, 3], build: (x) => sum(x, [1]) },
  mean: { w: [2, 3], build: (x) => mean(x, [0], true) },
  max: { w: [2, 3], build: (x) => max(x, [1]) },
  topk: { w: [3, 5], build: (x) => topk(x, 2)[0]! },
  gather_rows: { w: [4, 3], build: (x, inp) => gatherRows(x, inp('idx', [5], 'i32', ints(5, -1, 4))) },
  scatter_add_rows: { w: [5, 3], build: (x, inp) => scatterAddRows(x, inp('idx', [5], 'i32', ints(5, -1, 4)), 4) },
};

/**
 * Build the case with its values in `dt` (w: f32 -> cast(w, dt) -> op -> an f32 loss), differentiate
 * with respect to w, and check the graph. Returns the graph's values on `bind` (filled on first use).
 */
function gradThrough(c: GradCase, dt: DTypeName, bind: Record<string, NumArray>): { grad: NumArray; loss: number } {
  const b = new GraphBuilder();
  const w = b.param('w', c.w, 'f32', { dist: 'zeros' });
  bind.w ??= bf16Data(numel(c.w));
  const inp = (name: string, shape: number[], dtype: DTypeName = dt, data?: () => NumArray): Sym => {
    bind[name] ??= data ? data() : bf16Data(numel(shape));
    return b.input(name, shape, dtype);
  };
  const y = c.build(cast(w, dt as CastDType), inp, dt);
  let loss: Sym;
  if (c.loss) {
    loss = y;
  } else {
    // A weighted sum, so that ops whose plain sum is constant (softmax, layernorm) get a gradient.
    expect(y.dtype).toBe(dt);
    loss = reshape(cast(sum(mul(y, inp('r', [...y.shape]))), 'f32'), [1]);
  }
  expect(loss.type).toEqual({ shape: [1], dtype: 'f32' });
  b.output('loss', loss);
  const grads = differentiate(b.graph, loss.id, [w.id]);
  b.graph.verify();
  const gid = grads.get(w.id)!;
  expect(b.graph.value(gid).type).toEqual({ shape: c.w, dtype: 'f32' });
  if (dt !== 'f32') {
    // The backward pass runs in dt: no node of it computes in f32 except the loss end and the cast back to w.
    const narrow = b.graph.values.filter((v) => v.type.dtype === dt).length;
    expect(narrow).toBeGreaterThan(2);
  }
  const vals = interpret(b.graph, bind, { precision: 'f64' });
  return { grad: vals[gid]!, loss: vals[loss.id]![0]! };
}

describe('gradient rules through bf16 values', () => {
  for (const [name, c] of Object.entries(GRAD_CASES)) {
    it(`${name}: builds a consistent graph with an f32 gradient for the f32 parameter`, () => {
      const bind: Record<string, NumArray> = {};
      const narrow = gradThrough(c, 'bf16', bind);
      // The same computation in f32 on the same (bf16-exact) data: without rounding ('f64'
      // interpretation) the two agree; the tolerance leaves room for an interpreter that rounds.
      const wide = gradThrough(c, 'f32', bind);
      expect(narrow.grad.length).toBe(numel(c.w));
      const scaleOf = Math.max(1e-3, ...Array.from(wide.grad, Math.abs));
      for (let i = 0; i < wide.grad.length; i++) {
        expect(Number.isFinite(narrow.grad[i]!)).toBe(true);
        expect(Math.abs(narrow.grad[i]! - wide.grad[i]!)).toBeLessThanOrEqual(2e-2 * scaleOf);
      }
      expect(Math.abs(narrow.loss - wide.loss)).toBeLessThanOrEqual(2e-2 * Math.max(1, Math.abs(wide.loss)));
    });
  }

  it('f16 values too', () => {
    for (const name of ['matmul', 'layernorm (x)', 'cross_entropy', 'add (broadcast)']) {
      const bind: Record<string, NumArray> = {};
      gradThrough(GRAD_CASES[name]!, 'f16', bind);
    }
  });

  it('a loss narrowed to bf16 and widened again still differentiates (cast gives back f32 gradients)', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [3, 4], 'f32', { dist: 'zeros' });
    const targets = b.input('t', [3], 'i32');
    // cast's rule casts each gradient back to its input's dtype, so cross_entropy still gets an f32 g.
    const loss = cast(cast(crossEntropy(cast(w, 'bf16'), targets), 'bf16'), 'f32');
    const grads = differentiate(b.graph, loss.id, [w.id]);
    b.graph.verify();
    expect(b.graph.value(grads.get(w.id)!).type).toEqual({ shape: [3, 4], dtype: 'f32' });
  });

  it('a bf16 value used twice sums two bf16 gradients', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [2, 3], 'f32', { dist: 'zeros' });
    const x = cast(w, 'bf16');
    const y = add(mul(x, x), layernorm(x, b.input('g', [3], 'bf16'), b.input('h', [3], 'bf16')));
    const loss = reshape(cast(sum(gelu(y)), 'f32'), [1]);
    const grads = differentiate(b.graph, loss.id, [w.id]);
    b.graph.verify();
    expect(b.graph.value(grads.get(w.id)!).type.dtype).toBe('f32');
  });
});

describe('bf16 and f16 bindings', () => {
  it("interpret rounds them to their format, as compile() stores them, and leaves the caller's array alone", () => {
    // (A bf16 input bound unrounded once made the reference evaluate gelu' between bf16 steps, so
    // precision's fused-amax GPU test failed on 18 of 40 runs: H200, 2026-12-04.)
    for (const dtype of ['bf16', 'f16'] as const) {
      const b = new GraphBuilder();
      const x = b.input('x', [64], dtype);
      b.output('y', gelu(x));
      // Values between the format's steps: the reference must see what a kernel is given.
      const data = Float32Array.from({ length: 64 }, () => (Math.random() * 2 - 1) * 3);
      const copy = Float32Array.from(data);
      const got = interpret(b.graph, { x: data })[b.graph.outputs.y!]!;
      expect(data).toEqual(copy);
      // The values bound are the rounded ones: the same as binding them rounded.
      const rounded = Float32Array.from(data, (v) => (dtype === 'bf16' ? bf16BitsToF32(f32ToBf16Bits(v)) : f16BitsToF32(f32ToF16Bits(v))));
      expect(Array.from(interpret(b.graph, { x: rounded })[b.graph.outputs.y!]!)).toEqual(Array.from(got));
    }
  });
});
