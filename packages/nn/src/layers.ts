/**
 * The basic layers: Linear, Embedding, LayerNorm, RMSNorm and the feed-forward MLP (GELU or SwiGLU).
 * Weights use PyTorch's layouts (Linear.weight is [out, in]) so checkpoints map one to one.
 * Every size is an integer in [1, MAX_SIZE] and every option is checked (unknown keys refused) before
 * a parameter is declared.
 */
import { DeepwellError, checkInteger, checkKeys, checkNumber, checkOneOf } from '@deepwell/core';
import { biasAdd, embedding, gelu, layernorm, matmul, rmsnorm, swiglu, type Sym } from '@deepwell/ir';
import { MAX_SIZE, MIN_EPS, checkParameterCount, checkSym, optionalBoolean, optionalStd, optionsObject } from './limits.js';
import { Module } from './module.js';

/** A size of a layer: an integer in [1, MAX_SIZE]. */
export const checkSize = (v: unknown, what: string): number => checkInteger(v, what, 1, MAX_SIZE);

/** A norm's eps: a finite number, at least the smallest normal f32 (so an f32 kernel sees it > 0). */
const checkEps = (v: unknown, what: string): number => checkNumber(v, what, { min: MIN_EPS, max: 1 });

export class Linear extends Module {
  constructor(readonly inFeatures: number, readonly outFeatures: number, options: { bias?: boolean; std?: number } = {}) {
    super();
    checkSize(inFeatures, 'inFeatures of Linear');
    checkSize(outFeatures, 'outFeatures of Linear');
    const o = optionsObject(options, 'Linear');
    checkKeys(o, ['bias', 'std'], 'Linear');
    const std = optionalStd(o.std, 'std of Linear', 0.02);
    const bias = optionalBoolean(o.bias, 'bias of Linear', true);
    checkParameterCount(outFeatures * inFeatures + (bias ? outFeatures : 0), 'Linear');
    this.addParam('weight', [outFeatures, inFeatures], { dist: 'normal', scale: std });
    this.hasBias = bias;
    if (this.hasBias) this.addParam('bias', [outFeatures], { dist: 'zeros' });
  }
  readonly hasBias: boolean;

  /** x: f32[..., in] -> f32[..., out] */
  forward(x: Sym): Sym {
    checkSym(x, 'the input of Linear');
    return this.scope(() => {
      const y = matmul(x, this.weight('weight'), { transB: true });
      return this.hasBias ? biasAdd(y, this.weight('bias')) : y;
    });
  }
}

export class Embedding extends Module {
  /** init 'sinusoidal': the rows start as the Transformer's sinusoidal position encoding (amplitude std, frequencies base^(-2i/dim)), not random. */
  constructor(readonly count: number, readonly dim: number, options: { std?: number; init?: 'normal' | 'sinusoidal'; base?: number } = {}) {
    super();
    checkSize(count, 'count of Embedding');
    checkSize(dim, 'dim of Embedding');
    const o = optionsObject(options, 'Embedding');
    checkKeys(o, ['std', 'init', 'base'], 'Embedding');
    const scale = optionalStd(o.std, 'std of Embedding', 0.02);
    const init = checkOneOf(o.init === undefined ? 'normal' : o.init, ['normal', 'sinusoidal'], 'init of Embedding');
    if (init === 'sinusoidal' && dim % 2 !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected an even dim for Embedding init 'sinusoidal' (sin/cos pairs) but received ${dim}`);
    if (o.base !== undefined && init !== 'sinusoidal') throw new DeepwellError('INVALID_ARGUMENT', `Expected init 'sinusoidal' with Embedding base (it sets the sinusoids' base) but received init '${init}'`);
    const base = o.base === undefined ? 10000 : checkNumber(o.base, 'base of Embedding', { above: 1 });
    checkParameterCount(count * dim, 'Embedding');
    this.addParam('weight', [count, dim], init === 'sinusoidal' ? { dist: 'sinusoidal', scale, columns: dim, base } : { dist: 'normal', scale });
  }
  /** ids: i32[...] -> f32[..., dim] */
  forward(ids: Sym): Sym {
    checkSym(ids, 'the ids of Embedding');
    return this.scope(() => embedding(this.weight('weight'), ids));
  }
}

export class LayerNorm extends Module {
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    checkSize(dim, 'dim of LayerNorm');
    checkEps(eps, 'eps of LayerNorm');
    this.addParam('weight', [dim], { dist: 'ones' });
    this.addParam('bias', [dim], { dist: 'zeros' });
  }
  forward(x: Sym): Sym {
    checkSym(x, 'the input of LayerNorm');
    return this.scope(() => layernorm(x, this.weight('weight'), this.weight('bias'), this.eps));
  }
}

export class RMSNorm extends Module {
  constructor(readonly dim: number, readonly eps = 1e-6) {
    super();
    checkSize(dim, 'dim of RMSNorm');
    checkEps(eps, 'eps of RMSNorm');
    this.addParam('weight', [dim], { dist: 'ones' });
  }
  forward(x: Sym): Sym {
    checkSym(x, 'the input of RMSNorm');
    return this.scope(() => rmsnorm(x, this.weight('weight'), this.eps));
  }
}

export type Activation = 'gelu' | 'swiglu';
/** The activations MLP (and GPTConfig.activation) take. */
export const ACTIVATIONS: readonly Activation[] = ['gelu', 'swiglu'];

/** Feed-forward block: GELU (fc -> gelu -> proj) or SwiGLU (gate, up -> silu(gate)·up -> proj). */
export class MLP extends Module {
  readonly fc: Linear;
  readonly up: Linear | null;
  readonly proj: Linear;
  constructor(readonly dim: number, readonly hidden: number, readonly activation: Activation = 'gelu', options: { residualStd?: number; bias?: boolean } = {}) {
    super();
    checkSize(dim, 'dim of MLP');
    checkSize(hidden, 'hidden of MLP');
    checkOneOf(activation, ACTIVATIONS, 'activation of MLP');
    const o = optionsObject(options, 'MLP');
    checkKeys(o, ['residualStd', 'bias'], 'MLP');
    const bias = optionalBoolean(o.bias, 'bias of MLP', activation === 'gelu');
    const std = optionalStd(o.residualStd, 'residualStd of MLP', 0.02);
    checkParameterCount((activation === 'swiglu' ? 3 : 2) * dim * hidden, 'MLP');
    this.fc = this.addChild('fc', new Linear(dim, hidden, { bias }));
    this.up = activation === 'swiglu' ? this.addChild('up', new Linear(dim, hidden, { bias })) : null;
    this.proj = this.addChild('proj', new Linear(hidden, dim, { bias, std }));
  }
  forward(x: Sym): Sym {
    checkSym(x, 'the input of MLP');
    return this.scope(() => {
      const h = this.up ? swiglu(this.fc.forward(x), this.up.forward(x)) : gelu(this.fc.forward(x));
      return this.proj.forward(h);
    });
  }
}
