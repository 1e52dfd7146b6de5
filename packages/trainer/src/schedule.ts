/**
 * Learning-rate schedules, as functions of the 1-based step. `warmupCosine`: linear warm-up from
 * lr/warmup to lr over `warmup` steps, then a cosine decay to `minLr` at `total`, flat after (as
 * nanoGPT and llm.c schedule GPT-2 training).
 *
 * A checkpoint records the Trainer's schedule as a ScheduleRecord (its four numbers, or 'custom'
 * for a function), so a resumed run can tell whether its options would reshape the schedule.
 */
import { DeepwellError, checkInteger, checkKeys, checkNumber, describe, invalid } from '@deepwell/core';

export type Schedule = (step: number) => number;

export interface WarmupCosineOptions {
  /** The peak learning rate: a finite number > 0. */
  lr: number;
  /** Steps of linear warm-up, an integer in [0, total]. Default 0. */
  warmup?: number;
  /** The last step of the cosine, an integer >= 1 (at most 2^31 - 1). */
  total: number;
  /** The learning rate at `total` and after, in [0, lr]. Default lr / 10. */
  minLr?: number;
}

/** The most steps a schedule (and a Trainer) counts to. */
export const MAX_STEPS = 2 ** 31 - 1;

export function warmupCosine(options: WarmupCosineOptions): Schedule {
  checkKeys(options, ['lr', 'warmup', 'total', 'minLr'], 'warmupCosine');
  const { lr } = options;
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr <= 0) invalid('a positive learning rate (a finite number > 0)', 'warmupCosine lr', lr);
  const total = checkInteger(options.total, 'warmupCosine total steps', 1, MAX_STEPS);
  const warmup = options.warmup === undefined ? 0 : checkInteger(options.warmup, 'warmupCosine warmup steps', 0, total);
  const minLr = options.minLr === undefined ? lr / 10 : checkNumber(options.minLr, 'warmupCosine minLr', { min: 0, max: lr });
  const at: Schedule = (step) => {
    if (step <= warmup) return (lr * step) / warmup;
    if (step >= total) return minLr;
    const progress = (step - warmup) / (total - warmup);
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
  const schedule: Schedule = (step) => {
    checkInteger(step, 'the schedule step (1-based)', 1);
    return at(step);
  };
  UNCHECKED.set(schedule, at);
  return schedule;
}

/** Each warmupCosine schedule's body without its per-call step check. */
const UNCHECKED = new WeakMap<Schedule, Schedule>();

/**
 * For the Trainer's loop (internal, not exported from the package): a warmupCosine schedule without
 * its per-call step check (the loop's steps are integers >= 1 by construction); any other schedule
 * as it is. scheduledLr still checks what it returns.
 */
export function uncheckedSchedule(schedule: Schedule): Schedule {
  return UNCHECKED.get(schedule) ?? schedule;
}

/** The same learning rate at every step: a finite number >= 0. */
export function constant(lr: number): Schedule {
  checkNumber(lr, 'constant lr', { min: 0 });
  return () => lr;
}

/**
 * The learning rate `schedule` gives `step`, checked: a finite number >= 0, else an error naming
 * the step (a schedule function of the caller's that went negative or NaN there).
 */
export function scheduledLr(schedule: Schedule, step: number): number {
  const lr = schedule(step);
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected a finite learning rate >= 0 from the schedule at step ${step} but received ${describe(lr)}`, { details: { step, lr } });
  }
  return lr;
}

/** A schedule as a checkpoint records it: warmupCosine's parameters, or 'custom' for a function (which cannot be compared). */
export type ScheduleRecord = ({ kind: 'warmupCosine' } & Required<WarmupCosineOptions>) | { kind: 'custom' };

/** The warmupCosine schedule a record describes (null for a 'custom' one). */
export function scheduleOf(record: ScheduleRecord): Schedule | null {
  return record.kind === 'warmupCosine' ? warmupCosine({ lr: record.lr, warmup: record.warmup, total: record.total, minLr: record.minLr }) : null;
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
