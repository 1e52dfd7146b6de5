// The fuse-cross-entropy pass and its op, cross_entropy_with_grad: the loss and dlogits of the same
// logits from one op, made only where the loss's gradient does not depend on the loss; its reference
// is exactly cross_entropy then cross_entropy_backward, in place or not.
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  capture,
  compile,
  crossEntropy,
  crossEntropyBackward,
  currentBuilder,
  fill,
  fuseCrossEntropy,
  getOp,
  matmul,
  runPasses,
  scale,
  trainingStep,
  type Capturable,
  type Graph,
  type Sym,
} from '../src/index.js';
import { errorOf, randn } from './helpers.js';

const count = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).length;
const [N, C, V] = [5, 3, 11];

class Classifier implements Capturable {
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const w = currentBuilder().param('w', [V, C], 'f32', { dist: 'normal', scale: 0.7 });
    return { loss: crossEntropy(matmul(x!, w, { transB: true }), y!, 2) };
  }
}

describe('fuse-cross-entropy', () => {
  it('fuses each micro-batch’s loss with its gradient, and the step computes what the unfused one does, bit for bit', () => {
    const spec = { x: { shape: [N, C] }, y: { shape: [N], dtype: 'i32' as const } };
    for (const accumulate of [1, 2]) {
      const step = trainingStep(capture(new Classifier(), spec), { accumulate, clipGradNorm: 1 });
      const fused = compile(step, { seed: 2 });
      const plain = compile(step, { seed: 2, fuse: false });
      expect(count(fused.graph, 'cross_entropy_with_grad')).toBe(accumulate);
      expect(count(fused.graph, 'cross_entropy') + count(fused.graph, 'cross_entropy_backward')).toBe(0);
      expect(count(plain.graph, 'cross_entropy_with_grad')).toBe(0);
      for (let s = 1; s <= 3; s++) {
        const batch = {
          x: Float32Array.from(randn(accumulate * N * C)),
          // Class 2 is the ignore index: some rows do not count.
          y: Int32Array.from({ length: accumulate * N }, () => Math.floor(Math.random() * V)),
          lr: Float32Array.of(0.05),
          step: Float32Array.of(s),
        };
        const a = fused.run(batch);
        const b = plain.run(batch);
        expect(Array.from(a.loss!)).toEqual(Array.from(b.loss!));
        expect(Array.from(a.grad_norm!)).toEqual(Array.from(b.grad_norm!));
      }
      expect(Array.from(fused.get('w'))).toEqual(Array.from(plain.get('w')));
      fused.dispose();
      plain.dispose();
    }
  });

  it('leaves the pair alone where g depends on the loss, or the targets or ignore index differ', () => {
    const b = new GraphBuilder();
    const logits = b.input('logits', [N, V]);
    const y = b.input('y', [N], 'i32');
    const y2 = b.input('y2', [N], 'i32');
    const loss = crossEntropy(logits, y);
    b.output('loss', loss);
    b.output('d1', crossEntropyBackward(logits, y, scale(loss, 2))); // g computed from the loss
    b.output('d2', crossEntropyBackward(logits, y2, fill(b, [1], 1))); // other targets
    b.output('d3', crossEntropyBackward(logits, y, fill(b, [1], 1), 7)); // another ignore index
    const g = b.graph.verify();
    expect(fuseCrossEntropy(g)).toBe(0);
    // The one that matches is fused, once; a second backward of the same loss stays a backward.
    const b2 = new GraphBuilder();
    const l2 = b2.input('logits', [N, V]);
    const t2 = b2.input('y', [N], 'i32');
    const loss2 = crossEntropy(l2, t2);
    b2.output('loss', scale(loss2, 3)); // a reader of the loss before the fused node: the sort moves it
    b2.output('d1', crossEntropyBackward(l2, t2, fill(b2, [1], 0.5)));
    b2.output('d2', crossEntropyBackward(l2, t2, fill(b2, [1], 2)));
    const g2 = runPasses(b2.graph.verify());
    expect(count(g2, 'cross_entropy_with_grad')).toBe(1);
    expect(count(g2, 'cross_entropy_backward')).toBe(1);
    expect(count(g2, 'cross_entropy')).toBe(0);
  });
});

