// Issue 20: nn checks through ir's one check of a Sym (checkSym) and of an InitSpec (checkInitSpec):
// an object given Sym's prototype is refused with a typed error (before: a TypeError inside the op),
// and addParam refuses the init ir's builder refuses (before: columns 1.5 or 1 passed nn's copy
// and failed only later, at capture).
import { describe, expect, it } from 'vitest';
import { Sym } from '@deepwell/ir';
import { LayerNorm, Linear, MLP, Module } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const forged = () => Object.assign(Object.create(Sym.prototype), { id: rand(0, 9) }) as Sym;

describe("nn uses ir's checks", () => {
  it('modules refuse an object given Sym\'s prototype with a typed error (before: TypeError)', () => {
    const n = rand(2, 6);
    for (const fn of [() => new Linear(n, n).forward(forged()), () => new LayerNorm(n).forward(forged()), () => new MLP(n, 4 * n).forward(forged())]) {
      const e = errorOf(fn);
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(/Expected a symbolic tensor/);
    }
  });

  it('addParam refuses an init spec ir refuses, when the module is built (before: accepted, refused at capture)', () => {
    class WithInit extends Module {
      constructor(init: unknown) {
        super();
        this.addParam('w', [rand(2, 5), rand(2, 5)], init as never);
      }
      forward(): Sym {
        throw new Error('not called');
      }
    }
    for (const init of [{ dist: 'sinusoidal', columns: 1 + Math.random() }, { dist: 'sinusoidal', columns: 1 }, { dist: 'sinusoidal', columns: rand(2, 9) + 0.5 }]) {
      const e = errorOf(() => new WithInit(init));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(/columns/);
    }
    // What ir accepts, nn accepts, and the module keeps its own copy.
    const init = { dist: 'normal' as const, scale: Math.random() };
    const m = new WithInit(init);
    const scale = init.scale;
    init.scale = NaN;
    expect(m.namedParameters()[0]![1].init).toEqual({ dist: 'normal', scale });
  });
});
