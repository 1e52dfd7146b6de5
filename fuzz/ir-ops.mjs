// The op specs of the ir fuzz module (cases/ir.mjs), kept apart to keep that file short: for every
// op of @deepwell/ir's standard set, random valid inputs and attributes drawn from a seeded rng,
// the kinds of its attributes, and values no attribute of a kind may take.
import { GraphBuilder } from '@deepwell/ir';

export const size = (s) => s.reduce((a, b) => a * b, 1);
const data = (r, t) => (t.dtype === 'i32' ? Int32Array.from({ length: size(t.shape) }, () => r.int(0, t.hi ?? 3)) : r.f32(size(t.shape), t.scale ?? 1));

// ---- op specs: valid inputs (shape, dtype, index bound hi) and attributes for every op -------------
const dims = (r, n = 2) => Array.from({ length: n }, () => r.int(1, 5));
export const f = (shape, extra = {}) => ({ shape, dtype: 'f32', ...extra });
const ids = (shape, hi) => ({ shape, dtype: 'i32', hi });
/** Each op: make(r) -> { inputs: [{shape, dtype, hi?}], attrs, from? } (from: build inputs with a forward op). */
export const OPS = {
  add: (r) => { const [m, n] = dims(r); return { inputs: [f([m, n]), f(r.bool() ? [n] : [1, n])], attrs: {} }; },
  mul: (r) => { const [m, n] = dims(r); return { inputs: [f([m, n]), f([m, n])], attrs: {} }; },
  bias_add: (r) => { const [m, n] = dims(r); return { inputs: [f([m, n]), f([n])], attrs: {} }; },
  broadcast_to: (r) => { const [m, n] = dims(r); return { inputs: [f([1, n])], attrs: { shape: [m, n] } }; },
  sum_to: (r) => { const [m, n] = dims(r); return { inputs: [f([m, n])], attrs: { shape: r.bool() ? [1, n] : [n] } }; },
  reshape: (r) => { const [m, n] = dims(r); return { inputs: [f([m, n])], attrs: { shape: r.bool() ? [n, m] : [-1] } }; },
  fill: (r) => ({ inputs: [], attrs: { shape: dims(r), value: r.float(-3, 3), dtype: r.pick(['f32', 'bf16', 'f16']) } }),
  matmul: (r) => { const [m, k, n] = dims(r, 3); const tA = r.bool(); const tB = r.bool(); return { inputs: [f(tA ? [k, m] : [m, k]), f(tB ? [n, k] : [k, n])], attrs: { transA: tA, transB: tB } }; },
  matmul_bias: (r) => { const [m, k, n] = dims(r, 3); return { inputs: [f([m, k]), f([k, n]), f([n])], attrs: {} }; },
  matmul_bias_gelu: (r) => { const [m, k, n] = dims(r, 3); return { inputs: [f([m, k]), f([k, n]), f([n])], attrs: {} }; },
  matmul_bgrad: (r) => { const [m, k, n] = dims(r, 3); return { inputs: [f([m, k]), f([k, n])], attrs: {} }; },
  matmul_dgelu: (r) => { const [m, k, n] = dims(r, 3); return { inputs: [f([m, k]), f([k, n]), f([m, n])], attrs: {} }; },
  cast: (r) => ({ inputs: [f(dims(r))], attrs: { dtype: r.pick(['f32', 'f16', 'bf16', 'i32']) } }),
  cast_multi: (r) => ({ inputs: [f(dims(r)), f(dims(r))], attrs: { dtype: r.pick(['bf16', 'f16']) } }),
  causal_mask: (r) => { const t = r.int(1, 5); return { inputs: [f([r.int(1, 3), t, t + r.int(0, 2)])], attrs: {} }; },
  clip_coef: (r) => ({ inputs: [f([1], { scale: 0 })], attrs: { maxNorm: r.float(0.1, 5) }, positive: true }),
  concat: (r) => { const n = r.int(1, 4); return { inputs: [f([r.int(1, 3), n]), f([r.int(1, 3), n])], attrs: { axis: 0 } }; },
  cross_entropy: (r) => { const [n, v] = dims(r); return { inputs: [f([n, v]), ids([n], v - 1)], attrs: {} }; },
  cross_entropy_backward: (r) => { const [n, v] = dims(r); return { inputs: [f([n, v]), ids([n], v - 1), f([1])], attrs: {} }; },
  cross_entropy_with_grad: (r) => { const [n, v] = dims(r); return { inputs: [f([n, v]), ids([n], v - 1), f([1])], attrs: {} }; },
  embedding: (r) => { const [v, d] = dims(r); return { inputs: [f([v, d]), ids([r.int(1, 4)], v - 1)], attrs: {} }; },
  embedding_backward: (r) => { const [v, d] = dims(r); const n = r.int(1, 4); return { inputs: [ids([n], v - 1), f([n, d])], attrs: { vocab: v } }; },
  gather_rows: (r) => { const [rows, d] = dims(r); return { inputs: [f([rows, d]), ids([r.int(1, 4)], rows - 1)], attrs: {} }; },
  gelu: (r) => ({ inputs: [f(dims(r, r.int(1, 3)))], attrs: {} }),
  silu: (r) => ({ inputs: [f(dims(r, r.int(1, 3)))], attrs: {} }),
  gelu_backward: (r) => { const s = dims(r); return { inputs: [f(s), f(s)], attrs: {} }; },
  silu_backward: (r) => { const s = dims(r); return { inputs: [f(s), f(s)], attrs: {} }; },
  swiglu: (r) => { const s = dims(r); return { inputs: [f(s), f(s)], attrs: {} }; },
  layernorm: (r) => { const [n, d] = dims(r); return { inputs: [f([n, d]), f([d]), f([d])], attrs: {} }; },
  rmsnorm: (r) => { const [n, d] = dims(r); return { inputs: [f([n, d]), f([d])], attrs: {} }; },
  add_layernorm: (r) => { const [n, d] = dims(r); return { inputs: [f([n, d]), f([n, d]), f([d]), f([d])], attrs: {} }; },
  max: (r) => ({ inputs: [f(dims(r, 3))], attrs: { axes: r.pick([[], [0], [1, 2], [-1]]), keepdims: r.bool() } }),
  mean: (r) => ({ inputs: [f(dims(r, 3))], attrs: { axes: r.pick([[], [0], [1, 2], [-1]]), keepdims: r.bool() } }),
  sum: (r) => ({ inputs: [f(dims(r, 3))], attrs: { axes: r.pick([[], [0], [1, 2], [-1]]), keepdims: r.bool() } }),
  moe_plan: (r) => { const e = r.int(1, 4); return { inputs: [ids([r.int(1, 5), 1], e - 1)], attrs: { numExperts: e, capacity: r.int(1, 4) } }; },
  one_hot: (r) => { const c = r.int(1, 5); return { inputs: [ids([r.int(1, 4)], c - 1)], attrs: { classes: c } }; },
  scale: (r) => ({ inputs: [f(dims(r))], attrs: { alpha: r.float(-2, 2) } }),
  scatter_add_rows: (r) => { const rows = r.int(1, 4); const m = r.int(1, 4); return { inputs: [f([m, r.int(1, 3)]), ids([m], rows - 1)], attrs: { rows } }; },
  slice: (r) => { const [m, n] = dims(r); const s = r.int(0, n - 1); return { inputs: [f([m, n])], attrs: { axis: 1, start: s, end: r.int(s + 1, n) } }; },
  slice_backward: (r) => { const [m, n] = dims(r); const l = r.int(1, n); return { inputs: [f([m, l])], attrs: { shape: [m, n], axis: 1, start: r.int(0, n - l) } }; },
  softmax: (r) => ({ inputs: [f(dims(r))], attrs: { axis: r.pick([-1, 0, 1]) } }),
  softmax_backward: (r) => { const s = dims(r); return { inputs: [f(s), f(s)], attrs: { axis: -1 } }; },
  sum_squares: (r) => ({ inputs: [f(dims(r)), f(dims(r, 1))], attrs: {} }),
  topk: (r) => { const e = r.int(1, 5); return { inputs: [f([r.int(1, 4), e])], attrs: { k: r.int(1, e) } }; },
  topk_backward: (r) => { const e = r.int(2, 5); const n = r.int(1, 3); return { inputs: [f([n, 1]), ids([n, 1], e - 1)], attrs: { size: e } }; },
  transpose: (r) => ({ inputs: [f(dims(r, 3))], attrs: { perm: r.pick([[0, 1, 2], [2, 0, 1], [1, 0, 2], [2, 1, 0]]) } }),
  max_backward: (r) => { const [m, n] = dims(r); return { inputs: [f([m]), f([m, n])], attrs: { axes: [1], keepdims: false } }; },
  adamw: (r) => { const n = r.int(1, 6); return { inputs: [f([n]), f([n]), f([n]), f([n], { positive: true }), f([1], { lr: true }), f([1], { step: true })], attrs: { beta1: r.float(0, 0.99), beta2: r.float(0, 0.999), eps: 1e-8, weightDecay: r.float(0, 0.2) } }; },
  adamw_multi: (r) => { const n = r.int(1, 4); return { inputs: [f([1], { lr: true }), f([1], { step: true }), f([n]), f([n]), f([n]), f([n], { positive: true })], attrs: {} }; },
  layernorm_backward: (r) => { const [n, d] = dims(r); return { from: 'layernorm', shapes: [n, d], attrs: {} }; },
  rmsnorm_backward: (r) => { const [n, d] = dims(r); return { from: 'rmsnorm', shapes: [n, d], attrs: {} }; },
};
export const OP_NAMES = Object.keys(OPS);

