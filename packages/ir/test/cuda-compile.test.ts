// The compiled CUDA step's host side: the batch's id check (native on a GPU: firstBadId), the host
// time of a step by part (lastHostSplit), and the captured graph's nodes by kind. Skipped without a
// GPU.
import { describe, expect, it } from 'vitest';
import { GraphBuilder, compile, gatherRows, reshape, scatterAddRows } from '../src/index.js';
import { gpu } from './cuda-helpers.js';
import { errorOf, randInt } from './helpers.js';

/** rows = gather_rows(x, idx), with -1 allowed (a zero row); the ids live in [0, V). */
function gatherStep(n: number, V: number) {
  const b = new GraphBuilder();
  const x = b.input('x', [V, 4]);
  const idx = b.input('idx', [n], 'i32');
  b.output('rows', gatherRows(x, reshape(idx, [n])));
  b.output('back', scatterAddRows(b.op1('fill', [], { shape: [n, 4], value: 1 }), idx, V));
  return b.graph.verify();
}

describe.skipIf(!gpu)('the compiled CUDA step: host side', () => {
  it('finds the first bad id anywhere in a long batch (native), as the CPU executable does, with the same message', () => {
    const n = 40_000 + randInt(0, 999); // several of the native check's blocks of 4,096
    const V = randInt(50, 90);
    const graph = gatherStep(n, V);
    const cuda = compile(graph, { device: 'cuda:0' });
    const cpu = compile(graph);
    const x = Float32Array.from({ length: V * 4 }, () => Math.random());
    const ids = () => Int32Array.from({ length: n }, () => (Math.random() < 0.05 ? -1 : randInt(0, V - 1)));
    const good = ids();
    expect(Array.from(cuda.run({ x, idx: good }).rows!)).toEqual(Array.from(cpu.run({ x, idx: good }).rows!));
    // Bad ids at random places (the first counts), each kind of miss: V, a large id, -2, i32's extremes.
    for (const badValue of [V, V + 1000, -2, 2 ** 31 - 1, -(2 ** 31)]) {
      const idx = ids();
      const at = randInt(0, n - 1);
      idx[at] = badValue;
      if (at + 5 < n) idx[at + 5] = V; // a later miss is not the one reported
      const [eg, ec] = [errorOf(() => cuda.run({ x, idx })), errorOf(() => cpu.run({ x, idx }))];
      expect(eg.code).toBe('INVALID_ARGUMENT');
      expect(eg.message).toBe(`Expected ids in [0, ${V}) or -1 for input 'idx' (used by gather_rows) but received ${badValue} at position ${at}`);
      expect(eg.message).toBe(ec.message);
    }
    // The last element alone, and the first.
    for (const at of [n - 1, 0]) {
      const idx = ids();
      idx[at] = V;
      expect(errorOf(() => cuda.run({ x, idx })).message).toMatch(new RegExp(`received ${V} at position ${at}$`));
    }
    cuda.dispose();
    cpu.dispose();
  });

  it('reports its host time by part, and the replayed graph by node kind', () => {
    const n = 1000;
    const V = 64;
    const exe = compile(gatherStep(n, V), { device: 'cuda:0' }) as ReturnType<typeof compile> & {
      lastHostMs: number;
      lastHostSplit: Record<string, number>;
      graphNodes: { nodes: number; kinds: { kernel: number; memcpy: number; memset: number; other: number } } | null;
    };
    const x = Float32Array.from({ length: V * 4 }, () => Math.random());
    expect(exe.graphNodes).toBeNull();
    for (let s = 0; s < 4; s++) exe.run({ x, idx: Int32Array.from({ length: n }, () => randInt(0, V - 1)) });
    expect(exe.replaying).toBe(true);
    const split = exe.lastHostSplit;
    expect(Object.keys(split).sort()).toEqual(['checkUs', 'launchUs', 'outputsUs', 'stageUs']);
    for (const v of Object.values(split)) expect(v).toBeGreaterThanOrEqual(0);
    const sum = Object.values(split).reduce((a, b) => a + b, 0);
    expect(Math.abs(sum - 1000 * exe.lastHostMs)).toBeLessThan(1e-6 * Math.max(1, sum) + 1e-6);
    const g = exe.graphNodes!;
    expect(g.kinds.kernel).toBeGreaterThan(0);
    expect(g.kinds.kernel + g.kinds.memcpy + g.kinds.memset + g.kinds.other).toBe(g.nodes);
    exe.dispose();
  });
});
