/**
 * Causal self-attention: qkv projection, heads split, softmax(q·kᵀ/√d + causal mask)·v, heads
 * merged, output projection. Two ways to build the middle:
 *   - fused (the default; `fused: true`): the sdpa_qkv op of @deepwell/attention-sparsek, one op for
 *     the whole of attention, reading q, k and v where the projection wrote them ([B, T, H + 2·Hkv, D]:
 *     no slices, no transposes, no S × S buffer; its backward writes the projection's gradient
 *     whole). On a GPU the flash kernels serve bf16/f16 with head dimension 64 or 128 (Hopper
 *     kernels on sm_90, mma.sync ones elsewhere), the general CUDA path the rest;
 *   - composite (`fused: false`): plain ops (matmul, scale, causal_mask, softmax, transposes), kept
 *     as the reference: it is its own reference and runs on every device with the kernels each op has.
 * `kvHeads` (default `heads`) gives grouped-query attention: heads / kvHeads query heads share each
 * key/value head, and the qkv projection shrinks to (heads + 2 · kvHeads) · headDim outputs.
 */
import { broadcastTo, causalMask, matmul, reshape, scale, slice, softmax, transpose, type Sym } from '@deepwell/ir';
import { DeepwellError, checkInteger } from '@deepwell/core';
import { sdpaQkv } from '@deepwell/attention-sparsek';
import { Linear } from './layers.js';
import { Module } from './module.js';

export interface AttentionOptions {
  residualStd?: number;
  bias?: boolean;
  /** Key/value heads (grouped-query attention); a divisor of the head count. Default: the head count. */
  kvHeads?: number;
  /** One sdpa_qkv op (default true); false builds the composite reference. */
  fused?: boolean;
}

export class CausalSelfAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly headDim: number;
  readonly kvHeads: number;
  readonly fused: boolean;
  constructor(readonly dim: number, readonly heads: number, options: AttentionOptions = {}) {
    super();
    if (dim % heads !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a width divisible by the head count for attention but received width ${dim} and ${heads} heads`);
    this.kvHeads = checkInteger(options.kvHeads ?? heads, 'kvHeads of attention', 1, heads);
    if (heads % this.kvHeads !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected kvHeads dividing the head count (${heads}) for attention but received ${this.kvHeads}`);
    if (options.fused !== undefined && typeof options.fused !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `Expected a boolean for fused of attention but received ${String(options.fused)}`);
    this.fused = options.fused ?? true;
    this.headDim = dim / heads;
    this.qkv = this.addChild('qkv', new Linear(dim, (heads + 2 * this.kvHeads) * this.headDim, { bias: options.bias ?? true }));
    this.proj = this.addChild('proj', new Linear(dim, dim, { bias: options.bias ?? true, std: options.residualStd ?? 0.02 }));
  }

  /** x: f32[B, T, C] -> f32[B, T, C] */
  forward(x: Sym): Sym {
    return this.scope(() => {
      const [B, T] = [x.shape[0]!, x.shape[1]!];
      const [H, D] = [this.heads, this.headDim];
      if (this.fused) {
        const qkv = reshape(this.qkv.forward(x), [B, T, H + 2 * this.kvHeads, D]);
        return this.proj.forward(reshape(sdpaQkv(qkv, { heads: H, causal: true })[0], [B, T, this.dim]));
      }
      if (this.kvHeads !== H) return this.proj.forward(this.#grouped(x, B, T));
      // [B, T, 3C] -> [B, T, 3, H, D] -> [3, B, H, T, D]
      const qkv = transpose(reshape(this.qkv.forward(x), [B, T, 3, H, D]), [2, 0, 3, 1, 4]);
      const part = (i: number) => reshape(slice(qkv, 0, i, i + 1), [B, H, T, D]);
      const [q, k, v] = [part(0), part(1), part(2)];
      const att = softmax(causalMask(scale(matmul(q, k, { transB: true }), 1 / Math.sqrt(D))));
      const y = reshape(transpose(matmul(att, v), [0, 2, 1, 3]), [B, T, this.dim]);
      return this.proj.forward(y);
    });
  }

  /**
   * [B, T, C] of composite attention output with kvHeads < heads: the projection as
   * [B, T, H + 2·Hkv, D], q, k and v sliced along the heads.
   */
  #grouped(x: Sym, B: number, T: number): Sym {
    const [H, Hkv, D] = [this.heads, this.kvHeads, this.headDim];
    const qkv = reshape(this.qkv.forward(x), [B, T, H + 2 * Hkv, D]);
    const q = slice(qkv, 2, 0, H);
    const k = slice(qkv, 2, H, H + Hkv);
    const v = slice(qkv, 2, H + Hkv, H + 2 * Hkv);
    // Composite GQA: heads to the front ([B, heads, T, D]), each key/value head repeated for its
    // group of query heads.
    const bhtd = (t: Sym) => transpose(t, [0, 2, 1, 3]);
    const repeat = (t: Sym) => reshape(broadcastTo(reshape(bhtd(t), [B, Hkv, 1, T, D]), [B, Hkv, H / Hkv, T, D]), [B, H, T, D]);
    const att = softmax(causalMask(scale(matmul(bhtd(q), repeat(k), { transB: true }), 1 / Math.sqrt(D))));
    return reshape(transpose(matmul(att, repeat(v)), [0, 2, 1, 3]), [B, T, this.dim]);
  }
}
