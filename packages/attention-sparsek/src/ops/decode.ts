/**
 * Decoding with a key/value cache: the two ops a generation step adds to a model's ordinary ones.
 * Both take the packed output of a QKV projection (as sdpa_qkv does) and the positions of the step's
 * tokens as data (i32 pos[n]), so one compiled step, and on a GPU one captured CUDA graph, serves
 * every position: only the contents of pos change.
 *
 * kv_cache_write: kcache F[B, Hkv, Tmax, D], vcache F[B, Hkv, Tmax, D], qkv F[B, n, H + 2·Hkv, D],
 *   pos i32[n]; attribute heads (H) -> kcache' and vcache' (the caches' types): the caches with row
 *   pos[i] of every key/value head replaced by token i's key and value (qkv's heads H .. H + Hkv - 1
 *   and H + Hkv .. H + 2·Hkv - 1); tokens in order, so a repeated position keeps the last one's row.
 *   The outputs may share the caches' storage (the `inplace` pairs): a decode step keeps each cache
 *   as graph state and updates it in place. Positions must lie in [0, Tmax) (an index input: checked
 *   on the host before a step).
 *
 * sdpa_decode: qkv F[B, n, H + 2·Hkv, D], kcache, vcache F[B, Hkv, Tmax, D], pos i32[n]; attributes
 *   heads (H), scale (0, the default: 1 / sqrt(D)) -> out F[B, n, H, D]:
 *   out[b, i, h] = softmax_j(scale · q[b, i, h] · kcache[b, g, j]) · vcache[b, g, j] over j <= pos[i],
 *   g = h / (H / Hkv): causal attention of the step's queries over the cache (which kv_cache_write
 *   has just filled up to pos). Row by row it is the attention sdpa_qkv computes over a whole
 *   sequence (the reference is the same float64 function, attention_math.ts, so a cached decode on
 *   the CPU gives bitwise the logits of the full forward).
 *
 * Neither has a gradient: they serve inference. The CUDA kernels: native/attention/decode.cu
 * (src/cuda/decode.ts registers them).
 */
import { DeepwellError, describe } from '@deepwell/core';
import { defineOp, shapeError, type Attrs, type NumArray, type Sym, type ValueType } from '@deepwell/ir';
import { attentionForward, type AttentionSizes, type AttentionStrides } from './attention_math.js';
import { checkAttrsObject, checkOpName, checkSyms, checkTypes } from './checks.js';
import { FLOAT, resolveScale, shapeStr } from './sdpa.js';

/** The sizes of a decode call: batch, heads, tokens this step, cache length, head dimension. */
export interface DecodeDims {
  B: number;
  H: number;
  Hkv: number;
  n: number;
  Tmax: number;
  D: number;
}

/** Checks qkv, the two caches and pos against each other and the heads attribute. */
export function decodeDims(op: string, qkv: ValueType, kcache: ValueType, vcache: ValueType, pos: ValueType, attrs: Attrs): DecodeDims {
  checkOpName(op);
  checkTypes(op, [qkv, kcache, vcache, pos], 4, ['qkv', 'kcache', 'vcache', 'pos']);
  checkAttrsObject(op, attrs, ['heads', 'scale']);
  if (!FLOAT.includes(qkv.dtype)) throw new DeepwellError('INVALID_DTYPE', `${op}: Expected f32, bf16 or f16 for input 'qkv' but received ${shapeStr(qkv)}`);
  if (qkv.shape.length !== 4) shapeError(op, `Expected a rank-4 tensor ([B, n, H + 2·Hkv, D]) for input 'qkv' but received ${shapeStr(qkv)}`);
  const [B, n, heads, D] = qkv.shape as [number, number, number, number];
  const H = attrs.heads as number;
  if (!Number.isInteger(H) || H < 1) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected an integer >= 1 for attribute 'heads' but received ${describe(H)}`);
  if (kcache.shape.length !== 4) shapeError(op, `Expected a rank-4 tensor ([B, Hkv, Tmax, D]) for input 'kcache' but received ${shapeStr(kcache)}`);
  const [, Hkv, Tmax] = kcache.shape as [number, number, number, number];
  if (heads !== H + 2 * Hkv) shapeError(op, `Expected input 'qkv' to hold heads (${H}) query heads and the cache's ${Hkv} key and ${Hkv} value heads (${H + 2 * Hkv}) in its third dimension but received ${shapeStr(qkv)}`);
  if (H % Hkv !== 0) shapeError(op, `Expected the query heads (attribute 'heads', ${H}) to be a multiple of the cache's key/value heads (${Hkv}) but received ${shapeStr(kcache)}`);
  const want = `${qkv.dtype}[${[B, Hkv, Tmax, D].join(', ')}]`;
  if (shapeStr(kcache) !== want) shapeError(op, `Expected input 'kcache' ${want} (qkv's batch, dtype and head dimension) but received ${shapeStr(kcache)}`);
  if (shapeStr(vcache) !== want) shapeError(op, `Expected input 'vcache' ${want} (the shape of kcache) but received ${shapeStr(vcache)}`);
  if (pos.dtype !== 'i32' || pos.shape.length !== 1 || pos.shape[0] !== n) shapeError(op, `Expected input 'pos' i32[${n}] (a position for each of qkv's tokens) but received ${shapeStr(pos)}`);
  return { B, H, Hkv, n, Tmax, D };
}

