// The FallbackController on the tiny GPT's policy (its plan and numerics outputs from a real
// run()), fed synthetic steps with fresh random noise: no fallback on a noisy but healthy run;
// a spike or a non-finite loss is noticed; the earliest operand in graph order that shows
// non-finite values or an amax jump names the layer (not the layers downstream of it, nor the
// backward GEMMs it poisons); without numerics every quantized layer goes down one level; nothing
// left to demote throws; demotions replay (a resumed run) and rewind; option errors.
import { autocast, capture, trainingStep, type Graph } from '@deepwell/ir';
import { GPT } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { FallbackController, PrecisionPolicy, checkFallbackOptions, type PolicyOptions } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

function step(): Graph {
  const fwd = capture(new GPT('tiny'), { tokens: { shape: [8, 16], dtype: 'i32' }, targets: { shape: [8, 16], dtype: 'i32' } });
  delete fwd.outputs.logits;
  return trainingStep(autocast(fwd));
}

/** A policy that has run on the step (so it knows its plan and numerics outputs). */
function policyOn(options: Partial<PolicyOptions> = {}): PrecisionPolicy {
  const p = new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false, minWeightElements: 0, numerics: true, ...options });
  p.run(step());
  return p;
}

/** A healthy step's outputs: loss near `level`, each operand's amax near its own typical size. */
function healthy(p: PrecisionPolicy, level: number, sizes: Map<string, number>): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = { loss: Float32Array.of(level * (1 + 0.1 * (Math.random() - 0.5))) };
  for (const n of p.lastNumerics) {
    if (!sizes.has(n.name)) sizes.set(n.name, 10 ** (Math.random() * 4 - 2));
    out[n.name] = Float32Array.of(sizes.get(n.name)! * (1 + 0.5 * Math.random()), 0, 0.001 * Math.random(), 0.01 * Math.random(), -10, -2);
  }
  return out;
}

function warm(c: FallbackController, p: PrecisionPolicy, steps: number, sizes = new Map<string, number>()): Map<string, number> {
  for (let s = 1; s <= steps; s++) {
    const out = healthy(p, 3 - s / steps, sizes); // a falling loss
    expect(c.observe(s, out.loss![0]!, out), `step ${s}`).toBeNull();
  }
  return sizes;
}

