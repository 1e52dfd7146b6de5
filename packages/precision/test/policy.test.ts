// The precision policy on the tiny GPT's training step (CPU reference backend): its per-layer
// decisions, the rewrite, and emulated MXFP8 / NVFP4 training that still learns the synthetic
// corpus; fp8-blockwise (1 × 128 blocks, 128 × 128 weight tiles) on a GPT wide enough for tiles;
// a dropless MoE GPT (router BF16, expert grouped GEMMs quantized along their reduction axes; natively
// under fp8-blockwise, the weight gradient k-grouped, interpreted against the emulation and float64);
// the numerics outputs (quant_stats beside every fake_quant); option errors; the fake_quant op
// against quantize / dequantize.
import { GraphBuilder, add, autocast, capture, cast, compile, crossEntropy, getOp, initialValues, interpret, matmul, numel, moeRoute, reshape, softmax, topk, trainingStep, type Graph, type NodeDecl, type Sym } from '@deepwell/ir';
import { gemmRoles } from '../src/roles.js';
import { CausalSelfAttention, Embedding, GPT, Linear, MLP, MarkovCorpus, MoE, Module, RMSNorm } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { PrecisionPolicy, dequantize, paddedOffsets, quantize, support } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const [B, T] = [8, 16];
function step(model: GPT = new GPT('tiny')): Graph {
  const fwd = capture(model, { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
  delete fwd.outputs.logits;
  return trainingStep(autocast(fwd), { optimizer: { weightDecay: 0 } });
}

function train(policy: PrecisionPolicy | undefined, steps: number): number {
  const corpus = new MarkovCorpus({ vocab: 16, seed: 1 });
  const exe = compile(step(), { seed: 1, precision: policy });
  expect(exe.graph.nodes.filter((n) => n.op === 'fake_quant').length).toBe(policy ? 2 * policy.lastPlan!.reduce((a, d) => a + d.rewritten, 0) : 0);
  if (policy) expect(policy.lastPlan!.some((d) => d.rewritten > 0)).toBe(true);
  const recent: number[] = [];
  for (let s = 1; s <= steps; s++) {
    const lr = 3e-3 * Math.min(1, s / 20);
    recent.push(exe.run({ ...corpus.batch(B, T), lr: Float32Array.of(lr), step: Float32Array.of(s) }).loss![0]!);
  }
  exe.dispose();
  const last = recent.slice(-30);
  return last.reduce((a, b) => a + b) / last.length;
}

describe('PrecisionPolicy', () => {
  it('decides per layer: attention core, head and first/last block stay BF16 by default', () => {
    const plan = new PrecisionPolicy({ recipe: 'mxfp8', minWeightElements: 0 }).plan(step());
    const by = new Map(plan.map((d) => [d.layer, d]));
    expect(by.get('blocks.0.attn')).toMatchObject({ kind: 'attention', recipe: 'bf16' });
    expect(by.get('head')).toMatchObject({ kind: 'head', recipe: 'bf16' });
    expect(by.get('blocks.0.mlp.fc')).toMatchObject({ kind: 'linear', weight: [128, 32], recipe: 'bf16', reason: 'sensitive: first block' });
    expect(by.get('blocks.1.mlp.proj')!.reason).toBe('sensitive: last block');
    const open = new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false, minWeightElements: 0, rules: [{ match: 'blocks.1.mlp', recipe: 'nvfp4' }] }).plan(step());
    const o = new Map(open.map((d) => [d.layer, d]));
    expect(o.get('blocks.0.mlp.fc')!.recipe).toBe('mxfp8');
    expect(o.get('blocks.1.mlp.fc')!.recipe).toBe('nvfp4');
    expect(o.get('blocks.1.attn.qkv')!.recipe).toBe('mxfp8');
    const small = new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false }).plan(step());
    expect(small.find((d) => d.layer === 'blocks.0.attn.proj')!.reason).toMatch(/too small/);
    const table = PrecisionPolicy.table(open, '9.0');
    expect(table).toMatch(/blocks\.1\.mlp\.fc\s+linear\s+128×32\s+nvfp4\s+emulated/);
  });

  it('rewrites each chosen GEMM, forward and backward, to quantized operands along its reduction axis', () => {
    const policy = new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false, minWeightElements: 0 });
    const g = policy.run(step()).verify();
    const fq = g.nodes.filter((n) => n.op === 'fake_quant');
    const fc = policy.lastPlan!.find((d) => d.layer === 'blocks.0.mlp.fc')!;
    expect(fc.gemms).toBe(3); // forward, data gradient, weight gradient
    // The weight gradient's reduction runs over B·T = 128 rows: also a multiple of 32.
    expect(fc.rewritten).toBe(3);
    expect(fq.length).toBe(2 * policy.lastPlan!.reduce((a, d) => a + d.rewritten, 0));
    // Every fake_quant sits right before the GEMM that reads it.
    for (const n of fq) {
      const at = g.nodes.indexOf(n);
      const reader = g.nodes.slice(at + 1).find((m) => m.inputs.includes(n.outputs[0]!))!;
      expect(['matmul', 'fake_quant']).toContain(reader.op);
    }
  });

  it('emulated MXFP8 and NVFP4 training still learns the synthetic corpus', () => {
    const entropy = new MarkovCorpus({ vocab: 16, seed: 1 }).entropyRate();
    const bf16 = train(undefined, 100);
    for (const recipe of ['mxfp8', 'nvfp4'] as const) {
      const low = train(new PrecisionPolicy({ recipe, keepFirstLast: false, minWeightElements: 0 }), 100);
      expect(low, recipe).toBeLessThan(entropy * 1.15);
      expect(Math.abs(low - bf16), recipe).toBeLessThan(0.1);
      expect(low, recipe).not.toBe(bf16); // the quantization did change the numbers
    }
  }, 120_000);

  it('knows where a recipe would run natively, and refuses unknown recipes', () => {
    expect(support('mxfp8', '9.0')).toBe('emulated');
    expect(support('mxfp8', '10.0')).toBe('native');
    expect(support('fp8-tensorwise', '9.0')).toBe('native');
    expect(support('nvfp4', null)).toBe('emulated');
    // cuBLASLt's blockwise FP8 scaling modes run on Hopper only (cuBLAS 12.9+).
    expect(support('fp8-blockwise', '9.0')).toBe('native');
    expect(support('fp8-blockwise', '8.9')).toBe('emulated');
    expect(support('fp8-blockwise', '10.0')).toBe('emulated');
    expect(errorOf(() => new PrecisionPolicy({ recipe: 'fp6' as never })).message).toMatch(/Expected a recipe/);
  });

  it('fp8-blockwise: 1×128 blocks for activations and gradients, 128×128 tiles for a weight whose dims allow', () => {
    // On the tiny GPT (width 32) a forward GEMM reduces over 32: not a whole block of 128.
    const tiny = new PrecisionPolicy({ recipe: 'fp8-blockwise', keepFirstLast: false, minWeightElements: 0 });
    tiny.run(step());
    console.log(`The 'fp8-blockwise' policy on the tiny GPT's training step:\n${PrecisionPolicy.table(tiny.lastPlan!, '9.0')}`);
    const fc = tiny.lastPlan!.find((d) => d.layer === 'blocks.0.mlp.fc')!;
    expect(fc).toMatchObject({ recipe: 'fp8-blockwise', gemms: 3, rewritten: 2 });
    expect(fc.reason).toMatch(/weight in 1×128 blocks .*; a GEMM with reduction length 32 \(not a multiple of 128\) stays BF16/);
    expect(PrecisionPolicy.table(tiny.lastPlan!, '9.0')).toMatch(/blocks\.0\.mlp\.fc\s+linear\s+128×32\s+fp8-blockwise\s+emulated \(native-capable\)/);

    // Width 128: every weight tiles.
    const wide = () => new GPT({ vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 128 });
    const policy = new PrecisionPolicy({ recipe: 'fp8-blockwise', keepFirstLast: false, minWeightElements: 0 });
    const g = policy.run(step(wide())).verify();
    const producer = (id: number) => g.nodes.find((n) => n.outputs.includes(id));
    const formats = (n: NodeDecl) => n.inputs.map((id) => producer(id)).map((p) => (p?.op === 'fake_quant' ? (p.attrs.format as string) : 'bf16'));
    const gemms = g.nodes.filter((n) => n.op === 'matmul' && n.scope === 'blocks.1.mlp.fc');
    expect(gemms.length).toBe(3);
    const [fwd, ...bwd] = gemms;
    expect(formats(fwd!)).toEqual(['fp8-block1x128', 'fp8-block128x128']); // x · Wᵀ
    const dgrad = bwd.find((n) => formats(n).includes('fp8-block128x128'))!;
    expect(formats(dgrad)).toEqual(['fp8-block1x128', 'fp8-block128x128']); // dy · W
    const wgrad = bwd.find((n) => n !== dgrad)!;
    expect(formats(wgrad)).toEqual(['fp8-block1x128', 'fp8-block1x128']); // dyᵀ · x, over B·T = 128
    expect(policy.lastPlan!.find((d) => d.layer === 'blocks.1.mlp.fc')).toMatchObject({ rewritten: 3, reason: 'policy recipe; weight in 128×128 tiles' });
    // Two steps train in emulated blockwise FP8, not quite as in f32.
    const corpus = new MarkovCorpus({ vocab: 16, seed: 2 });
    const batches = [corpus.batch(B, T), corpus.batch(B, T)];
    const losses = (precision?: PrecisionPolicy) => {
      const exe = compile(step(wide()), { seed: 1, precision });
      const out = batches.map((b, s) => exe.run({ ...b, lr: Float32Array.of(1e-3), step: Float32Array.of(s + 1) }).loss![0]!);
      exe.dispose();
      return out;
    };
    const low = losses(policy.clone());
    const ref = losses();
    expect(low.every(Number.isFinite)).toBe(true);
    low.forEach((l, i) => expect(Math.abs(l - ref[i]!)).toBeLessThan(0.05));
    expect(low).not.toEqual(ref);
  }, 60_000);

  it('numerics: a quant_stats output beside every fake_quant, gathered per layer', () => {
    const policy = new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false, minWeightElements: 0, numerics: true });
    const exe = compile(step(), { seed: 1, precision: policy });
    const fq = exe.graph.nodes.filter((n) => n.op === 'fake_quant');
    const qs = exe.graph.nodes.filter((n) => n.op === 'quant_stats');
    const names = Object.keys(exe.graph.outputs).filter((k) => k.startsWith('numerics/'));
    expect(names.length).toBe(2 * policy.lastPlan!.reduce((a, d) => a + d.rewritten, 0));
    expect(policy.lastNumerics.map((n) => n.name)).toEqual(names);
    expect(names).toContain('numerics/blocks.0.mlp.fc/0/a'); // forward: x
    expect(names).toContain('numerics/blocks.0.mlp.fc/2/b'); // the third GEMM of the layer
    // Each stats node reads what a fake_quant reads, with the same attributes.
    for (const n of qs) expect(fq.some((f) => f.inputs[0] === n.inputs[0] && JSON.stringify(f.attrs) === JSON.stringify(n.attrs))).toBe(true);
    expect(qs.length).toBeGreaterThan(0);
    const corpus = new MarkovCorpus({ vocab: 16, seed: 1 });
    const out = exe.run({ ...corpus.batch(B, T), lr: Float32Array.of(1e-3), step: Float32Array.of(1) });
    exe.dispose();
    const layers = PrecisionPolicy.numerics(out);
    expect(layers.map((l) => l.layer)).toEqual(policy.lastPlan!.filter((d) => d.rewritten > 0).map((d) => d.layer));
    for (const l of layers) {
      const own = names.filter((k) => k.startsWith(`numerics/${l.layer}/`)).map((k) => out[k]!);
      expect(l.operands).toBe(own.length);
      expect(l.amax).toBe(Math.max(...own.map((v) => v[0]!)));
      expect(l.saturated).toBe(Math.max(...own.map((v) => v[3]!)));
      expect(l.log2ScaleMin).toBe(Math.min(...own.map((v) => v[4]!)));
      expect(l.amax).toBeGreaterThan(0);
      expect(l.nonfinite).toBe(0);
      expect(Number.isInteger(l.log2ScaleMin) && l.log2ScaleMin <= l.log2ScaleMax).toBe(true); // MX scales are powers of two
    }
    const table = PrecisionPolicy.numericsTable(out);
    console.log(`Numerics of one emulated MXFP8 step of the tiny GPT:\n${table}`);
    expect(table.split('\n')[0]).toMatch(/^layer\s+operands\s+amax\s+scales\s+underflow\s+saturated\s+non-finite$/);
    expect(table).toMatch(/blocks\.1\.mlp\.proj\s+6\s+/);
    expect(errorOf(() => PrecisionPolicy.numerics({ 'numerics/x/0/a': new Float32Array(3) })).message).toMatch(/Expected 6 values .* for output 'numerics\/x\/0\/a'/);
  });

  it('refuses bad options with what was expected', () => {
    const msg = (o: object) => errorOf(() => new PrecisionPolicy({ recipe: 'mxfp8', ...o })).message;
    expect(msg({ numerics: 'yes' })).toBe('Expected a boolean for numerics but received "yes"');
    expect(msg({ minWeightElements: -1 })).toBe('Expected a non-negative integer for minWeightElements but received -1');
    expect(msg({ scaleMode: 'ceil' })).toBe('Expected \'floor\' or \'rceil\' for scaleMode but received "ceil"');
    expect(msg({ rules: { match: 'a', recipe: 'bf16' } })).toMatch(/Expected an array of \{ match, recipe \} for the policy rules/);
    expect(msg({ rules: [{ match: 5, recipe: 'bf16' }] })).toMatch(/Expected a RegExp or a layer-name prefix for a policy rule's match but received 5/);
    expect(msg({ rules: [{ match: 'a', recipe: 'fp4' }] })).toMatch(/Expected a recipe \(bf16, fp8-tensorwise, fp8-blockwise, mxfp8, nvfp4\) in a policy rule but received "fp4"/);
    expect(errorOf(() => new PrecisionPolicy({ recipe: 'mxfp8' }).addRule({ match: /x/, recipe: 'fp16' as never })).message).toMatch(/in a policy rule but received "fp16"/);
  });
});

