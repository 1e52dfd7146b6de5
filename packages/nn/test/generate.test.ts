// Generation: decoding over the key/value cache and the padded, compiled-once forward against an
// exact-length forward per token, the cached decode step's logits against the forward's, seeds, and
// the sampler's distribution.
import { autocast, capture, compile } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { GPT, GPTDecode, Generator, sampleToken, type GPTConfig } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const cfg: GPTConfig = { vocabSize: 13, blockSize: 12, nLayer: 2, nHead: 2, nEmbd: 16 };

/** Trained-looking weights: the initialisation of a random seed, scaled up so logits are not flat. */
function weightsOf(config: GPTConfig): Map<string, Float32Array> {
  const exe = compile(capture(new GPT(config), { tokens: { shape: [1, 2], dtype: 'i32' } }), { seed: 1 + Math.floor(Math.random() * 1e6) });
  const w = new Map(exe.parameterNames().map((n) => [n, exe.get(n).map((x) => (n.includes('ln') ? x : x * 20))] as const));
  exe.dispose();
  return w;
}

/** Greedy decoding the plain way: a fresh exact-length forward for every token, argmax of the last row. */
function greedyReference(config: GPTConfig, w: Map<string, Float32Array>, prompt: number[], n: number): number[] {
  const ctx = [...prompt];
  const out: number[] = [];
  for (let s = 0; s < n; s++) {
    const window = ctx.slice(-config.blockSize);
    const exe = compile(capture(new GPT(config), { tokens: { shape: [1, window.length], dtype: 'i32' } }));
    for (const [k, v] of w) exe.set(k, v);
    const logits = exe.run({ tokens: Int32Array.from(window) }).logits!;
    exe.dispose();
    const row = Array.from(logits.subarray((window.length - 1) * config.vocabSize, window.length * config.vocabSize));
    const next = row.indexOf(Math.max(...row));
    out.push(next);
    ctx.push(next);
  }
  return out;
}

