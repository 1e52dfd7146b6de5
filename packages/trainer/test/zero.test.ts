// ZeRO-1's bookkeeping (src/distributed/zero.ts) on the CPU: shards cover every element once, in rank
// order, on aligned boundaries and balanced; cutting whole tensors into shards and gathering them back
// is the identity, bit for bit, and a checkpoint saved from W ranks resumes on any other W'.
import { describe, expect, it } from 'vitest';
import { gatherShards, piecesOf, shardOf, zeroPlan } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const randomTensors = (sizes: number[]) => sizes.map((s) => Float32Array.from({ length: s }, () => Math.fround(Math.random() * 2 - 1)));

describe('zeroPlan', () => {
  it('covers every element once, in rank order, aligned and balanced', () => {
    for (let trial = 0; trial < 50; trial++) {
      const sizes = Array.from({ length: randInt(1, 12) }, () => randInt(1, trial % 2 ? 5000 : 70));
      const W = randInt(1, 9);
      const align = [1, 16, 64, 128][randInt(0, 3)]!;
      const plan = zeroPlan(sizes, W, align);
      const total = sizes.reduce((a, b) => a + b, 0);
      expect(plan.total).toBe(total);
      expect(plan.shards[0]![0]).toBe(0);
      expect(plan.shards[W - 1]![1]).toBe(total);
      for (let r = 0; r < W; r++) {
        const [s, e] = plan.shards[r]!;
        expect(s).toBeLessThanOrEqual(e);
        if (r > 0) expect(s).toBe(plan.shards[r - 1]![1]);
        if (s < total) expect(s % align).toBe(0);
      }
      const lens = plan.shards.map(([s, e]) => e - s);
      expect(Math.max(...lens) - Math.min(...lens)).toBeLessThanOrEqual(align);
      // The pieces of each shard tile it, and all pieces tile every parameter.
      const seen = sizes.map((s) => new Uint8Array(s));
      for (const [s, e] of plan.shards) {
        let n = 0;
        for (const { param, from, to } of piecesOf(plan, s, e)) {
          for (let i = from; i < to; i++) seen[param]![i]!++;
          n += to - from;
        }
        expect(n).toBe(e - s);
      }
      for (const v of seen) expect(v.every((c) => c === 1)).toBe(true);
    }
  });

  it('shards gathered back are the tensors, bit for bit; a checkpoint of W ranks resumes on W\'', () => {
    for (let trial = 0; trial < 20; trial++) {
      const sizes = Array.from({ length: randInt(1, 8) }, () => randInt(1, 3000));
      const tensors = randomTensors(sizes);
      const [W, W2] = [randInt(1, 8), randInt(1, 8)];
      const plan = zeroPlan(sizes, W);
      const shards = Array.from({ length: W }, (_, r) => shardOf(plan, r, tensors));
      const whole = gatherShards(plan, shards); // what rank 0 writes
      whole.forEach((t, i) => expect(Buffer.from(t.buffer).equals(Buffer.from(tensors[i]!.buffer))).toBe(true));
      // Resumed on W2 ranks: each cuts its shard from the whole tensors; gathered again, the same bits.
      const plan2 = zeroPlan(sizes, W2);
      const again = gatherShards(plan2, Array.from({ length: W2 }, (_, r) => shardOf(plan2, r, whole)));
      again.forEach((t, i) => expect(Buffer.from(t.buffer).equals(Buffer.from(tensors[i]!.buffer))).toBe(true));
    }
  });

  it('refuses bad input with typed errors', () => {
    expect(errorOf(() => zeroPlan([], 2)).message).toMatch(/non-empty array/);
    expect(errorOf(() => zeroPlan([3, 0], 2)).message).toMatch(/sizes\[1\] of zeroPlan/);
    expect(errorOf(() => zeroPlan([3], 0)).message).toMatch(/worldSize of zeroPlan/);
    expect(errorOf(() => zeroPlan([3], 2, 0)).message).toMatch(/align of zeroPlan/);
    const plan = zeroPlan([10, 20], 3, 4);
    expect(errorOf(() => shardOf(plan, 3, randomTensors([10, 20]))).message).toMatch(/rank of shardOf/);
    expect(errorOf(() => shardOf(plan, 0, randomTensors([10, 21]))).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => gatherShards(plan, [new Float32Array(1)])).message).toMatch(/Expected 3 shards/);
    const shards = [0, 1, 2].map((r) => shardOf(plan, r, randomTensors([10, 20])));
    shards[1] = new Float32Array(shards[1]!.length + 1);
    expect(errorOf(() => gatherShards(plan, shards)).message).toMatch(/rank 1's shard/);
    for (const bad of [undefined, {}, { ...plan, shards: [[0, 5]] }, { ...plan, total: -1 }]) {
      expect(errorOf(() => piecesOf(bad as never, 0, 1)).message).toMatch(/Expected a plan from zeroPlan\(\) for piecesOf/);
      expect(errorOf(() => gatherShards(bad as never, [])).code).toBe('INVALID_ARGUMENT');
    }
    expect(errorOf(() => piecesOf(plan, 5, 2)).message).toMatch(/end of piecesOf/);
    expect(errorOf(() => piecesOf(plan, 0, 31)).message).toMatch(/end of piecesOf/);
  });
});
