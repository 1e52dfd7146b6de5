// @deepwell/attention-sparsek (issue 20): every public export with bad and edge input, and valid
// random input checked against a naive float64 attention written here.
//  - scaledDotProductAttention and sparseKAttention on small random Tensors (layouts, GQA, causal,
//    scales, bf16): outputs equal naive attention (for SparseK: under the block mask its own indices
//    give, each row of indices ascending, -1 padded, the forced blocks in it); bad options (unknown
//    keys, NaN, 0, topK beyond the blocks, junk layouts), tensors that are not tensors, shapes and
//    dtypes that do not agree;
//  - the captured calls (sdpa, sdpaQkv, sparsekAttention, kvCacheWrite, sdpaDecode and the
//    backwards) on Syms: valid shapes give the documented output shapes (a few interpreted, finite),
//    junk arguments and attributes are typed errors naming the function;
//  - the shape rules (attentionDims, qkvDims, sparsekDims, decodeDims), the math helpers
//    (layoutStrides, packedStrides, sparsekFlops, sparsekSelect, blockVisibility) and the op
//    definitions' infer/reference/flops with junk and with valid sizes.
import { Tensor, f32ToBf16Bits } from '@deepwell/core';
import { GraphBuilder, checkAttrs, interpret } from '@deepwell/ir';
import {
  attentionDims, blockVisibility, decodeDims, kvCacheWrite, kvCacheWriteOp, layoutStrides, packedStrides, qkvDims, scaledDotProductAttention, sdpa, sdpaBackward, sdpaBackwardOp, sdpaDecode, sdpaDecodeOp,
  sdpaOp, sdpaQkv, sdpaQkvBackward, sdpaQkvBackwardOp, sdpaQkvOp, sparseKAttention, sparsekAttention, sparsekAttentionBackward, sparsekAttentionBackwardOp, sparsekAttentionOp, sparsekDims, sparsekFlops, sparsekSelect,
} from '@deepwell/attention-sparsek';
import { BAD_INTEGERS, BAD_SHAPES, NON_FINITE, WRONG_TYPES, junk, nonFinite, show } from '../lib.mjs';

const P = 'attention-sparsek';
const numel = (s) => s.reduce((a, b) => a * b, 1);
const data = (r, n) => Float32Array.from({ length: n }, () => r.float(-2, 2));
const maxDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
/** Element (b, h, s, d) of a [B, heads, S, D] ('bhsd') or [B, S, heads, D] ('bshd') array. */
const at = (layout, heads, S, D, b, h, s, d) => (layout === 'bhsd' ? ((b * heads + h) * S + s) * D + d : ((b * S + s) * heads + h) * D + d);

/** Random sizes of an attention call. */
function sizes(r, { square = false } = {}) {
  const Hkv = r.int(1, 2);
  const H = Hkv * r.int(1, 3);
  const Sq = r.int(1, 8);
  return { B: r.int(1, 2), H, Hkv, Sq, Sk: square ? Sq : r.int(1, 8), D: r.int(1, 8), layout: r.pick(['bhsd', 'bshd']), causal: r.bool(), scale: r.pick([0, r.float(0.05, 2)]) };
}
const shapeOf = (n, heads, S) => (n.layout === 'bhsd' ? [n.B, heads, S, n.D] : [n.B, S, heads, n.D]);

/**
 * Naive attention in float64: out[b, h, i] = softmax_j(scale q_i · k_j) v_j over the keys query i
 * sees (causal: j <= i + Sk - Sq; `see(b, g, i, j)` hides more); a row that sees none gives 0.
 */
function naive(n, q, k, v, see) {
  const { B, H, Hkv, Sq, Sk, D, layout } = n;
  const scale = n.scale || 1 / Math.sqrt(D);
  const out = new Float64Array(B * H * Sq * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      for (let i = 0; i < Sq; i++) {
        const s = [];
        for (let j = 0; j < Sk; j++) {
          if ((n.causal && j > i + Sk - Sq) || (see && !see(b, g, i, j))) continue;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[at(layout, H, Sq, D, b, h, i, d)] * k[at(layout, Hkv, Sk, D, b, g, j, d)];
          s.push([j, scale * dot]);
        }
        if (!s.length) continue;
        const m = Math.max(...s.map(([, x]) => x));
        const w = s.map(([j, x]) => [j, Math.exp(x - m)]);
        const z = w.reduce((a, [, x]) => a + x, 0);
        for (let d = 0; d < D; d++) out[at(layout, H, Sq, D, b, h, i, d)] = w.reduce((a, [j, x]) => a + x * v[at(layout, Hkv, Sk, D, b, g, j, d)], 0) / z;
      }
    }
  return out;
}

