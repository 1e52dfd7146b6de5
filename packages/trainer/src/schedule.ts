/**
 * Learning-rate schedules, as functions of the 1-based step. `warmupCosine`: linear warm-up from
 * lr/warmup to lr over `warmup` steps, then a cosine decay to `minLr` at `total`, flat after (as
 * nanoGPT and llm.c schedule GPT-2 training).
 *
 * A checkpoint records the Trainer's schedule as a ScheduleRecord (its four numbers, or 'custom'
 * for a function), so a resumed run can tell whether its options would reshape the schedule.
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

/** A schedule as a checkpoint records it: warmupCosine's parameters, or 'custom' for a function (which cannot be compared). */
export type ScheduleRecord = ({ kind: 'warmupCosine' } & Required<WarmupCosineOptions>) | { kind: 'custom' };

/** The warmupCosine schedule a record describes (null for a 'custom' one). */
export function scheduleOf(record: ScheduleRecord): Schedule | null {
  return record.kind === 'warmupCosine' ? warmupCosine(record) : null;
}

const num = (x: number) => String(Number(x.toPrecision(6)));

/** What differs between two records, as "lr 0.003 → 0.001" phrases (empty when they agree). */
export function scheduleDifferences(from: ScheduleRecord, to: ScheduleRecord): string[] {
  if (from.kind !== to.kind) return [`${from.kind === 'custom' ? 'a schedule function' : 'warmupCosine'} → ${to.kind === 'custom' ? 'a schedule function' : 'warmupCosine'}`];
  if (from.kind === 'custom' || to.kind === 'custom') return [];
  return (['lr', 'warmup', 'minLr', 'total'] as const).filter((k) => from[k] !== to[k]).map((k) => `${k} ${num(from[k])} → ${num(to[k])}${k === 'total' ? ' (steps)' : ''}`);
}

/** A record as words: "lr 0.003, warm-up 2 steps, cosine to minLr 0.0003 at step 12". */
export function describeSchedule(r: ScheduleRecord): string {
  return r.kind === 'custom' ? 'a schedule function' : `lr ${num(r.lr)}, warm-up ${r.warmup} steps, cosine to minLr ${num(r.minLr)} at step ${r.total}`;
}

/** A JSON value read back from a checkpoint as a ScheduleRecord, or null when it is not one. */
export function asScheduleRecord(v: unknown): ScheduleRecord | null {
  const r = v as Record<string, unknown> | null;
  if (r?.kind === 'custom') return { kind: 'custom' };
  if (r?.kind !== 'warmupCosine') return null;
  const { lr, warmup, minLr, total } = r;
  return [lr, warmup, minLr, total].every((x) => typeof x === 'number' && Number.isFinite(x)) ? { kind: 'warmupCosine', lr: lr as number, warmup: warmup as number, minLr: minLr as number, total: total as number } : null;
}
