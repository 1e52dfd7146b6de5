// AdamW's hyperparameter ranges, shared by the op (adamw, adamw_multi) and trainingStep's options.
// Not an op: ops/optim/index.ts does not re-export it.
import { checkNumber } from '@deepwell/core';

/**
 * AdamW's hyperparameters in their ranges: beta1 and beta2 in [0, 1) (at 1 the bias correction
 * divides by zero), eps and weightDecay finite and >= 0. `what` names the op or options object.
 */
export function checkAdamWAttrs(o: Readonly<Record<string, unknown>>, what: string): void {
  for (const k of ['beta1', 'beta2'] as const) if (o[k] !== undefined) checkNumber(o[k], `${what} ${k}`, { min: 0, below: 1 });
  for (const k of ['eps', 'weightDecay'] as const) if (o[k] !== undefined) checkNumber(o[k], `${what} ${k}`, { min: 0 });
}
