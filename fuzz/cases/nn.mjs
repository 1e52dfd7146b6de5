// @deepwell/nn (issue 20): every public export with bad and edge input, and valid random input.
//  - GPT configs: each key with bad integers, non-finite numbers and wrong types; huge sizes
//    (nLayer 2^31, parameter counts past the limit) refused at once, before anything is built;
//    unknown keys and other libraries' names; bad MoE options (capacityFactor <= 0, everyNth 0 or
//    1.5, auxLossWeight Infinity) and attention kinds; presets; valid random small configs whose
//    built parameter count equals gptParameterCount, a few captured, compiled and run forward once
//    on the CPU with finite logits and loss (and a decode step);
//  - the layers (Linear, Embedding, LayerNorm, RMSNorm, MLP, CausalSelfAttention, MoE) and Module's
//    addParam/addChild/weight: bad sizes, eps, activations, options; valid ones run eagerly, finite;
//  - MarkovCorpus: bad options (temperature 0 and NaN among them), sample(2^31), huge batches;
//    valid corpora whose rows are distributions, samples in range, a finite entropy rate;
//  - sampleToken and Generator: bad logits, options, draws, prompts and weights; valid sampling.
import { capture, compile, eager, GraphBuilder } from '@deepwell/ir';
import { CausalSelfAttention, Embedding, GPT, GPTDecode, GPT_PRESETS, Generator, LayerNorm, Linear, MarkovCorpus, MLP, MoE, Module, RMSNorm, gptParameterCount, sampleToken } from '@deepwell/nn';
import { BAD_INTEGERS, NON_FINITE, WRONG_TYPES, junk, nonFinite, show } from '../lib.mjs';

const numel = (shape) => shape.reduce((a, b) => a * b, 1);
const pickN = (rng, arr, n) => Array.from({ length: n }, () => rng.pick(arr));
const BAD_FLOATS = [...NON_FINITE, null, '0.5', true, {}, [], 1n];

/** A valid random small GPT config; `T` the longest sequence it will see (sparse topK fits it). */
function tinyConfig(r, { moe = r.bool(0.25), sparse = r.bool(0.2), T = 8 } = {}) {
  const nHead = r.pick([1, 2, 4]);
  const nEmbd = nHead * r.pick([2, 4]);
  const nLayer = r.int(1, 2);
  const c = { vocabSize: r.int(2, 16), blockSize: T, nLayer, nHead, nEmbd };
  if (r.bool(0.3)) c.mlpHidden = r.int(1, 16);
  if (r.bool(0.3)) c.activation = r.pick(['gelu', 'swiglu']);
  if (r.bool(0.3)) c.norm = r.pick(['layernorm', 'rmsnorm']);
  if (r.bool(0.3)) c.tiedEmbeddings = r.bool();
  if (r.bool(0.3)) c.bias = r.bool();
  if (r.bool(0.3)) c.nKvHead = r.pick([1, 2, 4].filter((k) => nHead % k === 0));
  if (r.bool(0.2) && !sparse) c.fusedAttention = r.bool();
  if (r.bool(0.2)) {
    c.positionInit = 'sinusoidal';
    if (r.bool()) c.positionBase = r.float(1.5, 20000);
  }
  if (moe) {
    const experts = r.int(1, 4);
    c.moe = { experts, topK: r.int(1, experts) };
    if (r.bool()) c.moe.capacityFactor = r.float(0.1, experts);
    if (r.bool()) c.moe.auxLossWeight = r.float(0, 1);
    if (r.bool()) c.moe.everyNth = r.int(1, nLayer);
  }
  if (sparse) {
    const blockSize = r.int(1, 4);
    const blocks = Math.ceil(T / blockSize);
    const first = blocks > 1 && r.bool(0.3);
    const topK = r.int(first ? 2 : 1, blocks);
    c.attention = { kind: 'sparsek', blockSize, topK, first, window: r.int(1, topK - (first ? 1 : 0)) };
  }
  return c;
}

/** The config's model; its parameter count must be the config's. */
const buildChecked = (c) => () => {
  const m = new GPT(c);
  return { count: m.parameterCount(), want: gptParameterCount(c), again: new GPT(m.config).parameterCount() };
};
const countCheck = (res) => (res.count === res.want && res.count > 0 && res.again === res.count ? undefined : `parameterCount ${res.count}, gptParameterCount ${res.want}, rebuilt from model.config ${res.again}`);

/** Random weights for every parameter of `model` (the Generator's input). */
const weightsOf = (model, r, fill) => new Map(model.namedParameters().map(([n, p]) => [n, Float32Array.from({ length: numel(p.shape) }, () => fill ?? r.float(-0.5, 0.5))]));

/** A module as a capturable forward of one input x. */
const wrap = (mod) => ({ forward: ({ x }) => mod.forward(x) });