function tensorCases(rng, out) {
  // scaledDotProductAttention against naive attention (f32; bf16 rounded inputs, checked loosely).
  for (let i = 0; i < 50; i++) {
    const n = sizes(rng);
    const bf16 = rng.bool(0.2);
    const r = rng.fork();
    const opts = { causal: n.causal, layout: n.layout, enableGqa: n.H !== n.Hkv || rng.bool(), ...(n.scale ? { scale: n.scale } : {}) };
    out.push({
      name: `${P}.scaledDotProductAttention: ${show(n)}${bf16 ? ' bf16' : ''} #${i}`, entry: `${P}.scaledDotProductAttention`, expect: 'ok',
      run: () => {
        const [q, k, v] = [data(r, numel(shapeOf(n, n.H, n.Sq))), data(r, numel(shapeOf(n, n.Hkv, n.Sk))), data(r, numel(shapeOf(n, n.Hkv, n.Sk)))];
        const t = (x, heads, S) => (bf16 ? Tensor.from(Uint16Array.from(x, (y) => f32ToBf16Bits(y)), shapeOf(n, heads, S), 'bf16') : Tensor.from(x, shapeOf(n, heads, S)));
        const ts = [t(q, n.H, n.Sq), t(k, n.Hkv, n.Sk), t(v, n.Hkv, n.Sk)];
        const o = scaledDotProductAttention(...ts, opts);
        const host = o.dtype === 'f32' ? Array.from(o.toHost()) : Array.from(o.toHost(), (b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]);
        const shape = o.shape;
        for (const x of [...ts, o]) x.dispose();
        return { host, shape, want: naive(n, q, k, v) };
      },
      check: ({ host, shape, want }) => (shape.join() !== shapeOf(n, n.H, n.Sq).join() ? `shape ${shape}` : nonFinite(host) ?? (maxDiff(host, want) < (bf16 ? 0.1 : 1e-4) ? undefined : `differs from naive attention by ${maxDiff(host, want)}`)),
    });
  }
  // sparseKAttention: the output is attention under the block mask of its own indices.
  for (let i = 0; i < 40; i++) {
    const n = sizes(rng, { square: true });
    const S = n.Sq;
    const blockSize = rng.int(1, 4);
    const nB = Math.ceil(S / blockSize);
    const first = nB > 1 && rng.bool(0.3);
    const topK = rng.int(first ? 2 : 1, nB);
    const window = rng.int(1, topK - (first ? 1 : 0));
    const o = { blockSize, topK, first, window, causal: n.causal, layout: n.layout, ...(n.scale ? { scale: n.scale } : {}) };
    const r = rng.fork();
    out.push({
      name: `${P}.sparseKAttention: ${show(n)} ${show(o)} #${i}`, entry: `${P}.sparseKAttention`, expect: 'ok',
      run: () => {
        const [q, k, v] = [data(r, numel(shapeOf(n, n.H, S))), data(r, numel(shapeOf(n, n.Hkv, S))), data(r, numel(shapeOf(n, n.Hkv, S)))];
        const ts = [Tensor.from(q, shapeOf(n, n.H, S)), Tensor.from(k, shapeOf(n, n.Hkv, S)), Tensor.from(v, shapeOf(n, n.Hkv, S))];
        const res = sparseKAttention(...ts, o);
        const got = { out: Array.from(res.out.toHost()), indices: Array.from(res.indices.toHost()), ishape: res.indices.shape, q, k, v };
        for (const x of [...ts, res.out, res.indices]) x.dispose();
        return got;
      },
      check: ({ out: y, indices, ishape, q, k, v }) => {
        if (ishape.join() !== [n.B, n.Hkv, nB, topK].join()) return `indices shape ${ishape}`;
        for (let row = 0; row < indices.length / topK; row++) {
          const sel = indices.slice(row * topK, (row + 1) * topK);
          const blk = row % nB;
          const real = sel.filter((j) => j !== -1);
          if (sel.slice(real.length).some((j) => j !== -1) || real.some((j, x) => j < 0 || j >= nB || (x > 0 && j <= real[x - 1]))) return `indices row ${row}: ${sel}`;
          if (real.length !== Math.min(topK, n.causal ? blk + 1 : nB) || !real.includes(blk) || (first && !real.includes(0))) return `indices row ${row} lacks a forced block: ${sel}`;
        }
        const see = (b, g, i, j) => indices.slice(((b * n.Hkv + g) * nB + Math.floor(i / blockSize)) * topK, ((b * n.Hkv + g) * nB + Math.floor(i / blockSize) + 1) * topK).includes(Math.floor(j / blockSize));
        const want = naive({ ...n, Sk: S }, q, k, v, see);
        return nonFinite(y) ?? (maxDiff(y, want) < 1e-4 ? undefined : `differs from masked attention by ${maxDiff(y, want)}`);
      },
    });
  }
  // Bad options and arguments.
  const t4 = (r, shape = [1, 2, 8, 4], dtype = 'f32') => (dtype === 'f32' ? Tensor.from(data(r, numel(shape)), shape) : Tensor.empty(shape, dtype));
  const sdpaBad = [
    [{ casual: true }], [{ causal: 1 }], [{ scale: NaN }], [{ scale: -1 }], [{ scale: 0 }], [{ scale: Infinity }], [{ layout: 'bsdh' }], [{ layout: 5 }], [{ enableGqa: 'yes' }], [null], [5], ['causal'], [[]],
    [{}, [1, 4, 8, 4], [1, 2, 8, 4]], [{ enableGqa: true }, [1, 3, 8, 4], [1, 2, 8, 4]], [{}, [1, 2, 8, 4], [1, 2, 8, 3]], [{}, [2, 8, 4], [2, 8, 4]], [{}, [1, 2, 8, 4], [1, 2, 8, 4], 'i32'], [{}, [1, 1, 2, 8, 4], [1, 1, 2, 8, 4]],
  ];
  for (const [o, qs, ks, dtype] of sdpaBad) {
    const r = rng.fork();
    out.push({ name: `${P}.scaledDotProductAttention: ${show(o)} q ${show(qs)} k ${show(ks)} ${dtype ?? ''}`, entry: `${P}.scaledDotProductAttention`, expect: 'error', run: () => scaledDotProductAttention(t4(r, qs, dtype), t4(r, ks, dtype), t4(r, ks, dtype), o) });
  }
  const skBad = [{ topk: 1 }, { blockSize: 0 }, { blockSize: NaN }, { blockSize: 1.5 }, { blockSize: -4 }, { blockSize: '4' }, { blockSize: 4, topK: 3 }, { blockSize: 1, topK: 99 }, { topK: 0 }, { topK: NaN }, { topK: Infinity }, { window: 0 }, { window: 1.5 },
    { blockSize: 4, topK: 2, window: 2, first: true }, { blockSize: 4, topK: 1, window: 2 }, { first: 1 }, { causal: 'no' }, { scale: 0 }, { scale: NaN }, { layout: 'xyz' }, { dropout: 0.1 }, null, 5, [], { blockSize: 2 ** 53 + 2 }];
  for (const o of skBad) {
    const r = rng.fork();
    out.push({ name: `${P}.sparseKAttention: ${show(o)}`, entry: `${P}.sparseKAttention`, expect: 'error', run: () => sparseKAttention(t4(r), t4(r), t4(r), o) });
  }
  for (const [what, args] of [['q null', [null, 1, 1]], ['k a Float32Array', [1, new Float32Array(64), 1]], ['v {}', [1, 1, {}]], ['other S for k', [1, [1, 2, 6, 4], [1, 2, 6, 4]]], ['i32', [[1, 2, 8, 4, 'i32'], [1, 2, 8, 4, 'i32'], [1, 2, 8, 4, 'i32']]]]) {
    const r = rng.fork();
    const make = (a) => (a === 1 ? t4(r) : Array.isArray(a) && typeof a[0] === 'number' ? t4(r, a.slice(0, 4), a[4] ?? 'f32') : a);
    out.push({ name: `${P}.sparseKAttention: ${what}`, entry: `${P}.sparseKAttention`, expect: 'error', run: () => sparseKAttention(...args.map(make), { blockSize: 4, topK: 1 }) });
    out.push({ name: `${P}.scaledDotProductAttention: ${what}`, entry: `${P}.scaledDotProductAttention`, expect: what === 'other S for k' ? 'ok' : 'error', run: () => scaledDotProductAttention(...args.map(make)).shape, check: (s) => (s.join() === '1,2,8,4' ? undefined : `shape ${s}`) });
  }
  const rd = rng.fork();
  out.push({ name: `${P}.scaledDotProductAttention: a disposed tensor`, entry: `${P}.scaledDotProductAttention`, expect: 'error', run: () => { const q = t4(rd); q.dispose(); return scaledDotProductAttention(q, t4(rd), t4(rd)); } });
  out.push({ name: `${P}.sparseKAttention: a disposed tensor`, entry: `${P}.sparseKAttention`, expect: 'error', run: () => { const k = t4(rd); k.dispose(); return sparseKAttention(t4(rd), k, t4(rd), { blockSize: 4, topK: 1 }); } });
  // NaN inputs are data, not arguments: accepted, and NaN shows in the output (never a made-up number).
  const rn = rng.fork();
  out.push({ name: `${P}.scaledDotProductAttention: NaN in q`, entry: `${P}.scaledDotProductAttention`, expect: 'either', run: () => { const x = data(rn, 64); x[0] = NaN; return Array.from(scaledDotProductAttention(Tensor.from(x, [1, 2, 8, 4]), t4(rn), t4(rn)).toHost()); }, check: (y) => (y.slice(0, 4).some(Number.isNaN) ? undefined : 'the NaN row came out finite') });
}

