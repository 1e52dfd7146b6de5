// dataParallel (passes/data-parallel.ts) and the all_reduce op on the CPU: the buckets, where they
// sit, that every reader of a gradient after them reads the average (clipping and AdamW), that a world
// of one compiles and trains bit for bit as the plain step (all_reduce of one rank is its input), that
// a world of several is refused on the CPU with a typed error, and the options' errors. The real
// NCCL path (a world of one on one GPU) is cuda-dist.test.ts.
import { describe, expect, it } from 'vitest';
import { DEFAULT_BUCKET_BYTES, byteSizeOf, capture, compile, crossEntropy, currentBuilder, dataParallel, gelu, getOp, matmul, trainingStep, type Capturable, type Graph, type Sym } from '../src/index.js';
import { errorOf, randInt, randn, runOp } from './helpers.js';

class MLP implements Capturable {
  constructor(readonly layers: number) {}
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    let h = x!;
    for (let l = 0; l < this.layers; l++) h = gelu(matmul(h, b.param(`w${l}`, [12, h.shape[1]!], 'f32', { dist: 'normal', scale: 0.4 }), { transB: true }));
    return { loss: crossEntropy(matmul(h, b.param('head', [4, 12], 'f32', { dist: 'normal', scale: 0.4 }), { transB: true }), y!) };
  }
}

const N = 8;
const forward = (layers: number) => capture(new MLP(layers), { x: { shape: [N, 6] }, y: { shape: [N], dtype: 'i32' } });
const allReduces = (g: Graph) => g.nodes.filter((n) => n.op === 'all_reduce');

describe('dataParallel', () => {
  it('buckets the gradients in the order the backward makes them, each all_reduce right after its last gradient, every later reader rewired', () => {
    const layers = randInt(2, 5);
    for (const clip of [undefined, 1.0]) {
      const step = trainingStep(forward(layers), clip ? { clipGradNorm: clip } : {});
      const before = { ...step.gradients };
      const lossBefore = step.outputs.loss!;
      dataParallel(step, { worldSize: 1, bucketBytes: 1 }); // one gradient a bucket
      const ars = allReduces(step);
      expect(ars.length).toBe(layers + 2); // the loss, then one per parameter
      expect(ars[0]!.inputs).toEqual([lossBefore]);
      expect(ars[0]!.scope).toBe('data_parallel.loss');
      const pos = (id: number) => step.nodes.findIndex((n) => n.outputs.includes(id));
      for (const n of ars) {
        // Right after the producer of its (last) input.
        expect(step.nodes.indexOf(n)).toBe(Math.max(...n.inputs.map(pos)) + 1);
        expect(n.attrs).toEqual({ op: 'avg', worldSize: 1, comm: 0 });
      }
      // The head's gradient is made first in the backward, the first layer's last.
      const order = ars.slice(1).map((n) => Object.keys(before).find((k) => before[k] === n.inputs[0]));
      expect(order).toEqual(['head', ...Array.from({ length: layers }, (_, l) => `w${layers - 1 - l}`)]);
      // graph.gradients name the averages; no reader but the all_reduce sees a local gradient.
      for (const [name, v] of Object.entries(step.gradients)) {
        expect(step.values[v]!.producer).toBe(ars.find((n) => n.inputs.includes(before[name]!))!.id);
        const readers = step.nodes.filter((n) => n.inputs.includes(before[name]!));
        expect(readers.map((n) => n.op)).toEqual(['all_reduce']);
        const ops = step.nodes.filter((n) => n.inputs.includes(v)).map((n) => n.op).sort();
        expect(ops).toEqual(clip ? ['adamw', 'sum_squares'] : ['adamw']);
      }
      expect(step.values[step.outputs.loss!]!.producer).toBe(ars[0]!.id);
    }
  });

  it('fills buckets up to bucketBytes (a larger gradient is a bucket of its own); the default is one bucket for a small model', () => {
    const step = trainingStep(forward(4));
    const bytes = Object.fromEntries(Object.entries(step.gradients).map(([k, v]) => [k, byteSizeOf(step.values[v]!.type)]));
    const cap = bytes.w1! + 1; // w1..w3 are 12 × 12; head 4 × 12; w0 12 × 6
    dataParallel(step, { worldSize: 1, bucketBytes: cap, loss: false });
    const buckets = allReduces(step).map((n) => n.inputs.length);
    expect(buckets.reduce((a, b) => a + b)).toBe(5);
    expect(buckets.length).toBeGreaterThan(1);
    expect(buckets.length).toBeLessThan(5);
    const one = dataParallel(trainingStep(forward(4)), { worldSize: 1 });
    expect(allReduces(one).map((n) => n.inputs.length)).toEqual([1, 5]); // the loss, then every gradient
    expect(DEFAULT_BUCKET_BYTES).toBe(25 * 2 ** 20);
  });

  it('a world of one trains bit for bit as the plain step, compiled on the CPU (fused, several steps)', () => {
    const layers = randInt(2, 4);
    const seed = randInt(1, 1000);
    const plain = compile(trainingStep(forward(layers), { clipGradNorm: 0.5 }), { seed });
    const dp = compile(dataParallel(trainingStep(forward(layers), { clipGradNorm: 0.5 }), { worldSize: 1, bucketBytes: randInt(1, 2000) }), { seed });
    expect(dp.kernelSummary().some((k) => k.op === 'all_reduce')).toBe(true);
    for (let s = 1; s <= 4; s++) {
      const batch = { x: Float32Array.from(randn(N * 6)), y: Int32Array.from({ length: N }, () => randInt(0, 3)), lr: Float32Array.of(0.05), step: Float32Array.of(s) };
      const [a, b] = [plain.run(batch), dp.run(batch)];
      expect(Array.from(b.loss!)).toEqual(Array.from(a.loss!));
      expect(Array.from(b.grad_norm!)).toEqual(Array.from(a.grad_norm!));
    }
    for (const name of Object.keys(plain.graph.params)) expect(Array.from(dp.get(name))).toEqual(Array.from(plain.get(name)));
    plain.dispose();
    dp.dispose();
  });

  it('a world of several has no CPU kernel: a typed error naming NCCL, not a silent copy', () => {
    const exe = compile(dataParallel(trainingStep(forward(2)), { worldSize: 2, comm: 7 }));
    const e = errorOf(() => exe.run({ x: Float32Array.from(randn(N * 6)), y: new Int32Array(N), lr: Float32Array.of(0.01), step: Float32Array.of(1) }));
    expect(e.code).toBe('NO_KERNEL');
    expect(e.message).toMatch(/all_reduce.*world of 2.*CUDA \(NCCL\)/);
    exe.dispose();
  });

  it('refuses bad options and graphs with typed errors', () => {
    const cases: [() => unknown, string, RegExp][] = [
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 0 }), 'INVALID_ARGUMENT', /worldSize of dataParallel/],
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 2 }), 'INVALID_ARGUMENT', /comm \(a Communicator's handle\).*worldSize 2/],
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 2, comm: 1.5 }), 'INVALID_ARGUMENT', /comm of dataParallel/],
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 1, bucketBytes: 0 }), 'INVALID_ARGUMENT', /bucketBytes/],
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 1, op: 'max' as never }), 'INVALID_ARGUMENT', /'avg' or 'sum'/],
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 1, loss: 'nope' }), 'INVALID_ARGUMENT', /output named 'nope'/],
      [() => dataParallel(trainingStep(forward(2)), { worldSize: 1, world: 2 } as never), 'INVALID_ARGUMENT', /world/],
      [() => dataParallel(forward(2), { worldSize: 1 }), 'INVALID_ARGUMENT', /without gradients/],
      [() => dataParallel(dataParallel(trainingStep(forward(2)), { worldSize: 1 }), { worldSize: 1 }), 'INVALID_ARGUMENT', /applied twice/],
      [() => dataParallel(trainingStep(forward(2)), null as never), 'INVALID_ARGUMENT', /options object/],
      [() => dataParallel({} as never, { worldSize: 1 }), 'INVALID_ARGUMENT', /graph of dataParallel/],
    ];
    for (const [f, code, msg] of cases) {
      const e = errorOf(f);
      expect(e.code, String(f)).toBe(code);
      expect(e.message).toMatch(msg);
    }
  });
});

