// autocast's rules beyond "every float input in the low dtype": an input an op reads at any float
// precision (anyFloatInputs: MoE routing weights) keeps its f32, and arithmetic on f32 scalars that
// ops made f32 by their own rules (a cross-entropy loss plus a load-balancing loss) stays f32, so
// the loss is not rounded to bf16.
import { describe, expect, it } from 'vitest';
import { GraphBuilder, add, autocast, crossEntropy, interpret, matmul, moeAuxLoss, moeRoute, moePermute, moeSort, moeUnpermute, scale, type Graph } from '../src/index.js';
import { randInt, randn } from './helpers.js';

/** x [N, D] -> router logits, routing, a permute / unpermute round trip, the loss: ce + 0.01 · aux. */
function moeLoss(N: number, D: number, E: number, k: number): Graph {
  const b = new GraphBuilder();
  const x = b.input('x', [N, D]);
  const t = b.input('t', [N], 'i32');
  const wr = b.param('wr', [D, E], 'f32', { dist: 'normal', scale: 0.5 });
  const [probs, weights, chosen] = moeRoute(matmul(x, wr), k);
  const [order, slot] = moeSort(chosen, E);
  const y = moeUnpermute(moePermute(x, order, slot), order, slot, weights);
  const [aux] = moeAuxLoss(probs, chosen);
  b.output('loss', add(crossEntropy(y, t), scale(aux, 0.01)));
  return b.graph;
}

describe('autocast', () => {
  it('keeps routing weights f32 into moe_unpermute and the loss sum f32', () => {
    const [N, D, E, k] = [12, 6, 4, 2];
    const g = autocast(moeLoss(N, D, E, k));
    const node = (op: string) => g.nodes.find((n) => n.op === op)!;
    expect(g.values[node('moe_unpermute').inputs[3]!]!.type.dtype).toBe('f32');
    expect(g.values[node('moe_unpermute').inputs[0]!]!.type.dtype).toBe('bf16');
    const sum = g.nodes.find((n) => n.op === 'add' && n.inputs.some((i) => g.values[i]!.type.shape.length <= 1))!;
    expect(sum.inputs.map((i) => g.values[i]!.type.dtype)).toEqual(['f32', 'f32']);
    expect(g.values[sum.outputs[0]!]!.type.dtype).toBe('f32');
    // The loss is the f32 sum of the two f32 losses, not a bf16 value.
    const x = Float32Array.from(randn(N * D));
    const tt = Int32Array.from({ length: N }, () => randInt(0, D - 1));
    const wr = Float32Array.from(randn(D * E)).map((v) => v * 0.5);
    const vals = interpret(g, { x, t: tt, wr });
    const ce = vals[node('cross_entropy').outputs[0]!]![0]!;
    const aux = vals[node('moe_aux_loss').outputs[0]!]![0]!;
    const loss = vals[g.outputs.loss!]![0]!;
    expect(loss).toBe(Math.fround(ce + Math.fround(aux * Math.fround(0.01))));
  });
});
