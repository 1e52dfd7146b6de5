/**
 * Deterministic parameter initialisation: every parameter and state value is drawn from its
 * InitSpec with a generator seeded by (run seed, value name). The same seed gives the same model
 * on every machine, and adding a parameter does not change the others' values.
 */
import { DeepwellError } from '@deepwell/core';
import type { InitSpec } from './graph.js';

/** 32-bit FNV-1a of a string, mixed with a seed. */
function hash(seed: number, s: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** mulberry32: a small, fast, well-distributed 32-bit generator; returns uniforms in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function initialValues(spec: InitSpec, n: number, seed: number, name: string, out: Float32Array | Float64Array = new Float32Array(n)): Float32Array | Float64Array {
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
  }
  return out;
}
