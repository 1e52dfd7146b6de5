// The Trainer with a precision policy and auto-fallback, on the CPU reference backend with the tiny
// GPT: a forced fault (after step N a 'step' listener multiplies one quantized layer's weight by
// 1e40 through Executable.set, so part of it overflows to ±Inf) makes the next step bad; the
// trainer names the layer from the numerics outputs, demotes it to BF16, rolls back to its
// in-memory snapshot, and the run ends with finite, sane losses. Without numerics every quantized
// layer goes down one level, the rollback comes from the last checkpoint, and a resumed run keeps
// the demotions. Without a policy (or with fallback: false) a non-finite loss still throws.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Executable } from '@deepwell/ir';
import { GPT } from '@deepwell/nn';
import { PrecisionPolicy, type PolicyOptions } from '@deepwell/precision';
import { describe, expect, it } from 'vitest';
import { Trainer, readSafetensors, type TrainerEvents, type TrainerOptions } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';
import { tinyRun } from './tiny-run.js';

const { options } = tinyRun(1, 5);
const fresh = () => mkdtempSync(join(tmpdir(), 'deepwell-fallback-'));
const policy = (o: Partial<PolicyOptions> = {}) => new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false, minWeightElements: 0, ...o });
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** A trainer whose `layer` weight is multiplied by `factor` once, after step `at`. */
function faulty(opts: TrainerOptions, at: number | null, layer = 'blocks.1.mlp.fc', factor = 1e40) {
  const t = new Trainer(opts);
  let exe: Executable | null = null;
  let done = false;
  const fallbacks: Omit<TrainerEvents['fallback'], 'executable'>[] = [];
  const starts: Executable[] = [];
  t.on('start', (e) => starts.push((exe = e.executable)));
  t.on('fallback', ({ executable, ...e }) => {
    exe = executable;
    fallbacks.push(e);
  });
  t.on('step', (e) => {
    if (e.step !== at || done) return;
    done = true;
    const w = `${layer}.weight`;
    exe!.set(w, Float64Array.from(exe!.get(w), (v) => v * factor));
  });
  return { t, fallbacks, starts };
}

