// Issue 20: one test of "is this a Sym" (isSym / checkSym, exported for nn and attention-sparsek).
// An object given Sym's prototype passed `instanceof Sym` and then failed with a raw TypeError
// (no builder); now it is refused with a typed error.
import { describe, expect, it } from 'vitest';
import { GraphBuilder, Sym, capture, checkSym, gelu, isSym, softmax } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const forged = () => Object.assign(Object.create(Sym.prototype), Math.random() < 0.5 ? {} : { id: rand(0, 9) }) as Sym;

describe('isSym, the one Sym check', () => {
  it('accepts a builder\'s Syms and refuses look-alikes', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [rand(1, 4), rand(1, 4)]);
    expect(isSym(x)).toBe(true);
    expect(checkSym(x, 'x')).toBe(x);
    for (const v of [forged(), null, undefined, 3, {}, { builder: b, id: 0 }]) expect(isSym(v)).toBe(false);
    expect(errorOf(() => checkSym(forged(), 'the probe')).message).toMatch(/Expected a symbolic tensor .* for the probe but received/);
  });

  it('the op helpers refuse an object given Sym\'s prototype with a typed error (before: TypeError)', () => {
    for (const fn of [() => gelu(forged()), () => softmax(forged(), -1)]) {
      const e = errorOf(fn);
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(/Expected a symbolic tensor/);
    }
  });

  it('capture refuses a forward that returns an object given Sym\'s prototype (before: TypeError)', () => {
    const model = { forward: () => forged() };
    expect(errorOf(() => capture(model, { x: { shape: [2], dtype: 'f32' } })).code).toBe('INVALID_ARGUMENT');
    const rec = { forward: () => ({ y: forged() }) };
    expect(errorOf(() => capture(rec, { x: { shape: [2], dtype: 'f32' } })).code).toBe('INVALID_ARGUMENT');
  });
});
