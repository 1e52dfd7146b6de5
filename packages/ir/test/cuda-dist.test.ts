// Data parallelism through the real NCCL path on one GPU (issue 22's single-H200 check): a world of
// one, its all_reduce nodes NCCL groups captured in the step's CUDA graph, trains bit for bit as the
// plain step (NCCL's average over one rank is its input), losses, gradient norms and every
// parameter, under bf16 autocast with clipping, with one bucket per gradient and with one for all;
// the same without a communicator (device copies). A step built for a world of 2 on this world of
// one is refused with a typed error. ZeRO-1's step (reduce_scatter, all_gather through NCCL) on a world
// of one equals the plain step bit for bit without clipping (with clipping, within the norm's
// reduction order: its sum of squares runs over the shards). The gradient buckets' all-reduces run on
// a side stream (overlapping the backward) and still give the same bits. Skipped without a GPU or NCCL.
import { Communicator, findLibrary, ncclUniqueId } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { autocast, capture, compile, crossEntropy, currentBuilder, dataParallel, gelu, layernorm, matmul, trainingStep, type Capturable, type Sym } from '../src/index.js';
import { gpu } from './cuda-helpers.js';
import { errorOf, randInt, randn } from './helpers.js';

const nccl = gpu && findLibrary('nccl').found;

class Net implements Capturable {
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    let h = x!;
    for (let l = 0; l < 3; l++) {
      const w = b.param(`w${l}`, [256, 256], 'f32', { dist: 'normal', scale: 0.06 });
      const g = b.param(`ln${l}.g`, [256], 'f32', { dist: 'ones' });
      const bias = b.param(`ln${l}.b`, [256], 'f32', { dist: 'zeros' });
      h = gelu(matmul(layernorm(h, g, bias), w, { transB: true }));
    }
    return { loss: crossEntropy(matmul(h, b.param('head', [64, 256], 'f32', { dist: 'normal', scale: 0.06 }), { transB: true }), y!) };
  }
}

const [N, D] = [128, 256];
const forward = () => autocast(capture(new Net(), { x: { shape: [N, D] }, y: { shape: [N], dtype: 'i32' } }));
const batches = Array.from({ length: 5 }, (_, s) => ({ x: Float32Array.from(randn(N * D)), y: Int32Array.from({ length: N }, () => randInt(0, 63)), lr: Float32Array.of(3e-3), step: Float32Array.of(s + 1) }));

