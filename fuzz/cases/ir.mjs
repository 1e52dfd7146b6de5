// @deepwell/ir: every public export. Each op of the standard set with random valid inputs (run by
// the reference interpreter and compiled on the CPU: outputs of the right size, finite, and the
// compiled step agreeing with the interpreter) and with bad attributes, shapes, dtypes and input
// counts; random small graphs and tiny training runs compiled and stepped; damaged graph documents
// (a valid toJSON with a key deleted, set to null or a wrong type, an id pointing at a missing or
// wrong-kind value, the text itself damaged); the options of trainingStep, compile, dryrun,
// interpret, capture, eager, gradcheck and the passes (junk, non-finite, huge, unknown keys); capture
// misuse (a Sym of an earlier capture, an async forward); the executable's methods; junk into the
// rest. Building the list draws only from `rng`; every graph is built inside `run`.
import {
  Executable, Graph, GraphBuilder, Sym, adamw, adamwMulti, add, addLayernorm, autocast, axisOf, biasAdd, broadcastTo, byteSizeOf, bytesMoved, capture, cast, castMulti,
  causalMask, centralDifference, checkAttrs, clipCoef, compile, concat, crossEntropy, crossEntropyBackward, currentBuilder, defineGradient, defineOp, differentiableOps,
  differentiate, dryrun, eager, elideWideningCasts, eliminateCommonSubexpressions, eliminateDeadCode, embedding, embeddingBackward, fill, formatDryrun, fuse, fuseAdamW,
  fuseAddLayernorm, fuseAmax, fuseBiasGradient, fuseCrossEntropy, fuseGemmEpilogues, fuseMatmulBias, fuseMatmulDgelu, fuseMatmulGelu, fuseNormResidual, fuseParamCasts,
  gatherRows, gelu, geluBackward, geluScalar, getOp, gradcheck, gradientRule, hasGradScale, initialValues, inplacePairs, interpret, inversePerm, layernorm,
  layernormBackward, listOps, markElementwiseFusion, matmul, matmulBgrad, matmulBias, matmulBiasGelu, matmulDgelu, max, maxBackward, mean, moePlan, mul, numel, oneHot,
  planMemory, reshape, rmsnorm, rmsnormBackward, rng as irRng, runPasses, scale, scatterAddRows, shapeError, silu, siluBackward, slice, sliceBackward, softmax,
  softmaxBackward, sortNodes, storedAmax, sum, sumSquares, sumTo, swiglu, topk, topkBackward, trainingStep, transpose, withAmax, writeAmax, dataParallel,
} from '@deepwell/ir';
import { OPS, OP_NAMES, badAttrValue, buildOp, f, getOpAttrs, size } from '../ir-ops.mjs';
import { BAD_INTEGERS, BAD_SHAPES, NON_FINITE, damage, junk, makeRng, nonFinite, show } from '../lib.mjs';

const isFloatArr = (a) => a instanceof Float32Array || a instanceof Float64Array;
/** Undefined when every output has its shape's element count and (with `finite`) every float is finite. */
function sane(outs, types, what = 'output', finite = true) {
  for (let k = 0; k < types.length; k++) {
    const a = outs[k];
    if (!a || a.length !== size(types[k].shape)) return `${what} ${k} has ${a?.length} elements, not ${size(types[k].shape)}`;
    if (finite && isFloatArr(a)) {
      const bad = nonFinite(a, `${what} ${k}`);
      if (bad) return bad;
    }
  }
  return undefined;
}

function compareTo(got, want, what) {
  for (let i = 0; i < want.length; i++) {
    const a = got[i];
    const e = want[i];
    if (Math.abs(a - e) > 1e-3 * (1 + Math.abs(e))) return `${what}[${i}] is ${a} compiled but ${e} interpreted`;
  }
  return undefined;
}

/** A graph of one op built and interpreted: whatever is accepted must compute sane outputs. */
function runOp(name, spec, r) {
  const { g, outs, bind } = buildOp(name, spec, r);
  const vals = interpret(g, bind);
  return { vals: outs.map((o) => vals[o.id]), types: outs.map((o) => o.type) };
}
const saneOp = (v) => sane(v.vals, v.types);
const VARIADIC = new Set(['sum_squares', 'cast_multi', 'concat', 'adamw_multi']);

function opCases(rng, out) {
  for (const name of OP_NAMES) {
    for (let i = 0; i < 4; i++) {
      const r = rng.fork();
      out.push({ name: `ir op ${name}: valid random inputs interpreted #${i}`, entry: ['ir.interpret', 'ir.GraphBuilder#op', 'ir.getOp'], expect: 'ok', run: () => runOp(name, OPS[name](r), r), check: saneOp });
    }
    const r = rng.fork();
    out.push({
      name: `ir op ${name}: compiled on the CPU agrees with the interpreter`,
      entry: ['ir.compile', 'ir.Executable#run', 'ir.Executable#dispose'],
      expect: 'ok',
      run: () => {
        const { g, outs, bind } = buildOp(name, OPS[name](r), r);
        const want = interpret(g, bind);
        const exe = compile(g, { seed: r.int(0, 1000) });
        try {
          return { got: exe.run(bind), want: Object.fromEntries(outs.map((o, k) => [`y${k}`, want[o.id]])), types: outs.map((o) => o.type) };
        } finally {
          exe.dispose();
        }
      },
      check: ({ got, want, types }) => {
        const names = Object.keys(want);
        return sane(names.map((k) => got[k]), types) ?? names.map((k, j) => (types[j].dtype === 'f32' ? compareTo(got[k], want[k], k) : undefined)).find(Boolean);
      },
    });
    // Bad variants, decided now (the specs are plain data drawn from rng): 'error' where no op could
    // take them, 'either' (accepted only with sane outputs) where some could.
    const base = OPS[name](rng.fork());
    const seed = rng.int(0, 2 ** 31);
    const variants = [
      ['an unknown attribute', 'error', { ...base, attrs: { ...base.attrs, bogusAttr: 1 } }],
      ['null attributes', 'error', { ...base, attrs: null }],
      ['attributes as an array', 'error', { ...base, attrs: [1] }],
      ['attributes as a string', 'error', { ...base, attrs: 'transA' }],
    ];
    if (base.inputs) {
      if (base.inputs.length && !VARIADIC.has(name)) variants.push(['four inputs too many', 'error', { ...base, inputs: [...base.inputs, f([2]), f([2]), f([2]), f([2])] }]);
      if (base.inputs.length) variants.push(['no inputs', 'error', { ...base, inputs: [] }]);
      if (base.inputs.length > 1 && !VARIADIC.has(name)) variants.push(['the last input left out', 'either', { ...base, inputs: base.inputs.slice(0, -1) }]);
      const k = base.inputs.findIndex((t) => t.dtype === 'f32');
      if (k >= 0) variants.push(['an i32 tensor where a float goes', 'either', { ...base, inputs: base.inputs.map((t, j) => (j === k ? { ...t, dtype: 'i32', hi: 1 } : t)) }]);
      const q = base.inputs.findIndex((t) => t.dtype === 'i32');
      if (q >= 0) variants.push(['a bf16 index tensor', 'error', { ...base, inputs: base.inputs.map((t, j) => (j === q ? { ...t, dtype: 'bf16' } : t)) }]);
      if (base.inputs.length) variants.push(['a rank-5 first input', 'either', { ...base, inputs: [{ ...base.inputs[0], shape: [2, 1, 3, 1, 2] }, ...base.inputs.slice(1)] }]);
      if (base.inputs.length) variants.push(['a first input with a zero dimension', 'either', { ...base, inputs: [{ ...base.inputs[0], shape: [0, ...base.inputs[0].shape.slice(1)] }, ...base.inputs.slice(1)] }]);
      if (base.inputs.length > 1) variants.push(['the second input one column wider', 'either', { ...base, inputs: base.inputs.map((t, j) => (j === 1 ? { ...t, shape: [...t.shape.slice(0, -1), (t.shape.at(-1) ?? 1) + 1] } : t)) }]);
    }
    for (const [label, expect, spec] of variants) {
      // An empty reduction may give NaN (the mean of nothing) or -Infinity: only sizes are checked there.
      const check = label.includes('zero dimension') ? (v) => sane(v.vals, v.types, 'output', false) : saneOp;
      out.push({ name: `ir op ${name}: ${label}`, entry: ['ir.GraphBuilder#op', 'ir.checkAttrs'], expect, run: () => runOp(name, spec, makeRng(seed)), check });
    }
    for (const [attr, kind] of Object.entries(getOpAttrs(name))) {
      for (let i = 0; i < 3; i++) {
        const v = badAttrValue(rng, kind);
        const spec = OPS[name](rng.fork());
        out.push({ name: `ir op ${name}: attribute ${attr} = ${show(v)}`, entry: ['ir.GraphBuilder#op', 'ir.checkAttrs'], expect: 'error', run: () => runOp(name, { ...spec, attrs: { ...spec.attrs, [attr]: v } }, makeRng(seed)) });
      }
      const spec = OPS[name](rng.fork());
      const rest = { ...spec.attrs };
      delete rest[attr];
      const required = !['amax', 'transA', 'transB', 'keepdims', 'axes', 'eps', 'ignoreIndex', 'axis', 'beta1', 'beta2', 'weightDecay', 'dtype', 'value'].includes(attr) || (name === 'fill' && attr === 'value') || (['cast', 'cast_multi'].includes(name) && attr === 'dtype') || (['concat', 'slice', 'slice_backward'].includes(name) && attr === 'axis');
      out.push({ name: `ir op ${name}: attribute ${attr} left out`, entry: 'ir.GraphBuilder#op', expect: required ? 'error' : 'either', run: () => runOp(name, { ...spec, attrs: rest }, makeRng(seed)), check: saneOp });
    }
  }
}

