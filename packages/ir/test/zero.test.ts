// ZeRO-1 (passes/zero.ts, dataParallel's `zero` option) and the reduce_scatter / all_gather ops on the
// CPU: the layout (equal padded shards, every element held by exactly one rank, groups by gradient
// dtype), the rewritten step (moments of the shard only, the collectives where they belong), that a
// world of one trains bit for bit as the plain step (with and without clipping), that a world of
// several without a CPU group is a typed error, and the options' errors. Several ranks on the CPU
// (worker threads) are cpu_world.test.ts's; the NCCL path is cuda-dist.test.ts's.
import { describe, expect, it } from 'vitest';
import { capture, compile, crossEntropy, currentBuilder, dataParallel, gelu, getOp, matmul, trainingStep, zeroLayout, zeroPieces, type Capturable, type Sym } from '../src/index.js';
import { errorOf, randInt, randn, runOp } from './helpers.js';

class MLP implements Capturable {
  constructor(readonly layers: number, readonly width: number) {}
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    let h = x!;
    for (let l = 0; l < this.layers; l++) h = gelu(matmul(h, b.param(`w${l}`, [this.width, h.shape[1]!], 'f32', { dist: 'normal', scale: 0.4 }), { transB: true }));
    return { loss: crossEntropy(matmul(h, b.param('head', [4, this.width], 'f32', { dist: 'normal', scale: 0.4 }), { transB: true }), y!) };
  }
}

const N = 8;
const forward = (layers: number, width = 12) => capture(new MLP(layers, width), { x: { shape: [N, 6] }, y: { shape: [N], dtype: 'i32' } });
const batch = (s: number) => ({ x: Float32Array.from(randn(N * 6)), y: Int32Array.from({ length: N }, () => randInt(0, 3)), lr: Float32Array.of(0.05), step: Float32Array.of(s) });

describe('zeroLayout and zeroPieces', () => {
  it('equal shards (multiples of align) padding each group; every element of every parameter held by exactly one rank, at its place in the shard', () => {
    for (let trial = 0; trial < 40; trial++) {
      const count = randInt(1, 9);
      const params = Array.from({ length: count }, (_, i) => ({ name: `p${i}`, size: randInt(1, 3000), dtype: (Math.random() < 0.3 ? 'bf16' : 'f32') as 'f32' | 'bf16' }));
      const W = randInt(1, 8), align = [1, 16, 64][randInt(0, 2)]!;
      const layout = zeroLayout(params, W, align);
      expect(layout.groups.map((g) => g.dtype)).toEqual([...new Set(params.map((p) => p.dtype))]);
      for (const g of layout.groups) {
        const mine = params.filter((p) => p.dtype === g.dtype);
        expect(g.names).toEqual(mine.map((p) => p.name));
        expect(g.total).toBe(mine.reduce((a, p) => a + p.size, 0));
        expect(g.shard % align).toBe(0);
        expect(g.shard * W).toBeGreaterThanOrEqual(g.total);
        expect((g.shard - align) * W).toBeLessThan(g.total);
        const seen = mine.map((p) => new Uint8Array(p.size));
        for (let r = 0; r < W; r++) {
          let at = 0;
          for (const piece of zeroPieces(layout, g, r)) {
            const i = g.names.indexOf(piece.name);
            expect(piece.at).toBe(at); // pieces fill the shard in order, from its start
            expect(r * g.shard + piece.at).toBe(g.offsets[i]! + piece.from);
            for (let k = piece.from; k < piece.to; k++) seen[i]![k]!++;
            at += piece.to - piece.from;
          }
          expect(at).toBeLessThanOrEqual(g.shard);
        }
        for (const s of seen) expect(s.every((c) => c === 1)).toBe(true);
      }
    }
  });

  it('refuses bad layouts', () => {
    expect(errorOf(() => zeroLayout([], 2)).message).toMatch(/at least one parameter/);
    expect(errorOf(() => zeroLayout([{ name: 'a', size: 0, dtype: 'f32' }], 2)).message).toMatch(/size of parameter 'a'/);
    expect(errorOf(() => zeroLayout([{ name: 'a', size: 4, dtype: 'f32' }], 0)).message).toMatch(/worldSize of zeroLayout/);
    const l = zeroLayout([{ name: 'a', size: 4, dtype: 'f32' }], 2);
    expect(errorOf(() => zeroPieces(l, l.groups[0]!, 2)).message).toMatch(/rank of zeroPieces/);
  });
});