describe('FallbackController', () => {
  it('leaves a noisy, healthy run alone', () => {
    const p = policyOn();
    const c = new FallbackController(p, { window: 10 });
    warm(c, p, 200);
    expect(c.history).toEqual([]);
    expect(p.options.rules).toEqual([]);
  });

  it('names the earliest operand in graph order whose amax jumped, not those downstream or in the backward', () => {
    const p = policyOn();
    const c = new FallbackController(p, { window: 8 });
    const sizes = warm(c, p, 12);
    const out = healthy(p, 2, sizes);
    out.loss![0] = 40; // a spike
    const jump = (name: string) => (out[name]![0] = sizes.get(name)! * 1e4);
    jump('numerics/blocks.1.mlp.fc/0/b'); // the weight, in the forward GEMM
    jump('numerics/blocks.1.mlp.proj/0/a'); // downstream of it
    jump('numerics/blocks.0.attn.qkv/2/a'); // an earlier layer's backward GEMM, which runs later
    const d = c.observe(13, 40, out)!;
    expect(d.cause).toMatch(/^loss spike: 40\.00 > 3 × [\d.]+ \(the median of the last 8 good steps\)$/);
    expect(d.attributed).toBe(true);
    expect(d.events).toHaveLength(1);
    expect(d.events[0]).toMatchObject({ step: 13, layer: 'blocks.1.mlp.fc', from: 'mxfp8', to: 'bf16' });
    expect(d.events[0]!.reason).toMatch(/its forward GEMM 0's operand b's amax jumped to .* from at most .* \(> 16×\)/);
    expect(c.history).toEqual(d.events);
    // The policy now keeps that layer (and only it) in BF16.
    const plan = new Map(p.plan(step()).map((l) => [l.layer, l]));
    expect(plan.get('blocks.1.mlp.fc')).toMatchObject({ recipe: 'bf16', reason: 'rule /^blocks\\.1\\.mlp\\.fc$/' });
    expect(plan.get('blocks.1.mlp.proj')!.recipe).toBe('mxfp8');
  });

  it('notices a non-finite loss even while warming up, and non-finite operands name their layer', () => {
    const p = policyOn({ recipe: 'nvfp4' });
    const c = new FallbackController(p);
    const sizes = warm(c, p, 3);
    const out = healthy(p, 2, sizes);
    out['numerics/blocks.0.mlp.proj/0/a']![1] = 0.25; // NaN in the input of blocks.0.mlp.proj
    out['numerics/blocks.1.attn.qkv/0/a']![1] = 1; // and everything after it
    const d = c.observe(4, NaN, out)!;
    expect(d.cause).toBe('the loss is NaN');
    expect(d.events.map((e) => [e.layer, e.from, e.to])).toEqual([['blocks.0.mlp.proj', 'nvfp4', 'mxfp8']]);
    expect(d.events[0]!.reason).toMatch(/its forward GEMM 0's operand a holds non-finite values \(25\.00%\)/);
    // A finite loss with a non-finite operand is a bad step too (its gradients would poison the update).
    const again = healthy(p, 2, sizes);
    again['numerics/blocks.1.mlp.proj/1/b']![1] = 0.01;
    expect(c.observe(5, 2, again)!.cause).toMatch(/^non-finite values in quantized operands \(blocks\.1\.mlp\.proj\/1\/b\)$/);
    // So is a non-finite gradient norm.
    expect(c.observe(6, 2, { ...healthy(p, 2, sizes), grad_norm: Float32Array.of(Infinity) })!.cause).toBe('the gradient norm is Infinity');
  });

  it('without numerics, demotes every quantized layer one level and says why; then throws when nothing is left', () => {
    const p = policyOn({ recipe: 'nvfp4', numerics: false });
    const c = new FallbackController(p, { window: 4 });
    for (let s = 1; s <= 6; s++) expect(c.observe(s, 2 + 0.01 * Math.random())).toBeNull();
    const quantized = p.lastPlan!.filter((d) => d.rewritten > 0).map((d) => d.layer);
    expect(quantized.length).toBe(8);
    const d = c.observe(7, 100)!;
    expect(d.attributed).toBe(false);
    expect(d.events.map((e) => e.layer)).toEqual(quantized);
    expect(d.events.every((e) => e.from === 'nvfp4' && e.to === 'mxfp8')).toBe(true);
    expect(d.events[0]!.reason).toMatch(/not attributable to one layer \(no numerics to tell which layer \(the policy's numerics: true would\)\)/);
    p.run(step()); // the trainer recompiles
    expect(c.observe(8, Infinity)!.events.every((e) => e.from === 'mxfp8' && e.to === 'bf16')).toBe(true);
    p.run(step());
    const e = errorOf(() => c.observe(9, NaN));
    expect(e.message).toBe('The step went wrong at step 9 (the loss is NaN) and every layer already runs in BF16: nothing left to fall back to (lower the learning rate, or check the data)');
    expect(c.history.length).toBe(16);
  });

  it('replays recorded demotions, and rewinds its good steps', () => {
    const p = policyOn();
    const c = new FallbackController(p, { window: 4 });
    c.replay([{ step: 7, layer: 'blocks.0.attn.qkv', from: 'mxfp8', to: 'bf16', reason: 'earlier' }]);
    expect(p.plan(step()).find((d) => d.layer === 'blocks.0.attn.qkv')!.recipe).toBe('bf16');
    expect(c.history).toHaveLength(1);
    // Four good steps make the spike detector ready; rewinding to step 2 makes it wait again.
    for (let s = 1; s <= 4; s++) expect(c.observe(s, 2)).toBeNull();
    c.rewind(2);
    expect(c.observe(3, 50)).toBeNull(); // two good steps only: not judged
    expect(c.observe(4, 2)).toBeNull();
    expect(c.observe(5, 50)).not.toBeNull();
    expect(errorOf(() => c.replay([{ layer: 'x', to: 'fp6' } as never])).message).toMatch(/Expected a fallback event \{ step, layer, from, to, reason \}/);
  });

  it('refuses bad options', () => {
    const p = policyOn();
    const msg = (o: unknown) => errorOf(() => new FallbackController(p, o as never)).message;
    expect(msg({ window: 0 })).toBe('Expected a positive integer for fallback.window but received 0');
    expect(msg({ spikeFactor: 1 })).toBe('Expected a finite number > 1 for fallback.spikeFactor but received 1');
    expect(msg({ amaxJump: Infinity })).toBe('Expected a finite number > 1 for fallback.amaxJump but received Infinity');
    expect(msg({ snapshotEvery: 2.5 })).toBe("Expected a positive integer or 'auto' for fallback.snapshotEvery but received 2.5");
    expect(msg({ snapshotEvery: 'sometimes' })).toBe("Expected a positive integer or 'auto' for fallback.snapshotEvery but received \"sometimes\"");
    expect(msg({ windw: 3 })).toBe('Expected one of window, spikeFactor, amaxJump, snapshotEvery for a fallback option but received "windw"');
    expect(msg(7)).toMatch(/^Expected fallback options .* or false but received 7$/);
    expect(errorOf(() => new FallbackController({} as never)).message).toMatch(/Expected a PrecisionPolicy for the fallback controller/);
    expect(checkFallbackOptions(undefined)).toEqual({ window: 20, spikeFactor: 3, amaxJump: 16, snapshotEvery: 'auto' });
  });
});