// A model none of whose names the policy could guess: stages named stage_a.. (not blocks.N), a
// lookup table (not wte), a SwiGLU MLP or an MoE as the feed-forward, and an output layer called
// readout, or a tied one called unembed.
const [V, D] = [16, 32];
class Stage extends Module {
  readonly pre = this.addChild('pre', new RMSNorm(D));
  readonly mixer = this.addChild('mixer', new CausalSelfAttention(D, 2));
  readonly post = this.addChild('post', new RMSNorm(D));
  readonly ffn: MLP | MoE;
  constructor(moe: boolean) {
    super();
    this.ffn = this.addChild('ffn', moe ? new MoE(D, 2 * D, { experts: 2, topK: 1 }) : new MLP(D, 4 * D, 'swiglu'));
  }
  forward(x: Sym): Sym {
    return this.scope(() => {
      const h = add(x, this.mixer.forward(this.pre.forward(x)));
      const f = this.ffn instanceof MoE ? this.ffn.forward(this.post.forward(h)).y : this.ffn.forward(this.post.forward(h));
      return add(h, f);
    });
  }
}
class Unembed extends Module {
  constructor(readonly table: Embedding) {
    super();
  }
  forward(x: Sym): Sym {
    return this.scope(() => matmul(x, this.table.weight('weight'), { transB: true }));
  }
}
class Tower extends Module {
  readonly lookup = this.addChild('lookup', new Embedding(V, D));
  readonly stages = ['a', 'b', 'c'].map((k) => this.addChild(`stage_${k}`, new Stage(k === 'b')));
  readonly norm = this.addChild('norm', new RMSNorm(D));
  readonly out: Linear | Unembed;
  constructor(tied: boolean) {
    super();
    this.out = tied ? this.addChild('unembed', new Unembed(this.lookup)) : this.addChild('readout', new Linear(D, V, { bias: false }));
  }
  forward({ tokens, targets }: Record<string, Sym>): Record<string, Sym> {
    return this.scope(() => {
      let x = this.lookup.forward(tokens!);
      for (const s of this.stages) x = s.forward(x);
      const logits = this.out.forward(this.norm.forward(x));
      return { loss: crossEntropy(reshape(logits, [B * T, V]), reshape(targets!, [B * T])) };
    });
  }
}

