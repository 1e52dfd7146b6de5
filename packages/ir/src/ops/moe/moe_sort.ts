/**
 * moe_sort: dropless routing for mixture-of-experts: every (token, choice) pair gets a row, the rows
 * sorted by expert, so each expert's tokens are contiguous for grouped_matmul (as MegaBlocks and
 * today's MoE trainers route; nothing is dropped, and the row count N·k is static however the
 * router routes).
 *   experts: i32[N, k] (each token's k expert choices, each in [0, E)), attribute numExperts (E) ->
 *     order:   i32[N·k]  the token in each sorted row;
 *     slot:    i32[N, k] the sorted row that holds token n's j-th choice;
 *     offsets: i32[E + 1] expert e's rows are offsets[e] to offsets[e + 1] - 1.
 * Within an expert the rows keep token order, then choice order (a stable counting sort of the
 * flattened choices): deterministic. The result feeds gather_rows twice: gather_rows(x, order) gives
 * the experts' inputs F[N·k, D] and gather_rows(expert_out, reshape(slot, [N·k])) brings each
 * choice's output back; their gradients are scatter_add_rows, so no float atomics.
 * Integer bookkeeping only: nonDifferentiable. An expert id outside [0, E) is an INVALID_ARGUMENT
 * error naming the position.
 *
 * Tested in packages/ir/test/grouped_matmul.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, expectRank, shapeError } from '../../op.js';

export const moeSortOp = defineOp({
  name: 'moe_sort',
  doc: 'order[p] = token of sorted row p; slot[n, j] = sorted row of choice j of token n; offsets[e] = first row of expert e',
  inputs: ['experts'],
  outputs: ['order', 'slot', 'offsets'],
  attrs: { numExperts: { kind: 'int' } },
  indexInputs: [{ input: 0, bound: (_, attrs) => attrs.numExperts as number }],
  nonDifferentiable: true,
  infer: ([experts], attrs) => {
    expectDtype('moe_sort', 'experts', experts!, ['i32']);
    expectRank('moe_sort', 'experts', experts!, 2);
    const E = attrs.numExperts as number;
    if (!(E >= 1)) shapeError('moe_sort', `Expected a positive expert count for attribute 'numExperts' but received ${E}`);
    const [N, k] = experts!.shape as [number, number];
    return [
      { shape: [N * k], dtype: 'i32' },
      { shape: [N, k], dtype: 'i32' },
      { shape: [E + 1], dtype: 'i32' },
    ];
  },
  reference: ({ inputs: [experts], outputs: [order, slot, offsets], inTypes, attrs }) => {
    const k = inTypes[0]!.shape[1]!;
    const E = attrs.numExperts as number;
    const counts = new Array<number>(E + 1).fill(0);
    for (let c = 0; c < experts!.length; c++) {
      const e = experts![c]!;
      if (!Number.isInteger(e) || e < 0 || e >= E) {
        throw new DeepwellError('INVALID_ARGUMENT', `moe_sort: Expected an expert id in [0, ${E}) for experts[${Math.floor(c / k)}, ${c % k}] but received ${e}`);
      }
      counts[e + 1]!++;
    }
    for (let e = 0; e < E; e++) counts[e + 1]! += counts[e]!;
    offsets!.set(counts);
    const next = counts.slice(0, E);
    for (let c = 0; c < experts!.length; c++) {
      const row = next[experts![c]!]!++;
      order![row] = Math.floor(c / k);
      slot![c] = row;
    }
  },
});

/** Dropless routing of `experts` (i32[N, k], ids in [0, numExperts)): [order i32[N·k], slot i32[N, k], offsets i32[E + 1]]. */
export function moeSort(experts: Sym, numExperts: number): [order: Sym, slot: Sym, offsets: Sym] {
  const [order, slot, offsets] = builderOf(experts, 'experts of moeSort').op('moe_sort', [experts], { numExperts });
  return [order!, slot!, offsets!];
}
