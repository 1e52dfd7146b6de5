/**
 * moe_plan: capacity-based token-to-expert assignment for mixture-of-experts with static shapes
 * (as in GShard and Switch Transformer).
 *   experts: i32[N, k] (each token's k expert choices, best first, each in [0, E)), attributes
 *   numExperts (E >= 1) and capacity (C >= 0) ->
 *     dispatch: i32[E*C]  which token fills each expert slot; slot e*C + p is position p of
 *                         expert e; -1 marks an empty slot.
 *     combine:  i32[N, k] which slot holds token n's j-th choice; -1 marks a dropped choice.
 * Slots are filled choice-rank first: every token's 1st choice in token order, then every 2nd
 * choice, and so on, each expert taking at most C; a choice that finds its expert full is dropped.
 * Filling by rank first means a token's preferred expert outranks other tokens' fallbacks, and
 * the fixed E*C slot count keeps every shape static however the router routes. The result feeds
 * gather_rows twice: gather_rows(x, dispatch) -> f32[E*C, D] expert inputs, and
 * gather_rows(expert_out, reshape(combine, [-1])) -> f32[N*k, D] outputs per choice.
 * Integer bookkeeping only: nonDifferentiable, no gradient rule. An expert id outside [0, E) is
 * an INVALID_ARGUMENT error naming the position.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/moe.ts; the native
 * kernel is in native/ops/moe/; tested in packages/ir/test/moe.test.ts, dtypes.test.ts,
 * cuda-moe.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, expectRank, shapeError } from '../../op.js';

export const moePlanOp = defineOp({
  name: 'moe_plan',
  doc: 'dispatch[e*C + p] = token in slot p of expert e (-1 empty); combine[n, j] = slot of choice j of token n (-1 dropped)',
  inputs: ['experts'],
  outputs: ['dispatch', 'combine'],
  attrs: { numExperts: { kind: 'int' }, capacity: { kind: 'int' } },
  indexInputs: [{ input: 0, bound: (_, attrs) => attrs.numExperts as number }],
  nonDifferentiable: true,
  infer: ([experts], attrs) => {
    expectDtype('moe_plan', 'experts', experts!, ['i32']);
    expectRank('moe_plan', 'experts', experts!, 2);
    const E = attrs.numExperts as number;
    const C = attrs.capacity as number;
    if (E < 1) shapeError('moe_plan', `Expected a positive expert count for attribute 'numExperts' but received ${E}`);
    if (C < 0) shapeError('moe_plan', `Expected a non-negative capacity for attribute 'capacity' but received ${C}`);
    return [
      { shape: [E * C], dtype: 'i32' },
      { shape: [...experts!.shape], dtype: 'i32' },
    ];
  },
  reference: ({ inputs: [experts], outputs: [dispatch, combine], inTypes, attrs }) => {
    const [N, k] = inTypes[0]!.shape as [number, number];
    const E = attrs.numExperts as number;
    const C = attrs.capacity as number;
    dispatch!.fill(-1);
    combine!.fill(-1);
    const used = new Array<number>(E).fill(0);
    for (let j = 0; j < k; j++) {
      for (let n = 0; n < N; n++) {
        const e = experts![n * k + j]!;
        if (!Number.isInteger(e) || e < 0 || e >= E) {
          throw new DeepwellError('INVALID_ARGUMENT', `moe_plan: Expected an expert id in [0, ${E}) for experts[${n}, ${j}] but received ${e}`);
        }
        if (used[e]! >= C) continue; // expert full: this choice is dropped
        const slot = e * C + used[e]!;
        used[e]!++;
        dispatch![slot] = n;
        combine![n * k + j] = slot;
      }
    }
  },
});

/** Capacity-based routing plan for `experts` (i32[N, k]): [dispatch i32[E*C], combine i32[N, k]]. */
export function moePlan(experts: Sym, numExperts: number, capacity: number): [dispatch: Sym, combine: Sym] {
  const [dispatch, combine] = builderOf(experts, 'experts of moePlan').op('moe_plan', [experts], { numExperts, capacity });
  return [dispatch!, combine!];
}