/** Builds the op's graph from a spec: inputs as graph inputs; returns { g, outs, bind }. */
export function buildOp(name, spec, r) {
  const b = new GraphBuilder();
  const bind = {};
  let syms;
  if (spec.from) {
    const [n, d] = spec.shapes;
    const x = b.input('x', [n, d]);
    const w = b.input('w', [d]);
    const g = b.input('g', [n, d]);
    Object.assign(bind, { x: r.f32(n * d), w: r.f32(d), g: r.f32(n * d) });
    if (spec.from === 'layernorm') {
      const bias = b.input('bias', [d]);
      bind.bias = r.f32(d);
      const [, m, rs] = b.op('layernorm', [x, w, bias]);
      syms = [g, x, w, m, rs];
    } else {
      const [, rs] = b.op('rmsnorm', [x, w]);
      syms = [g, x, w, rs];
    }
  } else {
    syms = spec.inputs.map((t, i) => {
      const s = b.input(`x${i}`, t.shape, t.dtype);
      let a = data(r, t);
      if (t.positive) a = a.map(Math.abs);
      if (t.lr) a = Float32Array.of(r.float(0, 0.1));
      if (t.step) a = Float32Array.of(r.int(1, 100));
      bind[`x${i}`] = a;
      return s;
    });
  }
  const outs = b.op(name, syms, spec.attrs);
  outs.forEach((o, k) => b.output(`y${k}`, o));
  return { g: b.graph, outs, bind };
}