describe('cross_entropy_with_grad', () => {
  it('gives what cross_entropy and cross_entropy_backward give, in place (dlogits over logits) or not', () => {
    const def = getOp('cross_entropy_with_grad');
    expect(def.inplace).toEqual([[1, 0]]);
    for (const ignore of [-1, 4]) {
      const lt = { shape: [N, V], dtype: 'f32' as const };
      const it = { shape: [N], dtype: 'i32' as const };
      const gt = { shape: [1], dtype: 'f32' as const };
      const logits = Float64Array.from(randn(N * V), (v) => 4 * v);
      const targets = Int32Array.from({ length: N }, (_, r) => (r === 1 ? ignore : (r * 3 + 1) % V));
      const g = Float64Array.of(0.25 + Math.random());
      const attrs = { ignoreIndex: ignore };
      const loss = new Float64Array(1).fill(Number.NaN);
      const dl = new Float64Array(N * V).fill(Number.NaN);
      getOp('cross_entropy').reference({ inputs: [logits, targets], outputs: [loss], inTypes: [lt, it], outTypes: [gt], attrs });
      getOp('cross_entropy_backward').reference({ inputs: [logits, targets, g], outputs: [dl], inTypes: [lt, it, gt], outTypes: [lt], attrs });
      const fl = new Float64Array(1).fill(Number.NaN);
      const fd = new Float64Array(N * V).fill(Number.NaN);
      def.reference({ inputs: [logits, targets, g], outputs: [fl, fd], inTypes: [lt, it, gt], outTypes: [gt, lt], attrs });
      expect(Array.from(fl)).toEqual(Array.from(loss));
      expect(Array.from(fd)).toEqual(Array.from(dl));
      const shared = logits.slice();
      const sl = new Float64Array(1).fill(Number.NaN);
      def.reference({ inputs: [shared, targets, g], outputs: [sl, shared], inTypes: [lt, it, gt], outTypes: [gt, lt], attrs });
      expect(Array.from(sl)).toEqual(Array.from(loss));
      expect(Array.from(shared)).toEqual(Array.from(dl));
      // The loss by hand, in float64: mean over counted rows of logsumexp - logit[target].
      let total = 0;
      let n = 0;
      for (let r = 0; r < N; r++) {
        if (targets[r] === ignore) continue;
        const row = Array.from(logits.subarray(r * V, (r + 1) * V));
        const mx = Math.max(...row);
        total += mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0)) - row[targets[r]!]!;
        n++;
      }
      expect(Math.abs(loss[0]! - total / n)).toBeLessThanOrEqual(1e-12 * Math.abs(total / n));
    }
  });

  it('refuses bad inputs with typed errors', () => {
    const b = new GraphBuilder();
    const logits = b.input('logits', [N, V], 'bf16');
    expect(errorOf(() => b.op('cross_entropy_with_grad', [logits, b.input('y', [N + 1], 'i32'), b.input('g', [1])], {})).message).toMatch(
      /cross_entropy_with_grad: Expected i32\[5\] \(one target per row of logits/,
    );
    expect(errorOf(() => b.op('cross_entropy_with_grad', [logits, b.input('y2', [N], 'i32'), b.input('g2', [2])], {})).message).toMatch(/Expected f32\[1\] for input 'g'/);
    const [loss, dl] = b.op('cross_entropy_with_grad', [logits, b.input('y3', [N], 'i32'), b.input('g3', [1])], {});
    expect([b.graph.values[loss!.id]!.type.dtype, b.graph.values[dl!.id]!.type.dtype]).toEqual(['f32', 'bf16']);
  });
});