function gptCases(rng, out) {
  // Valid random configs: built, counted.
  for (let i = 0; i < 150; i++) {
    const c = tinyConfig(rng);
    out.push({ name: `nn.GPT: valid ${show(c)} #${i}`, entry: ['nn.GPT', 'nn.gptParameterCount', 'nn.Module#parameterCount'], expect: 'ok', run: buildChecked(c), check: countCheck });
  }
  // A few of them run: capture, compile and one forward (with targets) on the CPU.
  for (let i = 0; i < 24; i++) {
    const c = tinyConfig(rng, { T: rng.int(2, 6) });
    const r = rng.fork();
    const [B, T] = [r.int(1, 2), r.int(1, c.blockSize)];
    out.push({
      name: `nn.GPT#forward: ${show(c)} on [${B}, ${T}] #${i}`,
      entry: ['nn.GPT#forward', 'nn.GPT'],
      expect: 'ok',
      timeoutMs: 5000,
      run: () => {
        const T2 = c.attention?.kind === 'sparsek' ? c.blockSize : T; // sparse topK fits the full block
        const exe = compile(capture(new GPT(c), { tokens: { shape: [B, T2], dtype: 'i32' }, targets: { shape: [B, T2], dtype: 'i32' } }), { seed: r.int(0, 1000) });
        try {
          const tokens = Int32Array.from({ length: B * T2 }, () => r.int(0, c.vocabSize - 1));
          const targets = Int32Array.from({ length: B * T2 }, () => r.int(0, c.vocabSize - 1));
          const o = exe.run({ tokens, targets });
          return { logits: Array.from(o.logits), loss: o.loss[0], n: B * T2 * c.vocabSize };
        } finally {
          exe.dispose();
        }
      },
      check: (o) => (o.logits.length !== o.n ? `logits ${o.logits.length}, expected ${o.n}` : nonFinite(o.logits, 'logits') ?? (Number.isFinite(o.loss) && o.loss > 0 ? undefined : `loss ${o.loss}`)),
    });
  }
  // A decode step of a dense model.
  for (let i = 0; i < 8; i++) {
    const c = tinyConfig(rng, { sparse: false });
    const r = rng.fork();
    out.push({
      name: `nn.GPTDecode: one step of ${show(c)} #${i}`,
      entry: ['nn.GPTDecode', 'nn.GPT#decode'],
      expect: 'ok',
      timeoutMs: 5000,
      run: () => {
        const exe = compile(capture(new GPTDecode(new GPT(c), { cacheLength: c.blockSize }), { tokens: { shape: [1, 1], dtype: 'i32' }, pos: { shape: [1], dtype: 'i32' } }));
        try {
          return Array.from(exe.run({ tokens: Int32Array.of(r.int(0, c.vocabSize - 1)), pos: Int32Array.of(0) }).logits);
        } finally {
          exe.dispose();
        }
      },
      check: (l) => (l.length === c.vocabSize ? nonFinite(l, 'logits') : `${l.length} logits`),
    });
  }
  const base = () => ({ vocabSize: 8, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 });
  // Integer keys with bad numbers and wrong types (undefined is absent: the default, for optional keys).
  const required = ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd'];
  for (const key of [...required, 'mlpHidden', 'nKvHead', 'positionBase']) {
    for (const v of [...BAD_INTEGERS, ...pickN(rng, WRONG_TYPES, 5)]) {
      const ok = v === undefined && !required.includes(key);
      out.push({ name: `nn.GPT: ${key} ${show(v)}`, entry: 'nn.GPT', expect: ok ? 'ok' : 'error', timeoutMs: 2000, run: () => new GPT({ ...base(), [key]: v }).parameterCount() });
    }
  }
  // Enumerations and booleans.
  const enums = { activation: ['relu', 'GELU', 'silu', '', 'swiglu '], norm: ['batchnorm', 'LayerNorm', ''], positionInit: ['rope', 'zeros', ''] };
  for (const [key, vals] of Object.entries(enums)) for (const v of [...vals, ...pickN(rng, WRONG_TYPES.filter((w) => w !== undefined), 4)]) out.push({ name: `nn.GPT: ${key} ${show(v)}`, entry: 'nn.GPT', expect: 'error', run: () => new GPT({ ...base(), [key]: v }) });
  for (const key of ['tiedEmbeddings', 'bias', 'fusedAttention']) for (const v of [0, 1, 'yes', 'false', null, {}, NaN]) out.push({ name: `nn.GPT: ${key} ${show(v)}`, entry: 'nn.GPT', expect: 'error', run: () => new GPT({ ...base(), [key]: v }) });
  // Huge sizes: refused at once, never attempted.
  const huge = [
    { nLayer: 2 ** 31 }, { nLayer: 1e6 }, { nLayer: 1025 }, { vocabSize: 2 ** 25 }, { blockSize: 2 ** 31 }, { nEmbd: 2 ** 30, nHead: 1 },
    { vocabSize: 2 ** 24, nEmbd: 2 ** 12, nHead: 1, mlpHidden: 4 }, { nLayer: 1000, nEmbd: 16384, nHead: 16 }, { nLayer: 1024, nEmbd: 8192, nHead: 8, mlpHidden: 2 ** 24 },
    { blockSize: 2 ** 24, nEmbd: 2 ** 14, nHead: 2, mlpHidden: 1 }, { mlpHidden: 2 ** 24 + 1 }, { moe: { experts: 4096, topK: 1 }, nEmbd: 4096, nHead: 4, mlpHidden: 16384, nLayer: 64 },
    { moe: { experts: 2 ** 31, topK: 1 } }, { nLayer: 2 ** 53 }, { nLayer: 1e300 },
  ];
  for (const h of huge) out.push({ name: `nn.GPT: huge ${show(h)}`, entry: ['nn.GPT', 'nn.gptParameterCount'], expect: 'error', timeoutMs: 2000, run: () => new GPT({ ...base(), ...h }) });
  for (const h of huge.slice(6, 10)) out.push({ name: `nn.gptParameterCount: past the limit ${show(h)}`, entry: 'nn.gptParameterCount', expect: 'ok', timeoutMs: 2000, run: () => gptParameterCount({ ...base(), ...h }), check: (n) => (n > 2 ** 35 ? undefined : `count ${n}`) });
  // Unknown keys: another library's names, near misses, junk.
  for (const key of ['n_layer', 'num_hidden_layers', 'n_embd', 'hidden_size', 'vocab_size', 'n_positions', 'dropout', 'attn_pdrop', 'nLayers', 'nheads', 'tiedEmbedding', 'Bias', 'zebra', '__proto__x', 'moE', 'layers', 'eps', 'rope']) {
    out.push({ name: `nn.GPT: unknown key ${key}`, entry: 'nn.GPT', expect: 'error', run: () => new GPT({ ...base(), [key]: 1 }) });
  }
  // MoE options.
  const moeBad = { experts: [...BAD_INTEGERS, 0, '4'], topK: [0, 5, 1.5, NaN, -1, '2'], capacityFactor: [0, -1, NaN, Infinity, 5, '1'], auxLossWeight: [Infinity, NaN, -0.01, -Infinity, '0.01'], everyNth: [0, 1.5, 3, -1, NaN, Infinity, 2 ** 31] };
  for (const [key, vals] of Object.entries(moeBad)) for (const v of vals) out.push({ name: `nn.GPT: moe ${key} ${show(v)}`, entry: 'nn.GPT', expect: 'error', run: () => new GPT({ ...base(), nLayer: 2, moe: { experts: 4, topK: 2, [key]: v } }) });
  for (const m of [5, 'moe', true, [], () => 1, { experts: 4 }, { topK: 1 }, { experts: 4, topK: 1, capacity: 1 }, { num_experts: 4, topK: 1 }]) out.push({ name: `nn.GPT: moe ${show(m)}`, entry: 'nn.GPT', expect: 'error', run: () => new GPT({ ...base(), moe: m }) });
  out.push({ name: 'nn.GPT: moe null (none)', entry: 'nn.GPT', expect: 'ok', run: buildChecked({ ...base(), moe: null }), check: countCheck });
  // Attention kinds.
  const kinds = [{ kind: 'flash' }, { kind: 'sparsek', topk: 2 }, { kind: 'sparsek', topK: 0 }, { kind: 'sparsek', topK: 99, blockSize: 4 }, { kind: 'sparsek', blockSize: 1.5 }, { kind: 'sparsek', window: NaN },
    { kind: 'sparsek', first: 'yes' }, { kind: 'sparsek', topK: 2, window: 2, first: true }, { kind: 'dense', topK: 2 }, 'dense', null, 5, [], [{ kind: 'dense' }, { kind: 'dense' }], { kind: 'sparsek', blockSize: 2 ** 31 }];
  for (const k of kinds) out.push({ name: `nn.GPT: attention ${show(k)}`, entry: 'nn.GPT', expect: 'error', run: () => new GPT({ ...base(), attention: k }) });
  out.push({ name: 'nn.GPT: sparsek with fusedAttention false', entry: 'nn.GPT', expect: 'error', run: () => new GPT({ ...base(), fusedAttention: false, attention: { kind: 'sparsek', blockSize: 4, topK: 1 } }) });
  out.push({ name: 'nn.GPT: sinusoidal with an odd nEmbd', entry: 'nn.GPT', expect: 'error', run: () => new GPT({ ...base(), nHead: 1, nEmbd: 7, positionInit: 'sinusoidal' }) });
  out.push({ name: 'nn.GPT: positionBase without sinusoidal', entry: 'nn.GPT', expect: 'error', run: () => new GPT({ ...base(), positionBase: 100 }) });
  // Presets and configs that are not configs.
  for (const p of Object.keys(GPT_PRESETS)) out.push({ name: `nn.GPT: preset ${p}`, entry: ['nn.GPT', 'nn.gptParameterCount'], expect: 'ok', run: buildChecked(p), check: countCheck });
  for (const p of ['toString', '__proto__', 'constructor', 'gpt2', 'TINY', '', 'hasOwnProperty']) out.push({ name: `nn.GPT: preset ${show(p)}`, entry: 'nn.GPT', expect: 'error', run: () => new GPT(p) });
  for (const v of [...WRONG_TYPES.filter((w) => typeof w !== 'string'), 5, NaN]) out.push({ name: `nn.GPT: config ${show(v)}`, entry: 'nn.GPT', expect: 'error', run: () => new GPT(v) });
  for (let i = 0; i < 10; i++) {
    const args = [junk(rng)];
    out.push({ name: `nn.gptParameterCount(${show(args[0])})`, entry: 'nn.gptParameterCount', expect: 'error', run: () => gptParameterCount(...args) });
  }
  // forward and decode with bad inputs (inside capture), and outside it.
  const caps = [
    ['no tokens', {}], ['f32 tokens', { tokens: { shape: [1, 4] } }], ['rank-1 tokens', { tokens: { shape: [4], dtype: 'i32' } }], ['too long', { tokens: { shape: [1, 9], dtype: 'i32' } }],
    ['targets of another shape', { tokens: { shape: [1, 4], dtype: 'i32' }, targets: { shape: [1, 5], dtype: 'i32' } }], ['f32 targets', { tokens: { shape: [1, 4], dtype: 'i32' }, targets: { shape: [1, 4] } }],
    ['an unknown input', { tokens: { shape: [1, 4], dtype: 'i32' }, labels: { shape: [1, 4], dtype: 'i32' } }],
  ];
  for (const [what, spec] of caps) out.push({ name: `nn.GPT#forward: ${what}`, entry: 'nn.GPT#forward', expect: 'error', run: () => capture(new GPT(base()), spec) });
  for (const v of [null, 5, 'tokens', []]) out.push({ name: `nn.GPT#forward(${show(v)})`, entry: 'nn.GPT#forward', expect: 'error', run: () => new GPT(base()).forward(v) });
  const decs = [
    ['no pos', { tokens: { shape: [1, 1], dtype: 'i32' } }], ['pos of another length', { tokens: { shape: [1, 2], dtype: 'i32' }, pos: { shape: [1], dtype: 'i32' } }],
    ['f32 pos', { tokens: { shape: [1, 1], dtype: 'i32' }, pos: { shape: [1] } }], ['f32 tokens', { tokens: { shape: [1, 1] }, pos: { shape: [1], dtype: 'i32' } }],
  ];
  for (const [what, spec] of decs) out.push({ name: `nn.GPT#decode: ${what}`, entry: ['nn.GPT#decode', 'nn.GPTDecode'], expect: 'error', run: () => capture(new GPTDecode(new GPT(base())), spec) });
  for (const o of [{ cacheLength: 0 }, { cacheLength: 9 }, { cacheLength: 1.5 }, { cacheLength: NaN }, { cacheLen: 4 }, 5, null]) {
    out.push({ name: `nn.GPTDecode: options ${show(o)}`, entry: 'nn.GPTDecode', expect: 'error', run: () => new GPTDecode(new GPT(base()), o) });
  }
  for (const m of [null, {}, 'tiny', new Linear(2, 2)]) out.push({ name: `nn.GPTDecode: model ${show(m)}`, entry: 'nn.GPTDecode', expect: 'error', run: () => new GPTDecode(m) });
  out.push({ name: 'nn.GPT#decode: a sparse model', entry: 'nn.GPT#decode', expect: 'error', run: () => capture(new GPTDecode(new GPT({ ...base(), attention: { kind: 'sparsek', blockSize: 4, topK: 1 } })), { tokens: { shape: [1, 1], dtype: 'i32' }, pos: { shape: [1], dtype: 'i32' } }) });
}

