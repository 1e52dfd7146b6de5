// ZeRO-1's checkpoints (src/distributed/zero.ts) on the CPU. Each rank's step holds only its pieces
// of the AdamW moments; a checkpoint holds them whole under the single-GPU names. Whole moments set
// into W ranks' steps and gathered back from them are the same bits, for every W (so a checkpoint
// written from W ranks resumes on any W'), and the layout is the step pass's own. The gather is
// simulated here (each rank's shard computed from its executable); NCCL's is gpu_distributed's.
import { describe, expect, it } from 'vitest';
import { capture, compile, crossEntropy, currentBuilder, dataParallel, gelu, matmul, trainingStep, zeroPieces, type Capturable, type Executable, type Sym } from '@deepwell/ir';
import { zeroCheckpointView, zeroLayoutOf } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

class MLP implements Capturable {
  constructor(readonly widths: number[]) {}
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    let h = x!;
    this.widths.forEach((w, l) => (h = gelu(matmul(h, b.param(`w${l}`, [w, h.shape[1]!], 'f32', { dist: 'normal', scale: 0.3 }), { transB: true }))));
    return { loss: crossEntropy(matmul(h, b.param('head', [4, h.shape[1]!], 'f32', { dist: 'normal', scale: 0.3 }), { transB: true }), y!) };
  }
}

describe('zeroCheckpointView', () => {
  it('whole moments set into W ranks and gathered back are the same bits, for W = 1..5; parameters and other state pass through', () => {
    const widths = Array.from({ length: randInt(2, 4) }, () => randInt(3, 40));
    const fwd = () => capture(new MLP(widths), { x: { shape: [6, 5] }, y: { shape: [6], dtype: 'i32' } });
    const names = Object.keys(trainingStep(fwd()).params);
    const sizes = Object.fromEntries(Object.entries(trainingStep(fwd()).params).map(([n, id]) => [n, trainingStep(fwd()).values[id]!.type.shape.reduce((a, b) => a * b, 1)]));
    const whole = new Map(names.flatMap((n) => ['m', 'v'].map((k) => [`adamw.${k}.${n}`, Float32Array.from({ length: sizes[n]! }, () => Math.fround(Math.random() * 2 - 1))] as const)));
    for (let W = 1; W <= 5; W++) {
      const layout = zeroLayoutOf(trainingStep(fwd()), W, [1, 8, 64][randInt(0, 2)]);
      const exes: Executable[] = [];
      for (let rank = 0; rank < W; rank++) {
        const exe = compile(dataParallel(trainingStep(fwd()), { worldSize: W, comm: W === 1 ? undefined : 77, zero: { rank, align: layout.align } }));
        exes.push(exe);
        // A load: set every whole moment (no gather needed), then check this rank's pieces.
        const view = zeroCheckpointView(exe, layout, rank, (s) => new Float32Array(s.length * W));
        for (const [name, data] of whole) view.set(name, data);
        for (const g of layout.groups) for (const p of zeroPieces(layout, g, rank)) expect(Array.from(exe.get(`zero.m.${p.name}`))).toEqual(Array.from(whole.get(`adamw.m.${p.name}`)!.subarray(p.from, p.to)));
      }
      // A save on each rank: the gather puts every rank's shard side by side, as NCCL's all-gather does.
      const gatherFor = (exe: Executable, rank: number) => {
        let call = 0;
        return (shard: Float32Array) => {
          const group = layout.groups[Math.floor(call / 2)]!, kind = call++ % 2 ? 'v' : 'm';
          const out = new Float32Array(group.shard * W);
          for (let r = 0; r < W; r++) {
            if (r === rank) out.set(shard, r * group.shard);
            else for (const p of zeroPieces(layout, group, r)) out.set(exes[r]!.get(`zero.${kind}.${p.name}`), r * group.shard + p.at);
          }
          void exe;
          return out;
        };
      };
      for (let rank = 0; rank < W; rank++) {
        const view = zeroCheckpointView(exes[rank]!, layout, rank, gatherFor(exes[rank]!, rank));
        for (const [name, data] of whole) expect(Array.from(view.get(name)), `W ${W} rank ${rank} ${name}`).toEqual(Array.from(data));
        expect(Object.keys(view.graph.state).sort()).toEqual([...whole.keys()].sort());
        for (const n of names) expect(Array.from(view.get(n))).toEqual(Array.from(exes[rank]!.get(n)));
      }
      exes.forEach((e) => e.dispose());
    }
  });

  it('refuses a rank outside the layout and a gather of the wrong size', () => {
    const fwd = capture(new MLP([8]), { x: { shape: [6, 5] }, y: { shape: [6], dtype: 'i32' } });
    const layout = zeroLayoutOf(trainingStep(fwd), 2);
    const exe = compile(dataParallel(trainingStep(capture(new MLP([8]), { x: { shape: [6, 5] }, y: { shape: [6], dtype: 'i32' } })), { worldSize: 2, comm: 5, zero: { rank: 0 } }));
    expect(errorOf(() => zeroCheckpointView(exe, layout, 2, (s) => s)).message).toMatch(/rank of zeroCheckpointView/);
    expect(errorOf(() => zeroCheckpointView(exe, layout, 0, (s) => s)).message).toMatch(/gather gave/);
    expect(errorOf(() => zeroLayoutOf(fwd, 2)).message).toMatch(/a gradient for every parameter/);
    exe.dispose();
  });
});
