// Issue 20 (bad input never corrupts, hangs or lies), @deepwell/nn: every size bounded before
// anything is built or looped over, every option checked, no raw TypeError. Random inputs per run.
import { errorOf } from '../../../testing/errors.js';
import { capture, compile } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { CausalSelfAttention, Embedding, GPT, GPTDecode, Generator, LayerNorm, Linear, MarkovCorpus, MLP, MoE, Module, RMSNorm, gptParameterCount, sampleToken, type GPTConfig } from '../src/index.js';

const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const tiny = (extra: Partial<GPTConfig> = {}): GPTConfig => ({ vocabSize: rand(5, 13), blockSize: 8, nLayer: rand(1, 2), nHead: 2, nEmbd: 8, ...extra });
/** Milliseconds `fn` takes. */
const timed = (fn: () => unknown) => {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
};

describe('GPT: sizes refused before anything is built', () => {
  it('refuses nLayer 2^31 and 1e6 at once (before: built blocks until V8 ran out of heap)', () => {
    for (const nLayer of [2 ** 31, 1e6, 1025]) {
      let e;
      expect(timed(() => (e = errorOf(() => new GPT({ ...tiny(), nLayer }))))).toBeLessThan(500);
      expect(e!.code).toBe('INVALID_ARGUMENT');
      expect(e!.message).toMatch(/Expected an integer in \[1, 1024\] for GPT config nLayer/);
    }
  });

  it('works out the parameter count from the config and refuses one past the limit, saying how many and how big', () => {
    const c = { vocabSize: 50304, blockSize: 1024, nLayer: 200, nHead: 16, nEmbd: 8192 + 1024 * rand(0, 4) };
    let e;
    expect(timed(() => (e = errorOf(() => new GPT(c))))).toBeLessThan(500);
    expect(e!.message).toMatch(/^Expected at most 34,359,738,368 parameters \(137\.4 GB as f32, what one GPU holds\) for GPT config but received one of [\d,]+ parameters \([\d,.]+ GB as f32\); nothing was built$/);
    const huge = errorOf(() => new GPT({ vocabSize: 2 ** 24, blockSize: 2 ** 24, nLayer: 1, nHead: 1, nEmbd: 2 ** 24, mlpHidden: 4 }));
    expect(huge.message).toMatch(/parameters/);
    for (const [k, v] of [['vocabSize', 2 ** 24 + 1], ['blockSize', 2 ** 31], ['nEmbd', 2 ** 32], ['mlpHidden', 2 ** 30], ['nHead', 0], ['nKvHead', 3], ['mlpHidden', -1], ['mlpHidden', 1.5]] as const) {
      expect(errorOf(() => new GPT({ ...tiny(), [k]: v })).code, k).toBe('INVALID_ARGUMENT');
    }
  });

  it('counts parameters from the config exactly as the built model has them', () => {
    for (let i = 0; i < 12; i++) {
      const nLayer = rand(1, 4);
      const moe = Math.random() < 0.5
        ? { experts: rand(2, 4), topK: 1, everyNth: rand(1, nLayer), activation: Math.random() < 0.5 ? ('gelu' as const) : ('swiglu' as const), sharedExperts: rand(0, 2), routing: Math.random() < 0.5 ? ('capacity' as const) : ('dropless' as const) }
        : undefined;
      const c: GPTConfig = { ...tiny({ nLayer }), nHead: 4, nEmbd: 16, nKvHead: [1, 2, 4][rand(0, 2)], mlpHidden: rand(4, 40), activation: Math.random() < 0.5 ? 'gelu' : 'swiglu', norm: Math.random() < 0.5 ? 'layernorm' : 'rmsnorm', tiedEmbeddings: Math.random() < 0.5, bias: Math.random() < 0.5, ...(moe ? { moe } : {}) };
      const m = new GPT(c);
      expect(gptParameterCount(c)).toBe(m.parameterCount());
      // A model's config (every default filled in) builds the same model.
      expect(new GPT(m.config).parameterCount()).toBe(m.parameterCount());
    }
    expect(gptParameterCount('gpt2-small')).toBe(124475904);
    expect(gptParameterCount(new GPT('gpt2-small').config)).toBe(124475904);
  });

  it('refuses bad MoE options: capacityFactor <= 0, everyNth 0 or 1.5 or past nLayer, auxLossWeight Infinity, NaN or negative (before: accepted)', () => {
    const bad = [{ capacityFactor: 0 }, { capacityFactor: -1 }, { capacityFactor: NaN }, { everyNth: 0 }, { everyNth: 1.5 }, { everyNth: 3 }, { auxLossWeight: Infinity }, { auxLossWeight: NaN }, { auxLossWeight: -0.01 }, { experts: 2 ** 31 }];
    for (const extra of bad) {
      const e = errorOf(() => new GPT({ ...tiny({ nLayer: 2 }), moe: { experts: 4, topK: 2, ...extra } }));
      expect(e.code, JSON.stringify(extra)).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(new RegExp(Object.keys(extra)[0]!));
    }
    expect(errorOf(() => new GPT({ ...tiny(), moe: 5 as never })).message).toMatch(/Expected \{ experts, topK, \.\.\. \} \(or null\) for GPT config moe but received 5/);
    expect(errorOf(() => new MoE(8, 16, { experts: 4, topK: 2, capacityFactor: 0 })).message).toMatch(/capacityFactor of MoE/);
    expect(errorOf(() => new MoE(8, 16, { experts: 4, topK: 2, auxLossWeight: 1 } as never)).message).toMatch(/received 'auxLossWeight'/);
    expect(new GPT({ ...tiny({ nLayer: 2 }), moe: { experts: 4, topK: 2, everyNth: 2, auxLossWeight: 0, capacityFactor: 4 } }).blocks[1]!.mlp).toBeInstanceOf(MoE);
  });

  it('refuses wrong types for the boolean and kind options (before: truthy strings were taken as true)', () => {
    for (const [k, v] of [['bias', 'no'], ['tiedEmbeddings', 0], ['fusedAttention', 'yes'], ['attention', { kind: 'sparsek', topK: 5 }], ['attention', { kind: 'sparsek', window: 3, topK: 2 }], ['attention', 'dense']] as const) {
      expect(errorOf(() => new GPT({ ...tiny(), [k]: v } as GPTConfig)).code, k).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('layers: sizes, eps, activations and options', () => {
  it('LayerNorm and RMSNorm refuse eps <= 0, NaN or below the smallest f32 (before: accepted)', () => {
    for (const eps of [0, -1e-5, NaN, Infinity, 1e-45]) {
      expect(errorOf(() => new LayerNorm(8, eps)).message, String(eps)).toMatch(/for eps of LayerNorm/);
      expect(errorOf(() => new RMSNorm(8, eps)).message, String(eps)).toMatch(/for eps of RMSNorm/);
    }
    expect(new LayerNorm(rand(1, 9), 1e-6).parameterCount()).toBeGreaterThan(0);
  });

  it("MLP refuses an unknown activation, naming the valid ones (before: 'relu' silently built GELU)", () => {
    const e = errorOf(() => new MLP(4, 8, 'relu' as never));
    expect(e.message).toBe(`Expected one of 'gelu', 'swiglu' for activation of MLP but received "relu"`);
    expect(new MLP(4, 8, 'swiglu').up).not.toBeNull();
  });

  it('refuses bad sizes and unknown option keys of every module (before: accepted, or a TypeError later)', () => {
    const cases: (() => unknown)[] = [
      () => new Linear(-1, 3),
      () => new Linear(3, 1.5),
      () => new Linear(2 ** 20, 2 ** 20),
      () => new Linear(3, 4, { baias: true } as never),
      () => new Linear(3, 4, { std: NaN }),
      () => new Linear(3, 4, { bias: 'yes' as never }),
      () => new Embedding(0, 4),
      () => new Embedding(4, 4, { init: 'xavier' as never }),
      () => new Embedding(4, 5, { init: 'sinusoidal' }),
      () => new MLP(4, NaN),
      () => new MLP(4, 8, 'gelu', { residual: 0.1 } as never),
      () => new CausalSelfAttention(8, 3),
      () => new CausalSelfAttention(8, 0),
      () => new CausalSelfAttention(8, 2, { heads: 2 } as never),
      () => new CausalSelfAttention(8, 2, { bias: 1 as never }),
      () => new MoE(8, 16, null as never),
      () => new MoE(8, 16, { experts: 4 } as never),
      () => new GPTDecode({} as never),
      () => new GPTDecode(new GPT(tiny()), { cacheLen: 4 } as never),
      () => new MoE(8, 16, { experts: 4, topK: 2 }).capacity(-1),
    ];
    cases.forEach((fn, i) => expect(errorOf(fn).code, String(i)).toMatch(/INVALID_ARGUMENT|SHAPE_MISMATCH/));
  });

  it('refuses a Module parameter or child that is not one, and forwards outside capture', () => {
    class Bad extends Module {
      constructor(kind: number) {
        super();
        if (kind === 0) this.addParam('w', [2 ** 40, 2 ** 40], { dist: 'zeros' });
        if (kind === 1) this.addParam('w', [2, -1], { dist: 'zeros' });
        if (kind === 2) this.addParam('w', [2], { dist: 'gaussian' as never });
        if (kind === 3) this.addChild('c', {} as never);
        if (kind === 4) this.addParam('', [2], { dist: 'zeros' });
      }
    }
    for (let k = 0; k < 5; k++) expect(errorOf(() => new Bad(k)).code, String(k)).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => new Linear(2, 2).forward(null as never)).message).toMatch(/Expected a symbolic tensor/);
    expect(errorOf(() => capture(new GPT(tiny()), { tokens: { shape: [1, 4], dtype: 'i32' }, targets: { shape: [1, 5], dtype: 'i32' } })).code).toBe('SHAPE_MISMATCH');
  });
});

describe('MarkovCorpus: options and counts bounded', () => {
  it('refuses temperature 0, NaN, negative or Infinity, a junk seed and unknown keys (before: NaN rows, or silently ignored)', () => {
    for (const temperature of [0, NaN, -0.5, Infinity]) expect(errorOf(() => new MarkovCorpus({ vocab: 8, temperature })).message).toMatch(/Markov temperature/);
    for (const seed of [-1, 1.5, NaN, 2 ** 32, '3' as never]) expect(errorOf(() => new MarkovCorpus({ vocab: 8, seed })).message).toMatch(/Markov seed/);
    expect(errorOf(() => new MarkovCorpus({ vocab: 8, temprature: 1 } as never)).message).toMatch(/received 'temprature' \(did you mean temperature\?\)/);
    expect(errorOf(() => new MarkovCorpus(null as never)).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => new MarkovCorpus({ vocab: 4096, order: 2 })).message).toMatch(/transition entries/);
  });

  it('refuses sample(2^31) and huge batches before looping (before: ran for minutes)', () => {
    const c = new MarkovCorpus({ vocab: 8, seed: rand(0, 1000) });
    for (const n of [2 ** 31, 2 ** 27, 1e300]) expect(timed(() => expect(errorOf(() => c.sample(n)).message).toMatch(/sample length/))).toBeLessThan(100);
    expect(errorOf(() => c.batch(2 ** 20, 2 ** 20)).message).toMatch(/at most 67108864 symbols/);
    expect(c.sample(5).length).toBe(5);
  });

  it('gives a stationary distribution that is one (πP = π) at a low temperature (before: 2000 periodic steps, a wrong rate)', () => {
    for (const [vocab, order, temperature] of [[16, 1, 0.05], [12, 2, 0.03], [8, 1, 1e-3]] as const) {
      const c = new MarkovCorpus({ vocab, order, temperature, seed: rand(0, 100) });
      expect(c.transitions.every(Number.isFinite)).toBe(true);
      let pi: Float64Array;
      try {
        pi = c.stationary();
      } catch (e) {
        // A chain split into separate cycles has no one stationary distribution: a typed refusal.
        expect(errorOf(() => { throw e; }).message).toMatch(/several/);
        continue;
      }
      const next = new Float64Array(c.states);
      for (let s = 0; s < c.states; s++) for (let j = 0; j < vocab; j++) next[order === 1 ? j : (s % vocab) * vocab + j]! += pi[s]! * c.transitions[s * vocab + j]!;
      const change = next.reduce((a, x, s) => a + Math.abs(x - pi[s]!), 0);
      expect(change).toBeLessThan(1e-8);
      expect(Number.isFinite(c.entropyRate())).toBe(true);
    }
  });
});

describe('sampling and Generator', () => {
  const logits = () => Float32Array.from({ length: rand(3, 9) }, () => Math.random() * 4 - 2);

  it('sampleToken refuses NaN, negative or missing-as-undefined options, NaN logits and u outside [0, 1) (before: returned undefined or a wrong id)', () => {
    const l = logits();
    const bad: [unknown, unknown, unknown][] = [
      [l, { temperature: NaN, topK: Infinity, topP: 1 }, 0.5],
      [l, { temperature: -1, topK: Infinity, topP: 1 }, 0.5],
      [l, { temperature: 1, topK: 1.5, topP: 1 }, 0.5],
      [l, { temperature: 1, topK: Infinity, topP: NaN }, 0.5],
      [l, { temperature: 1, topk: 3 }, 0.5],
      [l, { temperature: 1 }, 1],
      [l, { temperature: 1 }, NaN],
      [Float32Array.of(1, NaN, 2), { temperature: 1 }, 0.5],
      [[Infinity, 1], { temperature: 0 }, 0.5],
      [[-Infinity, -Infinity], { temperature: 1 }, 0.5],
      [[], { temperature: 1 }, 0.5],
      ['abc', { temperature: 1 }, 0.5],
      [l, null, 0.5],
    ];
    bad.forEach(([a, o, u], i) => expect(errorOf(() => sampleToken(a as never, o as never, u as never)).code, String(i)).toBe('INVALID_ARGUMENT'));
    // Absent options take SampleOptions' defaults (before: topK undefined gave undefined).
    const id = sampleToken(l, {}, Math.random());
    expect(Number.isInteger(id) && id >= 0 && id < l.length).toBe(true);
    expect(sampleToken([-Infinity, 1, -Infinity], { temperature: 0.5 }, 0.99)).toBe(1);
  });

  it('Generator refuses a model that is not a GPT, junk weights and wrong-sized ones up front (before: TypeError, or a failure at generate)', () => {
    const model = new GPT(tiny());
    const exe = compile(capture(model, { tokens: { shape: [1, 4], dtype: 'i32' } }), { seed: rand(0, 99) });
    const w = new Map(exe.parameterNames().map((n: string) => [n, exe.get(n)] as [string, Float32Array]));
    exe.dispose();
    expect(errorOf(() => new Generator({} as never, w)).message).toMatch(/Expected a GPT for the model of Generator/);
    expect(errorOf(() => new Generator(model, null as never)).code).toBe('INVALID_ARGUMENT');
    const short = new Map(w);
    short.set('wte.weight', new Float32Array(3));
    expect(errorOf(() => new Generator(model, short)).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => new Generator(model, w, { device: 'gpu' as never })).message).toMatch(/'cpu' or 'cuda:N'/);
    const g = new Generator(model, w);
    const V = model.config.vocabSize;
    const bad: [unknown, Record<string, unknown>][] = [
      [[1], { maxTokens: 2 ** 31 }],
      [[1], { maxTokens: 1, temperature: NaN }],
      [[1], { maxTokens: 1, topP: NaN }],
      [[1], { maxTokens: 1, seed: 2 ** 32 }],
      [[1], { maxTokens: 1, stop: V }],
      [[1], { maxTokens: 1, stop: -1 }],
      [null, { maxTokens: 1 }],
      [5, { maxTokens: 1 }],
      ['12', { maxTokens: 1 }],
      [{ length: 2 ** 31 }, { maxTokens: 1 }],
      [[1.5], { maxTokens: 1 }],
      [[NaN], { maxTokens: 1 }],
      [[V], { maxTokens: 1 }],
    ];
    bad.forEach(([p, o], i) => expect(errorOf(() => g.generate(p as never, o as never)).code, String(i)).toBe('INVALID_ARGUMENT'));
    const out = g.generate([rand(0, V - 1)], { maxTokens: 3, seed: rand(0, 99) });
    expect(out.length).toBe(3);
    expect(out.every((t) => Number.isInteger(t) && t >= 0 && t < V)).toBe(true);
    g.dispose();
    // NaN weights: a typed error naming the logits, not a made-up token (before: the last id, every time).
    const nan = new Map(w);
    nan.set('lnf.weight', new Float32Array(w.get('lnf.weight')!.length).fill(NaN));
    const gn = new Generator(model, nan);
    expect(errorOf(() => gn.generate([1], { maxTokens: 2 })).message).toMatch(/Expected finite logits from the model/);
    gn.dispose();
  });
});
