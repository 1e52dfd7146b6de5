/**
 * Auto-fallback: a controller, fed each step's loss (and the policy's numerics outputs when the
 * policy has `numerics: true`), that notices a step going wrong, names the layer behind it, and
 * demotes that layer one level of precision by adding a rule in front of the policy's own.
 *
 * A step is bad when its loss (or its gradient norm, when the step reports one) is not finite, when
 * a quantized operand holds NaN or ±Inf (its gradients would poison the update), or when the loss
 * spikes: above `spikeFactor` × the median of the last `window` good losses, once `window` good
 * steps have been seen (before that the loss is still falling too fast to judge).
 *
 * Attribution reads the bad step's quant_stats in graph order — the forward GEMMs first, layer by
 * layer, then the backward ones — and takes the earliest operand that holds non-finite values or
 * whose amax jumped above `amaxJump` × the largest of its own last `window` good amaxes: where the
 * trouble first shows is where it starts (everything downstream of it, the backward pass
 * included, then looks bad too). That layer is demoted (nvfp4 → mxfp8 → bf16; fp8-tensorwise,
 * fp8-blockwise and mxfp8 → bf16). Without numerics, or when no operand stands out, attribution is
 * not possible: every quantized layer is demoted one level, and the reason says so. When nothing is
 * left to demote the controller throws, as the trainer does without a policy.
 *
 * The controller decides; rolling the weights back and recompiling is the trainer's part.
 */
import { DeepwellError, checkInteger, describe, invalid } from '@deepwell/core';
import { NUMERICS_PREFIX, RECIPES, checkRecipe, type PrecisionPolicy, type Recipe } from './policy.js';

export interface FallbackOptions {
  /** Good steps the spike detector looks back on (the median's window) and waits for first. Default 20. */
  window?: number;
  /** A loss above spikeFactor × the median of the last `window` good losses is a spike. Default 3. */
  spikeFactor?: number;
  /** An operand whose amax exceeds amaxJump × the largest of its last `window` good amaxes is named. Default 16. */
  amaxJump?: number;
  /**
   * For the trainer: keep an in-memory copy of the weights and optimizer state every this many
   * steps. Default 'auto': at least 25 steps apart, and spaced further where a copy (a host read of
   * about 12 bytes per parameter) would take more than 2% of the steps' time.
   */
  snapshotEvery?: number | 'auto';
}

export interface FallbackEvent {
  step: number;
  layer: string;
  from: Recipe;
  to: Recipe;
  reason: string;
}

export interface FallbackDecision {
  step: number;
  loss: number;
  /** What was wrong with the step. */
  cause: string;
  /** Whether one layer was named (else every quantized layer was demoted). */
  attributed: boolean;
  events: FallbackEvent[];
}

/** One level down: nvfp4 → mxfp8 → bf16; every 8-bit recipe → bf16. */
export const DEMOTE: Readonly<Record<Recipe, Recipe | null>> = Object.freeze({ nvfp4: 'mxfp8', mxfp8: 'bf16', 'fp8-blockwise': 'bf16', 'fp8-tensorwise': 'bf16', bf16: null });

export const FALLBACK_DEFAULTS: Readonly<Required<FallbackOptions>> = Object.freeze({ window: 20, spikeFactor: 3, amaxJump: 16, snapshotEvery: 'auto' });