function symCases(rng, out) {
  const g = () => new GraphBuilder();
  // Valid captured calls: the documented output shapes; some interpreted, finite.
  for (let i = 0; i < 40; i++) {
    const n = sizes(rng, { square: true });
    const run = rng.bool(0.5);
    const kind = rng.pick(['sdpa', 'sdpaQkv', 'sparsek', 'decode', 'sdpaBackward', 'sdpaQkvBackward', 'sparsekBackward']);
    const r = rng.fork();
    const S = n.Sq;
    const blockSize = rng.int(1, 4);
    const sk = { blockSize, topK: rng.int(1, Math.ceil(S / blockSize)), causal: n.causal, layout: n.layout };
    out.push({
      name: `${P}: captured ${kind} ${show(n)}${run ? ', interpreted' : ''} #${i}`,
      entry: { sdpa: `${P}.sdpa`, sdpaQkv: `${P}.sdpaQkv`, sparsek: `${P}.sparsekAttention`, decode: [`${P}.kvCacheWrite`, `${P}.sdpaDecode`], sdpaBackward: `${P}.sdpaBackward`, sdpaQkvBackward: `${P}.sdpaQkvBackward`, sparsekBackward: `${P}.sparsekAttentionBackward` }[kind],
      expect: 'ok',
      run: () => {
        const b = g();
        const x = (name, shape, dtype = 'f32') => b.input(name, shape, dtype);
        const [qs, ks] = [shapeOf(n, n.H, S), shapeOf(n, n.Hkv, S)];
        let outs;
        let want;
        if (kind === 'sdpa' || kind === 'sdpaBackward') {
          const [q, k, v] = [x('q', qs), x('k', ks), x('v', ks)];
          const [o, lse] = sdpa(q, k, v, { causal: n.causal, layout: n.layout, scale: n.scale });
          outs = kind === 'sdpa' ? [o, lse] : sdpaBackward(o, q, k, v, o, lse, { causal: n.causal, layout: n.layout });
          want = kind === 'sdpa' ? [qs, [n.B, n.H, S]] : [qs, ks, ks];
        } else if (kind === 'sdpaQkv' || kind === 'sdpaQkvBackward') {
          const qkv = x('qkv', [n.B, S, n.H + 2 * n.Hkv, n.D]);
          const [o, lse] = sdpaQkv(qkv, { heads: n.H, causal: n.causal });
          outs = kind === 'sdpaQkv' ? [o, lse] : [sdpaQkvBackward(o, qkv, o, lse, { heads: n.H, causal: n.causal })];
          want = kind === 'sdpaQkv' ? [[n.B, S, n.H, n.D], [n.B, n.H, S]] : [[n.B, S, n.H + 2 * n.Hkv, n.D]];
        } else if (kind === 'sparsek' || kind === 'sparsekBackward') {
          const [q, k, v] = [x('q', qs), x('k', ks), x('v', ks)];
          const [o, lse, idx] = sparsekAttention(q, k, v, sk);
          outs = kind === 'sparsek' ? [o, lse, idx] : sparsekAttentionBackward(o, q, k, v, o, lse, idx, sk);
          want = kind === 'sparsek' ? [qs, [n.B, n.H, S], [n.B, n.Hkv, Math.ceil(S / blockSize), sk.topK]] : [qs, ks, ks];
        } else {
          const Tmax = S + r.int(0, 3);
          const qkv = x('qkv', [n.B, 1, n.H + 2 * n.Hkv, n.D]);
          const pos = x('pos', [1], 'i32');
          const [kc, vc] = kvCacheWrite(x('kc', [n.B, n.Hkv, Tmax, n.D]), x('vc', [n.B, n.Hkv, Tmax, n.D]), qkv, pos, { heads: n.H });
          outs = [kc, vc, sdpaDecode(qkv, kc, vc, pos, { heads: n.H })];
          want = [[n.B, n.Hkv, Tmax, n.D], [n.B, n.Hkv, Tmax, n.D], [n.B, 1, n.H, n.D]];
        }
        outs.forEach((o, j) => b.output(`o${j}`, o));
        const shapes = outs.map((o) => [...o.shape]);
        if (!run) return { shapes, want };
        const feed = {};
        for (const [name, id] of Object.entries(b.graph.inputs)) {
          const t = b.graph.values[id].type;
          feed[name] = t.dtype === 'i32' ? Int32Array.from({ length: numel(t.shape) }, () => r.int(0, S - 1)) : data(r, numel(t.shape));
        }
        const vals = interpret(b.graph, feed);
        return { shapes, want, values: Object.values(b.graph.outputs).flatMap((id) => Array.from(vals[id]).filter((z) => z !== -Infinity)) };
      },
      check: ({ shapes, want, values }) => (shapes.map(String).join('|') !== want.map(String).join('|') ? `shapes ${show(shapes)}, expected ${show(want)}` : values ? nonFinite(values) : undefined),
    });
  }
  // Junk arguments and attributes.
  const fns = {
    sdpa: (a, b2, c, at2) => sdpa(a, b2, c, at2), sdpaQkv: (a, b2, c, at2) => sdpaQkv(a, at2), sparsekAttention: (a, b2, c, at2) => sparsekAttention(a, b2, c, at2),
    kvCacheWrite: (a, b2, c, at2) => kvCacheWrite(a, b2, c, a, at2), sdpaDecode: (a, b2, c, at2) => sdpaDecode(a, b2, c, a, at2),
    sdpaBackward: (a, b2, c, at2) => sdpaBackward(a, b2, c, a, b2, c, at2), sdpaQkvBackward: (a, b2, c, at2) => sdpaQkvBackward(a, b2, c, a, at2), sparsekAttentionBackward: (a, b2, c, at2) => sparsekAttentionBackward(a, b2, c, a, b2, c, a, at2),
  };
  for (const [name, fn] of Object.entries(fns)) {
    for (let i = 0; i < 8; i++) {
      const args = [junk(rng), junk(rng), junk(rng)];
      out.push({ name: `${P}.${name}(${args.map(show).join(', ')})`, entry: `${P}.${name}`, expect: 'error', run: () => fn(...args, {}) });
    }
    for (const at2 of ['causal', 5, [], null, true]) {
      out.push({ name: `${P}.${name}: attributes ${show(at2)}`, entry: `${P}.${name}`, expect: 'error', run: () => { const b = g(); const q = b.input('q', [1, 2, 4, 4]); return fn(q, q, q, at2); } });
    }
  }
  const attrBad = [
    ['sdpa', { scale: NaN }], ['sdpa', { scale: -1 }], ['sdpa', { layout: 'x' }], ['sdpa', { causal: 'y' }], ['sdpa', { casual: true }], ['sdpa', { heads: 2 }],
    ['sdpaQkv', {}], ['sdpaQkv', { heads: 0 }], ['sdpaQkv', { heads: 1.5 }], ['sdpaQkv', { heads: 3 }], ['sdpaQkv', { heads: 2, layout: 'bhsd' }], ['sdpaQkv', { heads: 2, scale: Infinity }],
    ['sparsekAttention', { blockSize: 0 }], ['sparsekAttention', { topK: 99 }], ['sparsekAttention', { blockSize: 2, topK: 1, window: 2 }], ['sparsekAttention', { first: 'yes' }], ['sparsekAttention', { blocksize: 2 }],
    ['kvCacheWrite', {}], ['kvCacheWrite', { heads: 2, scale: 1 }], ['kvCacheWrite', { heads: NaN }], ['sdpaDecode', { heads: 2, causal: true }], ['sdpaDecode', { heads: 2, scale: NaN }], ['sdpaDecode', { heads: -2 }],
  ];
  for (const [name, a] of attrBad) {
    out.push({
      name: `${P}.${name}: attributes ${show(a)}`, entry: `${P}.${name}`, expect: 'error',
      run: () => {
        const b = g();
        if (name === 'sdpa' || name === 'sparsekAttention') { const q = b.input('q', [1, 2, 8, 4]); return (name === 'sdpa' ? sdpa : sparsekAttention)(q, q, q, a); }
        if (name === 'sdpaQkv') return sdpaQkv(b.input('qkv', [1, 4, 4, 4]), a);
        const qkv = b.input('qkv', [1, 1, 4, 4]);
        const c = b.input('c', [1, 1, 6, 4]);
        const pos = b.input('pos', [1], 'i32');
        return name === 'kvCacheWrite' ? kvCacheWrite(c, c, qkv, pos, a) : sdpaDecode(qkv, c, c, pos, a);
      },
    });
  }
  const shapeBad = [[[1, 2, 8, 4], [1, 2, 8, 5]], [[1, 3, 8, 4], [1, 2, 8, 4]], [[2, 8, 4], [2, 8, 4]], [[1, 2, 8, 4], [2, 2, 8, 4]], [[1, 2, 8, 4], [1, 2, 6, 4], true]];
  for (const [qs, ks, sparseOnly] of shapeBad) {
    for (const [name, fn] of sparseOnly ? [['sparsekAttention', sparsekAttention]] : [['sdpa', sdpa], ['sparsekAttention', sparsekAttention]]) {
      out.push({ name: `${P}.${name}: q ${show(qs)} k ${show(ks)}`, entry: `${P}.${name}`, expect: 'error', run: () => { const b = g(); return fn(b.input('q', qs), b.input('k', ks), b.input('v', ks), fn === sparsekAttention ? { blockSize: 2, topK: 1 } : {}); } });
    }
  }
  out.push({ name: `${P}.sdpa: Syms of two graphs`, entry: `${P}.sdpa`, expect: 'error', run: () => sdpa(g().input('q', [1, 1, 2, 2]), g().input('k', [1, 1, 2, 2]), g().input('v', [1, 1, 2, 2])) });
  // kv_cache_write's positions are data: one outside the cache is refused when the step runs.
  for (const p of [-1, 6, 99, 2 ** 31 - 1]) {
    out.push({
      name: `${P}.kvCacheWrite: position ${p} in a cache of 6`, entry: `${P}.kvCacheWrite`, expect: 'error',
      run: () => {
        const b = g();
        const [kc, vc] = kvCacheWrite(b.input('k', [1, 1, 6, 2]), b.input('v', [1, 1, 6, 2]), b.input('qkv', [1, 1, 3, 2]), b.input('pos', [1], 'i32'), { heads: 1 });
        b.output('k', kc);
        b.output('v', vc);
        return interpret(b.graph, { k: new Float32Array(12), v: new Float32Array(12), qkv: new Float32Array(6).fill(1), pos: Int32Array.of(p) });
      },
    });
  }
}