describe('PrecisionPolicy on a dropless MoE GPT', () => {
  const moeStep = (nEmbd: number, activation: 'gelu' | 'swiglu') =>
    step(new GPT({ vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd, moe: { experts: 4, topK: 2, routing: 'dropless', activation } }));

  it('keeps the router BF16 and quantizes the expert GEMMs (forward, input and weight gradients) along their reduction axes', () => {
    for (const activation of ['gelu', 'swiglu'] as const) {
      const policy = new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false, minWeightElements: 0 });
      const g = policy.run(moeStep(32, activation)).verify();
      const by = new Map(policy.lastPlan!.map((d) => [d.layer, d]));
      const mats = activation === 'swiglu' ? 3 : 2;
      for (const b of [0, 1]) {
        expect(by.get(`blocks.${b}.moe.router`), activation).toMatchObject({ kind: 'router', recipe: 'bf16', rewritten: 0 });
        // Per weight: the forward GEMM, the input gradient's and the weight gradient's.
        expect(by.get(`blocks.${b}.moe`), activation).toMatchObject({ kind: 'experts', weight: [4, 32, 128], recipe: 'mxfp8', gemms: 3 * mats, rewritten: 3 * mats, native: 0 });
      }
      // Each grouped GEMM reads quantized operands along its reduction axis, its offsets as they were.
      const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
      const grouped = g.nodes.filter((n) => n.op === 'grouped_matmul' || n.op === 'grouped_matmul_wgrad');
      expect(grouped.length).toBe(2 * 3 * mats);
      for (const n of grouped) {
        const [a, w, offsets] = n.inputs.map((i) => producer.get(i));
        const want = n.op === 'grouped_matmul_wgrad' ? [0, 0] : [-1, n.attrs.transposeW ? -1 : -2];
        expect([a?.op, w?.op, a?.attrs.axis, w?.attrs.axis], `${n.op} ${n.phase}`).toEqual(['fake_quant', 'fake_quant', ...want]);
        expect(offsets?.op).toBe('moe_sort');
      }
    }
  });

  it('fp8-blockwise: each expert\'s weight in 128 × 128 tiles; emulated MXFP8 training of the MoE runs and differs from BF16', () => {
    const policy = new PrecisionPolicy({ recipe: 'fp8-blockwise', keepFirstLast: false, minWeightElements: 0 });
    const g = policy.run(moeStep(128, 'gelu')).verify();
    const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
    const fwd = g.nodes.filter((n) => n.op === 'grouped_matmul' && n.phase === 'forward');
    for (const n of fwd) expect(producer.get(n.inputs[1]!)!.attrs.format).toBe('fp8-block128x128');
    expect(policy.lastPlan!.find((d) => d.layer === 'blocks.0.moe')!.reason).toMatch(/weight in 128×128 tiles/);
    // Three steps; the losses (bf16 steps apart) and the experts' weights after them.
    const train = (p?: PrecisionPolicy) => {
      const corpus = new MarkovCorpus({ vocab: 16, seed: 1 });
      const exe = compile(moeStep(32, 'swiglu'), { seed: 1, precision: p });
      const losses = Array.from({ length: 3 }, (_, s) => exe.run({ ...corpus.batch(B, T), lr: Float32Array.of(1e-3), step: Float32Array.of(s + 1) }).loss![0]!);
      const w1 = exe.get('blocks.1.moe.w1');
      exe.dispose();
      return { losses, w1 };
    };
    const bf16 = train();
    const low = train(new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false, minWeightElements: 0 }));
    expect(low.losses.every(Number.isFinite)).toBe(true);
    for (let s = 0; s < 3; s++) expect(Math.abs(low.losses[s]! - bf16.losses[s]!)).toBeLessThan(0.1);
    // The quantized expert GEMMs changed the experts' updates, and not by much.
    let diff = 0;
    for (let i = 0; i < low.w1.length; i++) diff = Math.max(diff, Math.abs(low.w1[i]! - bf16.w1[i]!));
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThan(1e-2);
  }, 120_000);
});