export function checkFallbackOptions(options: unknown): Required<FallbackOptions> {
  if (options === undefined) return { ...FALLBACK_DEFAULTS };
  if (!options || typeof options !== 'object' || Array.isArray(options)) throw new DeepwellError('INVALID_ARGUMENT', `Expected fallback options ({ window, spikeFactor, amaxJump, snapshotEvery }) or false but received ${describe(options)}`);
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    // Own keys only: 'toString' is in every object, not a fallback option.
    if (!Object.hasOwn(FALLBACK_DEFAULTS, k)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${Object.keys(FALLBACK_DEFAULTS).join(', ')} for a fallback option but received ${describe(k)}`);
  }
  const int = (k: 'window' | 'snapshotEvery') => {
    if (o[k] !== undefined && !(Number.isInteger(o[k]) && (o[k] as number) >= 1)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a positive integer${k === 'snapshotEvery' ? " or 'auto'" : ''} for fallback.${k} but received ${describe(o[k])}`);
  };
  const factor = (k: 'spikeFactor' | 'amaxJump') => {
    if (o[k] !== undefined && !(typeof o[k] === 'number' && Number.isFinite(o[k]) && (o[k] as number) > 1)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a finite number > 1 for fallback.${k} but received ${describe(o[k])}`);
  };
  int('window');
  if (o.window !== undefined) checkInteger(o.window, 'fallback.window', 1, 1_000_000);
  if (o.snapshotEvery !== 'auto') int('snapshotEvery');
  factor('spikeFactor');
  factor('amaxJump');
  return { ...FALLBACK_DEFAULTS, ...(o as FallbackOptions) };
}

const exactly = (layer: string) => new RegExp(`^${layer.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (x: number) => (Number.isFinite(x) ? x.toPrecision(4) : String(x));

export class FallbackController {
  readonly options: Required<FallbackOptions>;
  readonly history: FallbackEvent[] = [];
  /** Good steps: their loss, and each numerics output's amax. */
  #good: { step: number; loss: number }[] = [];
  #amax = new Map<string, { step: number; amax: number }[]>();

  constructor(
    readonly policy: PrecisionPolicy,
    options?: FallbackOptions,
  ) {
    if (!policy || typeof policy.addRule !== 'function' || typeof policy.run !== 'function') throw new DeepwellError('INVALID_ARGUMENT', `Expected a PrecisionPolicy for the fallback controller but received ${describe(policy)}`);
    this.options = checkFallbackOptions(options);
  }

  /**
   * Look at one step (after policy.run() compiled it: the controller reads the policy's last plan).
   * Returns null for a good step; for a bad one, the decision, already applied to the policy.
   * Throws when the step is bad and every layer is already BF16.
   */
  observe(step: number, loss: number, outputs: Record<string, ArrayLike<number>> = {}): FallbackDecision | null {
    checkInteger(step, 'the step to observe');
    // NaN and ±Inf are what the controller is for: only a non-number is refused.
    if (typeof loss !== 'number') invalid('a number (NaN and ±Infinity included)', 'the loss to observe', loss);
    if (typeof outputs !== 'object' || outputs === null || Array.isArray(outputs)) invalid("a step's outputs (a record of arrays)", 'observe', outputs);
    for (const [name, v] of Object.entries(outputs)) {
      if (!name.startsWith(NUMERICS_PREFIX) && name !== 'grad_norm') continue; // what the controller reads
      const ok = Array.isArray(v) ? v.every((x) => typeof x === 'number') : ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array);
      if (!ok) invalid('an array or typed array of numbers', `output '${name}'`, v);
      if ((name.startsWith(NUMERICS_PREFIX) && v.length < 2) || (name === 'grad_norm' && v.length < 1)) invalid(`${name === 'grad_norm' ? 'one value' : 'quant_stats values'}`, `output '${name}'`, v);
    }
    const o = this.options;
    const numerics = this.policy.lastNumerics.filter((n) => outputs[n.name] !== undefined);
    const stat = (name: string, k: number) => outputs[name]![k]!;
    const gradNorm = outputs.grad_norm?.[0];
    const poisoned = numerics.filter((n) => stat(n.name, 1) > 0);
    const recent = this.#good.slice(-o.window).map((g) => g.loss);
    const med = recent.length >= o.window ? median(recent) : NaN;
    let cause: string | null = null;
    if (!Number.isFinite(loss)) cause = `the loss is ${loss}`;
    else if (gradNorm !== undefined && !Number.isFinite(gradNorm)) cause = `the gradient norm is ${gradNorm}`;
    else if (poisoned.length) cause = `non-finite values in quantized operands (${poisoned.slice(0, 3).map((n) => n.name.slice(NUMERICS_PREFIX.length)).join(', ')}${poisoned.length > 3 ? ', …' : ''})`;
    else if (loss > o.spikeFactor * med) cause = `loss spike: ${fmt(loss)} > ${o.spikeFactor} × ${fmt(med)} (the median of the last ${o.window} good steps)`;
    if (cause === null) {
      this.#good.push({ step, loss });
      if (this.#good.length > o.window) this.#good.shift();
      for (const n of numerics) {
        const h = this.#amax.get(n.name) ?? [];
        h.push({ step, amax: stat(n.name, 0) });
        if (h.length > o.window) h.shift();
        this.#amax.set(n.name, h);
      }
      return null;
    }

    const plan = this.policy.lastPlan ?? [];
    const recipeOf = new Map(plan.map((d) => [d.layer, d.recipe]));
    let culprit: { layer: string; why: string } | null = null;
    for (const n of numerics) {
      const where = `its ${n.pass} GEMM ${n.gemm}'s operand ${n.operand}`;
      const amax = stat(n.name, 0);
      const before = Math.max(0, ...(this.#amax.get(n.name) ?? []).map((h) => h.amax));
      if (stat(n.name, 1) > 0) culprit = { layer: n.layer, why: `${where} holds non-finite values (${fmt(100 * stat(n.name, 1))}%)` };
      else if (before > 0 && amax > o.amaxJump * before) culprit = { layer: n.layer, why: `${where}'s amax jumped to ${fmt(amax)} from at most ${fmt(before)} (> ${o.amaxJump}×)` };
      if (culprit && DEMOTE[recipeOf.get(n.layer) ?? 'bf16']) break;
      culprit = null;
    }
    const events: FallbackEvent[] = [];
    const demote = (layer: string, reason: string) => {
      const from = recipeOf.get(layer)!;
      events.push({ step, layer, from, to: DEMOTE[from]!, reason });
    };
    if (culprit) demote(culprit.layer, `${cause}; ${culprit.why}`);
    else {
      const why = numerics.length ? 'no quantized operand showed non-finite values or an amax jump' : "no numerics to tell which layer (the policy's numerics: true would)";
      for (const d of plan) if (d.rewritten > 0 && DEMOTE[d.recipe]) demote(d.layer, `${cause}; not attributable to one layer (${why}): every quantized layer goes down one level`);
    }
    if (!events.length) {
      throw new DeepwellError('INTERNAL', `The step went wrong at step ${step} (${cause}) and every layer already runs in BF16: nothing left to fall back to (lower the learning rate, or check the data)`, { details: { step, loss } });
    }
    this.#apply(events);
    return { step, loss, cause, attributed: culprit !== null, events };
  }

  /** Re-apply recorded demotions (a resumed run keeps them). */
  replay(history: readonly FallbackEvent[]): void {
    if (!Array.isArray(history)) throw new DeepwellError('INVALID_ARGUMENT', `Expected an array of fallback events to replay but received ${describe(history)}`);
    for (const e of history) {
      if (!e || typeof e !== 'object' || typeof e.layer !== 'string' || !Number.isSafeInteger(e.step) || e.step < 0 || typeof e.reason !== 'string') {
        throw new DeepwellError('INVALID_ARGUMENT', `Expected a fallback event { step, layer, from, to, reason } but received ${describe(e)}`);
      }
      checkRecipe(e.from, `for the fallback event's from (${e.layer})`);
      checkRecipe(e.to, `for the fallback event's to (${e.layer})`);
    }
    this.#apply(history);
  }

  /** Forget the good steps after `step` (the trainer rolled back to it and will run them again). */
  rewind(step: number): void {
    checkInteger(step, 'the step to rewind to', -1);
    this.#good = this.#good.filter((g) => g.step <= step);
    for (const h of this.#amax.values()) h.splice(0, h.length, ...h.filter((x) => x.step <= step));
  }

  #apply(events: readonly FallbackEvent[]): void {
    for (const e of events) {
      this.policy.addRule({ match: exactly(e.layer), recipe: e.to }, { first: true });
      this.history.push({ ...e });
    }
  }
}
