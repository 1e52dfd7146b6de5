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
 *
 * `kind` picks the attention itself (fused path only): { kind: 'dense' } (the default: sdpa_qkv) or
 * { kind: 'sparsek', blockSize?, topK?, first?, window? }: the sparsek_attention op of
 * @deepwell/attention-sparsek (each block of queries attends only to its topK best blocks of keys,
 * MoBA's block-mean score, shared by a GQA group; the diagonal block always, optionally block 0 and a
 * local window of blocks). It reads q, k and v as slices of the projection (copies: the sparse op
 * takes separate tensors), in the [B, T, heads, D] layout. Defaults: blockSize 64, topK 16 (at most
 * the number of blocks of T), first false, window 1.
 *
 * `decode(x, pos, cacheLength)` is the same attention for a generation step: the step's keys and
 * values go into a key/value cache kept as graph state (`<path>.kcache`, `<path>.vcache`,
 * [B, kvHeads, cacheLength, headDim], updated in place by kv_cache_write) and its queries attend over
 * the cache up to their positions (sdpa_decode). Dense attention only.
 */
import { broadcastTo, causalMask, matmul, reshape, scale, slice, softmax, transpose, type Sym } from '@deepwell/ir';
import { DeepwellError, checkInteger, checkKeys, describe } from '@deepwell/core';
import { kvCacheWrite, sdpaDecode, sdpaQkv, sparsekAttention } from '@deepwell/attention-sparsek';
import { Linear, checkSize } from './layers.js';
import { MAX_SIZE, checkSym, optionalBoolean, optionalStd, optionsObject } from './limits.js';
import { Module } from './module.js';

export interface AttentionOptions {
  residualStd?: number;
  bias?: boolean;
  /** Key/value heads (grouped-query attention); a divisor of the head count. Default: the head count. */
  kvHeads?: number;
  /** One sdpa_qkv op (default true); false builds the composite reference. */
  fused?: boolean;
  /** Dense (default) or SparseK top-k block-sparse attention; see the header. */
  kind?: AttentionKind;
}

/** Which attention a layer computes. */
export type AttentionKind = { kind: 'dense' } | { kind: 'sparsek'; blockSize?: number; topK?: number; first?: boolean; window?: number };

const SPARSEK_KEYS = ['kind', 'blockSize', 'topK', 'first', 'window'];

/** An attention kind checked (unknown keys, wrong types are typed errors naming `what`). */
export function checkAttentionKind(k: unknown, what: string): AttentionKind {
  if (k === null || typeof k !== 'object' || Array.isArray(k)) throw new DeepwellError('INVALID_ARGUMENT', `Expected { kind: 'dense' | 'sparsek', ... } for ${what} but received ${describe(k)}`);
  const o = k as Record<string, unknown>;
  if (o.kind === 'dense') {
    const extra = Object.keys(o).filter((key) => key !== 'kind');
    if (extra.length) throw new DeepwellError('INVALID_ARGUMENT', `Expected no options besides kind for dense ${what} but received ${extra.join(', ')}`);
    return { kind: 'dense' };
  }
  if (o.kind !== 'sparsek') throw new DeepwellError('INVALID_ARGUMENT', `Expected kind 'dense' or 'sparsek' for ${what} but received ${describe(o.kind)}`);
  for (const key of Object.keys(o)) {
    if (!SPARSEK_KEYS.includes(key)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${SPARSEK_KEYS.join(', ')} for an option of sparsek ${what} but received '${key}'`);
  }
  const out: AttentionKind = { kind: 'sparsek' };
  if (o.blockSize !== undefined) out.blockSize = checkInteger(o.blockSize, `blockSize of ${what}`, 1, MAX_SIZE);
  if (o.topK !== undefined) out.topK = checkInteger(o.topK, `topK of ${what}`, 1, MAX_SIZE);
  if (o.window !== undefined) out.window = checkInteger(o.window, `window of ${what}`, 1, MAX_SIZE);
  if (o.first !== undefined) out.first = optionalBoolean(o.first, `first of ${what}`, false);
  const forced = (out.window ?? 1) + (out.first ? 1 : 0);
  if (out.topK !== undefined && forced > out.topK) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected topK at least the always-selected blocks (window ${out.window ?? 1}${out.first ? ' + first 1' : ''}) for ${what} but received ${out.topK}`);
  }
  return out;
}

const ATTENTION_KEYS = ['residualStd', 'bias', 'kvHeads', 'fused', 'kind'];