describe('PrecisionPolicy: the native FP8 grouped GEMM of a MoE', () => {
  const moeStep = (activation: 'gelu' | 'swiglu') =>
    step(new GPT({ vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 128, moe: { experts: 4, topK: 2, routing: 'dropless', activation } }));

  it('fp8-blockwise: the forward and data-gradient expert GEMMs become quantize → grouped_scaled_matmul, the weight gradients quantize_kgrouped → grouped_scaled_matmul_wgrad', () => {
    for (const activation of ['gelu', 'swiglu'] as const) {
      // The rewrite itself: the GELU and SwiGLU epilogue fusions (grouped_scaled_matmul_act.test.ts) off.
      const policy = new PrecisionPolicy({ recipe: 'fp8-blockwise', keepFirstLast: false, minWeightElements: 0, native: true, fuseEpilogues: false });
      const g = policy.run(moeStep(activation)).verify();
      const mats = activation === 'swiglu' ? 3 : 2;
      const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
      const native = g.nodes.filter((n) => n.op === 'grouped_scaled_matmul');
      // Every forward expert GEMM and every data gradient of both layers.
      expect(native.filter((n) => n.phase === 'forward').length, activation).toBe(2 * mats);
      expect(native.filter((n) => n.phase === 'backward').length, activation).toBe(2 * mats);
      expect(native.length).toBe(4 * mats);
      for (const n of native) {
        const [xq, xs, wq, ws, offsets] = n.inputs.map((i) => producer.get(i));
        expect([xq?.op, xq?.attrs.format, xq?.attrs.direction], 'x').toEqual(['quantize', 'fp8-block1x128', 'rowwise']);
        expect(xs).toBe(xq);
        // The forward's w [E, K, N] quantized columnwise into [E, N, K]; the data gradient's w is
        // [E, N, K] already (transposeW), quantized rowwise: either way [E, Nout, Kred] codes.
        expect([wq?.op, wq?.attrs.format, wq?.attrs.direction], 'w').toEqual(['quantize', 'fp8-block128x128', n.phase === 'forward' ? 'columnwise' : 'rowwise']);
        expect(ws).toBe(wq);
        expect(offsets?.op).toBe('moe_sort');
        const [R, Kred] = g.values[n.inputs[0]!]!.type.shape;
        const [, Nout, Kw] = g.values[n.inputs[2]!]!.type.shape;
        expect(Kw).toBe(Kred);
        expect(g.values[n.outputs[0]!]!.type.shape).toEqual([R, Nout]);
      }
      // Every weight gradient: k-grouped codes and scales of x and dy, each quantized with the GEMM's
      // offsets and experts, the node's output (dw [E, K, N], bf16) as it was.
      expect(g.nodes.filter((n) => n.op === 'grouped_matmul' || n.op === 'grouped_matmul_wgrad' || n.op === 'fake_quant')).toEqual([]);
      const wgrad = g.nodes.filter((n) => n.op === 'grouped_scaled_matmul_wgrad');
      expect(wgrad.length, activation).toBe(2 * mats);
      for (const n of wgrad) {
        expect(n.phase).toBe('backward');
        const [xq, xs, gq, gs, offsets] = n.inputs.map((i) => producer.get(i));
        expect([xq?.op, gq?.op, xs, gs]).toEqual(['quantize_kgrouped', 'quantize_kgrouped', xq, gq]);
        expect(offsets?.op).toBe('moe_sort');
        for (const q of [xq!, gq!]) expect([q.inputs[1], q.attrs.experts, q.phase]).toEqual([n.inputs[4], 4, 'backward']);
        expect(n.attrs).toEqual({ experts: 4, outDtype: 'bf16' });
        const [K, N] = [g.values[xq!.inputs[0]!]!.type.shape[1], g.values[gq!.inputs[0]!]!.type.shape[1]];
        expect(g.values[n.outputs[0]!]!.type).toEqual({ shape: [4, K, N], dtype: 'bf16' });
        expect(g.values[n.inputs[0]!]!.type.shape).toEqual([K, 128 * (256 / 128 + 4)]); // R = B·T·topK = 256
      }
      for (const b of [0, 1]) {
        const d = policy.lastPlan!.find((x) => x.layer === `blocks.${b}.moe`)!;
        expect(d, activation).toMatchObject({ kind: 'experts', recipe: 'fp8-blockwise', gemms: 3 * mats, rewritten: 3 * mats, native: 3 * mats });
        expect(d.reason).not.toMatch(/stays emulated/);
      }
    }
    // A weight gradient whose dy is f16 (the k-grouped path is for bf16 / f32 operands) stays
    // emulated, and the plan says why.
    const half = moeStep('gelu');
    for (const n of half.nodes.filter((m) => m.op === 'grouped_matmul_wgrad')) half.values[n.inputs[1]!]!.type = { ...half.values[n.inputs[1]!]!.type, dtype: 'f16' };
    const p16 = new PrecisionPolicy({ recipe: 'fp8-blockwise', keepFirstLast: false, minWeightElements: 0, native: true });
    p16.run(half);
    const d16 = p16.lastPlan!.find((x) => x.layer === 'blocks.0.moe')!;
    expect(d16).toMatchObject({ gemms: 6, rewritten: 6, native: 4 });
    expect(d16.reason).toMatch(/a backward GEMM stays emulated: its operands are bf16 and f16 \(the k-grouped quantizer is used on bf16 or f32\)/);
    // The rewritten step interpreted (the CPU references, FP8 codes included) beside the emulated one,
    // only the experts in FP8 (so block 0 routes alike in both): the same quantized operands, summed
    // in float64 or by the BF16 GEMM. Block 0's forward expert GEMMs agree closely with their
    // emulated twins (same order of nodes in both graphs; block 1 may route a near-tie differently),
    // and so do the losses. The epilogue fusion off, so that each forward expert GEMM writes its own
    // product (the fused SwiGLU GEMM gives the same bits: grouped_scaled_matmul_act.test.ts).
    const run = (native: boolean) => {
      const rules = [{ match: /^(?!blocks\.\d+\.moe$)/, recipe: 'bf16' as const }];
      const g = new PrecisionPolicy({ recipe: 'fp8-blockwise', rules, keepFirstLast: false, minWeightElements: 0, native, fuseEpilogues: false }).run(moeStep('swiglu')).verify();
      const bind: Record<string, Float32Array | Int32Array> = { ...new MarkovCorpus({ vocab: 16, seed: 3 }).batch(B, T), lr: Float32Array.of(1e-3), step: Float32Array.of(1) };
      for (const [name, id] of Object.entries(g.params)) bind[name] = initialValues(g.init[name] ?? { dist: 'zeros' }, numel(g.values[id]!.type.shape), 7, name) as Float32Array;
      for (const [name, id] of Object.entries(g.state)) bind[name] = new Float32Array(numel(g.values[id]!.type.shape));
      const vals = interpret(g, bind);
      const products = g.nodes.filter((n) => n.phase === 'forward' && (n.op === 'grouped_scaled_matmul' || n.op === 'grouped_matmul')).map((n) => vals[n.outputs[0]!]!);
      // Each native weight gradient with its operands: x and dy as the quantizers read them, their scales, offsets.
      const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
      const wgrads = g.nodes
        .filter((n) => n.op === 'grouped_scaled_matmul_wgrad')
        .map((n) => {
          const [xq, gq] = [producer.get(n.inputs[0]!)!, producer.get(n.inputs[2]!)!];
          const [K, N] = [g.values[xq.inputs[0]!]!.type.shape[1]!, g.values[gq.inputs[0]!]!.type.shape[1]!];
          return { K, N, x: vals[xq.inputs[0]!]!, dy: vals[gq.inputs[0]!]!, xs: vals[n.inputs[1]!]!, gs: vals[n.inputs[3]!]!, offsets: vals[n.inputs[4]!]!, dw: vals[n.outputs[0]!]! };
        });
      return { loss: vals[g.outputs.loss!]![0]!, products, wgrads };
    };
    const [nat, emu] = [run(true), run(false)];
    expect(nat.products.length).toBe(2 * 3);
    nat.products.slice(0, 3).forEach((p, i) => {
      const want = emu.products[i]!;
      let [num, den] = [0, 0];
      for (let j = 0; j < want.length; j++) [num, den] = [num + (p[j]! - want[j]!) ** 2, den + want[j]! ** 2];
      expect(den, `product ${i} is not trivially zero`).toBeGreaterThan(0);
      // gate and up: the same FP8 operands, two bf16 roundings apart; down (i = 2): its input h already
      // differs by those, and some of its FP8 codes round the other way (an FP8 step is 2^-3).
      expect(Math.sqrt(num / den), `forward expert GEMM ${i}`).toBeLessThan(i < 2 ? 1e-2 : 5e-2);
    });
    expect(Math.abs(nat.loss - emu.loss), `${nat.loss} vs ${emu.loss}`).toBeLessThan(0.01);
    // Each native weight gradient against the float64 x_eᵀ dy_e of the values it was given, within
    // the FP8 error bound (grouped_scaled_matmul_wgrad.test.ts derives it): |Q(v) − v| <= (2^-4 +
    // 2^-22)·|v| + 2^-10·s for a value v in a block of scale s, products erring by ex·|dy| + |x|·eg +
    // ex·eg, and the bf16 output's rounding 2^-9 of the result.
    expect(nat.wgrads.length).toBe(2 * 3);
    expect(emu.wgrads.length).toBe(0);
    for (const [i, w] of nat.wgrads.entries()) {
      const E = w.offsets.length - 1;
      const P = w.xs.length / w.K * 128;
      const q = paddedOffsets(w.offsets, E);
      const err = (v: number, s: number) => (2 ** -4 + 2 ** -22) * Math.abs(v) + 2 ** -10 * s;
      let [num, den] = [0, 0];
      for (let e = 0; e < E; e++)
        for (let k = 0; k < w.K; k++)
          for (let n = 0; n < w.N; n++) {
            let [exact, bound] = [0, 0];
            for (let r = w.offsets[e]!; r < w.offsets[e + 1]!; r++) {
              const [xv, gv] = [w.x[r * w.K + k]!, w.dy[r * w.N + n]!];
              const blk = Math.floor((q[e]! + r - w.offsets[e]!) / 128);
              const [ex, eg] = [err(xv, w.xs[blk * w.K + k]!), err(gv, w.gs[blk * w.N + n]!)];
              exact += xv * gv;
              bound += ex * Math.abs(gv) + Math.abs(xv) * eg + ex * eg;
            }
            const got = w.dw[(e * w.K + k) * w.N + n]!;
            const tol = bound * (1 + 2 ** -8) + 2 ** -9 * Math.abs(exact) + 1e-12 * bound;
            if (!(Math.abs(got - exact) <= tol)) expect(Math.abs(got - exact), `weight gradient ${i}: dw[${e}, ${k}, ${n}] = ${got} against ${exact}`).toBeLessThanOrEqual(tol);
            [num, den] = [num + (got - exact) ** 2, den + exact ** 2];
          }
      expect(den, `weight gradient ${i} is not trivially zero`).toBeGreaterThan(0);
      expect(Math.sqrt(num / den), `weight gradient ${i}: FP8's error is there, and small`).toBeGreaterThan(0);
      expect(Math.sqrt(num / den), `weight gradient ${i}`).toBeLessThan(0.1);
      expect(P).toBe(128 * (256 / 128 + E));
    }
  }, 120_000);
});