function layerCases(rng, out) {
  const dims = () => [rng.int(1, 24), rng.int(1, 24)];
  // Valid layers: built with the parameter count their shapes give, and run eagerly on random x.
  for (let i = 0; i < 30; i++) {
    const [a, b] = dims();
    const bias = rng.bool();
    const std = rng.pick([undefined, 0, 0.02, rng.float(0, 2)]);
    const r = rng.fork();
    out.push({
      name: `nn.Linear(${a}, ${b}, bias ${bias}, std ${show(std)}) forward #${i}`, entry: ['nn.Linear', 'nn.Linear#forward'], expect: 'ok',
      run: () => {
        const m = new Linear(a, b, std === undefined ? { bias } : { bias, std });
        const y = eager(wrap(m), { x: { shape: [2, a], data: Float32Array.from({ length: 2 * a }, () => r.float(-1, 1)) } }, { seed: r.int(0, 99) }).out;
        return { y: Array.from(y), count: m.parameterCount() };
      },
      check: (o) => (o.count !== a * b + (bias ? b : 0) ? `count ${o.count}` : o.y.length !== 2 * b ? `${o.y.length} outputs` : nonFinite(o.y)),
    });
  }
  for (const [name, make, fwd] of [
    ['LayerNorm', (d, e) => new LayerNorm(d, e), true], ['RMSNorm', (d, e) => new RMSNorm(d, e), true],
  ]) {
    for (let i = 0; i < 12; i++) {
      const d = rng.int(1, 32);
      const eps = rng.pick([undefined, 1e-5, 1e-6, rng.float(1e-8, 0.1), 2 ** -126]);
      const r = rng.fork();
      out.push({
        name: `nn.${name}(${d}, ${show(eps)}) forward #${i}`, entry: [`nn.${name}`, `nn.${name}#forward`], expect: 'ok',
        run: () => Array.from(eager(wrap(make(d, eps)), { x: { shape: [3, d], data: Float32Array.from({ length: 3 * d }, () => r.float(-3, 3)) } }).out),
        check: (y) => (fwd && y.length === 3 * d ? nonFinite(y) : `${y.length} outputs`),
      });
    }
    for (const eps of [0, -1e-5, NaN, Infinity, -Infinity, 1e-45, 2, '1e-5', null, true, {}]) out.push({ name: `nn.${name}: eps ${show(eps)}`, entry: `nn.${name}`, expect: 'error', run: () => make(8, eps) });
    for (const d of [...BAD_INTEGERS, 0, ...pickN(rng, WRONG_TYPES.filter((w) => w !== undefined), 3)]) out.push({ name: `nn.${name}: dim ${show(d)}`, entry: `nn.${name}`, expect: 'error', timeoutMs: 2000, run: () => make(d) });
  }
  for (let i = 0; i < 14; i++) {
    const [count, dim] = [rng.int(1, 20), 2 * rng.int(1, 8)];
    const init = rng.pick([undefined, 'normal', 'sinusoidal']);
    const o = init === undefined ? {} : { init, ...(init === 'sinusoidal' && rng.bool() ? { base: rng.float(1.5, 1e4) } : {}) };
    const r = rng.fork();
    out.push({
      name: `nn.Embedding(${count}, ${dim}, ${show(o)}) forward #${i}`, entry: ['nn.Embedding', 'nn.Embedding#forward'], expect: 'ok',
      run: () => Array.from(eager(wrap(new Embedding(count, dim, o)), { x: { shape: [4], dtype: 'i32', data: Int32Array.from({ length: 4 }, () => r.int(0, count - 1)) } }).out),
      check: (y) => (y.length === 4 * dim ? nonFinite(y) : `${y.length} outputs`),
    });
  }
  for (const [a, b, o] of [[-1, 3], [3, 0], [1.5, 2], [2 ** 20, 2 ** 20], [2 ** 31, 1], [NaN, 2], ['3', 2], [3, 4, { baias: true }], [3, 4, { std: NaN }], [3, 4, { std: -1 }], [3, 4, { bias: 'yes' }], [3, 4, 5], [3, 4, null], [3, 4, 'bias']]) {
    out.push({ name: `nn.Linear(${show(a)}, ${show(b)}, ${show(o)})`, entry: 'nn.Linear', expect: 'error', timeoutMs: 2000, run: () => new Linear(a, b, o) });
  }
  for (const [a, b, o] of [[0, 4], [4, -1], [2 ** 30, 2 ** 30], [4, 4, { init: 'xavier' }], [4, 5, { init: 'sinusoidal' }], [4, 4, { base: 100 }], [4, 4, { init: 'sinusoidal', base: 1 }], [4, 4, { init: 'sinusoidal', base: NaN }], [4, 4, { dim: 4 }], [4, 4, { std: Infinity }]]) {
    out.push({ name: `nn.Embedding(${show(a)}, ${show(b)}, ${show(o)})`, entry: 'nn.Embedding', expect: 'error', timeoutMs: 2000, run: () => new Embedding(a, b, o) });
  }
  // MLP: activations.
  for (let i = 0; i < 12; i++) {
    const [d, h] = dims();
    const act = rng.pick(['gelu', 'swiglu', undefined]);
    const r = rng.fork();
    out.push({
      name: `nn.MLP(${d}, ${h}, ${show(act)}) forward #${i}`, entry: ['nn.MLP', 'nn.MLP#forward'], expect: 'ok',
      run: () => Array.from(eager(wrap(new MLP(d, h, act)), { x: { shape: [2, d], data: Float32Array.from({ length: 2 * d }, () => r.float(-1, 1)) } }).out),
      check: (y) => (y.length === 2 * d ? nonFinite(y) : `${y.length} outputs`),
    });
  }
  for (const act of ['relu', 'GELU', 'silu', 'tanh', 'geglu', '', null, 5, {}, ['gelu']]) out.push({ name: `nn.MLP: activation ${show(act)}`, entry: 'nn.MLP', expect: 'error', run: () => new MLP(4, 8, act) });
  for (const [d, h, o] of [[0, 4], [4, 2 ** 31], [4, 8, { residual: 0.1 }], [4, 8, { bias: 1 }], [4, 8, { residualStd: NaN }], [2 ** 20, 2 ** 20]]) out.push({ name: `nn.MLP(${show(d)}, ${show(h)}, gelu, ${show(o)})`, entry: 'nn.MLP', expect: 'error', timeoutMs: 2000, run: () => new MLP(d, h, 'gelu', o) });
  // Attention.
  for (let i = 0; i < 12; i++) {
    const heads = rng.pick([1, 2, 4]);
    const dim = heads * rng.pick([2, 4]);
    const kvHeads = rng.pick([1, 2, 4].filter((k) => heads % k === 0));
    const fused = rng.bool(0.7);
    const r = rng.fork();
    const T = rng.int(1, 5);
    out.push({
      name: `nn.CausalSelfAttention(${dim}, ${heads}, kv ${kvHeads}, fused ${fused}) forward #${i}`, entry: ['nn.CausalSelfAttention', 'nn.CausalSelfAttention#forward'], expect: 'ok',
      run: () => Array.from(eager(wrap(new CausalSelfAttention(dim, heads, { kvHeads, fused })), { x: { shape: [1, T, dim], data: Float32Array.from({ length: T * dim }, () => r.float(-1, 1)) } }).out),
      check: (y) => (y.length === T * dim ? nonFinite(y) : `${y.length} outputs`),
    });
  }
  for (const [d, h, o] of [[8, 3], [8, 0], [8, -2], [-8, 2], [8, 16], [1.5, 1], [8, 2, { heads: 2 }], [8, 2, { kvHeads: 3 }], [8, 2, { kvHeads: 0 }], [8, 2, { bias: 1 }], [8, 2, { fused: 'no' }],
    [8, 2, { kind: { kind: 'sparsek' }, fused: false }], [8, 2, { kind: 'dense' }], [8, 2, { kind: { kind: 'sparsek', topK: 1, window: 2 } }], [8, 2, null], [8, 2, { residualStd: -1 }]]) {
    out.push({ name: `nn.CausalSelfAttention(${show(d)}, ${show(h)}, ${show(o)})`, entry: 'nn.CausalSelfAttention', expect: 'error', run: () => new CausalSelfAttention(d, h, o) });
  }
  out.push({ name: 'nn.CausalSelfAttention#decode: cacheLength 0', entry: 'nn.CausalSelfAttention#decode', expect: 'error', run: () => { const b = new GraphBuilder(); return new CausalSelfAttention(4, 2).decode(b.input('x', [1, 1, 4]), b.input('p', [1], 'i32'), 0); } });
  out.push({ name: 'nn.CausalSelfAttention#decode: junk', entry: 'nn.CausalSelfAttention#decode', expect: 'error', run: () => new CausalSelfAttention(4, 2).decode(null, 5, 4) });
  out.push({ name: 'nn.CausalSelfAttention#forward: x of another width', entry: 'nn.CausalSelfAttention#forward', expect: 'error', run: () => capture(wrap(new CausalSelfAttention(4, 2)), { x: { shape: [1, 2, 5] } }) });
  // MoE.
  for (let i = 0; i < 12; i++) {
    const [d, h] = [rng.int(1, 8), rng.int(1, 8)];
    const experts = rng.int(1, 4);
    const o = { experts, topK: rng.int(1, experts), ...(rng.bool() ? { capacityFactor: rng.float(0.05, experts) } : {}) };
    const r = rng.fork();
    const [B, T] = [rng.int(1, 2), rng.int(1, 4)];
    out.push({
      name: `nn.MoE(${d}, ${h}, ${show(o)}) forward #${i}`, entry: ['nn.MoE', 'nn.MoE#forward', 'nn.MoE#capacity'], expect: 'ok',
      run: () => {
        const m = new MoE(d, h, o);
        const y = eager({ forward: ({ x }) => m.forward(x) }, { x: { shape: [B, T, d], data: Float32Array.from({ length: B * T * d }, () => r.float(-1, 1)) } });
        return { y: Array.from(y.y), aux: y.aux[0], cap: m.capacity(B * T) };
      },
      check: (res) => (res.y.length !== B * T * d ? `${res.y.length} outputs` : nonFinite(res.y) ?? (Number.isFinite(res.aux) && res.cap >= 1 ? undefined : `aux ${res.aux}, capacity ${res.cap}`)),
    });
  }
  for (const o of [{ experts: 4, topK: 2, capacityFactor: 0 }, { experts: 4, topK: 2, capacityFactor: -1 }, { experts: 4, topK: 2, capacityFactor: NaN }, { experts: 4, topK: 2, capacityFactor: Infinity },
    { experts: 4, topK: 5 }, { experts: 0, topK: 1 }, { experts: 2 ** 31, topK: 1 }, { experts: 4, topK: 2, auxLossWeight: 1 }, { experts: 4, topK: 2, everyNth: 1 }, { experts: 4 }, { topK: 1 }, null, undefined, 5, { experts: '4', topK: 1 }]) {
    out.push({ name: `nn.MoE(8, 16, ${show(o)})`, entry: 'nn.MoE', expect: 'error', run: () => new MoE(8, 16, o) });
  }
  for (const t of [-1, 1.5, NaN, Infinity, '4', null]) out.push({ name: `nn.MoE#capacity(${show(t)})`, entry: 'nn.MoE#capacity', expect: 'error', run: () => new MoE(4, 4, { experts: 2, topK: 1 }).capacity(t) });
  // forward with junk, and outside capture.
  const mods = [['Linear', () => new Linear(4, 4)], ['Embedding', () => new Embedding(4, 4)], ['LayerNorm', () => new LayerNorm(4)], ['RMSNorm', () => new RMSNorm(4)], ['MLP', () => new MLP(4, 8)], ['CausalSelfAttention', () => new CausalSelfAttention(4, 2)], ['MoE', () => new MoE(4, 4, { experts: 2, topK: 1 })]];
  for (const [name, make] of mods) {
    for (const x of [null, 5, 'x', {}, new Float32Array(4)]) out.push({ name: `nn.${name}#forward(${show(x)})`, entry: `nn.${name}#forward`, expect: 'error', run: () => make().forward(x) });
    out.push({ name: `nn.${name}#forward outside capture`, entry: `nn.${name}#forward`, expect: 'error', run: () => make().forward(new GraphBuilder().input('x', [1, 2, 4], name === 'Embedding' ? 'i32' : 'f32')) });
  }
}