export class CausalSelfAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly headDim: number;
  readonly kvHeads: number;
  readonly fused: boolean;
  readonly kind: AttentionKind;
  constructor(readonly dim: number, readonly heads: number, options: AttentionOptions = {}) {
    super();
    checkSize(dim, 'width of attention');
    checkInteger(heads, 'heads of attention', 1, dim);
    if (dim % heads !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a width divisible by the head count for attention but received width ${dim} and ${heads} heads`);
    const o = optionsObject(options, 'attention');
    checkKeys(o, ATTENTION_KEYS, 'attention');
    this.kvHeads = checkInteger(o.kvHeads === undefined ? heads : o.kvHeads, 'kvHeads of attention', 1, heads);
    if (heads % this.kvHeads !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected kvHeads dividing the head count (${heads}) for attention but received ${this.kvHeads}`);
    this.fused = optionalBoolean(o.fused, 'fused of attention', true);
    const bias = optionalBoolean(o.bias, 'bias of attention', true);
    const std = optionalStd(o.residualStd, 'residualStd of attention', 0.02);
    this.kind = checkAttentionKind(o.kind === undefined ? { kind: 'dense' } : o.kind, 'attention');
    if (this.kind.kind === 'sparsek' && !this.fused) throw new DeepwellError('INVALID_ARGUMENT', `Expected fused attention for kind 'sparsek' (the composite reference is dense) but received fused: false`);
    this.headDim = dim / heads;
    this.qkv = this.addChild('qkv', new Linear(dim, (heads + 2 * this.kvHeads) * this.headDim, { bias }));
    this.proj = this.addChild('proj', new Linear(dim, dim, { bias, std }));
  }

  /** x: f32[B, T, C] -> f32[B, T, C] */
  forward(x: Sym): Sym {
    checkSym(x, 'the input of attention');
    if (x.rank !== 3 || x.shape[2] !== this.dim) throw new DeepwellError('SHAPE_MISMATCH', `Expected [B, T, ${this.dim}] for the input of attention but received ${x.toString()}`);
    return this.scope(() => {
      const [B, T] = [x.shape[0]!, x.shape[1]!];
      const [H, D] = [this.heads, this.headDim];
      if (this.kind.kind === 'sparsek') return this.proj.forward(reshape(this.#sparse(x, B, T), [B, T, this.dim]));
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
   * x: f32[B, n, C], the step's n tokens at positions pos (i32[n]) -> f32[B, n, C], attending over
   * every earlier token through this layer's key/value cache of cacheLength positions (graph state,
   * zeros at first; each step writes its tokens' rows before reading).
   */
  decode(x: Sym, pos: Sym, cacheLength: number): Sym {
    checkSym(x, 'x of attention decode');
    checkSym(pos, 'pos of attention decode');
    checkInteger(cacheLength, 'cacheLength of attention decode', 1, MAX_SIZE);
    if (this.kind.kind !== 'dense') throw new DeepwellError('INVALID_ARGUMENT', `Expected dense attention for a decode step with a key/value cache but layer '${this.path}' has kind '${this.kind.kind}'`);
    return this.scope(() => {
      if (x.rank !== 3 || x.shape[2] !== this.dim) throw new DeepwellError('SHAPE_MISMATCH', `Expected [B, n, ${this.dim}] for the input of attention decode but received ${x.toString()}`);
      const [B, n] = [x.shape[0]!, x.shape[1]!];
      const [H, Hkv, D] = [this.heads, this.kvHeads, this.headDim];
      const qkv = reshape(this.qkv.forward(x), [B, n, H + 2 * Hkv, D]);
      const b = x.builder;
      const cache = (name: string) => b.state(`${this.path}.${name}`, [B, Hkv, cacheLength, D], qkv.dtype, { dist: 'zeros' });
      const [kc, vc] = kvCacheWrite(cache('kcache'), cache('vcache'), qkv, pos, { heads: H });
      b.update(`${this.path}.kcache`, kc);
      b.update(`${this.path}.vcache`, vc);
      return this.proj.forward(reshape(sdpaDecode(qkv, kc, vc, pos, { heads: H }), [B, n, this.dim]));
    });
  }

  /** [B, T, H, D] of sparsek attention: q, k, v sliced from the projection, in the 'bshd' layout. */
  #sparse(x: Sym, B: number, T: number): Sym {
    const [H, Hkv, D] = [this.heads, this.kvHeads, this.headDim];
    const k = this.kind as Extract<AttentionKind, { kind: 'sparsek' }>;
    const blockSize = k.blockSize ?? 64;
    const topK = k.topK ?? Math.min(16, Math.ceil(T / blockSize));
    const qkv = reshape(this.qkv.forward(x), [B, T, H + 2 * Hkv, D]);
    const [q, kk, v] = [slice(qkv, 2, 0, H), slice(qkv, 2, H, H + Hkv), slice(qkv, 2, H + Hkv, H + 2 * Hkv)];
    const attrs = { causal: true, layout: 'bshd' as const, blockSize, topK, first: k.first ?? false, window: k.window ?? 1 };
    return sparsekAttention(q, kk, v, attrs)[0];
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
