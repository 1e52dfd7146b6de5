// The smoke hash's host references: the array forms check once and give smokeHash's values.
import { describe, expect, it } from 'vitest';
import { countHashMismatches, fillHashHost, smokeHash } from '../src/index.js';
import { errorOf } from './helpers.js';

describe('smoke hash on the host (no GPU needed)', () => {
  it('fillHashHost and countHashMismatches agree with smokeHash element by element', () => {
    const seed = (Math.random() * 2 ** 32) >>> 0;
    const n = 1000 + Math.floor(Math.random() * 1000);
    const got = fillHashHost(new Uint32Array(n), seed);
    for (let i = 0; i < n; i++) expect(got[i]).toBe(smokeHash(seed, i));
    expect(countHashMismatches(got, seed)).toBe(0);
    const k = Math.floor(Math.random() * n);
    got[k] = (got[k]! + 1) >>> 0;
    got[n - 1] = (got[n - 1]! ^ 0x80000000) >>> 0;
    expect(countHashMismatches(got, seed)).toBe(k === n - 1 ? 1 : 2);
    expect(countHashMismatches(new Uint32Array(0), seed)).toBe(0);
  });

  it('refuses what is not a Uint32Array or a u32 seed, with typed errors', () => {
    for (const bad of [new Int32Array(4), [1, 2], null, 'x']) {
      expect(errorOf(() => fillHashHost(bad as never, 1)).code).toBe('INVALID_ARGUMENT');
      expect(errorOf(() => countHashMismatches(bad as never, 1)).code).toBe('INVALID_ARGUMENT');
    }
    for (const bad of [-1, 1.5, 2 ** 32, NaN, '1', undefined]) {
      expect(errorOf(() => fillHashHost(new Uint32Array(2), bad as never)).code).toBe('INVALID_ARGUMENT');
      expect(errorOf(() => countHashMismatches(new Uint32Array(2), bad as never)).code).toBe('INVALID_ARGUMENT');
    }
    expect(errorOf(() => smokeHash(1.5, 0)).code).toBe('INVALID_ARGUMENT');
  });
});