const posBound = (inTypes: readonly ValueType[]) => inTypes[0]!.shape[2]!;

export const kvCacheWriteOp = defineOp({
  name: 'kv_cache_write',
  doc: "kcache', vcache' = the caches with row pos[i] of each key/value head set to token i's key and value from a packed qkv",
  inputs: ['kcache', 'vcache', 'qkv', 'pos'],
  outputs: ['kcache_out', 'vcache_out'],
  attrs: { heads: { kind: 'int' } },
  inplace: [[0, 0], [1, 1]],
  indexInputs: [{ input: 3, bound: posBound }],
  infer: (inTypes, attrs) => {
    const [kcache, vcache, qkv, pos] = checkTypes('kv_cache_write', inTypes, 4, ['kcache', 'vcache', 'qkv', 'pos']);
    decodeDims('kv_cache_write', qkv!, kcache!, vcache!, pos!, attrs);
    return [kcache!, vcache!];
  },
  flops: () => 0,
  reference: ({ inputs: [kcache, vcache, qkv, pos], outputs: [kout, vout], inTypes, attrs }) => {
    const n = decodeDims('kv_cache_write', inTypes[2]!, inTypes[0]!, inTypes[1]!, inTypes[3]!, attrs);
    if (kout !== kcache) kout!.set(kcache as never);
    if (vout !== vcache) vout!.set(vcache as never);
    const heads = n.H + 2 * n.Hkv;
    for (let b = 0; b < n.B; b++)
      for (let i = 0; i < n.n; i++) {
        const p = pos![i]!;
        if (!Number.isInteger(p) || p < 0 || p >= n.Tmax) throw new DeepwellError('INVALID_ARGUMENT', `kv_cache_write: Expected a position in [0, ${n.Tmax}) for pos[${i}] but received ${p}`);
        for (let h = 0; h < n.Hkv; h++) {
          const src = ((b * n.n + i) * heads + n.H + h) * n.D;
          const dst = ((b * n.Hkv + h) * n.Tmax + p) * n.D;
          for (let d = 0; d < n.D; d++) {
            kout![dst + d] = qkv![src + d]!;
            vout![dst + d] = qkv![src + n.Hkv * n.D + d]!;
          }
        }
      }
  },
});