/** The attribute kinds of each op (as the op table has them), known without calling the package. */
const ATTRS = {
  add: { amax: 'bool' }, gelu: { amax: 'bool' }, gelu_backward: { amax: 'bool' }, broadcast_to: { shape: 'ints' }, sum_to: { shape: 'ints' }, reshape: { shape: 'ints' },
  fill: { shape: 'ints', value: 'float', dtype: 'string' }, cast: { dtype: 'string', amax: 'bool' }, cast_multi: { dtype: 'string' }, causal_mask: { value: 'float' },
  clip_coef: { maxNorm: 'float' }, concat: { axis: 'int' }, cross_entropy: { ignoreIndex: 'int' }, cross_entropy_backward: { ignoreIndex: 'int' },
  cross_entropy_with_grad: { ignoreIndex: 'int' }, embedding_backward: { vocab: 'int' }, layernorm: { eps: 'float' }, rmsnorm: { eps: 'float' },
  add_layernorm: { eps: 'float', amax: 'bool' }, matmul: { transA: 'bool', transB: 'bool' }, matmul_bias: { transA: 'bool', transB: 'bool' },
  matmul_bias_gelu: { transA: 'bool', transB: 'bool' }, matmul_bgrad: { transA: 'bool', transB: 'bool' }, matmul_dgelu: { transA: 'bool', transB: 'bool' },
  max: { axes: 'ints', keepdims: 'bool' }, mean: { axes: 'ints', keepdims: 'bool' }, sum: { axes: 'ints', keepdims: 'bool' }, max_backward: { axes: 'ints', keepdims: 'bool' },
  moe_plan: { numExperts: 'int', capacity: 'int' }, one_hot: { classes: 'int' }, scale: { alpha: 'float' }, scatter_add_rows: { rows: 'int' },
  slice: { axis: 'int', start: 'int', end: 'int' }, slice_backward: { shape: 'ints', axis: 'int', start: 'int' }, softmax: { axis: 'int' }, softmax_backward: { axis: 'int' },
  topk: { k: 'int' }, topk_backward: { size: 'int' }, transpose: { perm: 'ints' },
  adamw: { beta1: 'beta', beta2: 'beta', eps: 'nonneg', weightDecay: 'nonneg' }, adamw_multi: { beta1: 'beta', beta2: 'beta', eps: 'nonneg', weightDecay: 'nonneg' },
};
export const getOpAttrs = (name) => ATTRS[name] ?? {};

/** A value no attribute of `kind` may take (for its op's valid inputs). */
export function badAttrValue(rng, kind) {
  switch (kind) {
    case 'int': return rng.pick([0.5, -0.5, NaN, Infinity, 2 ** 53 + 2, 1e300, '3', null, true, [], {}, 1n]);
    case 'ints': return rng.pick([[0.5], [NaN], [2 ** 53 + 2], 'abc', null, 5, [[1]], ['1'], {}, [-(2 ** 60)]]);
    case 'float': return rng.pick([NaN, '1', null, true, [], {}, 1n]);
    case 'bool': return rng.pick([0, 1, 'true', null, [], {}]);
    case 'string': return rng.pick(['fp16', 'F32', '', 3, null, [], {}]);
    case 'beta': return rng.pick([1, 1.5, -0.1, NaN, Infinity, -Infinity, '0.9', null]);
    case 'nonneg': return rng.pick([-1e-8, -1, NaN, Infinity, -Infinity, '1', null]);
    default: return null;
  }
}