function moduleCases(rng, out) {
  class Custom extends Module {
    constructor(fn) {
      super();
      fn(this);
    }
    forward({ x }) {
      return this.scope(() => x);
    }
  }
  const [a, b, c] = [rng.int(1, 8), rng.int(1, 8), rng.int(1, 8)];
  const goods = [
    (m) => m.addParam('w', [a, b], { dist: 'normal', scale: 0.1 }),
    (m) => m.addParam('b', [c], { dist: 'zeros' }, 'f32'),
    (m) => m.addParam('s', [2, 4], { dist: 'sinusoidal', scale: 1, columns: 4, base: 100 }),
    (m) => m.addChild('lin', new Linear(2, 3)),
    (m) => m.addParam('e', [0], { dist: 'ones' }),
  ];
  goods.forEach((g, i) => out.push({
    name: `nn.Module: a valid declaration #${i}`, entry: ['nn.Module', 'nn.Module#addParam', 'nn.Module#addChild', 'nn.Module#namedParameters', 'nn.Module#parameterCount', 'nn.Module#path'], expect: 'ok',
    run: () => { const m = new Custom(g); return { names: m.namedParameters().map(([n]) => n), count: m.parameterCount(), path: m.path }; },
    check: (o) => (o.names.length >= 1 && Number.isInteger(o.count) && o.path === '' ? undefined : show(o)),
  }));
  const shapes = [[-1], [1.5], [NaN], [2 ** 31, 2 ** 31], [2 ** 53], ['2'], [null], [[2]], 'abc', null, 5, {}, [1, -2, 3], [2 ** 26, 2 ** 26]];
  for (const s of shapes) out.push({ name: `nn.Module#addParam: shape ${show(s)}`, entry: 'nn.Module#addParam', expect: 'error', timeoutMs: 2000, run: () => new Custom((m) => m.addParam('w', s, { dist: 'zeros' })) });
  for (const init of [null, 5, 'normal', {}, { dist: 'gaussian' }, { dist: 'normal', scale: NaN }, { dist: 'normal', std: 1 }, { dist: 'sinusoidal', base: 0.5 }, { dist: 'normal', columns: -1 }]) {
    out.push({ name: `nn.Module#addParam: init ${show(init)}`, entry: 'nn.Module#addParam', expect: 'error', run: () => new Custom((m) => m.addParam('w', [2], init)) });
  }
  for (const d of ['f64', 'float32', '', null, 5]) out.push({ name: `nn.Module#addParam: dtype ${show(d)}`, entry: 'nn.Module#addParam', expect: 'error', run: () => new Custom((m) => m.addParam('w', [2], { dist: 'zeros' }, d)) });
  for (const n of ['', null, 5, {}, undefined]) out.push({ name: `nn.Module#addParam: name ${show(n)}`, entry: 'nn.Module#addParam', expect: 'error', run: () => new Custom((m) => m.addParam(n, [2], { dist: 'zeros' })) });
  out.push({ name: 'nn.Module#addParam: twice', entry: 'nn.Module#addParam', expect: 'error', run: () => new Custom((m) => { m.addParam('w', [2], { dist: 'zeros' }); m.addParam('w', [2], { dist: 'zeros' }); }) });
  for (const c of [null, {}, 5, 'lin', new GraphBuilder()]) out.push({ name: `nn.Module#addChild: child ${show(c)}`, entry: 'nn.Module#addChild', expect: 'error', run: () => new Custom((m) => m.addChild('c', c)) });
  out.push({ name: 'nn.Module#addChild: itself', entry: 'nn.Module#addChild', expect: 'error', run: () => new Custom((m) => m.addChild('me', m)) });
  out.push({ name: 'nn.Module#addChild: a name taken', entry: 'nn.Module#addChild', expect: 'error', run: () => new Custom((m) => { m.addParam('c', [1], { dist: 'zeros' }); m.addChild('c', new Linear(1, 1)); }) });
  for (const n of ['nope', 5, null, undefined, '']) out.push({ name: `nn.Module#weight(${show(n)})`, entry: 'nn.Module#weight', expect: 'error', run: () => capture({ forward: ({ x }) => { const l = new Linear(2, 2); l.forward(x); return l.weight(n); } }, { x: { shape: [1, 2] } }) });
  out.push({ name: 'nn.Module#weight outside capture', entry: 'nn.Module#weight', expect: 'error', run: () => new Linear(2, 2).weight('weight') });
  out.push({ name: 'nn.Module#weight in capture', entry: 'nn.Module#weight', expect: 'ok', run: () => capture({ forward: () => new Linear(2, 3).weight('weight') }, {}).params, check: (p) => (Object.keys(p).length === 1 ? undefined : show(p)) });
}