describe.skipIf(!nccl)('all_reduce on CUDA through NCCL (a world of one)', () => {
  it('a data-parallel step equals the plain step bit for bit: losses, gradient norms, parameters (CUDA graph, bf16 autocast, clipping)', () => {
    const comm = Communicator.create({ rank: 0, worldSize: 1, id: ncclUniqueId(), timeoutMs: 60_000 });
    const seed = randInt(1, 10_000);
    const plain = compile(trainingStep(forward(), { clipGradNorm: 1 }), { device: 'cuda:0', seed });
    const want = batches.map((b) => plain.run(b));
    const params = Object.fromEntries(Object.keys(plain.graph.params).map((name) => [name, Array.from(plain.get(name))]));
    plain.dispose();
    const runs = [
      { what: 'NCCL, a bucket per gradient', options: { worldSize: 1, comm: comm.handle, bucketBytes: 1 } },
      { what: 'NCCL, one bucket', options: { worldSize: 1, comm: comm.handle } },
      { what: 'no communicator', options: { worldSize: 1 } },
    ];
    for (const { what, options } of runs) {
      const dp = compile(dataParallel(trainingStep(forward(), { clipGradNorm: 1 }), options), { device: 'cuda:0', seed });
      expect(dp.kernelSummary().find((k) => k.op === 'all_reduce')?.kernel, what).toBe('all_reduce_nccl');
      let overlapped = -1;
      batches.forEach((b, s) => {
        if (s === 1) overlapped = dp.overlappedNodes; // bound by the first run
        const got = dp.run(b);
        expect(Array.from(got.loss!), `${what}: loss at step ${s + 1}`).toEqual(Array.from(want[s]!.loss!));
        expect(Array.from(got.grad_norm!), `${what}: grad_norm at step ${s + 1}`).toEqual(Array.from(want[s]!.grad_norm!));
      });
      for (const [name, p] of Object.entries(params)) expect(Array.from(dp.get(name)), `${what}: ${name}`).toEqual(p);
      // The gradient buckets ran on the side stream (overlapping the backward); without a communicator, on the step's.
      if (options.comm) expect(overlapped, `${what}: overlapped nodes`).toBeGreaterThan(0);
      else expect(overlapped).toBe(0);
      dp.dispose();
    }
    // The losses moved (a step that did nothing would also be "equal").
    expect(want.at(-1)!.loss![0]).not.toBe(want[0]!.loss![0]);
    comm.destroy();
  }, 120_000);

  it("ZeRO-1 (dataParallel's zero) on a world of one: without clipping the plain step bit for bit; with clipping within the norm's reduction order; NCCL = device copies bit for bit", () => {
    const comm = Communicator.create({ rank: 0, worldSize: 1, id: ncclUniqueId(), timeoutMs: 60_000 });
    const seed = randInt(1, 10_000);
    for (const clip of [undefined, 1]) {
      const opts = clip ? { clipGradNorm: clip } : {};
      const plain = compile(trainingStep(forward(), opts), { device: 'cuda:0', seed });
      const want = batches.map((b) => plain.run(b));
      const params = Object.fromEntries(Object.keys(plain.graph.params).map((name) => [name, Array.from(plain.get(name))]));
      plain.dispose();
      const got: Record<string, number[]>[] = [];
      for (const options of [{ worldSize: 1, comm: comm.handle, zero: { rank: 0 } }, { worldSize: 1, zero: { rank: 0, align: 256 } }]) {
        const z = compile(dataParallel(trainingStep(forward(), opts), options), { device: 'cuda:0', seed });
        const kernels = z.kernelSummary();
        for (const op of ['reduce_scatter', 'all_gather']) expect(kernels.find((k) => k.op === op)?.kernel).toBe(`${op}_nccl`);
        const losses = batches.map((b, s) => {
          const r = z.run(b);
          const [a, w] = [r.loss![0]!, want[s]!.loss![0]!];
          if (clip) {
            expect(Math.abs(a - w), `clipped: loss at step ${s + 1}: ${a} vs ${w}`).toBeLessThanOrEqual(1e-4 * Math.abs(w));
            expect(Math.abs(r.grad_norm![0]! - want[s]!.grad_norm![0]!)).toBeLessThanOrEqual(1e-4 * want[s]!.grad_norm![0]!);
          } else expect(a, `loss at step ${s + 1}`).toBe(w);
          return a;
        });
        const mine = Object.fromEntries(Object.keys(params).map((name) => [name, Array.from(z.get(name))]));
        if (!clip) for (const [name, p] of Object.entries(params)) expect(mine[name], name).toEqual(p);
        got.push({ ...mine, losses });
        z.dispose();
      }
      expect(got[0]).toEqual(got[1]); // through NCCL = device copies, bit for bit
    }
    comm.destroy();
  }, 180_000);

  it('a step built for a world of 2 is refused on a communicator of one rank, with a typed error', () => {
    const comm = Communicator.create({ rank: 0, worldSize: 1, id: ncclUniqueId(), timeoutMs: 60_000 });
    const dp = compile(dataParallel(trainingStep(forward()), { worldSize: 2, comm: comm.handle }), { device: 'cuda:0', cudaGraph: false });
    const e = errorOf(() => dp.run(batches[0]!));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/world of 1 ranks.*built for 2/);
    dp.dispose();
    comm.destroy();
    // A destroyed communicator's handle is refused too.
    expect(errorOf(() => comm.handle).code).toBe('DISPOSED');
  }, 60_000);
});
