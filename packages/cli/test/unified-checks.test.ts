// Issue 20: a run config's Trainer settings are checked by the Trainer's own check
// (checkTrainerSettings, checkDevice), in loadRunConfig and before deepwell train reads any data:
// the same values the Trainer refuses are refused here, with the same typed error.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkTrainerSettings } from '@deepwell/trainer';
import { main, loadRunConfig } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'deepwell-cli-unified-'));
const rnd = (lo: number, hi: number) => lo + Math.random() * (hi - lo);
const int = (lo: number, hi: number) => Math.floor(rnd(lo, hi + 1));
let n = 0;
/** A run config file whose data folder does not exist (nothing may be read before the check). */
function configWith(extra: Record<string, unknown>): string {
  const path = join(dir, `c${n++}.json`);
  writeFileSync(path, JSON.stringify({ model: 'tiny', data: `nowhere-${int(0, 1e9)}`, batchSize: 2, seqLen: 8, steps: int(5, 50), ...extra }));
  return path;
}
async function run(...argv: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const code = await main(argv, { out: () => {}, err: (s) => err.push(s) });
  return { code, err: err.join('\n') };
}

/** Settings the CLI's own checks used to let through and the Trainer refuses. */
const drifted = (): [string, Record<string, unknown>, RegExp][] => [
  ['optimizer.beta1 >= 1', { optimizer: { beta1: rnd(1, 9) } }, /optimizer\.beta1/],
  ['optimizer.beta2 >= 1', { optimizer: { beta2: int(1, 7) } }, /optimizer\.beta2/],
  ['optimizer.lr 0', { optimizer: { lr: 0 } }, /optimizer\.lr/],
  ['optimizer.eps 0', { optimizer: { eps: 0 } }, /optimizer\.eps/],
  ['clipGradNorm 0', { clipGradNorm: 0 }, /clipGradNorm/],
  ['schedule.warmup past steps', { steps: 4, schedule: { warmup: int(5, 1000) } }, /schedule\.warmup/],
  ['schedule.minLr above lr', { optimizer: { lr: 1e-3 }, schedule: { minLr: rnd(2e-3, 1) } }, /schedule\.minLr/],
];

describe('run config checked by the Trainer\'s check', () => {
  for (const [name, extra, re] of drifted()) {
    it(`loadRunConfig refuses ${name} as the Trainer does`, () => {
      const e = errorOf(() => loadRunConfig(configWith(extra)));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(re);
      // The same settings, given to the Trainer's check, give the same code and wording.
      const steps = (extra.steps as number | undefined) ?? 10;
      const t = errorOf(() => checkTrainerSettings({ steps, ...extra } as never));
      expect(t.code).toBe(e.code);
      expect(e.message).toContain(t.message);
    });
  }

  it('deepwell train and dryrun refuse them before reading the data folder', async () => {
    for (const [, extra, re] of drifted()) {
      for (const cmd of ['train', 'dryrun']) {
        const r = await run(cmd, configWith(extra));
        expect(r.code, r.err).toBe(1);
        expect(r.err).toMatch(re);
        expect(r.err).not.toMatch(/does not exist|internal error|TypeError/);
      }
    }
  });

  it('deepwell train refuses a device the Trainer refuses before reading the data folder', async () => {
    for (const device of ['gpu0', 'cuda:x', `cuda:${int(64, 999)}`, 'CPU ']) {
      const r = await run('train', configWith({ device }));
      expect(r.code, r.err).toBe(1);
      expect(r.err).toMatch(/device|cuda/i);
      expect(r.err).not.toMatch(/does not exist|internal error|TypeError/);
    }
  });

  it('still accepts settings the Trainer accepts', () => {
    const lr = rnd(1e-4, 1e-2);
    const c = loadRunConfig(configWith({ optimizer: { lr, beta1: rnd(0, 0.99), beta2: rnd(0, 0.999), eps: rnd(1e-9, 1e-6), weightDecay: rnd(0, 0.2) }, schedule: { warmup: 2, minLr: lr / 10 }, clipGradNorm: rnd(0.1, 5), accumulate: int(1, 8), evalEvery: int(1, 5), evalBatches: int(1, 5), seed: int(0, 1000), precision: 'f32', device: 'cpu' }));
    expect(c.optimizer!.lr).toBe(lr);
  });
});

describe("run config's sample checked by nn's sampling check", () => {
  it('deepwell train and dryrun refuse sample.topK past the model\'s vocabulary (train: before reading the data folder, not after)', async () => {
    for (const sample of [{ topK: int(100_000, 1e9) }, { temperature: -rnd(0.1, 5) }, { seed: -int(1, 9) }]) {
      for (const cmd of ['train', 'dryrun']) {
        const r = await run(cmd, configWith({ sample: { prompt: 'Hi', ...sample } }));
        expect(r.code, `${cmd} ${r.err}`).toBe(1);
        expect(r.err).toMatch(new RegExp(`for sample\\.${Object.keys(sample)[0]} but received`));
        expect(r.err).not.toMatch(/does not exist|internal error|TypeError/);
      }
    }
  });
});