function markovCases(rng, out) {
  for (let i = 0; i < 30; i++) {
    const order = rng.pick([1, 1, 2]);
    const vocab = order === 1 ? rng.int(2, 32) : rng.int(2, 10);
    const o = { vocab, order, seed: rng.int(0, 2 ** 32 - 1), ...(rng.bool() ? { temperature: rng.float(0.2, 4) } : {}) };
    const n = rng.int(1, 300);
    out.push({
      name: `nn.MarkovCorpus(${show(o)}): rows, sample(${n}), entropy #${i}`, entry: ['nn.MarkovCorpus', 'nn.MarkovCorpus#sample', 'nn.MarkovCorpus#entropyRate', 'nn.MarkovCorpus#stationary'], expect: 'ok', timeoutMs: 5000,
      run: () => { const c = new MarkovCorpus(o); return { t: c.transitions, s: c.sample(n), h: c.entropyRate(), pi: c.stationary() }; },
      check: ({ t, s, h, pi }) => {
        for (let r = 0; r < t.length / vocab; r++) {
          const row = t.subarray(r * vocab, (r + 1) * vocab);
          if (!row.every((x) => Number.isFinite(x) && x >= 0) || Math.abs(row.reduce((a, b) => a + b, 0) - 1) > 1e-9) return `row ${r} is not a distribution`;
        }
        if (s.length !== n || !s.every((x) => x >= 0 && x < vocab)) return 'a sample out of range';
        if (!(h >= 0 && h <= Math.log(vocab) + 1e-9)) return `entropy rate ${h}`;
        return Math.abs(pi.reduce((a, b) => a + b, 0) - 1) < 1e-6 ? undefined : 'stationary does not sum to 1';
      },
    });
  }
  // Low temperatures: a distribution, or a typed refusal (a chain split into cycles); never NaN rows.
  for (let i = 0; i < 10; i++) {
    const order = rng.pick([1, 2]);
    const o = { vocab: rng.int(2, order === 1 ? 16 : 10), order, seed: rng.int(0, 1000), temperature: rng.pick([1e-3, 0.01, 0.03, 0.05, 1e-300, 5e-324]) };
    out.push({
      name: `nn.MarkovCorpus: low temperature ${show(o)}`, entry: ['nn.MarkovCorpus', 'nn.MarkovCorpus#entropyRate'], expect: 'either', timeoutMs: 5000,
      run: () => { const c = new MarkovCorpus(o); return { t: c.transitions, h: c.entropyRate() }; },
      check: ({ t, h }) => nonFinite(t, 'transitions') ?? (h >= 0 && Number.isFinite(h) ? undefined : `entropy rate ${h}`),
    });
  }
  const bad = [
    ...[...BAD_INTEGERS, 0, 1, 4097, '8', null, undefined].map((vocab) => ({ vocab })),
    ...[0, 3, 1.5, '1', null].map((order) => ({ vocab: 8, order })),
    ...[0, NaN, -0.5, Infinity, -Infinity, '0.5', null, true].map((temperature) => ({ vocab: 8, temperature })),
    ...[-1, 1.5, NaN, 2 ** 32, 2 ** 53, Infinity, '3', null].map((seed) => ({ vocab: 8, seed })),
    { vocab: 8, temprature: 1 }, { vocab: 8, Order: 2 }, { vocab: 4096, order: 2 }, { vocab: 300, order: 2 }, { vocab: 8, symbols: 8 },
  ];
  for (const o of bad) out.push({ name: `nn.MarkovCorpus(${show(o)})`, entry: 'nn.MarkovCorpus', expect: 'error', timeoutMs: 2000, run: () => new MarkovCorpus(o) });
  for (const o of [null, 5, 'vocab', [], undefined]) out.push({ name: `nn.MarkovCorpus(${show(o)})`, entry: 'nn.MarkovCorpus', expect: 'error', run: () => new MarkovCorpus(o) });
  for (const n of [...BAD_INTEGERS, 0, 2 ** 26 + 1, 2 ** 28, '5', null, undefined, {}]) out.push({ name: `nn.MarkovCorpus#sample(${show(n)})`, entry: 'nn.MarkovCorpus#sample', expect: 'error', timeoutMs: 2000, run: () => new MarkovCorpus({ vocab: 4 }).sample(n) });
  for (const [B, T] of [[0, 4], [4, 0], [-1, 4], [1.5, 4], [NaN, 4], [4, Infinity], [2 ** 20, 2 ** 20], [2 ** 31, 1], [1, 2 ** 26], ['2', 4], [null, 4]]) {
    out.push({ name: `nn.MarkovCorpus#batch(${show(B)}, ${show(T)})`, entry: 'nn.MarkovCorpus#batch', expect: 'error', timeoutMs: 2000, run: () => new MarkovCorpus({ vocab: 4 }).batch(B, T) });
  }
  for (let i = 0; i < 12; i++) {
    const [B, T, vocab] = [rng.int(1, 4), rng.int(1, 16), rng.int(2, 20)];
    out.push({
      name: `nn.MarkovCorpus#batch(${B}, ${T}) of vocab ${vocab}`, entry: 'nn.MarkovCorpus#batch', expect: 'ok',
      run: () => new MarkovCorpus({ vocab, seed: i }).batch(B, T),
      check: ({ tokens, targets }) => {
        if (tokens.length !== B * T || targets.length !== B * T) return 'wrong sizes';
        for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) if (targets[b * T + t] !== tokens[b * T + t + 1]) return 'targets are not the next tokens';
        return tokens.every((x) => x >= 0 && x < vocab) ? undefined : 'a token out of range';
      },
    });
  }
}

