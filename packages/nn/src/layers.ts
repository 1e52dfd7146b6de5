/**
 * The basic layers: Linear, Embedding, LayerNorm, RMSNorm and the feed-forward MLP (GELU or SwiGLU).
 * Weights use PyTorch's layouts (Linear.weight is [out, in]) so checkpoints map one to one.
 */
import { biasAdd, embedding, gelu, layernorm, matmul, rmsnorm, swiglu, type Sym } from '@deepwell/ir';
import { Module } from './module.js';

export class Linear extends Module {
  constructor(readonly inFeatures: number, readonly outFeatures: number, options: { bias?: boolean; std?: number } = {}) {
    super();
    this.addParam('weight', [outFeatures, inFeatures], { dist: 'normal', scale: options.std ?? 0.02 });
    this.hasBias = options.bias ?? true;
    if (this.hasBias) this.addParam('bias', [outFeatures], { dist: 'zeros' });
  }
  readonly hasBias: boolean;

  /** x: f32[..., in] -> f32[..., out] */
  forward(x: Sym): Sym {
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
    const scale = options.std ?? 0.02;
    this.addParam('weight', [count, dim], options.init === 'sinusoidal' ? { dist: 'sinusoidal', scale, columns: dim, base: options.base ?? 10000 } : { dist: 'normal', scale });
  }
  /** ids: i32[...] -> f32[..., dim] */
  forward(ids: Sym): Sym {
    return this.scope(() => embedding(this.weight('weight'), ids));
  }
}

export class LayerNorm extends Module {
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.addParam('weight', [dim], { dist: 'ones' });
    this.addParam('bias', [dim], { dist: 'zeros' });
  }
  forward(x: Sym): Sym {
    return this.scope(() => layernorm(x, this.weight('weight'), this.weight('bias'), this.eps));
  }
}

export class RMSNorm extends Module {
  constructor(readonly dim: number, readonly eps = 1e-6) {
    super();
    this.addParam('weight', [dim], { dist: 'ones' });
  }
  forward(x: Sym): Sym {
    return this.scope(() => rmsnorm(x, this.weight('weight'), this.eps));
  }
}

export type Activation = 'gelu' | 'swiglu';

/** Feed-forward block: GELU (fc -> gelu -> proj) or SwiGLU (gate, up -> silu(gate)·up -> proj). */
export class MLP extends Module {
  readonly fc: Linear;
  readonly up: Linear | null;
  readonly proj: Linear;
  constructor(readonly dim: number, readonly hidden: number, readonly activation: Activation = 'gelu', options: { residualStd?: number; bias?: boolean } = {}) {
    super();
    const bias = options.bias ?? activation === 'gelu';
    this.fc = this.addChild('fc', new Linear(dim, hidden, { bias }));
    this.up = activation === 'swiglu' ? this.addChild('up', new Linear(dim, hidden, { bias })) : null;
    this.proj = this.addChild('proj', new Linear(hidden, dim, { bias, std: options.residualStd ?? 0.02 }));
  }
  forward(x: Sym): Sym {
    return this.scope(() => {
      const h = this.up ? swiglu(this.fc.forward(x), this.up.forward(x)) : gelu(this.fc.forward(x));
      return this.proj.forward(h);
    });
  }
}