function ruleCases(rng, out) {
  // Valid sizes through the shape rules and math helpers.
  for (let i = 0; i < 40; i++) {
    const n = sizes(rng, { square: rng.bool() });
    const t = (heads, S) => ({ shape: shapeOf(n, heads, S), dtype: rng.pick(['f32', 'bf16', 'f16']) });
    const dt = rng.pick(['f32', 'bf16', 'f16']);
    const types = [{ ...t(n.H, n.Sq), dtype: dt }, { ...t(n.Hkv, n.Sk), dtype: dt }, { ...t(n.Hkv, n.Sk), dtype: dt }];
    const attrs = { causal: n.causal, scale: n.scale, layout: n.layout };
    out.push({
      name: `${P}.attentionDims + layoutStrides: ${show(n)} #${i}`, entry: [`${P}.attentionDims`, `${P}.layoutStrides`, `${P}.packedStrides`], expect: 'ok',
      run: () => { const d = attentionDims('fuzz', types, attrs); return { d, st: layoutStrides(d), pk: packedStrides(d) }; },
      check: ({ d, st, pk }) => {
        for (const k of ['B', 'H', 'Hkv', 'Sq', 'Sk', 'D']) if (d[k] !== n[k]) return `${k} ${d[k]}, expected ${n[k]}`;
        if (d.scale !== (n.scale || 1 / Math.sqrt(n.D))) return `scale ${d.scale}`;
        const last = st.q.offset + (n.B - 1) * st.q.b + (n.H - 1) * st.q.h + (n.Sq - 1) * st.q.s + n.D;
        return last === numel(shapeOf(n, n.H, n.Sq)) && pk.q.h === n.D ? undefined : `strides reach ${last}`;
      },
    });
  }
  for (let i = 0; i < 30; i++) {
    const n = sizes(rng, { square: true });
    const S = n.Sq;
    const blockSize = rng.int(1, 4);
    const nB = Math.ceil(S / blockSize);
    const topK = rng.int(1, nB);
    const types = [{ shape: shapeOf(n, n.H, S), dtype: 'f32' }, { shape: shapeOf(n, n.Hkv, S), dtype: 'f32' }, { shape: shapeOf(n, n.Hkv, S), dtype: 'f32' }];
    const r = rng.fork();
    out.push({
      name: `${P}.sparsekDims + sparsekSelect + blockVisibility + sparsekFlops: ${show(n)} bs ${blockSize} topK ${topK} #${i}`, entry: [`${P}.sparsekDims`, `${P}.sparsekSelect`, `${P}.blockVisibility`, `${P}.sparsekFlops`], expect: 'ok',
      run: () => {
        const d = sparsekDims('fuzz', types, { blockSize, topK, causal: n.causal, layout: n.layout });
        const st = layoutStrides(d);
        const idx = sparsekSelect(d, st, data(r, numel(types[0].shape)), data(r, numel(types[1].shape)));
        const see = blockVisibility('fuzz', d, idx);
        return { d, idx: Array.from(idx), diag: see(0, 0, S - 1, S - 1), flops: sparsekFlops(d, 2) };
      },
      check: ({ d, idx, diag, flops }) => (d.nB !== nB ? `nB ${d.nB}` : idx.length !== n.B * n.Hkv * nB * topK ? `${idx.length} indices` : !diag ? 'a query does not see its own block' : Number.isFinite(flops) && flops > 0 ? undefined : `flops ${flops}`),
    });
  }
  // Junk types, attributes and sizes.
  const f = (...shape) => ({ shape, dtype: 'f32' });
  const typesBad = [null, 5, 'q', [], [f(1, 1, 2, 2)], [f(1, 1, 2, 2), f(1, 1, 2, 2), null], [f(1, 1, 2, 2), f(1, 1, 2, 2), { shape: [1, -1, 2, 2], dtype: 'f32' }], [f(1, 1, 2, 2), f(1, 1, 2, 2), { shape: 'abc', dtype: 'f32' }],
    [f(1, 1, 2, 2), f(1, 1, 2, 2), { shape: [1, 1, 2, 2] }], [f(1, 1, 2, 2), { shape: [1, 1, 2, 2], dtype: 'i32' }, f(1, 1, 2, 2)], [f(1, 2, 2), f(1, 2, 2), f(1, 2, 2)], [f(1, 1, 2, 0), f(1, 1, 2, 0), f(1, 1, 2, 0)], [f(1, 1, 2, 2.5), f(1, 1, 2, 2), f(1, 1, 2, 2)]];
  for (const ty of typesBad) {
    out.push({ name: `${P}.attentionDims(${show(ty)})`, entry: `${P}.attentionDims`, expect: 'error', run: () => attentionDims('fuzz', ty, {}) });
    out.push({ name: `${P}.sparsekDims(${show(ty)})`, entry: `${P}.sparsekDims`, expect: 'error', run: () => sparsekDims('fuzz', ty, { blockSize: 1, topK: 1 }) });
  }
  const q4 = f(1, 2, 4, 4);
  for (const a of [null, 5, 'x', { layout: 'x' }, { causal: 1 }, { scale: NaN }, { scale: -1 }, { scale: '1' }, { heads: 2 }, { casual: true }]) {
    out.push({ name: `${P}.attentionDims: attributes ${show(a)}`, entry: `${P}.attentionDims`, expect: 'error', run: () => attentionDims('fuzz', [q4, q4, q4], a) });
  }
  for (const a of [{ blockSize: 0 }, { topK: 5, blockSize: 1 }, { blockSize: 1.5 }, { topK: NaN }, { window: -1 }, { first: 'y' }, { blockSize: 2, topK: 1, window: 2 }, { blockSize: 2, topK: 2, first: true, window: 2 }, null, { k: 1 }]) {
    out.push({ name: `${P}.sparsekDims: attributes ${show(a)}`, entry: `${P}.sparsekDims`, expect: 'error', run: () => sparsekDims('fuzz', [q4, q4, q4], a) });
  }
  for (const [qkv, a] of [[null, { heads: 1 }], [f(1, 2, 3), { heads: 1 }], [f(1, 2, 4, 2), { heads: 0 }], [f(1, 2, 4, 2), { heads: 3 }], [f(1, 2, 4, 2), {}], [f(1, 2, 4, 2), { heads: 2, causal: 'y' }], [{ shape: [1, 2, 4, 2], dtype: 'i32' }, { heads: 2 }], [f(1, 2, 4, 2), { heads: 2, layout: 'bhsd' }]]) {
    out.push({ name: `${P}.qkvDims(${show(qkv)}, ${show(a)})`, entry: `${P}.qkvDims`, expect: 'error', run: () => qkvDims('fuzz', qkv, a) });
  }
  const qkv1 = f(1, 1, 4, 2);
  const c = f(1, 1, 6, 2);
  const pos = { shape: [1], dtype: 'i32' };
  for (const [args, a] of [[[null, c, c, pos], { heads: 2 }], [[qkv1, c, c, pos], {}], [[qkv1, c, c, pos], { heads: 3 }], [[qkv1, c, f(1, 1, 5, 2), pos], { heads: 2 }], [[qkv1, c, c, f(1)], { heads: 2 }], [[qkv1, c, c, { shape: [2], dtype: 'i32' }], { heads: 2 }], [[qkv1, f(1, 6, 2), c, pos], { heads: 2 }], [[qkv1, c, c, pos], { heads: 2, window: 1 }]]) {
    out.push({ name: `${P}.decodeDims(${show(args)}, ${show(a)})`, entry: `${P}.decodeDims`, expect: 'error', run: () => decodeDims('fuzz', ...args, a) });
  }
  out.push({ name: `${P}.decodeDims: valid`, entry: `${P}.decodeDims`, expect: 'ok', run: () => decodeDims('fuzz', qkv1, c, c, pos, { heads: 2 }), check: (d) => (d.H === 2 && d.Hkv === 1 && d.Tmax === 6 && d.n === 1 ? undefined : show(d)) });
  // q4's sizes as attentionDims and sparsekDims give them (written out: the list is built without package calls).
  const base = { B: 1, H: 2, Hkv: 2, Sq: 4, Sk: 4, D: 4, layout: 'bhsd', causal: false, scale: 0.5 };
  const sk = { ...base, blockSize: 2, topK: 2, first: false, window: 1, nB: 2 };
  const sizeBad = [null, 5, {}, { ...base, B: -1 }, { ...base, H: 0 }, { ...base, H: 3, Hkv: 2 }, { ...base, D: 1.5 }, { ...base, D: NaN }, { ...base, causal: 'y' }, { ...base, scale: Infinity }, { ...base, Sq: 2 ** 53 }, { ...base, B: 2 ** 30, H: 2 ** 30 }, { ...base, layout: 'x' }];
  for (const n of sizeBad) {
    out.push({ name: `${P}.layoutStrides(${show(n)})`, entry: `${P}.layoutStrides`, expect: 'error', run: () => layoutStrides(n) });
    out.push({ name: `${P}.packedStrides(${show(n)})`, entry: `${P}.packedStrides`, expect: n?.layout === 'x' ? 'ok' : 'error', run: () => packedStrides(n) });
  }
  const r = rng.fork();
  const q = data(r, 32);
  const rows = { offset: 0, b: 32, h: 16, s: 4 };
  const st = { q: rows, k: rows, v: rows, out: rows };
  const skBad = [
    ['short k', () => sparsekSelect(sk, st, q, data(r, 31))], ['k not an array', () => sparsekSelect(sk, st, q, [1, 2])], ['no strides', () => sparsekSelect(sk, null, q, q)], ['negative strides', () => sparsekSelect(sk, { ...st, q: { ...st.q, s: -1 } }, q, q)],
    ['nB wrong', () => sparsekSelect({ ...sk, nB: 9 }, st, q, q)], ['topK past nB', () => sparsekSelect({ ...sk, topK: 3 }, st, q, q)], ['Sq and Sk apart', () => sparsekSelect({ ...sk, Sk: 5 }, st, q, q)], ['sizes null', () => sparsekSelect(null, st, q, q)],
    ['S larger than q', () => sparsekSelect({ ...sk, Sq: 8, Sk: 8, nB: 4 }, st, q, q)], ['blockVisibility short', () => blockVisibility('fuzz', sk, new Int32Array(3))], ['blockVisibility index 9', () => blockVisibility('fuzz', sk, new Int32Array(16).fill(9))],
    ['blockVisibility index -2', () => blockVisibility('fuzz', sk, new Int32Array(16).fill(-2))], ['blockVisibility NaN', () => blockVisibility('fuzz', sk, new Float64Array(16).fill(NaN))], ['blockVisibility array', () => blockVisibility('fuzz', sk, [0, 1])],
    ['sparsekFlops products -1', () => sparsekFlops(sk, -1)], ['sparsekFlops products NaN', () => sparsekFlops(sk, NaN)], ['sparsekFlops sizes {}', () => sparsekFlops({}, 2)], ['sparsekFlops blockSize 0', () => sparsekFlops({ ...sk, blockSize: 0 }, 2)],
  ];
  for (const [what, fn] of skBad) out.push({ name: `${P}: ${what}`, entry: [`${P}.sparsekSelect`, `${P}.blockVisibility`, `${P}.sparsekFlops`].find((e) => what.startsWith(e.split('.')[1])) ?? `${P}.sparsekSelect`, expect: 'error', run: fn });
  // Junk into every function.
  const all = { attentionDims, layoutStrides, qkvDims, sparsekDims, sparsekSelect, blockVisibility, sparsekFlops, decodeDims, packedStrides };
  for (const [name, fn] of Object.entries(all)) {
    for (let i = 0; i < 6; i++) {
      const args = Array.from({ length: rng.int(1, 4) }, () => junk(rng));
      out.push({ name: `${P}.${name}(${args.map(show).join(', ')})`, entry: `${P}.${name}`, expect: 'error', run: () => fn(...args) });
    }
  }
}