function samplingCases(rng, out) {
  const arrayOf = (r, n) => {
    const kind = r.int(0, 2);
    const vals = Array.from({ length: n }, () => (r.bool(0.1) ? -Infinity : r.float(-5, 5)));
    if (vals.every((v) => v === -Infinity)) vals[0] = 0;
    return kind === 0 ? Float32Array.from(vals) : kind === 1 ? Float64Array.from(vals) : vals;
  };
  for (let i = 0; i < 150; i++) {
    const r = rng.fork();
    const n = rng.int(1, 40);
    const o = {};
    if (rng.bool(0.8)) o.temperature = rng.pick([0, rng.float(1e-3, 5), 1, 1e-300, 1e300]);
    if (rng.bool(0.5)) o.topK = rng.pick([Infinity, rng.int(1, 50)]);
    if (rng.bool(0.5)) o.topP = rng.pick([1, rng.float(1e-6, 1)]);
    const u = rng.pick([0, rng.float(0, 1), 1 - 2 ** -53]);
    out.push({
      name: `nn.sampleToken: ${n} logits, ${show(o)}, u ${u} #${i}`, entry: 'nn.sampleToken', expect: 'ok',
      run: () => { const l = arrayOf(r, n); return { l, id: sampleToken(l, o, u) }; },
      check: ({ l, id }) => {
        if (!(Number.isInteger(id) && id >= 0 && id < l.length)) return `id ${id}`;
        if (l[id] === -Infinity) return `id ${id} has logit -Infinity`;
        if (o.temperature === 0 && l.some((x) => x > l[id])) return 'greedy did not take the largest logit';
        return undefined;
      },
    });
  }
  const l3 = [0.5, -1, 2];
  const bad = [
    [[1, NaN, 2], {}, 0.5], [[Infinity, 1], {}, 0.5], [[-Infinity, -Infinity], {}, 0.5], [[], {}, 0.5], ['abc', {}, 0.5], [null, {}, 0.5], [{ length: 3 }, {}, 0.5], [new BigInt64Array(2), {}, 0.5],
    [[1, '2'], {}, 0.5], [5, {}, 0.5], [l3, null, 0.5], [l3, 5, 0.5], [l3, { topk: 2 }, 0.5], [l3, { temp: 1 }, 0.5], [l3, {}, 1], [l3, {}, -0.1], [l3, {}, NaN], [l3, {}, Infinity], [l3, {}, '0.5'], [l3, {}, undefined],
    ...[NaN, -1, Infinity, -Infinity, '1', null].map((temperature) => [l3, { temperature }, 0.5]),
    ...[0, -1, 1.5, NaN, -Infinity, '2', null].map((topK) => [l3, { topK }, 0.5]),
    ...[0, -0.1, 1.5, NaN, Infinity, '0.9', null].map((topP) => [l3, { topP }, 0.5]),
  ];
  for (const [l, o, u] of bad) out.push({ name: `nn.sampleToken(${show(l)}, ${show(o)}, ${show(u)})`, entry: 'nn.sampleToken', expect: 'error', run: () => sampleToken(l, o, u) });
  for (let i = 0; i < 20; i++) {
    const args = [junk(rng), junk(rng), junk(rng)];
    out.push({ name: `nn.sampleToken(${args.map(show).join(', ')})`, entry: 'nn.sampleToken', expect: 'either', run: () => sampleToken(...args), check: (id) => (Number.isInteger(id) && id >= 0 && id < args[0].length ? undefined : `id ${id}`) });
  }
}