// ---- models: a small MLP captured, its training step, documents ----------------------------------
class MLP {
  constructor(hidden = 8, classes = 4) {
    this.hidden = hidden;
    this.classes = classes;
  }
  forward({ x, y }) {
    const b = currentBuilder();
    const w1 = b.param('w1', [this.hidden, x.shape[1]], 'f32', { dist: 'normal', scale: 0.5 });
    const b1 = b.param('b1', [this.hidden], 'f32', { dist: 'zeros' });
    const w2 = b.param('w2', [this.classes, this.hidden], 'f32', { dist: 'uniform', scale: 0.3 });
    const h = gelu(biasAdd(matmul(x, w1, { transB: true }), b1));
    return { loss: crossEntropy(matmul(h, w2, { transB: true }), y) };
  }
}
const forwardOf = (n = 4, d = 5, hidden = 8, classes = 4) => capture(new MLP(hidden, classes), { x: { shape: [n, d] }, y: { shape: [n], dtype: 'i32' } });
const batchOf = (r, n = 4, d = 5, classes = 4) => ({ x: r.f32(n * d), y: Int32Array.from({ length: n }, () => r.int(0, classes - 1)) });
const stepBatch = (r, n, d, classes) => ({ ...batchOf(r, n, d, classes), lr: Float32Array.of(r.float(1e-4, 1e-2)), step: Float32Array.of(1) });
const memo = new Map();
/** A graph built once per worker (and copied for each case that damages it). */
function once(key, make) {
  if (!memo.has(key)) memo.set(key, make());
  return memo.get(key);
}
const DOCS = {
  forward: () => forwardOf().toJSON(),
  step: () => trainingStep(forwardOf(), { clipGradNorm: 1 }).toJSON(),
  state: () => {
    const b = new GraphBuilder();
    const x = b.input('x', [3]);
    const acc = b.state('acc', [3], 'f32', { dist: 'zeros' });
    const next = add(acc, x);
    b.update('acc', next);
    b.output('total', sum(next));
    return b.graph.toJSON();
  },
};
const docOf = (kind) => JSON.parse(JSON.stringify(once(`doc:${kind}`, DOCS[kind])));

function modelCases(rng, out) {
  for (let i = 0; i < 40; i++) {
    const r = rng.fork();
    const n = r.int(1, 6);
    const d = r.int(1, 6);
    const classes = r.int(2, 5);
    const accumulate = r.pick([1, 1, 2, 3]);
    const opts = { accumulate, ...(r.bool() ? { clipGradNorm: r.float(0.1, 2) } : {}), optimizer: { beta1: r.float(0, 0.95), beta2: r.float(0.5, 0.999), eps: r.pick([0, 1e-8, 1e-6]), weightDecay: r.float(0, 0.2) } };
    out.push({
      name: `ir training: MLP n=${n} d=${d} classes=${classes} ${JSON.stringify(opts)}: two steps on the CPU`,
      entry: ['ir.trainingStep', 'ir.capture', 'ir.compile', 'ir.Executable#run', 'ir.Executable#get'],
      expect: 'ok',
      run: () => {
        const step = trainingStep(forwardOf(n, d, 8, classes), opts);
        const exe = compile(step, { seed: r.int(0, 2 ** 31) });
        try {
          const before = exe.get('w1');
          const losses = [0, 1].map(() => exe.run({ ...stepBatch(r, n * accumulate, d, classes), step: Float32Array.of(exe.steps + 1) }).loss[0]);
          return { losses, before, after: exe.get('w1') };
        } finally {
          exe.dispose();
        }
      },
      check: ({ losses, before, after }) => nonFinite(losses, 'loss') ?? nonFinite(after, 'w1') ?? (before.every((v, j) => v === after[j]) ? 'the weights did not move' : undefined),
    });
  }
  // Random small chains: compiled and interpreted agree.
  const unary = ['gelu', 'silu', 'scale', 'softmax', 'layernorm', 'rmsnorm', 'transpose2', 'reshape', 'tanhlike', 'bf16'];
  for (let i = 0; i < 80; i++) {
    const r = rng.fork();
    const chain = Array.from({ length: r.int(1, 6) }, () => r.pick(unary));
    out.push({
      name: `ir graph: random chain ${chain.join(' > ')} compiled = interpreted #${i}`,
      entry: ['ir.GraphBuilder', 'ir.compile', 'ir.interpret', 'ir.runPasses'],
      expect: 'ok',
      run: () => {
        const b = new GraphBuilder();
        let [m, k] = [r.int(1, 5), r.int(1, 5)];
        let x = b.input('x', [m, k]);
        const bind = { x: r.f32(m * k) };
        for (const [j, op] of chain.entries()) {
          if (op === 'gelu') x = gelu(x);
          else if (op === 'silu') x = silu(x);
          else if (op === 'scale') x = scale(x, r.float(-2, 2));
          else if (op === 'softmax') x = softmax(x, r.pick([0, -1]));
          else if (op === 'layernorm') x = layernorm(x, b.param(`w${j}`, [k], 'f32', { dist: 'ones' }), b.param(`b${j}`, [k], 'f32', { dist: 'normal', scale: 0.1 }));
          else if (op === 'rmsnorm') x = rmsnorm(x, b.param(`w${j}`, [k], 'f32', { dist: 'uniform' }));
          else if (op === 'transpose2') ([m, k] = [k, m], (x = transpose(x, [1, 0])));
          else if (op === 'reshape') x = reshape(reshape(x, [-1]), [m, k]);
          else if (op === 'tanhlike') x = mul(add(x, b.param(`p${j}`, [k], 'f32', { dist: 'normal' })), b.param(`q${j}`, [k], 'f32', { dist: 'uniform' }));
          else x = cast(cast(x, 'bf16'), 'f32');
        }
        b.output('y', x);
        const want = interpret(b.graph, { ...bind, ...Object.fromEntries(Object.entries(b.graph.params).map(([nm, id]) => [nm, initialValues(b.graph.init[nm], size(b.graph.values[id].type.shape), 5, nm)])) });
        const exe = compile(b.graph, { seed: 5, fuse: r.bool() });
        try {
          return { got: exe.run(bind).y, want: want[x.id], type: x.type };
        } finally {
          exe.dispose();
        }
      },
      check: ({ got, want, type }) => sane([got], [type]) ?? compareTo(got, want, 'y'),
    });
  }
}

