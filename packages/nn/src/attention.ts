/**
 * Causal self-attention, composite: qkv projection, heads split, softmax(q·kᵀ/√d + causal mask)·v,
 * heads merged, output projection. Built from plain ops, so it is its own reference, and it is what
 * runs on every device: the registry chooses a kernel per op, and no op here is attention as a
 * whole. A fused attention will be an op of its own (in @deepwell/attention-sparsek), which a model
 * calls instead of this composite.
 */
import { causalMask, matmul, reshape, scale, slice, softmax, transpose, type Sym } from '@deepwell/ir';
import { DeepwellError } from '@deepwell/core';
import { Linear } from './layers.js';
import { Module } from './module.js';

export class CausalSelfAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly headDim: number;
  constructor(readonly dim: number, readonly heads: number, options: { residualStd?: number; bias?: boolean } = {}) {
    super();
    if (dim % heads !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a width divisible by the head count for attention but received width ${dim} and ${heads} heads`);
    this.headDim = dim / heads;
    this.qkv = this.addChild('qkv', new Linear(dim, 3 * dim, { bias: options.bias ?? true }));
    this.proj = this.addChild('proj', new Linear(dim, dim, { bias: options.bias ?? true, std: options.residualStd ?? 0.02 }));
  }

  /** x: f32[B, T, C] -> f32[B, T, C] */
  forward(x: Sym): Sym {
    return this.scope(() => {
      const [B, T] = [x.shape[0]!, x.shape[1]!];
      const [H, D] = [this.heads, this.headDim];
      // [B, T, 3C] -> [B, T, 3, H, D] -> [3, B, H, T, D]
      const qkv = transpose(reshape(this.qkv.forward(x), [B, T, 3, H, D]), [2, 0, 3, 1, 4]);
      const part = (i: number) => reshape(slice(qkv, 0, i, i + 1), [B, H, T, D]);
      const [q, k, v] = [part(0), part(1), part(2)];
      const att = softmax(causalMask(scale(matmul(q, k, { transB: true }), 1 / Math.sqrt(D))));
      const y = reshape(transpose(matmul(att, v), [0, 2, 1, 3]), [B, T, this.dim]);
      return this.proj.forward(y);
    });
  }
}