function generatorCases(rng, out) {
  const cfg = { vocabSize: 9, blockSize: 6, nLayer: 1, nHead: 2, nEmbd: 4 };
  const made = (r, c = cfg) => { const m = new GPT(c); return { m, w: weightsOf(m, r) }; };
  // Valid generation (the cache, and without it; a sparse model; a stop id; past the context).
  for (let i = 0; i < 20; i++) {
    const r = rng.fork();
    const sparse = rng.bool(0.2);
    const c = sparse ? { ...cfg, attention: { kind: 'sparsek', blockSize: 2, topK: 1 } } : cfg;
    const opts = sparse ? {} : { cache: rng.bool() };
    const prompt = Array.from({ length: rng.int(1, 6) }, () => rng.int(0, 8));
    const o = { maxTokens: rng.int(1, 8), seed: rng.int(0, 2 ** 32 - 1), ...(rng.bool() ? { temperature: rng.pick([0, 0.5, 1.5]) } : {}), ...(rng.bool(0.3) ? { topK: rng.int(1, 9) } : {}), ...(rng.bool(0.3) ? { topP: rng.float(0.1, 1) } : {}), ...(rng.bool(0.2) ? { vocab: rng.int(1, 9) } : {}) };
    if (rng.bool(0.3)) o.stop = rng.int(0, (o.vocab ?? 9) - 1);
    out.push({
      name: `nn.Generator#generate: ${show(prompt)} ${show(o)} ${show(opts)}${sparse ? ' sparse' : ''} #${i}`, entry: ['nn.Generator', 'nn.Generator#generate', 'nn.Generator#dispose'], expect: 'ok', timeoutMs: 5000,
      run: () => { const { m, w } = made(r, c); const g = new Generator(m, w, opts); try { return g.generate(prompt, o); } finally { g.dispose(); } },
      check: (t) => {
        if (!Array.isArray(t) || t.length < 1 || t.length > o.maxTokens) return `${t?.length} tokens`;
        if (!t.every((x) => Number.isInteger(x) && x >= 0 && x < (o.vocab ?? 9))) return `a token out of range: ${show(t)}`;
        if (o.stop !== undefined && t.slice(0, -1).includes(o.stop)) return 'went past the stop token';
        return t.length < o.maxTokens && t.at(-1) !== o.stop ? 'stopped early' : undefined;
      },
    });
  }
  // Bad prompts and options: refused before anything is compiled.
  const prompts = [null, undefined, 5, '12', {}, { length: 2 ** 31 }, { length: 3 }, [], [1.5], [NaN], [-1], [9], [2 ** 31], ['1'], [null], new Array(7).fill(1), new Float32Array([1, 2]).map(() => 0.5), [1, Infinity]];
  for (const p of prompts) {
    const r = rng.fork();
    out.push({ name: `nn.Generator#generate: prompt ${show(p)}`, entry: 'nn.Generator#generate', expect: 'error', run: () => { const { m, w } = made(r); return new Generator(m, w).generate(p, { maxTokens: 1 }); } });
  }
  const opts = [
    ...[...BAD_INTEGERS, 0, 2 ** 20 + 1, '3', null, undefined].map((maxTokens) => ({ maxTokens })),
    ...[NaN, -1, Infinity, '1', null].map((temperature) => ({ maxTokens: 1, temperature })),
    ...[0, 1.5, NaN, -1, '2'].map((topK) => ({ maxTokens: 1, topK })),
    ...[0, 1.5, NaN, -0.5, '1'].map((topP) => ({ maxTokens: 1, topP })),
    ...[-1, 1.5, NaN, 2 ** 32, Infinity, '0'].map((seed) => ({ maxTokens: 1, seed })),
    ...[-1, 9, 1.5, NaN, '0'].map((stop) => ({ maxTokens: 1, stop })),
    ...[0, 10, 1.5, NaN].map((vocab) => ({ maxTokens: 1, vocab })),
    { maxTokens: 1, vocab: 3, stop: 5 }, { maxTokens: 1, max_tokens: 3 }, { maxTokens: 1, temp: 1 }, { maxTokens: 1, top_k: 2 }, null, 5, 'x', [],
  ];
  for (const o of opts) {
    const r = rng.fork();
    out.push({ name: `nn.Generator#generate: options ${show(o)}`, entry: 'nn.Generator#generate', expect: 'error', timeoutMs: 2000, run: () => { const { m, w } = made(r); return new Generator(m, w).generate([1], o); } });
  }
  // Bad constructor arguments.
  const ctor = [
    ['model {}', (m, w) => new Generator({}, w)], ['model null', (m, w) => new Generator(null, w)], ['model a Linear', (m, w) => new Generator(new Linear(2, 2), w)],
    ['weights null', (m) => new Generator(m, null)], ['weights 5', (m) => new Generator(m, 5)], ['weights []', (m) => new Generator(m, [])], ['weights a Float32Array', (m) => new Generator(m, new Float32Array(4))],
    ['a weight missing', (m, w) => { w.delete('lnf.weight'); return new Generator(m, w); }], ['an extra weight', (m, w) => { w.set('x', new Float32Array(1)); return new Generator(m, w); }],
    ['a weight too short', (m, w) => { w.set('wte.weight', new Float32Array(3)); return new Generator(m, w); }], ['a weight of ints', (m, w) => { w.set('lnf.bias', new Int32Array(4)); return new Generator(m, w); }],
    ['a weight of numbers', (m, w) => { w.set('lnf.bias', [0, 0, 0, 0]); return new Generator(m, w); }], ['a weight null', (m, w) => { w.set('lnf.bias', null); return new Generator(m, w); }],
    ['device gpu', (m, w) => new Generator(m, w, { device: 'gpu' })], ['device cuda:x', (m, w) => new Generator(m, w, { device: 'cuda:x' })], ['device 0', (m, w) => new Generator(m, w, { device: 0 })],
    ['precision fp16', (m, w) => new Generator(m, w, { precision: 'fp16' })], ['cache yes', (m, w) => new Generator(m, w, { cache: 'yes' })], ['options cash', (m, w) => new Generator(m, w, { cash: true })],
    ['options null', (m, w) => new Generator(m, w, null)], ['options 5', (m, w) => new Generator(m, w, 5)],
    ['cache on a sparse model', (m, w, r) => { const s = new GPT({ ...cfg, attention: { kind: 'sparsek', blockSize: 2, topK: 1 } }); return new Generator(s, weightsOf(s, r), { cache: true }); }],
  ];
  for (const [what, fn] of ctor) {
    const r = rng.fork();
    out.push({ name: `nn.Generator: ${what}`, entry: 'nn.Generator', expect: 'error', run: () => { const { m, w } = made(r); return fn(m, w, r); } });
  }
  // Weights as an object work as a Map does; NaN or Infinity weights are a typed error at generate, never a made-up token.
  const r1 = rng.fork();
  out.push({ name: 'nn.Generator: weights as an object', entry: ['nn.Generator', 'nn.Generator#generate'], expect: 'ok', run: () => { const { m, w } = made(r1); return new Generator(m, Object.fromEntries(w)).generate([1, 2], { maxTokens: 2 }); }, check: (t) => (t.length === 2 ? undefined : show(t)) });
  for (const fill of [NaN, Infinity]) {
    out.push({ name: `nn.Generator#generate: weights all ${fill}`, entry: 'nn.Generator#generate', expect: 'error', timeoutMs: 5000, run: () => { const m = new GPT(cfg); return new Generator(m, weightsOf(m, null, fill)).generate([1], { maxTokens: 2 }); } });
  }
  const r2 = rng.fork();
  out.push({ name: 'nn.Generator: device cuda:0 without a GPU', entry: ['nn.Generator', 'nn.Generator#generate'], expect: 'either', timeoutMs: 5000, run: () => { const { m, w } = made(r2); return new Generator(m, w, { device: 'cuda:0' }).generate([1], { maxTokens: 1 }); }, check: (t) => (t.length === 1 ? undefined : show(t)) });
}