describe('all_reduce', () => {
  it('one rank: each output is its input, exactly, several tensors of their own dtypes', () => {
    const [a, b] = [randn(7), randn(12)];
    const outs = runOp('all_reduce', [{ shape: [7], data: a }, { shape: [3, 4], dtype: 'bf16', data: b }], { worldSize: 1 });
    expect(Array.from(outs[0]!)).toEqual(Array.from(a));
    expect(outs[1]!.length).toBe(12);
    const sum = runOp('all_reduce', [{ shape: [5], dtype: 'i32', data: Int32Array.of(1, -2, 3, 4, 5) }], { worldSize: 1, op: 'sum' });
    expect(Array.from(sum[0]!)).toEqual([1, -2, 3, 4, 5]);
  });

  it('types: i32 only with sum, a communicator for a world of several, worldSize in range', () => {
    const op = getOp('all_reduce');
    const f = { shape: [4], dtype: 'f32' } as const;
    expect(op.infer([f, { shape: [2, 2], dtype: 'bf16' }], { op: 'avg', worldSize: 1, comm: 0 })).toEqual([f, { shape: [2, 2], dtype: 'bf16' }]);
    expect(errorOf(() => op.infer([{ shape: [4], dtype: 'i32' }], { op: 'avg', worldSize: 1, comm: 0 })).message).toMatch(/float input for op 'avg'/);
    expect(errorOf(() => op.infer([f], { op: 'avg', worldSize: 4, comm: 0 })).message).toMatch(/communicator.*world of 4/);
    expect(errorOf(() => op.infer([f], { op: 'avg', worldSize: 0, comm: 0 })).message).toMatch(/worldSize in \[1, 65536\]/);
    expect(errorOf(() => op.infer([{ shape: [4], dtype: 'u8' as never }], { op: 'sum', worldSize: 1, comm: 0 })).code).toBe('INVALID_DTYPE');
  });
});
