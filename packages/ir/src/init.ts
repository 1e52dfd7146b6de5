/**
 * Deterministic parameter initialisation: every parameter and state value is drawn from its
 * InitSpec with a generator seeded by (run seed, value name). The same seed gives the same model
 * on every machine, and adding a parameter does not change the others' values.
 */
import { DeepwellError, checkInteger, checkKeys, checkNumber, checkOneOf, describe, invalid } from '@deepwell/core';
import type { InitSpec } from './graph.js';

/** The distributions an InitSpec may name. */
export const INIT_DISTS = ['normal', 'zeros', 'ones', 'uniform', 'sinusoidal'] as const;

/** The most values initialValues makes at once (a Float32Array of 8 GiB). */
export const MAX_INIT_VALUES = 2 ** 31;

/**
 * Checks an InitSpec (`what` names it in errors: "init of parameter 'w'"): a known dist, a finite
 * scale, an integer column count >= 2 and a finite base above 1 where given, no other keys.
 */
export function checkInitSpec(spec: unknown, what: string): InitSpec {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) invalid(`an InitSpec ({ dist: ${INIT_DISTS.map((d) => `'${d}'`).join(' | ')}, scale? })`, what, spec);
  checkKeys(spec, ['dist', 'scale', 'columns', 'base'], what, { noun: 'key' });
  const s = spec as Record<string, unknown>;
  checkOneOf(s.dist, INIT_DISTS, `${what}.dist`);
  if (s.scale !== undefined) checkNumber(s.scale, `${what}.scale`);
  if (s.columns !== undefined) checkInteger(s.columns, `${what}.columns`, 2);
  if (s.base !== undefined) checkNumber(s.base, `${what}.base`, { above: 1 });
  return spec as InitSpec;
}

/** 32-bit FNV-1a of a string, mixed with a seed. */
function hash(seed: number, s: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** A seed: any safe integer (its low 32 bits are used). */
export function checkSeed(seed: unknown, what: string): number {
  if (!Number.isSafeInteger(seed)) invalid('a safe integer', what, seed);
  return seed as number;
}

/** mulberry32: a small, fast, well-distributed 32-bit generator; returns uniforms in [0, 1). */
export function rng(seed: number): () => number {
  checkSeed(seed, 'rng seed');
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function initialValues(spec: InitSpec, n: number, seed: number, name: string, out?: Float32Array | Float64Array): Float32Array | Float64Array {
  if (typeof name !== 'string') invalid('a value name', 'initialValues name', name);
  checkInitSpec(spec, `init of '${name}'`);
  checkInteger(n, `the value count of '${name}'`, 0, MAX_INIT_VALUES);
  checkSeed(seed, 'seed');
  if (out !== undefined && !((out instanceof Float32Array || out instanceof Float64Array) && out.length >= n)) {
    invalid(`a Float32Array or Float64Array of at least ${n} elements`, `the output of initialValues for '${name}'`, out);
  }
  out ??= new Float32Array(n);
  const r = rng(hash(seed, name));
  const scale = spec.scale ?? 1;
  switch (spec.dist) {
    case 'zeros':
      out.fill(0);
      break;
    case 'ones':
      out.fill(1);
      break;
    case 'uniform':
      for (let i = 0; i < n; i++) out[i] = (2 * r() - 1) * scale;
      break;
    case 'normal':
      for (let i = 0; i < n; i += 2) {
        const u = 1 - r();
        const v = r();
        const m = Math.sqrt(-2 * Math.log(u)) * scale;
        out[i] = m * Math.cos(2 * Math.PI * v);
        if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
      }
      break;
    case 'sinusoidal': {
      // No draws: a fixed table (offsets between rows are rotations of each column pair).
      const C = spec.columns ?? 0;
      const base = spec.base ?? 10000;
      if (!Number.isInteger(C) || C < 2 || C % 2 !== 0 || n % C !== 0) {
        throw new DeepwellError('INVALID_ARGUMENT', `Expected an even column count dividing the ${n} values for the sinusoidal initialisation of '${name}' but received ${String(spec.columns)}`);
      }
      if (!(base > 1) || !Number.isFinite(base)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a finite base above 1 for the sinusoidal initialisation of '${name}' but received ${String(spec.base)}`);
      for (let p = 0; p < n / C; p++) {
        for (let i = 0; i < C / 2; i++) {
          const a = p * Math.pow(base, (-2 * i) / C);
          out[p * C + 2 * i] = Math.sin(a) * scale;
          out[p * C + 2 * i + 1] = Math.cos(a) * scale;
        }
      }
      break;
    }
    default:
      throw new DeepwellError('INTERNAL', `initialValues: no case for dist ${describe(spec.dist)}`);
  }
  return out;
}