describe('Generator', () => {
  it('greedy decoding equals an exact-length forward per token, also past the context', () => {
    const w = weightsOf(cfg);
    const g = new Generator(new GPT(cfg), w);
    const prompt = Array.from({ length: 4 }, () => Math.floor(Math.random() * 13));
    const got = g.generate(prompt, { maxTokens: 14, temperature: 0 }); // 4 + 14 > blockSize 12: the window slides
    expect(got).toEqual(greedyReference(cfg, w, prompt, 14));
    expect(g.generate(prompt, { maxTokens: 14, topK: 1, seed: 3 })).toEqual(got); // top-1 is greedy
    g.dispose();
  });

  it.each([
    ['multi-head', cfg],
    ['grouped-query, composite attention, no bias', { ...cfg, nHead: 4, nKvHead: 1, fusedAttention: false, bias: false }],
    ['RMSNorm, SwiGLU, untied head', { ...cfg, norm: 'rmsnorm', activation: 'swiglu', tiedEmbeddings: false }],
  ] as [string, GPTConfig][])('greedy with the key/value cache equals greedy without it, token for token, past the context too (%s)', (_name, config) => {
    const w = weightsOf(config);
    const cached = new Generator(new GPT(config), w);
    const plain = new Generator(new GPT(config), w, { cache: false });
    expect(cached.cache).toBe(true);
    expect(plain.cache).toBe(false);
    for (const length of [1, 5]) {
      const prompt = Array.from({ length }, () => Math.floor(Math.random() * 13));
      const got = cached.generate(prompt, { maxTokens: 16 - length, temperature: 0 }); // runs past blockSize 12
      expect(got).toEqual(plain.generate(prompt, { maxTokens: 16 - length, temperature: 0 }));
      expect(got).toEqual(greedyReference(config, w, prompt, 16 - length));
    }
    cached.dispose();
    plain.dispose();
  });

  it('a decode step gives bitwise the logits of the forward at every position (CPU, f32)', () => {
    const w = weightsOf(cfg);
    const T = cfg.blockSize;
    const tokens = Int32Array.from({ length: T }, () => Math.floor(Math.random() * 13));
    const full = compile(capture(new GPT(cfg), { tokens: { shape: [1, T], dtype: 'i32' } }));
    const step = compile(capture(new GPTDecode(new GPT(cfg)), { tokens: { shape: [1, 1], dtype: 'i32' }, pos: { shape: [1], dtype: 'i32' } }));
    for (const [k, v] of w) {
      full.set(k, v);
      step.set(k, v);
    }
    const want = full.run({ tokens }).logits!;
    for (let p = 0; p < T; p++) {
      const got = step.run({ tokens: tokens.subarray(p, p + 1), pos: Int32Array.from([p]) }).logits!;
      expect(Array.from(got)).toEqual(Array.from(want.subarray(p * 13, (p + 1) * 13)));
    }
    full.dispose();
    step.dispose();
  });

  it('keeps the caches as state in bf16 under autocast, and generates the tokens the uncached bf16 path does', () => {
    const g = autocast(capture(new GPTDecode(new GPT(cfg)), { tokens: { shape: [1, 1], dtype: 'i32' }, pos: { shape: [1], dtype: 'i32' } }));
    const caches = Object.entries(g.state);
    expect(caches.map(([n]) => n).sort()).toEqual(['blocks.0.attn.kcache', 'blocks.0.attn.vcache', 'blocks.1.attn.kcache', 'blocks.1.attn.vcache']);
    for (const [, id] of caches) expect(g.values[id]!.type).toEqual({ shape: [1, 2, 12, 8], dtype: 'bf16' });
    expect(Object.keys(g.updates).sort()).toEqual(caches.map(([n]) => n).sort());
    const w = weightsOf(cfg);
    const prompt = [3, 1, 4];
    const a = new Generator(new GPT(cfg), w, { precision: 'bf16' }).generate(prompt, { maxTokens: 8, temperature: 0 });
    expect(a).toEqual(new Generator(new GPT(cfg), w, { precision: 'bf16', cache: false }).generate(prompt, { maxTokens: 8, temperature: 0 }));
  });

  it('decodes SparseK models without a cache, and says so when asked for one', () => {
    const sparse: GPTConfig = { ...cfg, attention: { kind: 'sparsek', blockSize: 4, topK: 1 } };
    const w = weightsOf(sparse);
    expect(new Generator(new GPT(sparse), w).cache).toBe(false);
    expect(errorOf(() => new Generator(new GPT(sparse), w, { cache: true })).message).toMatch(/dense attention for cache: true/);
    expect(errorOf(() => new Generator(new GPT(cfg), weightsOf(cfg), { cash: true } as never)).message).toMatch(/generator option but received 'cash'/);
    expect(errorOf(() => new Generator(new GPT(cfg), weightsOf(cfg), { precision: 'fp16' } as never)).message).toMatch(/'f32' or 'bf16' for the generator's precision but received fp16/);
    expect(errorOf(() => capture(new GPTDecode(new GPT(cfg), { cacheLength: 13 }), { tokens: { shape: [1, 1], dtype: 'i32' }, pos: { shape: [1], dtype: 'i32' } })).message).toMatch(/cacheLength/);
  });

  it('samples the same tokens for the same seed, and stops at the stop token', () => {
    const w = weightsOf(cfg);
    const g = new Generator(new GPT(cfg), w);
    const a = g.generate([1, 2, 3], { maxTokens: 10, seed: 7, temperature: 1.5 });
    expect(g.generate([1, 2, 3], { maxTokens: 10, seed: 7, temperature: 1.5 })).toEqual(a);
    const others = [8, 9, 10, 11].map((seed) => g.generate([1, 2, 3], { maxTokens: 10, seed, temperature: 1.5 }));
    expect(others.some((o) => o.join() !== a.join())).toBe(true);
    // A padded vocabulary: only the first 5 ids are ever drawn.
    const five = [0, 1, 2, 3].flatMap((seed) => g.generate([1, 2, 3], { maxTokens: 10, seed, temperature: 3, vocab: 5 }));
    expect(five.every((t) => t < 5)).toBe(true);
    expect(new Set(five).size).toBeGreaterThan(2);
    expect(errorOf(() => g.generate([1], { maxTokens: 1, vocab: 14 })).message).toMatch(/vocab in \[1, 13\]/);
    const stop = a[4]!;
    const cut = g.generate([1, 2, 3], { maxTokens: 10, seed: 7, temperature: 1.5, stop });
    expect(cut).toEqual(a.slice(0, a.indexOf(stop) + 1));
    g.dispose();
  });

  it('draws from softmax(logits / T), cut to top-k and top-p', () => {
    const logits = Float32Array.from({ length: 6 }, () => Math.random() * 4 - 2);
    const p = Array.from(logits, (x) => Math.exp(x / 0.7));
    const z = p.reduce((a, b) => a + b, 0);
    const N = 20000;
    const counts = new Array(6).fill(0);
    for (let i = 0; i < N; i++) counts[sampleToken(logits, { temperature: 0.7, topK: Infinity, topP: 1 }, (i + 0.5) / N)]++;
    // A stratified u covers [0, 1) evenly: each frequency within 1/N·6 of its probability.
    counts.forEach((c, i) => expect(Math.abs(c / N - p[i]! / z)).toBeLessThan(6 / N + 1e-9));
    const order = Array.from({ length: 6 }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
    const seen = new Set(Array.from({ length: 1000 }, (_, i) => sampleToken(logits, { temperature: 1, topK: 2, topP: 1 }, i / 1000)));
    expect([...seen].sort()).toEqual(order.slice(0, 2).sort());
    // top-p: the smallest prefix of the sorted probabilities holding p of the mass.
    const q = order.map((i) => Math.exp(logits[i]!));
    const mass = q[0]! / q.reduce((a, b) => a + b, 0);
    const onlyFirst = new Set(Array.from({ length: 1000 }, (_, i) => sampleToken(logits, { temperature: 1, topK: Infinity, topP: mass * 0.99 }, i / 1000)));
    expect([...onlyFirst]).toEqual([order[0]]);
  });

  it('says what is wrong with the prompt, the options and the weights', () => {
    const w = weightsOf(cfg);
    const g = new Generator(new GPT(cfg), w);
    expect(errorOf(() => g.generate(new Array(13).fill(1), { maxTokens: 1 })).message).toMatch(/prompt of at most the model's context \(blockSize 12 tokens\) but received 13/);
    expect(errorOf(() => g.generate([], { maxTokens: 1 })).message).toMatch(/at least one prompt token/);
    expect(errorOf(() => g.generate([1, 13], { maxTokens: 1 })).message).toMatch(/prompt tokens in \[0, 13\) but received 13 at position 1/);
    expect(errorOf(() => g.generate([1], { maxTokens: 0 })).message).toMatch(/positive integer for maxTokens/);
    expect(errorOf(() => g.generate([1], { maxTokens: 1, temperature: -1 })).message).toMatch(/temperature >= 0/);
    expect(errorOf(() => g.generate([1], { maxTokens: 1, topP: 0 })).message).toMatch(/topP in \(0, 1\]/);
    expect(errorOf(() => g.generate([1], { maxTokens: 1, topK: 0 })).message).toMatch(/positive integer for topK/);
    expect(errorOf(() => g.generate([1], { maxTokens: 1, max_tokens: 3 } as never)).message).toMatch(/for a sampling option but received 'max_tokens'/);
    const less = new Map(w);
    less.delete('lnf.bias');
    expect(errorOf(() => new Generator(new GPT(cfg), less)).message).toMatch(/1 are missing: lnf.bias/);
    expect(errorOf(() => new Generator(new GPT(cfg), new Map([...w, ['x', new Float32Array(1)]]))).message).toMatch(/only the model's parameters .* x/);
    const wrong = new Map(w);
    wrong.set('wte.weight', new Float32Array(5));
    expect(errorOf(() => new Generator(new GPT(cfg), wrong).generate([1], { maxTokens: 1 })).code).toMatch(/SHAPE_MISMATCH|INVALID_ARGUMENT/);
    g.dispose();
  });
});
