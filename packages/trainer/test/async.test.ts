// Issue 19, defect 8: fitAsync runs fit's loop (one implementation), yielding to the event loop
// between steps: the same losses bit for bit, timers run while it trains, and an AbortSignal stops
// it after the current step with a checkpoint of that step and an ABORTED error.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tinyRun } from './tiny-run.js';
import { Trainer, checkpointsIn, readSafetensors } from '../src/index.js';

const seed = 1 + Math.floor(Math.random() * 1e6);
const { options } = tinyRun(seed);
const fresh = () => mkdtempSync(join(tmpdir(), 'deepwell-async-'));


describe('Trainer.fitAsync', () => {
  it("gives fit's losses bit for bit, and timers run between its steps", async () => {
    const sync = new Trainer(options()).fit();
    const t = new Trainer(options());
    let step = 0;
    t.on('step', (e) => (step = e.step));
    const ticksAt: number[] = [];
    const timer = setInterval(() => ticksAt.push(step), 0);
    const r = await t.fitAsync();
    clearInterval(timer);
    expect(r.losses).toEqual(sync.losses);
    expect(r.losses.map((l) => l.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    // The interval fired while the run was between its first and last step.
    expect(ticksAt.filter((s) => s >= 1 && s < 12).length).toBeGreaterThan(0);
  });

  it('an abort stops it after the current step, checkpoints that step and rejects with ABORTED; the run resumes exactly', async () => {
    const dir = fresh();
    const t = new Trainer(options({ steps: 40, checkpoint: { dir, every: 100 } }));
    let step = 0;
    t.on('step', (e) => (step = e.step));
    const controller = new AbortController();
    let ticks = 0;
    // Aborted from a timer, so only an event loop that runs during training can stop it.
    const timer = setInterval(() => {
      ticks++;
      if (step >= 5) controller.abort();
    }, 0);
    const e = (await t.fitAsync({ signal: controller.signal }).then(
      () => null,
      (x: unknown) => x,
    )) as { code: string; message: string; details: { step: number; checkpoint: string | null } } | null;
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
    expect(e).not.toBeNull();
    expect(e!.code).toBe('ABORTED');
    expect(step).toBeGreaterThanOrEqual(5);
    expect(step).toBeLessThan(40);
    expect(e!.details.step).toBe(step);
    expect(e!.message).toMatch(new RegExp(`aborted after step ${step} of 40`));
    expect(checkpointsIn(dir).map((c) => c.step)).toEqual([step]);
    expect(e!.details.checkpoint).toBe(checkpointsIn(dir)[0]!.path);
    expect(readSafetensors(e!.details.checkpoint!).metadata.step).toBe(String(step));
    const whole = new Trainer(options({ steps: 40 })).fit().losses;
    expect(new Trainer(options({ steps: 40, checkpoint: { dir, every: 100 } })).fit({ resume: true }).losses).toEqual(whole);
  });

  it('an already aborted signal rejects before training; without a checkpoint directory nothing is written', async () => {
    const t = new Trainer(options());
    let started = false;
    t.on('start', () => (started = true));
    const controller = new AbortController();
    controller.abort();
    await expect(t.fitAsync({ signal: controller.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    expect(started).toBe(false);
    // The Trainer was not used up: it can still train, and an abort without a checkpoint directory says nothing was saved.
    const again = new AbortController();
    t.on('step', (e) => {
      if (e.step === 3) again.abort();
    });
    await expect(t.fitAsync({ signal: again.signal })).rejects.toMatchObject({ code: 'ABORTED', message: expect.stringMatching(/after step 3 of 12 .*nothing was saved/) });
    await expect(new Trainer(options()).fitAsync({ signal: 'stop' } as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/AbortSignal for signal/) });
  });
});