describe("dataParallel's zero (ZeRO-1)", () => {
  it('each rank holds the moments of its shard only; the gradients reduce-scattered, the parameters all-gathered; the ranks together hold every moment once', () => {
    const layers = randInt(2, 4), W = randInt(2, 5);
    const plain = trainingStep(forward(layers, 40), { clipGradNorm: 1 });
    const sizes = Object.fromEntries(Object.entries(plain.params).map(([k, v]) => [k, plain.values[v]!.type.shape.reduce((a, b) => a * b, 1)]));
    const held: Record<string, number> = {};
    for (let rank = 0; rank < W; rank++) {
      const step = dataParallel(trainingStep(forward(layers, 40), { clipGradNorm: 1 }), { worldSize: W, comm: 99, zero: { rank, align: 16 } });
      expect(Object.keys(step.state).filter((s) => s.startsWith('adamw.'))).toEqual([]);
      for (const [s, v] of Object.entries(step.state)) {
        expect(s).toMatch(/^zero\.[mv]\./);
        expect(step.values[v]!.type.dtype).toBe('f32');
        if (s.startsWith('zero.m.')) held[s.slice(7)] = (held[s.slice(7)] ?? 0) + step.values[v]!.type.shape[0]!;
        expect(step.updates[s]).toBeDefined();
      }
      const ops = step.nodes.map((n) => n.op);
      expect(ops.filter((o) => o === 'reduce_scatter').length).toBe(1); // one gradient dtype
      expect(ops.filter((o) => o === 'all_gather').length).toBe(1);
      expect(ops.filter((o) => o === 'all_reduce').length).toBe(2); // the loss, the clipping norm's sum of squares
      for (const n of step.nodes.filter((n) => ['reduce_scatter', 'all_gather', 'all_reduce'].includes(n.op))) expect(n.attrs).toMatchObject({ worldSize: W, comm: 99 });
      expect(step.outputs.grad_norm).toBeDefined();
      for (const name of Object.keys(step.params)) expect(step.updates[name]).toBeDefined();
    }
    expect(held).toEqual(sizes);
  });

  it('a world of one trains bit for bit as the plain step on the CPU (with and without clipping, several steps)', () => {
    for (const clip of [undefined, 0.5]) {
      const layers = randInt(2, 4), seed = randInt(1, 1000);
      const opts = clip ? { clipGradNorm: clip } : {};
      const plain = compile(trainingStep(forward(layers), opts), { seed });
      const z = compile(dataParallel(trainingStep(forward(layers), opts), { worldSize: 1, zero: { rank: 0, align: randInt(1, 64) } }), { seed });
      for (let s = 1; s <= 4; s++) {
        const data = batch(s);
        const [a, b] = [plain.run(data), z.run(data)];
        expect(Array.from(b.loss!)).toEqual(Array.from(a.loss!));
        if (clip) expect(Array.from(b.grad_norm!)).toEqual(Array.from(a.grad_norm!));
      }
      for (const name of Object.keys(plain.graph.params)) {
        expect(Array.from(z.get(name))).toEqual(Array.from(plain.get(name)));
        expect(Array.from(z.get(`zero.m.${name}`))).toEqual(Array.from(plain.get(`adamw.m.${name}`)));
        expect(Array.from(z.get(`zero.v.${name}`))).toEqual(Array.from(plain.get(`adamw.v.${name}`)));
      }
      plain.dispose();
      z.dispose();
    }
  });

  it('a world of several without a CPU group: a typed error naming the collective, not a silent copy', () => {
    const exe = compile(dataParallel(trainingStep(forward(2)), { worldSize: 2, comm: 7, zero: { rank: 1 } }));
    const e = errorOf(() => exe.run(batch(1)));
    expect(e.code).toBe('NO_KERNEL');
    expect(e.message).toMatch(/(reduce_scatter|all_reduce).*world of 2.*CUDA \(NCCL\)/);
    exe.dispose();
  });

  it('refuses bad zero options with typed errors', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 2, comm: 3, zero: { rank: 2 } }), /zero\.rank of dataParallel/],
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 1, zero: { rank: 0, align: 0 } }), /zero\.align/],
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 1, zero: { rank: 0 }, op: 'sum' }), /'avg' with dataParallel's zero/],
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 1, zero: { rank: 0, shards: 2 } as never }), /shards/],
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 1, zero: 1 as never }), /zero of dataParallel/],
    ];
    for (const [f, msg] of cases) {
      const e = errorOf(f);
      expect(e.code, String(f)).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(msg);
    }
  });
});

describe('reduce_scatter and all_gather', () => {
  it('one rank: the output is the input, exactly', () => {
    const a = randn(12);
    expect(Array.from(runOp('reduce_scatter', [{ shape: [12], data: a }], { worldSize: 1 })[0]!)).toEqual(Array.from(a));
    expect(Array.from(runOp('all_gather', [{ shape: [12], data: a }], { worldSize: 1 })[0]!)).toEqual(Array.from(a));
  });

  it('types: flat inputs, a length divisible by the world, a communicator for a world of several', () => {
    const rs = getOp('reduce_scatter'), ag = getOp('all_gather');
    expect(rs.infer([{ shape: [12], dtype: 'bf16' }], { op: 'avg', worldSize: 3, comm: 5 })).toEqual([{ shape: [4], dtype: 'bf16' }]);
    expect(ag.infer([{ shape: [4], dtype: 'f32' }], { worldSize: 3, comm: 5 })).toEqual([{ shape: [12], dtype: 'f32' }]);
    expect(errorOf(() => rs.infer([{ shape: [10], dtype: 'f32' }], { op: 'avg', worldSize: 3, comm: 5 })).message).toMatch(/divisible by worldSize 3/);
    expect(errorOf(() => rs.infer([{ shape: [3, 4], dtype: 'f32' }], { op: 'avg', worldSize: 1, comm: 0 })).message).toMatch(/flat \(1-D\)/);
    expect(errorOf(() => ag.infer([{ shape: [4], dtype: 'f32' }], { worldSize: 2, comm: 0 })).message).toMatch(/communicator.*world of 2/);
    expect(errorOf(() => rs.infer([{ shape: [4], dtype: 'i32' }], { op: 'sum', worldSize: 1, comm: 0 })).code).toBe('INVALID_DTYPE');
  });
});