export const sdpaDecodeOp = defineOp({
  name: 'sdpa_decode',
  doc: 'causal attention of the tokens of a packed qkv [B, n, H + 2·Hkv, D] at positions pos over key/value caches [B, Hkv, Tmax, D]: out [B, n, H, D]',
  inputs: ['qkv', 'kcache', 'vcache', 'pos'],
  outputs: ['out'],
  attrs: { heads: { kind: 'int' }, scale: { kind: 'float', default: 0 } },
  indexInputs: [{ input: 3, bound: (inTypes) => inTypes[1]!.shape[2]! }],
  infer: (inTypes, attrs) => {
    const [qkv, kcache, vcache, pos] = checkTypes('sdpa_decode', inTypes, 4, ['qkv', 'kcache', 'vcache', 'pos']);
    const n = decodeDims('sdpa_decode', qkv!, kcache!, vcache!, pos!, attrs);
    resolveScale('sdpa_decode', attrs, n.D);
    return [{ shape: [n.B, n.n, n.H, n.D], dtype: qkv!.dtype }];
  },
  // Every query against the whole cache: an upper bound (a query at position p reads p + 1 keys).
  flops: ([qkv, kcache], _outputs, attrs) => {
    const [B, n, , D] = qkv!.shape as [number, number, number, number];
    return 4 * B * n * (attrs.heads as number) * kcache!.shape[2]! * D;
  },
  reference: ({ inputs: [qkv, kcache, vcache, pos], outputs: [out], inTypes, attrs }) => {
    const n = decodeDims('sdpa_decode', inTypes[0]!, inTypes[1]!, inTypes[2]!, inTypes[3]!, attrs);
    decodeAttention(n, resolveScale('sdpa_decode', attrs, n.D), qkv!, kcache!, vcache!, pos!, out!);
  },
});

/**
 * sdpa_decode's math: each query row (b, i) as one row of sdpa over keys 0 .. pos[i] of the cache,
 * through the float64 attention of the other ops (the same arithmetic, key by key, as sdpa_qkv's row i).
 */
function decodeAttention(n: DecodeDims, scale: number, qkv: NumArray, kcache: NumArray, vcache: NumArray, pos: NumArray, out: NumArray): void {
  const heads = n.H + 2 * n.Hkv;
  const lse = new Float64Array(n.H);
  for (let b = 0; b < n.B; b++)
    for (let i = 0; i < n.n; i++) {
      const p = pos[i]!;
      if (!Number.isInteger(p) || p < 0 || p >= n.Tmax) throw new DeepwellError('INVALID_ARGUMENT', `sdpa_decode: Expected a position in [0, ${n.Tmax}) for pos[${i}] but received ${p}`);
      const sizes: AttentionSizes = { B: 1, H: n.H, Hkv: n.Hkv, Sq: 1, Sk: p + 1, D: n.D, causal: false, scale };
      const cache = { offset: b * n.Hkv * n.Tmax * n.D, b: 0, h: n.Tmax * n.D, s: n.D };
      const st: AttentionStrides = {
        q: { offset: (b * n.n + i) * heads * n.D, b: 0, h: n.D, s: 0 },
        k: cache,
        v: cache,
        out: { offset: (b * n.n + i) * n.H * n.D, b: 0, h: n.D, s: 0 },
      };
      attentionForward(sizes, st, qkv, kcache, vcache, out, lse);
    }
}

export interface DecodeAttributes {
  /** The query heads H; qkv's third dimension is H + 2·Hkv, Hkv the caches' second. */
  heads: number;
}

/** kv_cache_write in a captured model: [kcache', vcache']. */
export function kvCacheWrite(kcache: Sym, vcache: Sym, qkv: Sym, pos: Sym, attrs: DecodeAttributes): [Sym, Sym] {
  checkSyms('kvCacheWrite', { kcache, vcache, qkv, pos });
  if (attrs === undefined) throw new DeepwellError('INVALID_ARGUMENT', 'kvCacheWrite: Expected attributes { heads } but received undefined');
  checkAttrsObject('kvCacheWrite', attrs, ['heads']);
  const [k, v] = qkv.builder.op('kv_cache_write', [kcache, vcache, qkv, pos], { heads: attrs.heads });
  return [k!, v!];
}

/** sdpa_decode in a captured model: out F[B, n, H, D]. */
export function sdpaDecode(qkv: Sym, kcache: Sym, vcache: Sym, pos: Sym, attrs: DecodeAttributes & { scale?: number }): Sym {
  checkSyms('sdpaDecode', { qkv, kcache, vcache, pos });
  if (attrs === undefined) throw new DeepwellError('INVALID_ARGUMENT', 'sdpaDecode: Expected attributes { heads, scale? } but received undefined');
  checkAttrsObject('sdpaDecode', attrs);
  return qkv.builder.op1('sdpa_decode', [qkv, kcache, vcache, pos], { ...attrs });
}