// ---- damaged graph documents -------------------------------------------------------------------
const at = (arr, u) => Math.floor(u * arr.length);
const firstKey = (o) => Object.keys(o)[0];
/** [label, doc kinds it applies to, expect, mutate(doc, u, v)] — u, v uniforms drawn when the list is built. */
const DAMAGE = [
  ['a node set to null', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)] = null)],
  ['a node set to a number', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)] = 3)],
  ['a value set to null', 'any', 'error', (j, u) => (j.values[at(j.values, u)] = null)],
  ['a value set to a string', 'any', 'error', (j, u) => (j.values[at(j.values, u)] = 'v')],
  ['node inputs null', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].inputs = null)],
  ['node inputs a string', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].inputs = '0,1')],
  ['a node input past the last value', 'any', 'error', (j, u, v) => { const n = j.nodes[at(j.nodes, u)]; n.inputs[n.inputs.length ? at(n.inputs, v) : 0] = j.values.length + Math.floor(v * 100); }],
  ['a node input of -1', 'any', 'error', (j, u, v) => { const n = j.nodes[at(j.nodes, u)]; n.inputs[n.inputs.length ? at(n.inputs, v) : 0] = -1; }],
  ['a fractional node input', 'any', 'error', (j, u, v) => { const n = j.nodes[at(j.nodes, u)]; n.inputs[n.inputs.length ? at(n.inputs, v) : 0] = 0.5; }],
  ['a node input as a string', 'any', 'error', (j, u, v) => { const n = j.nodes[at(j.nodes, u)]; n.inputs[n.inputs.length ? at(n.inputs, v) : 0] = '0'; }],
  ['a node output that is an input value', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].outputs[0] = j.values.find((x) => x.kind !== 'node').id)],
  ['node outputs null', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].outputs = null)],
  ['a value without its type', 'any', 'error', (j, u) => delete j.values[at(j.values, u)].type],
  ['a shape that is not an array', 'any', 'error', (j, u, v) => (j.values[at(j.values, u)].type.shape = [5, 'abc', null, {}][Math.floor(v * 4)])],
  ['a shape with a bad size', 'any', 'error', (j, u, v) => (j.values[at(j.values, u)].type.shape = [[-1], [1.5], [NaN], [Infinity], ['2'], [null], [[2]], [1, -2, 3], [2 ** 53]][Math.floor(v * 9)])],
  ['a huge but valid shape', 'any', 'either', (j, u, v) => (j.values[at(j.values, u)].type.shape = [[2 ** 26, 2 ** 26], [2 ** 31, 2 ** 20], [0]][Math.floor(v * 3)])],
  ['an unknown dtype', 'any', 'error', (j, u, v) => (j.values[at(j.values, u)].type.dtype = ['f99', 3, null, '', 'F32'][Math.floor(v * 5)])],
  ['an unknown value kind', 'any', 'error', (j, u) => (j.values[at(j.values, u)].kind = 'tensor')],
  ['a value id out of place', 'any', 'error', (j, u) => (j.values[at(j.values, u)].id += 1)],
  ['a value id deleted', 'any', 'error', (j, u) => delete j.values[at(j.values, u)].id],
  ['a node value without its producer', 'any', 'error', (j, u) => { const nv = j.values.filter((x) => x.kind === 'node'); delete nv[at(nv, u)].producer; }],
  ['a param value renamed', 'params', 'error', (j, u) => { const ps = j.values.filter((x) => x.kind === 'param'); ps[at(ps, u)].name = 'renamed'; }],
  ['a params entry at a missing value', 'params', 'error', (j, u) => (j.params[firstKey(j.params)] = j.values.length + Math.floor(u * 9))],
  ['a params entry at an input', 'params', 'error', (j) => (j.params[firstKey(j.params)] = j.inputs[firstKey(j.inputs)])],
  ['a params entry deleted', 'params', 'error', (j, u) => delete j.params[Object.keys(j.params)[at(Object.keys(j.params), u)]]],
  ['a params entry as a string', 'params', 'error', (j) => (j.params[firstKey(j.params)] = '0')],
  ['an inputs entry deleted', 'any', 'error', (j) => delete j.inputs[firstKey(j.inputs)]],
  ['an inputs entry at a node value', 'any', 'error', (j) => (j.inputs[firstKey(j.inputs)] = j.nodes[0].outputs[0])],
  ['a state entry deleted', 'state', 'error', (j) => delete j.state[firstKey(j.state)]],
  ['a state entry null', 'state', 'error', (j) => (j.state[firstKey(j.state)] = null)],
  ['an output at a missing value', 'any', 'error', (j, u) => (j.outputs[firstKey(j.outputs)] = j.values.length + Math.floor(u * 9))],
  ['an output as a string', 'any', 'error', (j) => (j.outputs[firstKey(j.outputs)] = 'loss')],
  ['an output at -1', 'any', 'error', (j) => (j.outputs[firstKey(j.outputs)] = -1)],
  ['an update at a missing value', 'state', 'error', (j) => (j.updates[firstKey(j.updates)] = 99999)],
  ['an update of no parameter or state', 'any', 'error', (j) => (j.updates.bogus = j.nodes[0].outputs[0])],
  ['an update at a value of another shape', 'state', 'either', (j) => (j.updates[firstKey(j.updates)] = j.outputs[firstKey(j.outputs)])],
  ['a gradient of no parameter', 'any', 'error', (j) => ((j.gradients ??= {}).bogus = 0)],
  ['a gradient at a missing value', 'step', 'error', (j) => (j.gradients[firstKey(j.gradients)] = 1e9)],
  ['an init of no parameter or state', 'any', 'error', (j) => (j.init.bogus = { dist: 'zeros' })],
  ['an init with an unknown dist', 'params', 'error', (j, u) => (j.init[firstKey(j.init)] = { dist: ['gaussian', '', null, 3, 'Normal'][Math.floor(u * 5)] })],
  ['an init set to null', 'params', 'error', (j) => (j.init[firstKey(j.init)] = null)],
  ['an init with a non-finite scale', 'params', 'error', (j, u) => (j.init[firstKey(j.init)] = { dist: 'normal', scale: [NaN, Infinity, null, '1'][Math.floor(u * 4)] })],
  ['an init with an unknown key', 'params', 'error', (j) => (j.init[firstKey(j.init)] = { dist: 'normal', std: 0.02 })],
  ['an unknown op', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].op = 'frobnicate')],
  ['an op that is not a string', 'any', 'error', (j, u, v) => (j.nodes[at(j.nodes, u)].op = [null, 3, {}, ['gelu']][Math.floor(v * 4)])],
  ['an op replaced by another', 'any', 'either', (j, u, v) => (j.nodes[at(j.nodes, u)].op = ['gelu', 'silu', 'add', 'matmul', 'scale', 'sum'][Math.floor(v * 6)])],
  ['attrs null', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].attrs = null)],
  ['attrs an array', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].attrs = [])],
  ['an unknown attribute', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].attrs.bogus = 1)],
  ['an attribute that is an object', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].attrs.transA = { x: 1 })],
  ['an unknown phase', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].phase = 'sideways')],
  ['a phase deleted', 'any', 'error', (j, u) => delete j.nodes[at(j.nodes, u)].phase],
  ['a scope that is a number', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].scope = 7)],
  ['a fusion group that is a string', 'any', 'error', (j, u) => (j.nodes[at(j.nodes, u)].fusionGroup = 'a')],
  ['two nodes with one id', 'any', 'either', (j, u, v) => (j.nodes[at(j.nodes, u)].id = j.nodes[at(j.nodes, v)].id)],
  ['the format changed', 'any', 'error', (j) => (j.format = 'onnx')],
  ['version 3', 'any', 'error', (j) => (j.version = 3)],
  ['version as a string', 'any', 'error', (j) => (j.version = '2')],
  ['values deleted', 'any', 'error', (j) => delete j.values],
  ['nodes as an object', 'any', 'error', (j) => (j.nodes = {})],
  ['a table deleted', 'any', 'error', (j, u) => delete j[['inputs', 'params', 'state', 'outputs', 'updates', 'init'][Math.floor(u * 6)]]],
  ['a table null', 'any', 'error', (j, u) => (j[['inputs', 'params', 'state', 'outputs', 'updates', 'init', 'gradients'][Math.floor(u * 7)]] = null)],
  ['a table as an array', 'any', 'error', (j, u) => (j[['inputs', 'params', 'outputs'][Math.floor(u * 3)]] = [0])],
  ['two nodes swapped', 'any', 'either', (j, u, v) => { const [a, b] = [at(j.nodes, u), at(j.nodes, v)]; [j.nodes[a], j.nodes[b]] = [j.nodes[b], j.nodes[a]]; }],
  ['the nodes reversed', 'any', 'either', (j) => j.nodes.reverse()],
  ['gradients deleted (optional)', 'any', 'ok', (j) => delete j.gradients],
  ['a scope renamed', 'any', 'ok', (j, u) => (j.nodes[at(j.nodes, u)].scope = 'renamed.scope')],
  ['an extra top-level key', 'any', 'ok', (j) => (j.comment = 'made by hand')],
  ['nothing (a round trip)', 'any', 'ok', () => {}],
  ['as version 1 (no phases)', 'any', 'ok', (j) => { j.version = 1; for (const n of j.nodes) { if (n.phase === 'backward') n.scope = n.scope ? `${n.scope}.grad` : 'grad'; delete n.phase; } }],
];
const KINDS_FOR = { any: ['forward', 'step', 'state'], params: ['forward', 'step'], state: ['state', 'step'], step: ['step'] };
const roundTrips = (g) => {
  g.verify();
  const again = Graph.fromJSON(JSON.parse(JSON.stringify(g.toJSON())));
  return JSON.stringify(again.toJSON()) === JSON.stringify(g.toJSON()) ? undefined : 'its toJSON does not round-trip';
};

function documentCases(rng, out) {
  for (const [label, kinds, expect, mutate] of DAMAGE) {
    for (const kind of KINDS_FOR[kinds]) {
      for (let i = 0; i < 2; i++) {
        const [u, v] = [rng.next(), rng.next()];
        out.push({
          name: `ir Graph.fromJSON: ${kind} document with ${label} #${i}`,
          entry: ['ir.Graph.fromJSON', 'ir.Graph#toJSON', 'ir.Graph#verify'],
          expect,
          run: () => {
            const j = docOf(kind);
            mutate(j, u, v);
            return Graph.fromJSON(j);
          },
          check: roundTrips,
        });
      }
    }
  }
  for (let i = 0; i < 100; i++) {
    const r = rng.fork();
    const kind = r.pick(['forward', 'step', 'state']);
    out.push({
      name: `ir Graph.fromJSON: ${kind} document text damaged #${i}`,
      entry: 'ir.Graph.fromJSON',
      expect: 'either',
      run: () => {
        const { kind: how, bytes } = damage(new TextEncoder().encode(JSON.stringify(docOf(kind))), r);
        let doc;
        try {
          doc = JSON.parse(new TextDecoder().decode(bytes));
        } catch {
          return `unparsable after ${how}`;
        }
        return Graph.fromJSON(doc);
      },
      check: (g) => (typeof g === 'string' ? undefined : roundTrips(g)),
    });
  }
  for (const v of [null, undefined, 3, 'deepwell.ir', [], {}, { format: 'deepwell.ir' }, { format: 'deepwell.ir', version: 2 }, { format: 'deepwell.ir', version: 2, values: [], nodes: [] }]) {
    out.push({ name: `ir Graph.fromJSON(${show(v)})`, entry: 'ir.Graph.fromJSON', expect: 'error', run: () => Graph.fromJSON(v) });
  }
  out.push({
    name: 'ir Graph.fromJSON: an empty graph with every table',
    entry: 'ir.Graph.fromJSON',
    expect: 'ok',
    run: () => Graph.fromJSON({ format: 'deepwell.ir', version: 2, values: [], nodes: [], inputs: {}, params: {}, state: {}, outputs: {}, updates: {}, init: {} }),
    check: roundTrips,
  });
}

