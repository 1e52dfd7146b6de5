/**
 * ZeRO-1's bookkeeping (issue 22): which rank owns which part of the optimizer state.
 *
 * The parameters, in a fixed order, are viewed as one flat vector of N elements. Each of W ranks
 * owns one contiguous shard of it, [start, end), the shards in rank order covering every element
 * once; shard boundaries fall on multiples of `align` elements (so each shard's slice of a flat
 * gradient buffer is aligned for a reduce-scatter) and the shard sizes differ by at most `align`.
 * A rank updates (AdamW) only its shard and keeps the moments of its shard only; the updated
 * parameters are all-gathered. A shard may cut a parameter: `piecesOf` lists, for a shard, the
 * (parameter, range within it) pieces it holds.
 *
 * Checkpoints hold whole tensors (the shards gathered, written once by rank 0), so the layout is the
 * single-GPU one and a run resumes on any number of GPUs: `shardOf` cuts the loaded whole tensors for
 * the new world size, and `gatherShards` puts shards back together (bitwise: it only copies).
 */
import { DeepwellError, checkInteger, describe } from '@deepwell/core';

export interface ZeroPlan {
  /** Elements of each parameter, in order. */
  sizes: readonly number[];
  /** Each parameter's first element in the flat vector. */
  offsets: readonly number[];
  total: number;
  worldSize: number;
  align: number;
  /** Each rank's [start, end) of the flat vector. */
  shards: readonly (readonly [number, number])[];
}

/** The shards of parameters of `sizes` elements over `worldSize` ranks, boundaries on multiples of `align`. */
export function zeroPlan(sizes: readonly number[], worldSize: number, align = 64): ZeroPlan {
  if (!Array.isArray(sizes) || sizes.length === 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a non-empty array of parameter sizes for zeroPlan but received ${Array.isArray(sizes) ? 'an empty array' : describe(sizes)}`);
  sizes.forEach((s, i) => checkInteger(s, `sizes[${i}] of zeroPlan`, 1));
  const W = checkInteger(worldSize, 'worldSize of zeroPlan', 1, 65536);
  const A = checkInteger(align, 'align of zeroPlan', 1, 1 << 20);
  const offsets: number[] = [];
  let total = 0;
  for (const s of sizes) {
    offsets.push(total);
    total += s;
  }
  if (total > Number.MAX_SAFE_INTEGER) throw new DeepwellError('INVALID_ARGUMENT', `Expected at most 2^53 - 1 elements in all for zeroPlan but received ${total}`);
  // Units of `align` elements (the last may be short), dealt out as evenly as whole units allow:
  // the last (units mod W) ranks take one unit more, so the rank holding the short unit is one of
  // them and no two shards differ by more than `align` elements.
  const units = Math.ceil(total / A);
  const base = Math.floor(units / W), extra = units % W;
  const shards: [number, number][] = [];
  let unit = 0;
  for (let r = 0; r < W; r++) {
    const n = base + (r >= W - extra ? 1 : 0);
    shards.push([Math.min(total, unit * A), Math.min(total, (unit + n) * A)]);
    unit += n;
  }
  return { sizes: [...sizes], offsets, total, worldSize: W, align: A, shards };
}

/** `plan` if it is a plan zeroPlan made (its fields consistent), else INVALID_ARGUMENT naming `what`. */
function checkPlan(plan: unknown, what: string): ZeroPlan {
  const p = plan as ZeroPlan;
  const ok =
    typeof p === 'object' && p !== null && Array.isArray(p.sizes) && Array.isArray(p.offsets) && Array.isArray(p.shards) && p.sizes.length === p.offsets.length &&
    Number.isSafeInteger(p.worldSize) && p.shards.length === p.worldSize && Number.isSafeInteger(p.total) &&
    p.shards.every((r) => Array.isArray(r) && r.length === 2 && Number.isSafeInteger(r[0]) && Number.isSafeInteger(r[1]) && r[0] >= 0 && r[0] <= r[1] && r[1] <= p.total) &&
    p.sizes.every((s, i) => Number.isSafeInteger(s) && s >= 1 && Number.isSafeInteger(p.offsets[i]));
  if (!ok) throw new DeepwellError('INVALID_ARGUMENT', `Expected a plan from zeroPlan() for ${what} but received ${typeof plan === 'object' && plan !== null ? 'an object that is not one' : describe(plan)}`);
  return p;
}

/** The (parameter index, [from, to) within it) pieces of the flat range [start, end), in order. */
export function piecesOf(plan: ZeroPlan, start: number, end: number): { param: number; from: number; to: number }[] {
  checkPlan(plan, 'piecesOf');
  checkInteger(start, 'start of piecesOf', 0, plan.total);
  checkInteger(end, 'end of piecesOf', start, plan.total);
  const out: { param: number; from: number; to: number }[] = [];
  for (let p = 0; p < plan.sizes.length; p++) {
    const a = Math.max(start, plan.offsets[p]!), b = Math.min(end, plan.offsets[p]! + plan.sizes[p]!);
    if (a < b) out.push({ param: p, from: a - plan.offsets[p]!, to: b - plan.offsets[p]! });
  }
  return out;
}

/** Rank `rank`'s shard of whole tensors (one per parameter, in order), as one flat array. */
export function shardOf(plan: ZeroPlan, rank: number, tensors: readonly ArrayLike<number>[]): Float32Array {
  checkPlan(plan, 'shardOf');
  checkInteger(rank, 'rank of shardOf', 0, plan.worldSize - 1);
  if (!Array.isArray(tensors) || tensors.length !== plan.sizes.length) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${plan.sizes.length} tensors for shardOf but received ${Array.isArray(tensors) ? tensors.length : describe(tensors)}`);
  tensors.forEach((t, i) => {
    if (t?.length !== plan.sizes[i]) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${plan.sizes[i]} elements for tensor ${i} of shardOf but received ${t?.length}`);
  });
  const [start, end] = plan.shards[rank]!;
  const out = new Float32Array(end - start);
  let at = 0;
  for (const { param, from, to } of piecesOf(plan, start, end)) {
    const t = tensors[param]!;
    for (let i = from; i < to; i++) out[at++] = t[i]!;
  }
  return out;
}

/** The whole tensors from every rank's shard (in rank order): what rank 0 writes to a checkpoint. */
export function gatherShards(plan: ZeroPlan, shards: readonly ArrayLike<number>[]): Float32Array[] {
  checkPlan(plan, 'gatherShards');
  if (!Array.isArray(shards) || shards.length !== plan.worldSize) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${plan.worldSize} shards (one per rank) for gatherShards but received ${Array.isArray(shards) ? shards.length : describe(shards)}`);
  const out = plan.sizes.map((s) => new Float32Array(s));
  shards.forEach((shard, r) => {
    const [start, end] = plan.shards[r]!;
    if (shard?.length !== end - start) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${end - start} elements in rank ${r}'s shard for gatherShards but received ${shard?.length}`);
    let at = 0;
    for (const { param, from, to } of piecesOf(plan, start, end)) for (let i = from; i < to; i++) out[param]![i] = shard[at++]!;
  });
  return out;
}