/** Junk for the first argument (a size, a config, a model, options) of every class: always refused. */
function junkCases(rng, out) {
  const classes = { Linear, Embedding, LayerNorm, RMSNorm, MLP, CausalSelfAttention, MoE, GPT, GPTDecode, MarkovCorpus, Generator };
  for (const [name, C] of Object.entries(classes)) {
    for (let i = 0; i < 15; i++) {
      const args = Array.from({ length: rng.int(1, 3) }, () => junk(rng));
      out.push({ name: `nn.${name}: new (${args.map(show).join(', ')})`, entry: `nn.${name}`, expect: 'error', timeoutMs: 2000, run: () => new C(...args) });
    }
  }
  for (let i = 0; i < 12; i++) {
    const args = [junk(rng), junk(rng)];
    out.push({ name: `nn.MarkovCorpus#sample(${show(args[0])})`, entry: 'nn.MarkovCorpus#sample', expect: 'error', timeoutMs: 2000, run: () => new MarkovCorpus({ vocab: 3 }).sample(args[0]) });
    out.push({ name: `nn.MarkovCorpus#batch(${args.map(show).join(', ')})`, entry: 'nn.MarkovCorpus#batch', expect: 'error', timeoutMs: 2000, run: () => new MarkovCorpus({ vocab: 3 }).batch(...args) });
  }
}

export function cases(rng) {
  const out = [];
  junkCases(rng.fork(), out);
  gptCases(rng.fork(), out);
  layerCases(rng.fork(), out);
  moduleCases(rng.fork(), out);
  markovCases(rng.fork(), out);
  samplingCases(rng.fork(), out);
  generatorCases(rng.fork(), out);
  return out;
}