// ---- options of every entry point, capture misuse -----------------------------------------------
const fwd = () => once('fwd', () => forwardOf());
const realShape = (s) => Array.isArray(s) && s.every((d) => Number.isSafeInteger(d) && d >= 0) && Number.isSafeInteger(size(s));
const isGraph = (g) => (g instanceof Graph ? roundTrips(g) : 'not a Graph');
/** Junk for an optional option: anything but undefined (which means "the default"). */
/** An object with no keys of its own ({}, a Date, a Map): an options object that asks for nothing. */
const keyless = (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
const junkOption = (rng) => { let v; do v = junk(rng); while (v === undefined); return v; };

function optionCases(rng, out) {
  const push = (name, entry, expect, run, check) => out.push({ name, entry, expect, run, ...(check ? { check } : {}) });
  // trainingStep
  for (const v of [...BAD_INTEGERS, 1025, 2 ** 31, '2', null, true, {}, [2]]) push(`ir trainingStep accumulate ${show(v)}`, 'ir.trainingStep', v === null ? 'either' : 'error', () => trainingStep(fwd(), { accumulate: v }), isGraph);
  for (const v of [...NON_FINITE, 0, -1, '1', true, {}]) push(`ir trainingStep clipGradNorm ${show(v)}`, 'ir.trainingStep', 'error', () => trainingStep(fwd(), { clipGradNorm: v }));
  for (const v of [3, '', 'nope', {}, [], true]) push(`ir trainingStep loss ${show(v)}`, 'ir.trainingStep', 'error', () => trainingStep(fwd(), { loss: v }));
  for (const [k, vs] of Object.entries({ beta1: [1, 1.5, -0.1, ...NON_FINITE, '0.9'], beta2: [1, -0.5, 2, ...NON_FINITE, null], eps: [-1e-8, ...NON_FINITE, '1e-8'], weightDecay: [-0.1, ...NON_FINITE, true], decay: [3, 'all', {}, () => 1, () => 'yes'] })) {
    for (const v of vs) push(`ir trainingStep optimizer.${k} ${show(v)}`, 'ir.trainingStep', v === null ? 'either' : 'error', () => trainingStep(fwd(), { optimizer: { [k]: v } }), isGraph);
  }
  for (const key of ['acumulate', 'clipGradnorm', 'clip', 'lossName', 'optimiser', 'keepFirstLst', 'lr', 'gradientAccumulation']) push(`ir trainingStep unknown option ${key}`, 'ir.trainingStep', 'error', () => trainingStep(fwd(), { [key]: 1 }));
  for (const key of ['beta', 'betas', 'lr', 'weight_decay', 'epsilon', 'momentum']) push(`ir trainingStep unknown optimizer key ${key}`, 'ir.trainingStep', 'error', () => trainingStep(fwd(), { optimizer: { [key]: 0.9 } }));
  for (let i = 0; i < 8; i++) { const v = junkOption(rng); push(`ir trainingStep(${show(v)})`, 'ir.trainingStep', 'error', () => trainingStep(v)); }
  for (let i = 0; i < 6; i++) { const v = junkOption(rng); push(`ir trainingStep options ${show(v)}`, 'ir.trainingStep', v === null || keyless(v) ? 'either' : 'error', () => trainingStep(fwd(), v), isGraph); }
  // dataParallel: the options of the data-parallel pass (a world of one needs no communicator)
  const dp = (o) => dataParallel(trainingStep(fwd()), o);
  for (const v of [...BAD_INTEGERS, 0, 65537, '2', null, true, {}]) push(`ir dataParallel worldSize ${show(v)}`, 'ir.dataParallel', 'error', () => dp({ worldSize: v }));
  for (const v of [...BAD_INTEGERS.filter((x) => x !== 2 ** 31 && x !== 2 ** 32 && x !== 1e300), 0, '1', true, {}]) push(`ir dataParallel comm ${show(v)}`, 'ir.dataParallel', 'error', () => dp({ worldSize: 2, comm: v }));
  for (const v of [...NON_FINITE, 0, -1, 2 ** 41, '1', {}]) push(`ir dataParallel bucketBytes ${show(v)}`, 'ir.dataParallel', 'error', () => dp({ worldSize: 1, bucketBytes: v }));
  for (const v of ['max', 'mean', 3, null, {}]) push(`ir dataParallel op ${show(v)}`, 'ir.dataParallel', 'error', () => dp({ worldSize: 1, op: v }));
  for (const v of ['nope', 3, true, null, {}]) push(`ir dataParallel loss ${show(v)}`, 'ir.dataParallel', 'error', () => dp({ worldSize: 1, loss: v }));
  for (const key of ['world', 'communicator', 'bucket_cap_mb', 'rank']) push(`ir dataParallel unknown option ${key}`, 'ir.dataParallel', 'error', () => dp({ worldSize: 1, [key]: 1 }));
  push('ir dataParallel of a forward graph (no gradients)', 'ir.dataParallel', 'error', () => dataParallel(fwd(), { worldSize: 1 }));
  push('ir dataParallel applied twice', 'ir.dataParallel', 'error', () => dataParallel(dp({ worldSize: 1 }), { worldSize: 1 }));
  push('ir dataParallel of a world of one', 'ir.dataParallel', 'ok', () => dp({ worldSize: 1, bucketBytes: 100 }), isGraph);
  push('ir trainingStep of a graph without parameters', 'ir.trainingStep', 'error', () => { const b = new GraphBuilder(); b.output('loss', sum(b.input('x', [2]))); return trainingStep(b.graph); });
  push('ir trainingStep of a graph without a loss', 'ir.trainingStep', 'error', () => trainingStep(fwd(), { loss: 'nope' }));
  push("ir trainingStep of a graph with an input named 'lr'", 'ir.trainingStep', 'error', () => trainingStep(capture({ forward: ({ lr }) => ({ loss: sum(mul(lr, currentBuilder().param('w', [1], 'f32', { dist: 'ones' }))) }) }, { lr: { shape: [1] } })));
  for (let i = 0; i < 12; i++) {
    const r = rng.fork();
    const opts = { accumulate: r.int(1, 3), ...(r.bool() ? { clipGradNorm: r.float(0.01, 10) } : {}), optimizer: { beta1: r.float(0, 0.999), beta2: r.float(0, 0.999), eps: r.float(0, 1e-3), weightDecay: r.float(0, 1) } };
    push(`ir trainingStep valid ${JSON.stringify(opts)}`, 'ir.trainingStep', 'ok', () => trainingStep(fwd(), opts), (g) => isGraph(g) ?? (Object.keys(g.updates).length === 9 ? undefined : `${Object.keys(g.updates).length} updates`));
  }
  // compile
  for (const v of [3, null, 'gpu', 'cuda', 'cuda:99', 'cpu:0', 'CPU', '', {}]) push(`ir compile device ${show(v)}`, 'ir.compile', 'error', () => compile(fwd(), { device: v }));
  for (const v of [1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e300, '1', null, true, {}, 1n]) push(`ir compile seed ${show(v)}`, 'ir.compile', 'error', () => compile(fwd(), { seed: v }));
  for (const v of ['fp16', 'bf16', 'f32', 'fp8', 3, {}, { name: 'x' }, { run: (g) => g }, { name: 'junk', run: () => 3 }, { name: 'null', run: () => null }]) push(`ir compile precision ${show(v)}`, ['ir.compile', 'ir.runPasses'], 'error', () => compile(fwd(), { precision: v }));
  for (const [k, v] of [['fuse', 'no'], ['fuse', 0], ['cudaGraph', 'yes'], ['cudaGraph', null]]) push(`ir compile ${k} ${show(v)}`, 'ir.compile', 'error', () => compile(fwd(), { [k]: v }));
  for (const key of ['sede', 'devcie', 'precison', 'fusion', 'cuda_graph', 'keepFirstLst']) push(`ir compile unknown option ${key}`, 'ir.compile', 'error', () => compile(fwd(), { [key]: 1 }));
  for (let i = 0; i < 8; i++) { const v = junkOption(rng); push(`ir compile(${show(v)})`, 'ir.compile', 'error', () => compile(v)); }
  for (const seed of [0, -1, 2 ** 40, 7]) {
    push(`ir compile seed ${seed} with an identity precision pass and fuse false`, ['ir.compile', 'ir.Executable#parameterNames', 'ir.Executable#kernelSummary'], 'ok', () => {
      const exe = compile(fwd(), { seed, fuse: false, precision: { name: 'identity', run: (g) => g }, device: 'cpu', cudaGraph: false });
      try {
        return { names: exe.parameterNames(), rows: exe.kernelSummary(), bytes: exe.allocatedBytes, w: exe.get('w1') };
      } finally {
        exe.dispose();
      }
    }, (v) => (v.names.length === 3 && v.rows.length > 0 ? nonFinite(v.w, 'w1') : 'no parameters or kernels'));
  }
  push('ir compile of a graph whose sinusoidal init does not fit frees what it allocated', 'ir.compile', 'error', () => {
    const b = new GraphBuilder();
    b.param('a', [8, 8], 'f32', { dist: 'normal' });
    b.output('y', gelu(b.param('t', [3, 5], 'f32', { dist: 'sinusoidal', columns: 4 })));
    return compile(b.graph);
  });
  push('ir compile of a bf16 parameter after an f32 one', 'ir.compile', 'error', () => {
    const b = new GraphBuilder();
    b.output('y', gelu(b.param('a', [8], 'f32', { dist: 'normal' })));
    b.output('z', gelu(b.param('h', [8], 'bf16', { dist: 'normal' })));
    return compile(b.graph);
  });
  push('ir compile of a step past the host memory limit (refused before allocating)', 'ir.compile', 'error', () => {
    const b = new GraphBuilder();
    b.output('y', gelu(b.param('w', [2 ** 29 + 1], 'f32', { dist: 'normal' })));
    return compile(b.graph);
  });
  // dryrun
  for (const k of ['peakTflops', 'memoryGBps']) for (const v of [0, -1, ...NON_FINITE, '10', null]) push(`ir dryrun ${k} ${show(v)}`, 'ir.dryrun', 'error', () => dryrun(fwd(), { peakTflops: 10, memoryGBps: 100, [k]: v }));
  for (const v of [3, 'gpu', 'cuda', null]) push(`ir dryrun device ${show(v)}`, 'ir.dryrun', 'error', () => dryrun(fwd(), { device: v }));
  for (const v of ['fp16', 'bf16', 3]) push(`ir dryrun precision ${show(v)}`, 'ir.dryrun', 'error', () => dryrun(fwd(), { precision: v }));
  for (const key of ['peakTflop', 'memoryGbps', 'precison', 'tflops']) push(`ir dryrun unknown option ${key}`, 'ir.dryrun', 'error', () => dryrun(fwd(), { [key]: 1 }));
  for (let i = 0; i < 5; i++) { const v = junkOption(rng); push(`ir dryrun(${show(v)})`, 'ir.dryrun', 'error', () => dryrun(v)); }
  for (let i = 0; i < 6; i++) {
    const r = rng.fork();
    const [t, g] = [r.float(0.001, 1000), r.float(0.1, 5000)];
    push(`ir dryrun of a training step at ${t.toFixed(3)} TFLOP/s, ${g.toFixed(1)} GB/s`, ['ir.dryrun', 'ir.formatDryrun'], 'ok', () => {
      const rep = dryrun(once('step', () => trainingStep(fwd())), { peakTflops: t, memoryGBps: g });
      return { rep, text: formatDryrun(rep) };
    }, ({ rep, text }) => (Number.isFinite(rep.estimate.ms) && rep.estimate.ms > 0 && rep.totalBytes > 0 && text.includes('dryrun on cpu') ? undefined : `estimate ${rep.estimate.ms}, total ${rep.totalBytes}`));
  }
  for (const v of [null, 3, {}, { device: 'cpu' }, 'report']) push(`ir formatDryrun(${show(v)})`, 'ir.formatDryrun', 'error', () => formatDryrun(v));
  // interpret
  const g1 = () => once('g1', () => { const b = new GraphBuilder(); b.output('y', gelu(b.input('x', [2, 3]))); return b.graph; });
  for (const v of ['fp16', 'f16', 3, null]) push(`ir interpret precision ${show(v)}`, 'ir.interpret', 'error', () => interpret(g1(), { x: new Float32Array(6) }, { precision: v }));
  for (const key of ['precison', 'onnode', 'verbose']) push(`ir interpret unknown option ${key}`, 'ir.interpret', 'error', () => interpret(g1(), { x: new Float32Array(6) }, { [key]: 1 }));
  for (const v of [3, 'log', {}]) push(`ir interpret onNode ${show(v)}`, 'ir.interpret', 'error', () => interpret(g1(), { x: new Float32Array(6) }, { onNode: v }));
  for (const [label, bind] of [['null', null], ['an array', []], ['nothing', {}], ['an extra name', { x: new Float32Array(6), z: new Float32Array(1) }], ['too short', { x: new Float32Array(5) }], ['an Int32Array', { x: new Int32Array(6) }], ['a plain array', { x: [1, 2, 3, 4, 5, 6] }]]) push(`ir interpret bindings ${label}`, 'ir.interpret', 'error', () => interpret(g1(), bind));
  for (const shape of [[2 ** 31], [2 ** 16, 2 ** 16], [2 ** 28 + 1], [2 ** 40]]) push(`ir interpret of fill ${show(shape)} (refused before allocating)`, ['ir.interpret', 'ir.fill'], 'error', () => { const b = new GraphBuilder(); b.output('y', fill(b, shape, 1)); return interpret(b.graph, {}); });
  for (let i = 0; i < 5; i++) { const v = junkOption(rng); push(`ir interpret(${show(v)})`, 'ir.interpret', 'error', () => interpret(v, {})); }
  // capture and eager
  const spec = { x: { shape: [2, 3] } };
  push('ir capture: forward returns a Sym of an earlier capture', 'ir.capture', 'error', () => { let old; capture({ forward: ({ x }) => (old = gelu(x)) }, spec); return capture({ forward: () => old }, spec); });
  push('ir capture: forward returns a record holding a Sym of an earlier capture', 'ir.capture', 'error', () => { let old; capture({ forward: ({ x }) => (old = gelu(x)) }, spec); return capture({ forward: ({ x }) => ({ a: gelu(x), b: old }) }, spec); });
  push('ir capture: an async forward', 'ir.capture', 'error', () => capture({ forward: async ({ x }) => gelu(x) }, spec));
  push('ir capture: a forward returning a thenable', 'ir.capture', 'error', () => capture({ forward: ({ x }) => ({ then: () => gelu(x) }) }, spec));
  for (const v of [3, null, 'y', [], [1], { y: 3 }, { y: null }, true]) push(`ir capture: forward returns ${show(v)}`, 'ir.capture', 'error', () => capture({ forward: () => v }, spec));
  for (const v of [null, undefined, 3, {}, { forward: 3 }, { forward: 'f' }]) push(`ir capture model ${show(v)}`, 'ir.capture', 'error', () => capture(v, spec));
  for (const v of [null, 3, 'x', [], { x: null }, { x: 3 }, { x: { shape: [2], dtyp: 'f32' } }, { x: { shape: [2], dtype: 'f99' } }, { '1x': { shape: [2] } }, { '': { shape: [2] } }, ...BAD_SHAPES.map((s) => ({ x: { shape: s } }))]) {
    // A huge shape whose element count is still exact is a real shape: a graph may declare it (dryrun does not allocate).
    push(`ir capture input spec ${show(v)}`, 'ir.capture', realShape(v?.x?.shape) ? 'either' : 'error', () => capture({ forward: ({ x }) => gelu(x) }, v), isGraph);
  }
  push('ir currentBuilder outside a capture', 'ir.currentBuilder', 'error', () => currentBuilder());
  push('ir currentBuilder inside a capture', 'ir.currentBuilder', 'ok', () => { let seen; capture({ forward: ({ x }) => ((seen = currentBuilder()), gelu(x)) }, spec); return seen; }, (b) => (b instanceof GraphBuilder ? undefined : 'not a builder'));
  for (let i = 0; i < 10; i++) {
    const r = rng.fork();
    const [n, d] = [r.int(1, 5), r.int(1, 5)];
    push(`ir capture + eager: MLP [${n}, ${d}] #${i}`, ['ir.capture', 'ir.eager'], 'ok', () => eager(new MLP(), { x: { shape: [n, d], data: r.f32(n * d) }, y: { shape: [n], dtype: 'i32', data: Int32Array.from({ length: n }, () => r.int(0, 3)) } }, { seed: r.int(0, 99), onNode: () => {} }), (o) => nonFinite(o.loss, 'loss'));
  }
  const eagerIn = () => ({ x: { shape: [2], data: new Float32Array(2).fill(0.5) } });
  for (const [label, opts] of [['unknown key sed', { sed: 1 }], ['params of no parameter', { params: { nope: new Float32Array(1) } }], ['params not an object', { params: 3 }], ['onNode not a function', { onNode: 'x' }], ['seed 1.5', { seed: 1.5 }], ['seed NaN', { seed: NaN }]]) {
    push(`ir eager: ${label}`, 'ir.eager', 'error', () => eager({ forward: ({ x }) => gelu(x) }, eagerIn(), opts));
  }
  for (const v of [null, 3, { x: null }, { x: { shape: [2] } }, { x: { shape: [2], data: new Float32Array(3) } }, { x: { shape: [2], data: new Float32Array(2), extra: 1 } }]) push(`ir eager inputs ${show(v)}`, 'ir.eager', 'error', () => eager({ forward: ({ x }) => gelu(x) }, v));
}

// ---- the executable, the graph and the builder --------------------------------------------------
function withExe(r, fn) {
  const exe = compile(once('step', () => trainingStep(fwd())), { seed: r.int(0, 999) });
  try {
    return fn(exe);
  } finally {
    exe.dispose();
  }
}
const goodBatch = (r) => stepBatch(r, 4, 5, 4);

function objectCases(rng, out) {
  const push = (name, entry, expect, run, check) => out.push({ name, entry, expect, run, ...(check ? { check } : {}) });
  const bads = [
    ['lr NaN', (b) => ({ ...b, lr: Float32Array.of(NaN) })], ['lr Infinity', (b) => ({ ...b, lr: Float32Array.of(Infinity) })], ['lr -Infinity', (b) => ({ ...b, lr: Float32Array.of(-Infinity) })],
    ['lr -0.1', (b) => ({ ...b, lr: Float32Array.of(-0.1) })], ['step NaN', (b) => ({ ...b, step: Float32Array.of(NaN) })], ['step 0', (b) => ({ ...b, step: Float32Array.of(0) })],
    ['step Infinity', (b) => ({ ...b, step: Float32Array.of(Infinity) })], ['a target of 4 (4 classes)', (b) => ({ ...b, y: Int32Array.of(0, 1, 4, 2) })], ['a target of -2', (b) => ({ ...b, y: Int32Array.of(0, -2, 1, 2) })],
    ['x too short', (b) => ({ ...b, x: new Float32Array(3) })], ['x as Int32Array', (b) => ({ ...b, x: new Int32Array(20) })], ['y as Float32Array', (b) => ({ ...b, y: new Float32Array(4) })],
    ['no lr', (b) => { const c = { ...b }; delete c.lr; return c; }], ['an extra input', (b) => ({ ...b, z: new Float32Array(1) })], ['null', () => null], ['an array', () => []], ['a number', () => 3],
  ];
  for (const [label, mutate] of bads) {
    const r = rng.fork();
    push(`ir Executable#run: batch with ${label} (nothing runs)`, 'ir.Executable#run', 'error', () => withExe(r, (exe) => {
      const before = exe.get('w1');
      try {
        return exe.run(mutate(goodBatch(r)));
      } finally {
        if (exe.steps !== 0 || exe.get('w1').some((v, i) => v !== before[i])) throw new Error('a refused step changed the weights');
      }
    }));
  }
  for (let i = 0; i < 6; i++) {
    const r = rng.fork();
    push(`ir Executable#profile on the CPU #${i}`, 'ir.Executable#profile', 'ok', () => withExe(r, (exe) => exe.profile(goodBatch(r))), (p) => nonFinite(p.outputs.loss, 'loss') ?? (p.nodes.length > 0 ? undefined : 'no nodes'));
  }
  for (const v of ['nope', 'w', 3, null, {}, Symbol('w1'), ''])  push(`ir Executable#get(${show(v)})`, 'ir.Executable#get', 'error', () => withExe(rng.fork(), (exe) => exe.get(v)));
  for (const v of [new Float32Array(3), new Float64Array(40), [1, 2], 'buf', new Int32Array(40)]) push(`ir Executable#get('w1', into ${show(v)})`, 'ir.Executable#get', 'error', () => withExe(rng.fork(), (exe) => exe.get('w1', v)));
  for (const v of [new Float32Array(3), new Int32Array(40), null, [0], 'data']) push(`ir Executable#set('w1', ${show(v)})`, 'ir.Executable#set', 'error', () => withExe(rng.fork(), (exe) => exe.set('w1', v)));
  for (let i = 0; i < 4; i++) {
    const r = rng.fork();
    push(`ir Executable#set then #get round-trips #${i}`, ['ir.Executable#set', 'ir.Executable#get'], 'ok', () => withExe(r, (exe) => { const v = r.f32(40); exe.set('w1', v); return { v, got: exe.get('w1', new Float32Array(40)) }; }), ({ v, got }) => (v.every((x, j) => x === got[j]) ? undefined : 'get differs from set'));
  }
  push('ir Executable: use after dispose', ['ir.Executable#dispose', 'ir.Executable#run'], 'error', () => { const exe = compile(fwd()); exe.dispose('by the fuzz case'); exe.dispose(); return exe.run(batchOf(makeRng(1))); });
  for (const v of [3, {}, Symbol('n')]) push(`ir Executable#dispose(${show(v)})`, 'ir.Executable#dispose', 'error', () => { const exe = compile(fwd()); try { exe.dispose(v); } finally { exe.dispose(); } });
  for (let i = 0; i < 3; i++) { const args = [junk(rng), junk(rng), junk(rng)]; push(`ir new Executable(${args.map(show).join(', ')})`, 'ir.Executable', 'error', () => new Executable(...args)); }
  push('ir Executable: steps, replaying and kernelSummary after a step', ['ir.Executable#kernelSummary', 'ir.Executable#run'], 'ok', () => withExe(makeRng(3), (exe) => { exe.run(goodBatch(makeRng(4))); return { steps: exe.steps, replaying: exe.replaying, rows: exe.kernelSummary() }; }), (v) => (v.steps === 1 && v.replaying === false && v.rows.every((x) => x.calls === (x.kernel === 'alias' ? 0 : x.nodes)) ? undefined : JSON.stringify(v).slice(0, 200)));
  // Graph
  for (const v of [-1, 1e9, 0.5, NaN, '0', null, {}, Symbol('v')]) push(`ir Graph#value(${show(v)})`, 'ir.Graph#value', 'error', () => fwd().value(v));
  for (const v of [null, 3, 'node']) push(`ir Graph#describeNode(${show(v)})`, 'ir.Graph#describeNode', 'error', () => fwd().describeNode(v));
  push('ir Graph#toText and #describeNode', ['ir.Graph#toText', 'ir.Graph#describeNode'], 'ok', () => fwd().toText() + fwd().describeNode(fwd().nodes[0]), (t) => (t.includes('graph {') ? undefined : 'no text'));
  push('ir new Graph() verifies and round-trips', ['ir.Graph', 'ir.Graph#verify'], 'ok', () => new Graph().verify(), roundTrips);
  // GraphBuilder
  const B = () => new GraphBuilder();
  for (const v of ['', '1x', 'a b', 'a..b', null, 3, {}, 'lr.']) push(`ir GraphBuilder#input name ${show(v)}`, 'ir.GraphBuilder#input', 'error', () => B().input(v, [2]));
  for (const v of BAD_SHAPES) push(`ir GraphBuilder#input shape ${show(v)}`, 'ir.GraphBuilder#input', realShape(v) ? 'either' : 'error', () => B().input('x', v));
  for (const v of ['f99', 'float32', 3, null, 'F32']) push(`ir GraphBuilder#input dtype ${show(v)}`, 'ir.GraphBuilder#input', 'error', () => B().input('x', [2], v));
  push('ir GraphBuilder#input a name used twice', ['ir.GraphBuilder#input', 'ir.GraphBuilder#param'], 'error', () => { const b = B(); b.input('x', [2]); return b.param('x', [2], 'f32', { dist: 'zeros' }); });
  for (const v of [null, 3, {}, { dist: 'gaussian' }, { dist: 'normal', scale: NaN }, { dist: 'normal', std: 1 }, { dist: 'sinusoidal', columns: 1.5 }, { dist: 'sinusoidal', columns: 4, base: 1 }, 'normal']) {
    push(`ir GraphBuilder#param init ${show(v)}`, 'ir.GraphBuilder#param', 'error', () => B().param('w', [2, 4], 'f32', v));
    push(`ir GraphBuilder#state init ${show(v)}`, 'ir.GraphBuilder#state', 'error', () => B().state('s', [2, 4], 'f32', v));
  }
  push('ir GraphBuilder#param unknown option key', 'ir.GraphBuilder#param', 'error', () => B().param('w', [2], 'f32', { dist: 'ones' }, { absolut: true }));
  for (const [label, fn] of [
    ['output with an empty name', (b) => b.output('', b.input('x', [1]))], ['output of a Sym of another builder', (b) => b.output('y', B().input('x', [1]))], ['output of a number', (b) => b.output('y', 3)],
    ['update of an unknown name', (b) => b.update('nope', b.input('x', [1]))], ['update with junk', (b) => b.update('s', null)], ['sym(-1)', (b) => b.sym(-1)], ['sym(0.5)', (b) => b.sym(0.5)],
    ['phase sideways', (b) => b.phase('sideways', () => 0)], ['phase without a function', (b) => b.phase('forward', 3)], ['scoped without a name', (b) => b.scoped('', () => 0)], ['scoped(null)', (b) => b.scoped(null, () => 0)],
    ['within(3)', (b) => b.within(3, () => 0)], ['within without a function', (b) => b.within('a', null)], ['like(null)', (b) => b.like(null, () => 0)], ['op1 of an unknown op', (b) => b.op1('nope', [])],
    ['op with inputs null', (b) => b.op('gelu', null)], ['op with a Sym of another builder', (b) => b.op('gelu', [B().input('x', [2])])], ['op with attrs null', (b) => b.op('gelu', [b.input('x', [2])], null)],
  ]) push(`ir GraphBuilder: ${label}`, ['ir.GraphBuilder#output', 'ir.GraphBuilder#update', 'ir.GraphBuilder#sym', 'ir.GraphBuilder#phase', 'ir.GraphBuilder#scoped', 'ir.GraphBuilder#within', 'ir.GraphBuilder#like', 'ir.GraphBuilder#op1'], 'error', () => fn(B()));
  for (let i = 0; i < 3; i++) { const v = junkOption(rng); push(`ir GraphBuilder.extend(${show(v)})`, 'ir.GraphBuilder.extend', 'error', () => GraphBuilder.extend(v)); }
  push('ir GraphBuilder: scopes, phases, like, within, sym, extend', ['ir.GraphBuilder.extend', 'ir.GraphBuilder#scoped', 'ir.GraphBuilder#phase', 'ir.GraphBuilder#like', 'ir.GraphBuilder#within', 'ir.GraphBuilder#sym', 'ir.Sym'], 'ok', () => {
    const b = B();
    const x = b.input('x', [2, 3]);
    const y = b.scoped('blk', () => b.phase('backward', () => gelu(x)));
    const z = b.like({ scope: 'a.b', phase: 'optimizer' }, () => b.within('c', () => silu(b.sym(y.id))));
    b.output('z', z);
    GraphBuilder.extend(b.graph).output('y', y);
    return b.graph.verify();
  }, (g) => roundTrips(g) ?? (g.nodes.map((n) => `${n.scope}/${n.phase}`).join() === 'blk/backward,c/optimizer' ? undefined : g.nodes.map((n) => `${n.scope}/${n.phase}`).join()));
  for (let i = 0; i < 3; i++) { const args = [junk(rng), junk(rng)]; push(`ir new Sym(${args.map(show).join(', ')})`, 'ir.Sym', 'error', () => new Sym(...args)); }
}

// ---- Sym helpers, passes, planner, autodiff and the rest -----------------------------------------
/** Each Sym helper called with valid Syms of one builder `b` (and `r` for sizes). */
const HELPERS = {
  add: (b) => add(b.input('a', [2, 3]), b.input('c', [3])), mul: (b) => mul(b.input('a', [2, 3]), b.input('c', [2, 3])), biasAdd: (b) => biasAdd(b.input('a', [2, 3]), b.input('c', [3])),
  broadcastTo: (b) => broadcastTo(b.input('a', [1, 3]), [4, 3]), sumTo: (b) => sumTo(b.input('a', [4, 3]), [1, 3]), reshape: (b) => reshape(b.input('a', [4, 3]), [3, -1]),
  fill: (b) => fill(b, [2, 2], 1.5), matmul: (b) => matmul(b.input('a', [2, 3]), b.input('c', [3, 4])), matmulBias: (b) => matmulBias(b.input('a', [2, 3]), b.input('c', [3, 4]), b.input('d', [4])),
  matmulBiasGelu: (b) => matmulBiasGelu(b.input('a', [2, 3]), b.input('c', [3, 4]), b.input('d', [4])), matmulBgrad: (b) => matmulBgrad(b.input('a', [2, 3]), b.input('c', [3, 4])),
  matmulDgelu: (b) => matmulDgelu(b.input('a', [2, 3]), b.input('c', [3, 4]), b.input('d', [2, 4])), cast: (b) => cast(b.input('a', [2]), 'bf16'), castMulti: (b) => castMulti([b.input('a', [2]), b.input('c', [3])], 'f16'),
  causalMask: (b) => causalMask(b.input('a', [3, 3])), clipCoef: (b) => clipCoef(b.input('a', [1]), 1), concat: (b) => concat([b.input('a', [2, 3]), b.input('c', [1, 3])], 0),
  crossEntropy: (b) => crossEntropy(b.input('a', [2, 3]), b.input('t', [2], 'i32')), crossEntropyBackward: (b) => crossEntropyBackward(b.input('a', [2, 3]), b.input('t', [2], 'i32'), b.input('g', [1])),
  embedding: (b) => embedding(b.input('a', [5, 3]), b.input('t', [2], 'i32')), embeddingBackward: (b) => embeddingBackward(b.input('t', [2], 'i32'), b.input('g', [2, 3]), 5),
  gatherRows: (b) => gatherRows(b.input('a', [5, 3]), b.input('t', [2], 'i32')), gelu: (b) => gelu(b.input('a', [2])), silu: (b) => silu(b.input('a', [2])),
  geluBackward: (b) => geluBackward(b.input('g', [2]), b.input('a', [2])), siluBackward: (b) => siluBackward(b.input('g', [2]), b.input('a', [2])), swiglu: (b) => swiglu(b.input('g', [2]), b.input('a', [2])),
  layernorm: (b) => layernorm(b.input('a', [2, 3]), b.input('w', [3]), b.input('c', [3])), rmsnorm: (b) => rmsnorm(b.input('a', [2, 3]), b.input('w', [3])),
  addLayernorm: (b) => addLayernorm(b.input('a', [2, 3]), b.input('r', [2, 3]), b.input('w', [3]), b.input('c', [3])),
  layernormBackward: (b) => { const [x, w, c] = [b.input('a', [2, 3]), b.input('w', [3]), b.input('c', [3])]; const [, m, rs] = b.op('layernorm', [x, w, c]); return layernormBackward(b.input('g', [2, 3]), x, w, m, rs); },
  rmsnormBackward: (b) => { const [x, w] = [b.input('a', [2, 3]), b.input('w', [3])]; const [, rs] = b.op('rmsnorm', [x, w]); return rmsnormBackward(b.input('g', [2, 3]), x, w, rs); },
  max: (b) => max(b.input('a', [2, 3]), [1]), mean: (b) => mean(b.input('a', [2, 3]), [0], true), sum: (b) => sum(b.input('a', [2, 3])), maxBackward: (b) => maxBackward(b.input('g', [2]), b.input('a', [2, 3]), [1], false),
  moePlan: (b) => moePlan(b.input('e', [4, 1], 'i32'), 2, 3), oneHot: (b) => oneHot(b.input('t', [3], 'i32'), 4), scale: (b) => scale(b.input('a', [2]), 0.5),
  scatterAddRows: (b) => scatterAddRows(b.input('a', [2, 3]), b.input('t', [2], 'i32'), 4), slice: (b) => slice(b.input('a', [2, 5]), 1, 1, 3), sliceBackward: (b) => sliceBackward(b.input('g', [2, 2]), [2, 5], 1, 1),
  softmax: (b) => softmax(b.input('a', [2, 3])), softmaxBackward: (b) => softmaxBackward(b.input('g', [2, 3]), b.input('a', [2, 3])), sumSquares: (b) => sumSquares([b.input('a', [2]), b.input('c', [3])]),
  topk: (b) => topk(b.input('a', [2, 5]), 2), topkBackward: (b) => topkBackward(b.input('g', [2, 2]), b.input('t', [2, 2], 'i32'), 5), transpose: (b) => transpose(b.input('a', [2, 3, 4]), [2, 0, 1]),
  adamw: (b) => adamw(b.input('p', [3]), b.input('g', [3]), b.input('m', [3]), b.input('v', [3]), b.input('lr', [1]), b.input('s', [1]), { beta1: 0.8 }),
  adamwMulti: (b) => adamwMulti(b.input('lr', [1]), b.input('s', [1]), [[b.input('p', [3]), b.input('g', [3]), b.input('m', [3]), b.input('v', [3])]]),
};
const FNS = { add, mul, biasAdd, broadcastTo, sumTo, reshape, fill, matmul, matmulBias, matmulBiasGelu, matmulBgrad, matmulDgelu, cast, castMulti, causalMask, clipCoef, concat, crossEntropy, crossEntropyBackward, embedding, embeddingBackward, gatherRows, gelu, silu, geluBackward, siluBackward, swiglu, layernorm, rmsnorm, addLayernorm, layernormBackward, rmsnormBackward, max, mean, sum, maxBackward, moePlan, oneHot, scale, scatterAddRows, slice, sliceBackward, softmax, softmaxBackward, sumSquares, topk, topkBackward, transpose, adamw, adamwMulti };
const symsOk = (v) => ([v].flat(2).every((s) => s instanceof Sym) ? undefined : 'not Syms');
const PASSES = { eliminateCommonSubexpressions, eliminateDeadCode, markElementwiseFusion, sortNodes, elideWideningCasts, fuse, fuseAdamW, fuseAddLayernorm, fuseAmax, fuseBiasGradient, fuseCrossEntropy, fuseGemmEpilogues, fuseMatmulBias, fuseMatmulDgelu, fuseMatmulGelu, fuseNormResidual, fuseParamCasts, autocast, runPasses };
const passOk = (v) => (v instanceof Graph ? roundTrips(v) : typeof v === 'number' ? (Number.isInteger(v) && v >= 0 ? undefined : `count ${v}`) : typeof v === 'object' && v ? undefined : `returned ${show(v)}`);

function restCases(rng, out) {
  const push = (name, entry, expect, run, check) => out.push({ name, entry, expect, run, ...(check ? { check } : {}) });
  for (const [name, make] of Object.entries(HELPERS)) {
    push(`ir ${name}: valid Syms`, `ir.${name}`, 'ok', () => make(new GraphBuilder()), symsOk);
    for (let i = 0; i < 3; i++) { const args = [junk(rng), junk(rng), junk(rng)]; push(`ir ${name}(${args.map(show).join(', ')})`, `ir.${name}`, 'error', () => FNS[name](...args)); }
  }
  for (const [name, fn] of [['add', add], ['mul', mul], ['matmul', matmul], ['swiglu', swiglu], ['geluBackward', geluBackward]]) push(`ir ${name} of Syms of two graphs`, `ir.${name}`, 'error', () => fn(new GraphBuilder().input('a', [2, 2]), new GraphBuilder().input('a', [2, 2])));
  push('ir concat([])', 'ir.concat', 'error', () => concat([], 0));
  push('ir sumSquares([])', 'ir.sumSquares', 'error', () => sumSquares([]));
  for (const [name, fn] of Object.entries(PASSES)) {
    const kind = name === 'autocast' ? 'fwd' : rng.pick(['fwd', 'step']);
    push(`ir ${name} on a ${kind === 'fwd' ? 'forward graph' : 'training step'}`, `ir.${name}`, 'ok', () => fn(Graph.fromJSON(docOf(kind === 'fwd' ? 'forward' : 'step'))), passOk);
    for (let i = 0; i < 3; i++) { const v = junkOption(rng); push(`ir ${name}(${show(v)})`, `ir.${name}`, 'error', () => fn(v)); }
  }
  for (const v of [{ dtype: 'f32' }, { dtype: 'fp8' }, { dtyp: 'bf16' }, 3]) push(`ir autocast options ${show(v)}`, 'ir.autocast', 'error', () => autocast(fwd(), v));
  push('ir autocast of a training step', 'ir.autocast', 'error', () => autocast(Graph.fromJSON(docOf('step'))));
  for (const v of [{ fusee: false }, { fuse: 'no' }, { device: 3 }, { precision: 'bf16' }, 3]) push(`ir runPasses options ${show(v)}`, 'ir.runPasses', 'error', () => runPasses(fwd(), v));
  // planner, autodiff, gradients
  push('ir planMemory of a training step', 'ir.planMemory', 'ok', () => planMemory(Graph.fromJSON(docOf('step'))), (p) => (p.arenaBytes >= 0 && Number.isSafeInteger(p.arenaBytes) ? undefined : `arena ${p.arenaBytes}`));
  for (const [label, args] of [['bytesOf 3', [3]], ['workspace "w"', [undefined, 'w']], ['options inplac', [undefined, undefined, { inplac: false }]], ['options inplace 1', [undefined, undefined, { inplace: 1 }]]]) push(`ir planMemory ${label}`, 'ir.planMemory', 'error', () => planMemory(fwd(), ...args));
  push('ir differentiate the MLP loss by every parameter', 'ir.differentiate', 'ok', () => { const g = Graph.fromJSON(docOf('forward')); const m = differentiate(g, g.outputs.loss, Object.values(g.params)); g.verify(); return m; }, (m) => (m.size === 3 ? undefined : `${m.size} gradients`));
  for (const [label, loss, wrt] of [['loss -1', -1, []], ['loss 1e9', 1e9, []], ['loss "loss"', 'loss', []], ['wrt null', 'L', null], ['wrt [1e9]', 'L', [1e9]], ['a loss of many elements', 'X', []]]) {
    push(`ir differentiate: ${label}`, 'ir.differentiate', 'error', () => { const g = Graph.fromJSON(docOf('forward')); return differentiate(g, loss === 'L' ? g.outputs.loss : loss === 'X' ? g.inputs.x : loss, wrt); });
  }
  for (const [op, specs] of [['gelu', [{ shape: [3] }]], ['silu', [{ shape: [2, 2] }]], ['softmax', [{ shape: [2, 3] }]], ['scale', [{ shape: [3] }]], ['mul', [{ shape: [2] }, { shape: [2] }]], ['layernorm', [{ shape: [2, 3] }, { shape: [3] }, { shape: [3] }]]]) {
    push(`ir gradcheck ${op}`, 'ir.gradcheck', 'ok', () => gradcheck(op, specs, op === 'scale' ? { alpha: 0.7 } : {}, { tol: 1e-5, ...(op === 'layernorm' ? { outputs: [0] } : {}) }), (w) => (w >= 0 && w <= 1e-5 ? undefined : `error ${w}`));
  }
  for (const [label, args] of [['tol -1', ['gelu', [{ shape: [2] }], {}, { tol: -1 }]], ['eps 0', ['gelu', [{ shape: [2] }], {}, { eps: 0 }]], ['unknown option', ['gelu', [{ shape: [2] }], {}, { epsilon: 1 }]], ['100x100 input', ['gelu', [{ shape: [100, 100] }]]], ['specs null', ['gelu', null]], ['a spec with a bad shape', ['gelu', [{ shape: [-1] }]]], ['a spec unknown key', ['gelu', [{ shape: [2], type: 'f32' }]]], ['an unknown op', ['nope', [{ shape: [2] }]]]]) {
    push(`ir gradcheck ${label}`, 'ir.gradcheck', 'error', () => gradcheck(...args));
  }
  push('ir centralDifference of sum(x^2)', 'ir.centralDifference', 'ok', () => { const x = Float64Array.of(0.3, -1.2, 2); return centralDifference(() => x.reduce((a, v) => a + v * v, 0), x, 1, 1e-5); }, (d) => (Math.abs(d + 2.4) < 1e-6 ? undefined : `derivative ${d}`));
  for (const args of [[null, new Float64Array(2), 0], [() => 1, [1, 2], 0], [() => 1, new Float64Array(2), 2], [() => 1, new Float64Array(2), 0, 0], [() => 1, new Float64Array(0), 0]]) push(`ir centralDifference(${args.map(show).join(', ')})`, 'ir.centralDifference', 'error', () => centralDifference(...args));
  // the op table
  push('ir listOps and differentiableOps', ['ir.listOps', 'ir.differentiableOps'], 'ok', () => [listOps(), differentiableOps()], ([a, d]) => (a.length > 40 && d.every((x) => a.includes(x)) ? undefined : 'inconsistent op lists'));
  for (const v of ['nope', '', null, 3, {}]) push(`ir getOp(${show(v)})`, 'ir.getOp', 'error', () => getOp(v));
  push("ir gradientRule('gelu') and of an unknown op", 'ir.gradientRule', 'ok', () => [gradientRule('gelu'), gradientRule('nope'), gradientRule(null)], ([a, b, c]) => (typeof a === 'function' && b === undefined && c === undefined ? undefined : 'wrong rules'));
  for (const [op, rule] of [['gelu', () => []], ['nope', () => []], ['moe_plan', 3], [null, () => []]]) push(`ir defineGradient(${show(op)}, ${show(rule)})`, 'ir.defineGradient', 'error', () => defineGradient(op, rule));
  for (let i = 0; i < 4; i++) { const v = junkOption(rng); push(`ir defineOp(${show(v)})`, 'ir.defineOp', 'error', () => defineOp(v)); }
  for (const [label, def] of [['no infer', { name: 'fz_a', doc: '', inputs: [], outputs: ['o'], attrs: {}, reference: () => {} }], ['a bad name', { name: 'Bad Name', doc: '', inputs: [], outputs: [], attrs: {}, infer: () => [], reference: () => {} }], ['attrs null', { name: 'fz_b', doc: '', inputs: [], outputs: [], attrs: null, infer: () => [], reference: () => {} }], ['an existing name', { name: 'gelu', doc: '', inputs: ['x'], outputs: ['o'], attrs: {}, infer: (t) => t, reference: () => {} }]]) {
    push(`ir defineOp with ${label}`, 'ir.defineOp', 'error', () => defineOp(def));
  }
  const opName = `fz_twice_${rng.int(0, 1e9)}`;
  push('ir defineOp of a new op, built and interpreted', ['ir.defineOp', 'ir.inplacePairs'], 'ok', () => {
    const def = defineOp({ name: opName, doc: 'x + 1', inputs: ['x'], outputs: ['out'], attrs: {}, infer: ([t]) => [t], reference: ({ inputs: [x], outputs: [o] }) => o.set(x.map((v) => v + 1)) });
    const b = new GraphBuilder();
    b.output('y', b.op1(opName, [b.input('x', [3])]));
    return [interpret(b.graph, { x: Float32Array.of(1, 2, 3) })[1], inplacePairs(def, 1)];
  }, ([y, pairs]) => (y.join() === '2,3,4' && pairs.length === 0 ? undefined : `${y} ${pairs}`));
  for (const args of [[null, 1], ['adamw', -1], ['adamw', 'x'], [3, 7]]) push(`ir inplacePairs(${args.map(show).join(', ')})`, 'ir.inplacePairs', 'error', () => inplacePairs(args[0] === 'adamw' ? getOp('adamw') : args[0], args[1]));
  push('ir inplacePairs of adamw_multi', 'ir.inplacePairs', 'ok', () => inplacePairs(getOp('adamw_multi'), 10), (p) => (p.length === 6 ? undefined : `${p.length} pairs`));
  for (const args of [['op', 'message'], [Object.create(null), 2 ** 31], [null, null]]) push(`ir shapeError(${args.map(show).join(', ')})`, 'ir.shapeError', 'error', () => shapeError(...args));
  for (const [args, want] of [[['op', -1, 3], 2], [['op', 0, 1], 0], [['op', 2, 2], null], [['op', 0.5, 2], null], [['op', 'x', 2], null], [['op', 0, -1], null], [['op', 0, NaN], null], [['op', Symbol('a'), 2], null]]) {
    push(`ir axisOf(${args.map(show).join(', ')})`, 'ir.axisOf', want === null ? 'error' : 'ok', () => axisOf(...args), (a) => (a === want ? undefined : `axis ${a}`));
  }
  const gs = [{ shape: [2, 3], dtype: 'f32' }];
  push('ir bytesMoved of gelu', 'ir.bytesMoved', 'ok', () => bytesMoved('gelu', gs, gs, {}), (v) => (v === 48 ? undefined : `${v} bytes`));
  for (const args of [['nope', gs, gs, {}], ['gelu', null, gs, {}], ['gelu', gs, 3, {}]]) push(`ir bytesMoved(${args.map(show).join(', ')})`, 'ir.bytesMoved', 'error', () => bytesMoved(...args));
  push('ir checkAttrs of matmul fills defaults', 'ir.checkAttrs', 'ok', () => checkAttrs(getOp('matmul'), { transB: true }), (a) => (a.transA === false && a.transB === true ? undefined : JSON.stringify(a)));
  for (const [op, attrs] of [[null, {}], ['matmul', null], ['matmul', { transA: 1 }], ['slice', { axis: 0, start: 0, end: 2 ** 53 + 2 }], [3, {}]]) push(`ir checkAttrs(${show(op)}, ${show(attrs)})`, 'ir.checkAttrs', 'error', () => checkAttrs(typeof op === 'string' ? getOp(op) : op, attrs));
  push("ir checkAttrs('matmul' as a name)", 'ir.checkAttrs', 'error', () => checkAttrs('matmul', {}));
  // small helpers
  for (const [v, want] of [[[2, 3], 6], [[], 1], [[0, 5], 0]]) push(`ir numel(${show(v)})`, 'ir.numel', 'ok', () => numel(v), (n) => (n === want ? undefined : `${n}`));
  for (const v of [null, 3, 'ab', {}]) push(`ir numel(${show(v)})`, 'ir.numel', 'error', () => numel(v));
  push('ir byteSizeOf bf16[3, 3]', 'ir.byteSizeOf', 'ok', () => byteSizeOf({ shape: [3, 3], dtype: 'bf16' }), (n) => (n === 18 ? undefined : `${n}`));
  for (const v of [null, { shape: 3, dtype: 'f32' }, { shape: [2], dtype: 'f99' }, 'f32']) push(`ir byteSizeOf(${show(v)})`, 'ir.byteSizeOf', 'error', () => byteSizeOf(v));
  for (const dist of ['normal', 'zeros', 'ones', 'uniform', 'sinusoidal']) {
    const r = rng.fork();
    const n = 2 * r.int(1, 8) * 4;
    const sp = dist === 'sinusoidal' ? { dist, columns: 4, scale: r.float(0.1, 2) } : { dist, scale: r.float(0.1, 2) };
    push(`ir initialValues ${JSON.stringify(sp)} n=${n}`, 'ir.initialValues', 'ok', () => [initialValues(sp, n, 3, 'w'), initialValues(sp, n, 3, 'w', new Float64Array(n))], ([a, b]) => nonFinite(a) ?? (a.every((v, i) => Math.abs(v - b[i]) < 1e-6) ? undefined : 'not deterministic'));
  }
  for (const args of [[{ dist: 'gaussian' }, 4, 0, 'w'], [{ dist: 'normal' }, -1, 0, 'w'], [{ dist: 'normal' }, 2 ** 40, 0, 'w'], [{ dist: 'normal' }, 4, 1.5, 'w'], [{ dist: 'normal' }, 4, 0, 3], [{ dist: 'normal' }, 8, 0, 'w', new Float32Array(2)], [{ dist: 'sinusoidal', columns: 3 }, 6, 0, 'w'], [null, 4, 0, 'w']]) {
    push(`ir initialValues(${args.map(show).join(', ')})`, 'ir.initialValues', 'error', () => initialValues(...args));
  }
  push('ir rng: uniforms in [0, 1), seeded', 'ir.rng', 'ok', () => { const a = irRng(42); const b = irRng(42); return Array.from({ length: 50 }, () => [a(), b()]); }, (xs) => (xs.every(([a, b]) => a === b && a >= 0 && a < 1) ? undefined : 'not seeded uniforms'));
  for (const v of [NaN, 1.5, '1', null, 2 ** 60]) push(`ir rng(${show(v)})`, 'ir.rng', 'error', () => irRng(v));
  push('ir storedAmax, withAmax, writeAmax', ['ir.storedAmax', 'ir.withAmax', 'ir.writeAmax'], 'ok', () => { const o = [Float32Array.of(-3, 2, Infinity), new Float32Array(1)]; writeAmax(o, [{ shape: [3], dtype: 'f32' }, { shape: [1], dtype: 'f32' }], 0, { amax: true }); return [storedAmax([1, -5, NaN], 'bf16'), withAmax([{ shape: [2], dtype: 'f32' }], { amax: true }).length, o[1][0]]; }, ([a, n, w]) => (a === 5 && n === 2 && w === 3 ? undefined : `${a} ${n} ${w}`));
  for (const [fn, args] of [[storedAmax, [null, 'f32']], [storedAmax, [3, 'bf16']], [withAmax, [null, {}]], [withAmax, [[], null]], [writeAmax, [null, [], 0, { amax: true }]], [writeAmax, [[new Float32Array(1)], [], 5, { amax: true }]]]) push(`ir ${fn.name}(${args.map(show).join(', ')})`, `ir.${fn.name}`, 'error', () => fn(...args));
  push('ir geluScalar', 'ir.geluScalar', 'ok', () => [geluScalar(0), geluScalar(10), geluScalar(-10)], ([a, b, c]) => (a === 0 && Math.abs(b - 10) < 1e-9 && Math.abs(c) < 1e-9 ? undefined : `${a} ${b} ${c}`));
  for (const v of ['1', null, 1n, {}]) push(`ir geluScalar(${show(v)})`, 'ir.geluScalar', 'error', () => geluScalar(v));
  push('ir hasGradScale', 'ir.hasGradScale', 'ok', () => [hasGradScale(7), hasGradScale(6)], ([a, b]) => (a && !b ? undefined : 'wrong'));
  for (const v of [-1, 0.5, 'x', 1n]) push(`ir hasGradScale(${show(v)})`, 'ir.hasGradScale', 'error', () => hasGradScale(v));
  push('ir inversePerm([2, 0, 1])', 'ir.inversePerm', 'ok', () => inversePerm([2, 0, 1]), (p) => (p.join() === '1,2,0' ? undefined : p.join()));
  for (const v of [[0, 0], [1, 2], [-1, 0], null, 'ab', [0.5, 1]]) push(`ir inversePerm(${show(v)})`, 'ir.inversePerm', 'error', () => inversePerm(v));
}

export function cases(rng) {
  const out = [];
  opCases(rng.fork(), out);
  modelCases(rng.fork(), out);
  documentCases(rng.fork(), out);
  optionCases(rng.fork(), out);
  objectCases(rng.fork(), out);
  restCases(rng.fork(), out);
  return out;
}