describe('Trainer with a precision policy and auto-fallback', () => {
  it('a fault in one quantized layer: named from the numerics, demoted, rolled back, and training goes on', () => {
    const dir = fresh();
    const opts = (over: Partial<TrainerOptions> = {}) => options({ steps: 24, policy: policy({ numerics: true }), fallback: { window: 5, snapshotEvery: 4 }, ...over });
    const reference = new Trainer(opts()).fit();
    expect(reference.fallbacks).toEqual([]);
    const { t, fallbacks } = faulty(opts({ log: { progress: false, jsonl: join(dir, 'log.jsonl') } }), 10);
    const r = t.fit();

    expect(fallbacks).toHaveLength(1);
    const f = fallbacks[0]!;
    expect(f).toMatchObject({ step: 11, restoredTo: 8, source: 'snapshot' });
    expect(f.cause).toMatch(/^(the loss is (NaN|-?Infinity)|non-finite values in quantized operands .*)$/);
    expect(f.events).toHaveLength(1);
    expect(f.events[0]).toMatchObject({ step: 11, layer: 'blocks.1.mlp.fc', from: 'mxfp8', to: 'bf16' });
    expect(f.events[0]!.reason).toMatch(/its forward GEMM 0's operand b holds non-finite values/);
    expect(r.fallbacks).toEqual(f.events);
    expect(r.plan!.find((d) => d.layer === 'blocks.1.mlp.fc')).toMatchObject({ recipe: 'bf16', rewritten: 0 });
    expect(r.plan!.find((d) => d.layer === 'blocks.1.mlp.proj')).toMatchObject({ recipe: 'mxfp8', rewritten: 3 });

    // Every step once, in order, finite; the steps before the rollback point are the reference's.
    expect(r.losses.map((l) => l.step)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(r.losses.every((l) => Number.isFinite(l.loss))).toBe(true);
    expect(r.losses.slice(0, 8)).toEqual(reference.losses.slice(0, 8));
    // After recovery the run learns as the undisturbed one does.
    const tail = mean(r.losses.slice(-6).map((l) => l.loss));
    expect(tail).toBeLessThan(mean(r.losses.slice(0, 3).map((l) => l.loss)) - 0.2);
    expect(Math.abs(tail - mean(reference.losses.slice(-6).map((l) => l.loss)))).toBeLessThan(0.15);

    // The last step's numerics: every layer still quantized, none at BF16.
    expect(r.numerics!.map((l) => l.layer)).toEqual(r.plan!.filter((d) => d.rewritten > 0).map((d) => d.layer));
    expect(r.numerics!.every((l) => l.nonfinite === 0 && l.amax > 0)).toBe(true);
    console.log(`After the fallback:\n${PrecisionPolicy.table(r.plan!)}\n\n${PrecisionPolicy.numericsTable(r.numerics!)}`);
    const log = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const ev = log.find((l) => l.event === 'fallback');
    expect(ev).toMatchObject({ step: 11, restoredTo: 8, source: 'snapshot', events: [{ layer: 'blocks.1.mlp.fc', to: 'bf16' }] });
    expect(log.filter((l) => l.event === 'step').length).toBe(24 + 2); // steps 9 and 10 ran twice (the bad 11 is the 'fallback' line)
    // Each snapshot logged: before the first step, every 4th step; none at the bad step 11.
    const snaps = log.filter((l) => l.event === 'snapshot');
    expect(snaps.map((l) => l.step)).toEqual([0, 4, 8, 12, 16, 20, 24]);
    expect(snaps.every((l) => typeof l.ms === 'number' && l.ms >= 0)).toBe(true);
  }, 120_000);

  it('with the progress display on (the default), a rollback goes on: the steps run here may outnumber the step reached', () => {
    // After a rollback from step 11 to 8, step 9 is this process's 11th step: the display's ETA
    // counts steps run, and the run must not stop on a progress line.
    const opts = options({ steps: 16, policy: policy({ numerics: true }), fallback: { window: 5, snapshotEvery: 4 }, log: { progress: true, every: 1000 } });
    const { t, fallbacks } = faulty(opts, 10);
    const r = t.fit();
    expect(fallbacks).toHaveLength(1);
    expect(fallbacks[0]).toMatchObject({ step: 11, restoredTo: 8, source: 'snapshot' });
    expect(r.losses.map((l) => l.step)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(r.losses.every((l) => Number.isFinite(l.loss))).toBe(true);
  });

  it('without numerics: every quantized layer down one level, back to the last checkpoint; a resumed run keeps the demotions', () => {
    const dir = fresh();
    const opts = (over: Partial<TrainerOptions> = {}) => options({ policy: policy({ recipe: 'nvfp4' }), checkpoint: { dir, every: 5 }, ...over });
    const { t, fallbacks } = faulty(opts(), 7);
    t.on('step', (e) => {
      if (e.step === 11) throw new Error('interrupted');
    });
    expect(() => t.fit()).toThrow('interrupted');
    expect(fallbacks).toHaveLength(1);
    expect(fallbacks[0]).toMatchObject({ step: 8, restoredTo: 5, source: 'checkpoint' });
    const events = fallbacks[0]!.events;
    expect(events.map((e) => e.layer)).toEqual(['blocks.0.attn.qkv', 'blocks.0.attn.proj', 'blocks.0.mlp.fc', 'blocks.0.mlp.proj', 'blocks.1.attn.qkv', 'blocks.1.attn.proj', 'blocks.1.mlp.fc', 'blocks.1.mlp.proj']);
    expect(events.every((e) => e.from === 'nvfp4' && e.to === 'mxfp8' && /not attributable to one layer/.test(e.reason))).toBe(true);
    // The checkpoint of step 10 carries them ...
    const extra = JSON.parse(readSafetensors(join(dir, 'step-00000010.safetensors')).metadata.extra!);
    expect(extra.fallbacks).toEqual(events);
    // ... and the resumed run compiles with them from its first step.
    const resumed = faulty(opts(), null);
    const r = resumed.t.fit({ resume: true });
    const formats = new Set(resumed.starts[0]!.graph.nodes.filter((n) => n.op === 'fake_quant').map((n) => n.attrs.format));
    expect([...formats]).toEqual(['mxfp8-e4m3']);
    expect(r.fallbacks).toEqual(events);
    expect(r.plan!.filter((d) => d.rewritten > 0).every((d) => d.recipe === 'mxfp8')).toBe(true);
    expect(r.losses.map((l) => l.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(r.losses.every((l) => Number.isFinite(l.loss))).toBe(true);
  }, 120_000);

  it('snapshots change nothing: a snapshot after every step gives the losses of the run without the fallback, bit for bit', () => {
    const none = new Trainer(options({ steps: 12, policy: policy(), fallback: false })).fit();
    const every = new Trainer(options({ steps: 12, policy: policy(), fallback: { snapshotEvery: 1 } })).fit();
    expect(none.losses.every((l) => Number.isFinite(l.loss))).toBe(true);
    expect(every.losses.map((l) => l.loss)).toEqual(none.losses.map((l) => l.loss));
  });

  it('without a policy, or with fallback: false, a non-finite loss still throws', () => {
    for (const over of [{}, { policy: policy(), fallback: false as const }]) {
      const { t } = faulty(options({ steps: 6, ...over }), 3);
      expect(errorOf(() => t.fit()).message).toMatch(/^The loss is NaN at step 4 \(diverged/);
    }
  });

  it('rejects bad policy and fallback options', () => {
    expect(errorOf(() => new Trainer(options({ policy: { recipe: 'mxfp8' } as never }))).message).toBe('Expected a PrecisionPolicy (from @deepwell/precision) for policy but received an object (Object)');
    expect(errorOf(() => new Trainer(options({ fallback: { window: 5 } }))).message).toBe("Expected a policy for fallback (it demotes the policy's layers) but received undefined");
    expect(errorOf(() => new Trainer(options({ policy: policy(), fallback: { window: 0 } }))).message).toBe('Expected a positive integer for fallback.window but received 0');
    expect(errorOf(() => new Trainer(options({ policy: policy(), fallback: { spikeFactor: 0.5 } }))).message).toBe('Expected a finite number > 1 for fallback.spikeFactor but received 0.5');
    expect(errorOf(() => new Trainer(options({ policy: policy(), fallback: true as never }))).message).toMatch(/^Expected fallback options .* or false but received true$/);
  });
});
