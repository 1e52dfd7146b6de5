// Issue 20: attention-sparsek's captured calls check their Syms with ir's one check (isSym): an
// object given Sym's prototype is refused with the call's typed error (before: it passed
// `instanceof Sym` and failed with a TypeError).
import { describe, expect, it } from 'vitest';
import { GraphBuilder, Sym } from '@deepwell/ir';
import { kvCacheWrite, sdpaDecode, sdpaQkv, sparsekAttention } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const forged = () => Object.assign(Object.create(Sym.prototype), { id: rand(0, 9) }) as Sym;

describe('attention-sparsek uses ir\'s Sym check', () => {
  it('refuses an object given Sym\'s prototype (before: TypeError)', () => {
    const b = new GraphBuilder();
    const q = b.input('q', [1, 2, 4, 8]);
    for (const [name, fn] of [
      ['sparsekAttention', () => sparsekAttention(forged(), q, q)],
      ['sdpaQkv', () => sdpaQkv(forged(), { heads: 1 })],
      ['kvCacheWrite', () => kvCacheWrite(q, q, forged(), q, { heads: 1 })],
      ['sdpaDecode', () => sdpaDecode(forged(), q, q, q, { heads: 1 })],
    ] as const) {
      const e = errorOf(fn);
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(new RegExp(`^${name}: Expected a symbolic tensor`));
    }
  });
});