function opCases(rng, out) {
  const ops = { sdpaOp, sdpaBackwardOp, sdpaQkvOp, sdpaQkvBackwardOp, sparsekAttentionOp, sparsekAttentionBackwardOp, kvCacheWriteOp, sdpaDecodeOp };
  for (const [name, op] of Object.entries(ops)) {
    for (const ty of [null, [], [null], 5, BAD_SHAPES.slice(0, 3).map((s) => ({ shape: s, dtype: 'f32' })), Array.from({ length: 7 }, () => ({ shape: [1, 1, 2, 2], dtype: 'u8' }))]) {
      out.push({ name: `${P}.${name}.infer(${show(ty)})`, entry: `${P}.${name}`, expect: 'error', run: () => op.infer(ty, checkAttrs(op, name.startsWith('sdpaQkv') || name.includes('Decode') || name.startsWith('kvCache') ? { heads: 1 } : {})) });
    }
  }
  // Valid: infer, flops and the reference of the forward ops, finite.
  for (let i = 0; i < 24; i++) {
    const n = sizes(rng, { square: true });
    const S = n.Sq;
    const which = rng.pick(['sdpaOp', 'sdpaQkvOp', 'sparsekAttentionOp']);
    const r = rng.fork();
    const op = ops[which];
    const bs = rng.int(1, 4);
    const attrs = which === 'sdpaOp' ? { causal: n.causal, layout: n.layout } : which === 'sdpaQkvOp' ? { heads: n.H, causal: n.causal } : { causal: n.causal, layout: n.layout, blockSize: bs, topK: rng.int(1, Math.ceil(S / bs)) };
    const types = which === 'sdpaQkvOp' ? [{ shape: [n.B, S, n.H + 2 * n.Hkv, n.D], dtype: 'f32' }] : [n.H, n.Hkv, n.Hkv].map((h) => ({ shape: shapeOf(n, h, S), dtype: 'f32' }));
    out.push({
      name: `${P}.${which}: infer, flops, reference ${show(n)} #${i}`, entry: `${P}.${which}`, expect: 'ok',
      run: () => {
        const a = checkAttrs(op, attrs);
        const outTypes = op.infer(types, a);
        const outputs = outTypes.map((t) => (t.dtype === 'i32' ? new Int32Array(numel(t.shape)) : new Float64Array(numel(t.shape)).fill(NaN)));
        op.reference({ inputs: types.map((t) => data(r, numel(t.shape))), outputs, inTypes: types, outTypes, attrs: a });
        return { flops: op.flops(types, outTypes, a), out: Array.from(outputs[0]) };
      },
      check: ({ flops, out: y }) => (Number.isFinite(flops) && flops >= 0 ? nonFinite(y) : `flops ${flops}`),
    });
  }
  for (const v of [...NON_FINITE, -1]) {
    out.push({ name: `${P}.sdpaOp: scale ${v}`, entry: `${P}.sdpaOp`, expect: 'error', run: () => { const q = { shape: [1, 1, 2, 2], dtype: 'f32' }; return sdpaOp.infer([q, q, q], { causal: false, layout: 'bhsd', scale: v }); } });
  }
  for (const [what, v] of [['BAD_INTEGERS heads', rng.pick(BAD_INTEGERS)], ['wrong type heads', rng.pick(WRONG_TYPES)]]) {
    out.push({ name: `${P}.sdpaQkvOp.infer: ${what} ${show(v)}`, entry: `${P}.sdpaQkvOp`, expect: 'error', run: () => sdpaQkvOp.infer([{ shape: [1, 2, 3, 2], dtype: 'f32' }], { heads: v, causal: false, scale: 0 }) });
  }
}

export function cases(rng) {
  const out = [];
  tensorCases(rng.fork(), out);
  symCases(rng.fork(), out);
  ruleCases(rng.fork(), out);
  opCases(rng.fork(), out);
  return out;
}