describe('PrecisionPolicy on a model named its own way', () => {
  it('finds the head, and the first and last block by depth, from the graph alone', () => {
    for (const tied of [false, true]) {
      const g = trainingStep(autocast(capture(new Tower(tied), { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } })));
      const policy = new PrecisionPolicy({ recipe: 'mxfp8', minWeightElements: 0 });
      policy.run(g);
      const by = new Map(policy.lastPlan!.map((d) => [d.layer, d]));
      const head = tied ? 'unembed' : 'readout';
      expect(by.get(head), head).toMatchObject({ kind: 'head', recipe: 'bf16', reason: 'sensitive: output head', rewritten: 0 });
      for (const layer of ['stage_a.mixer.qkv', 'stage_a.mixer.proj', 'stage_a.ffn.fc', 'stage_a.ffn.up', 'stage_a.ffn.proj']) {
        expect(by.get(layer), layer).toMatchObject({ kind: 'linear', recipe: 'bf16', reason: 'sensitive: first block', rewritten: 0 });
      }
      for (const layer of ['stage_c.mixer.qkv', 'stage_c.ffn.up', 'stage_c.ffn.proj']) expect(by.get(layer)!.reason, layer).toBe('sensitive: last block');
      // The middle stage, its MoE's experts included, takes the recipe; the MoE's router stays BF16
      // (found by its role: its product feeds the routing).
      for (const layer of ['stage_b.mixer.qkv', 'stage_b.ffn']) expect(by.get(layer), layer).toMatchObject({ recipe: 'mxfp8', reason: expect.stringMatching(/^policy recipe/) });
      expect(by.get('stage_b.ffn.router')).toMatchObject({ kind: 'router', recipe: 'bf16', reason: 'sensitive: MoE router (routing stays BF16)', rewritten: 0 });
      expect(by.get('stage_b.mixer')).toMatchObject({ kind: 'attention', recipe: 'bf16' });
      expect(by.get('stage_b.ffn')!.rewritten).toBeGreaterThan(0);
      // Rules still match the user's own names, ahead of everything else.
      const ruled = new PrecisionPolicy({ recipe: 'mxfp8', minWeightElements: 0, rules: [{ match: head, recipe: 'nvfp4' }, { match: /^stage_a\.ffn/, recipe: 'mxfp8' }] }).plan(g);
      expect(ruled.find((d) => d.layer === head)).toMatchObject({ kind: 'head', recipe: 'nvfp4' });
      expect(ruled.find((d) => d.layer === 'stage_a.ffn.fc')!.recipe).toBe('mxfp8');
    }
  });
});

