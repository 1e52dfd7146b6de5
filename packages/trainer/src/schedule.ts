/**
 * Learning-rate schedules, as functions of the 1-based step. `warmupCosine`: linear warm-up from
 * lr/warmup to lr over `warmup` steps, then a cosine decay to `minLr` at `total`, flat after (as
 * nanoGPT and llm.c schedule GPT-2 training).
 */
import { DeepwellError, describe } from '@deepwell/core';

export type Schedule = (step: number) => number;

export interface WarmupCosineOptions {
  lr: number;
  warmup?: number;
  total: number;
  minLr?: number;
}

export function warmupCosine(options: WarmupCosineOptions): Schedule {
  const { lr, total } = options;
  const warmup = options.warmup ?? 0;
  const minLr = options.minLr ?? lr / 10;
  const check = (ok: boolean, what: string, v: unknown) => {
    if (!ok) throw new DeepwellError('INVALID_ARGUMENT', `Expected ${what} but received ${describe(v)}`);
  };
  check(Number.isFinite(lr) && lr > 0, 'a positive learning rate for lr', lr);
  check(Number.isInteger(total) && total >= 1, 'a positive integer for total steps', total);
  check(Number.isInteger(warmup) && warmup >= 0 && warmup <= total, `an integer in [0, ${total}] for warmup steps`, warmup);
  check(Number.isFinite(minLr) && minLr >= 0 && minLr <= lr, `a minLr in [0, ${lr}]`, minLr);
  return (step) => {
    if (step <= warmup) return (lr * step) / warmup;
    if (step >= total) return minLr;
    const progress = (step - warmup) / (total - warmup);
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
}

export const constant = (lr: number): Schedule => () => lr;