describe('gemmRoles', () => {
  it('finds a MoE router by its role: its product feeds moe_route, or a softmax that feeds topk (through casts and reshapes)', () => {
    for (const style of ['moe_route', 'softmax-topk', 'neither'] as const) {
      const b = new GraphBuilder();
      const x = b.input('x', [6, 8]);
      const wr = b.param('router', [8, 4], 'f32', { dist: 'normal', scale: 0.1 });
      const w = b.param('proj', [8, 8], 'f32', { dist: 'normal', scale: 0.1 });
      const logits = reshape(cast(matmul(x, wr), 'bf16'), [6, 4]);
      const other = matmul(x, w);
      if (style === 'moe_route') b.output('w', moeRoute(logits, 2)[1]);
      else if (style === 'softmax-topk') b.output('w', topk(softmax(logits), 2)[0]);
      else b.output('w', softmax(logits));
      b.output('o', other);
      const roles = gemmRoles(b.graph);
      const names = [...roles.routers].map((n) => n.inputs.map((i) => roles.paramOf(i)).find((p) => p !== null));
      expect(names, style).toEqual(style === 'neither' ? [] : ['router']);
    }
  });
});

describe('fake_quant', () => {
  it('is quantize → dequantize of each line along the axis, rowwise or columnwise', () => {
    const [R, C] = [3, 64];
    const x = Float32Array.from({ length: R * C }, () => Math.random() * 4 - 2);
    const run = (axis: number, shape: number[], data: Float32Array) => {
      const def = getOp('fake_quant');
      const b = { shape, dtype: 'f32' as const };
      void def;
      const g = capture({ forward: ({ x: s }) => ({ y: s!.builder.op1('fake_quant', [s!], { format: 'mxfp8-e4m3', axis }) }) }, { x: b });
      return interpret(g, { x: data })[g.outputs.y!]!;
    };
    const rows = run(-1, [R, C], x);
    for (let r = 0; r < R; r++) expect(Array.from(rows.subarray(r * C, r * C + C))).toEqual(Array.from(dequantize(quantize(x.subarray(r * C, r * C + C), { format: 'mxfp8-e4m3' }))));
    // Columnwise on the transpose equals rowwise on the original.
    const xt = new Float32Array(C * R);
    for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) xt[c * R + r] = x[r * C + c]!;
    const cols = run(0, [C, R], xt);
    for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) expect(cols[c * R + r]).toBe(rows[r * C + c]);
    expect(errorOf(() => run(-1, [2, 48], new Float32Array(96))).message).toMatch(/divisible by mxfp8-e4m3's block of 32/);
  });
});
