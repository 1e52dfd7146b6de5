import { errorOf } from '../../../testing/errors.js';
import { autocast, byteSizeOf, capture, compile, dryrun, initialValues, planMemory, runPasses, trainingStep } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { GPT, MarkovCorpus, type GPTConfig } from '../src/index.js';


const spec = (B: number, T: number) => ({ tokens: { shape: [B, T], dtype: 'i32' as const }, targets: { shape: [B, T], dtype: 'i32' as const } });

/** Train `config` on a Markov source; returns per-step losses and the source's entropy rate. */
function train(config: GPTConfig, steps: number, seed: number, options: { B?: number; T?: number; lr?: number } = {}) {
  const { B = 8, T = 16, lr = 3e-3 } = options;
  const corpus = new MarkovCorpus({ vocab: config.vocabSize, seed });
  const exe = compile(trainingStep(capture(new GPT(config), spec(B, T)), { optimizer: { weightDecay: 0 } }), { seed });
  const losses: number[] = [];
  for (let s = 1; s <= steps; s++) {
    const { tokens, targets } = corpus.batch(B, T);
    const rate = s <= 20 ? (lr * s) / 20 : lr;
    losses.push(exe.run({ tokens, targets, lr: Float32Array.of(rate), step: Float32Array.of(s) }).loss![0]!);
  }
  exe.dispose();
  return { losses, entropy: corpus.entropyRate() };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('GPT', () => {
  it('names its parameters by module path and ties the head to the token embedding', () => {
    const m = new GPT('tiny');
    const names = m.namedParameters().map(([n]) => n);
    expect(names).toContain('wte.weight');
    expect(names).toContain('blocks.1.attn.qkv.weight');
    expect(names).toContain('blocks.0.mlp.fc.bias');
    expect(names).toContain('lnf.weight');
    expect(names.some((n) => n.startsWith('head'))).toBe(false);
    const g = capture(m, spec(2, 8));
    expect(Object.keys(g.params).sort()).toEqual([...names].sort());
    expect(g.nodes.find((n) => n.scope === 'blocks.1.attn.qkv')?.op).toBe('matmul');
  });

  it('has GPT-2 small’s parameter count', () => {
    const [V, T, L, C] = [50304, 1024, 12, 768];
    // Independent count: embeddings, then per block 2 layernorms, qkv, proj, fc, proj; final norm.
    const block = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C);
    const want = V * C + T * C + L * block + 2 * C;
    expect(new GPT('gpt2-small').parameterCount()).toBe(want);
    expect(want).toBe(124475904);
  });

  it('dryruns GPT-2 small at B = 16, T = 1024 without running it', () => {
    const step = trainingStep(capture(new GPT('gpt2-small'), spec(16, 1024)));
    const r = dryrun(step, { peakTflops: 989, memoryGBps: 4800 });
    expect(r.parameters).toBe(124475904);
    expect(r.parameterBytes).toBe(4 * 124475904);
    expect(r.optimizerStateBytes).toBe(2 * r.parameterBytes);
    // 6 · N · tokens for the weights' matmuls is the floor; attention and the rest add to it.
    expect(r.flopsPerStep).toBeGreaterThan(6 * 124475904 * 16 * 1024 * 0.7);
    expect(r.arenaBytes).toBeGreaterThan(r.activationBytes);
  }, 120_000);

  it('writes dlogits over the logits in GPT-2 small’s bf16 step, so dryrun’s peak drops by the logits’ size', () => {
    // The step the Trainer builds, planned for a GPU (bf16 stored in 2 bytes). Without a GPU here the
    // kernels' workspaces are unknown (on the H200 they add 32 MiB at this peak, cuBLASLt's, measured
    // 2026-12-04).
    const fwd = capture(new GPT('gpt2-small'), spec(16, 1024));
    for (const k of Object.keys(fwd.outputs)) if (k !== 'loss') delete fwd.outputs[k];
    const step = trainingStep(autocast(fwd), { clipGradNorm: 1 });
    const r = dryrun(step, { device: 'cuda:0', peakTflops: 989, memoryGBps: 4800 });
    const g = runPasses(step, { device: 'cuda:0' });
    const plan = planMemory(g, byteSizeOf);
    const apart = planMemory(g, byteSizeOf, undefined, { inplace: false });
    const logitsBytes = 16 * 1024 * 50304 * 2;
    // The loss and dlogits in one op (fuse-cross-entropy), dlogits (its output 1) over the logits.
    const ce = g.nodes.find((n) => n.op === 'cross_entropy_with_grad')!;
    expect(plan.inplace.get(ce.outputs[1]!)).toBe(ce.inputs[0]);
    if (r.workspaceUnknown) expect(r.arenaBytes).toBe(plan.arenaBytes);
    else {
      // With a GPU, dryrun plans the kernels' scratch as well: the arena grows by at most the largest.
      expect(r.arenaBytes).toBeGreaterThanOrEqual(plan.arenaBytes);
      expect(r.arenaBytes).toBeLessThanOrEqual(plan.arenaBytes + r.kernelWorkspaceBytes.largest);
    }
    // Before: logits and dlogits both live at the loss's backward (9.25 GiB in all); after, 7.74.
    expect(apart.peak.bytes - plan.peak.bytes).toBeGreaterThanOrEqual(logitsBytes * 0.95);
    expect(apart.peak.step).toBe(g.nodes.indexOf(ce));
    expect(r.totalBytes).toBeLessThanOrEqual(8.0 * 2 ** 30);
    // No two storage groups share bytes while both are live (sorted by offset: each placement
    // against the ones that start before it ends).
    const rootOf = (id: number): number => plan.aliases.get(id) ?? (plan.inplace.has(id) ? rootOf(plan.inplace.get(id)!) : id);
    const ps = [...plan.placements].filter(([id]) => rootOf(id) === id).sort((a, b) => a[1].offset - b[1].offset);
    for (let i = 0; i < ps.length; i++) {
      const [, a] = ps[i]!;
      for (let j = i + 1; j < ps.length && ps[j]![1].offset < a.offset + a.bytes; j++) {
        const [, b] = ps[j]!;
        expect(a.first <= b.last && b.first <= a.last, `values %${ps[i]![0]} and %${ps[j]![0]}`).toBe(false);
      }
    }
  }, 120_000);

  it('trains on the CPU to within 10% of the corpus entropy rate', () => {
    const { losses, entropy } = train({ vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32 }, 400, 11);
    const final = mean(losses.slice(-50)); // each batch is fresh data: an unbiased estimate
    expect(losses[0]!).toBeGreaterThan(Math.log(16) * 0.9); // it starts near uniform
    expect(final).toBeLessThan(1.1 * entropy);
    expect(final).toBeGreaterThan(0.9 * entropy); // no model can beat the source by much
  }, 120_000);

  it('gives identical losses for the same seed', () => {
    const cfg = { vocabSize: 16, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16 };
    const a = train(cfg, 15, 5, { B: 4, T: 8 }).losses;
    const b = train(cfg, 15, 5, { B: 4, T: 8 }).losses;
    const c = train(cfg, 15, 6, { B: 4, T: 8 }).losses;
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('trains a 4-expert top-2 MoE GPT too', () => {
    const { losses, entropy } = train({ vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32, moe: { experts: 4, topK: 2 } }, 400, 11);
    // The loss includes the load-balancing term: weight 0.01 × (>= 1 per MoE layer) × 2 layers.
    expect(mean(losses.slice(-50))).toBeLessThan(1.1 * entropy + 0.02);
  }, 180_000);

  it('trains with SwiGLU and RMSNorm', () => {
    const { losses } = train({ vocabSize: 16, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16, activation: 'swiglu', norm: 'rmsnorm', tiedEmbeddings: false }, 60, 3, { B: 4, T: 8, lr: 1e-2 });
    expect(mean(losses.slice(-10))).toBeLessThan(mean(losses.slice(0, 5)) - 0.2);
  });

  it('starts its position embedding as the sinusoidal table when asked, and nothing else changes', () => {
    const cfg = { vocabSize: 16, blockSize: 12, nLayer: 1, nHead: 2, nEmbd: 8 };
    const seed = 1 + Math.floor(Math.random() * 1000);
    const exe = (c: GPTConfig) => compile(capture(new GPT(c), spec(1, 4)), { seed });
    const [plain, sin] = [exe(cfg), exe({ ...cfg, positionInit: 'sinusoidal' })];
    const wpe = sin.get('wpe.weight');
    for (let p = 0; p < 12; p++) {
      for (let c = 0; c < 8; c++) {
        // Row p, column c: the angle p / 10000^(2⌊c/2⌋ / C), sin in even columns and cos in odd ones.
        const angle = p / 10000 ** ((c - (c % 2)) / 8);
        expect(wpe[p * 8 + c]).toBeCloseTo(0.02 * (c % 2 ? Math.cos(angle) : Math.sin(angle)), 7);
      }
    }
    expect(Array.from(plain.get('wpe.weight'))).not.toEqual(Array.from(wpe));
    for (const name of ['wte.weight', 'blocks.0.attn.qkv.weight', 'blocks.0.mlp.fc.weight']) expect(Array.from(sin.get(name))).toEqual(Array.from(plain.get(name)));
    plain.dispose();
    sin.dispose();
    expect(errorOf(() => new GPT({ ...cfg, positionInit: 'rope' as never })).message).toMatch(/Expected one of 'normal', 'sinusoidal' for GPT config positionInit but received "rope"/);
    expect(errorOf(() => new GPT({ ...cfg, nHead: 1, nEmbd: 7, positionInit: 'sinusoidal' })).message).toMatch(/even nEmbd/);
    expect(errorOf(() => new GPT({ ...cfg, positionInit: 'sinusoidal', positionBase: 1 })).message).toMatch(/Expected a finite number above 1 for GPT config positionBase but received 1/);
    expect(errorOf(() => new GPT({ ...cfg, positionBase: 10 })).message).toMatch(/Expected positionInit 'sinusoidal' with GPT config positionBase/);
    // Another base: row 5, columns 2 and 3 at the angle 5 / 10^(2/8).
    const short = compile(capture(new GPT({ ...cfg, positionInit: 'sinusoidal', positionBase: 10 }), spec(1, 4)), { seed });
    expect(short.get('wpe.weight')[5 * 8 + 2]).toBeCloseTo(0.02 * Math.sin(5 / 10 ** 0.25), 7);
    expect(short.get('wpe.weight')[5 * 8 + 3]).toBeCloseTo(0.02 * Math.cos(5 / 10 ** 0.25), 7);
    short.dispose();
    expect(errorOf(() => initialValues({ dist: 'sinusoidal', scale: 1 }, 12, 0, 'x')).message).toMatch(/Expected an even column count dividing the 12 values for the sinusoidal initialisation of 'x' but received undefined/);
    expect(errorOf(() => initialValues({ dist: 'sinusoidal', columns: 5 }, 10, 0, 'x')).code).toBe('INVALID_ARGUMENT');
  });

  it('gives typed errors for bad configs and inputs', () => {
    expect(errorOf(() => new GPT('gpt5' as never)).message).toMatch(/Expected one of gpt2-small, tiny, tiny-moe, moe-8x for GPT preset/);
    expect(errorOf(() => new GPT({ vocabSize: 16, blockSize: 8, nLayer: 1, nHead: 3, nEmbd: 16 })).message).toMatch(/divisible by nHead/);
    expect(errorOf(() => new GPT({ vocabSize: 0, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16 })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => new GPT({ vocabSize: 16, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16, activation: 'relu' as never })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => new GPT({ vocabSize: 16, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16, moe: { experts: 2, topK: 3 } })).message).toMatch(/topK/);
    const m = new GPT({ vocabSize: 16, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16 });
    expect(errorOf(() => capture(m, spec(2, 9))).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => capture(m, { tokens: { shape: [2, 4] } })).message).toMatch(/Expected i32\[B, T\] for GPT input 'tokens'/);
    const exe = compile(capture(m, spec(1, 4)));
    const e = errorOf(() => exe.run({ tokens: Int32Array.of(1, 2, 99, 3), targets: Int32Array.of(1, 2, 3, 4) }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/Expected ids in \[0, 16\) for input 'tokens' \(used by embedding\) but received 99 at position 2/);
    // The edges: the vocabulary size itself, and a negative id where no ignore index is allowed.
    expect(errorOf(() => exe.run({ tokens: Int32Array.of(1, 2, 3, 16), targets: Int32Array.of(1, 2, 3, 4) })).message).toMatch(/received 16 at position 3/);
    expect(errorOf(() => exe.run({ tokens: Int32Array.of(-1, 2, 3, 4), targets: Int32Array.of(1, 2, 3, 4) })).message).toMatch(/received -1 at position 0/);
    expect(errorOf(() => exe.run({ tokens: Int32Array.of(1, 2, 3, 4), targets: Int32Array.of(1, 2, -2, 4) })).message).toMatch(/or -1 for input 'targets'.*received -2 at position 2/);
    expect(exe.run({ tokens: Int32Array.of(0, 15, 3, 4), targets: Int32Array.of(1, -1, 15, 0) }).loss![0]).toBeGreaterThan(0);
    exe.dispose();
  });

  it('names an unknown config key with a suggestion (issue 19): a near key, another library\'s name, or what Deepwell does instead', () => {
    const n = 1 + Math.floor(Math.random() * 3);
    const base = { vocabSize: 16, blockSize: 8, nLayer: n, nHead: 2, nEmbd: 16 };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ nLayers: n }, /^Expected one of vocabSize, blockSize, nLayer, .* for a GPT config key but received 'nLayers' \(did you mean nLayer\?\)$/],
      [{ dropout: 0.1 }, /'dropout' \(Deepwell's GPT has no dropout/],
      [{ n_embd: 16 }, /'n_embd' \(did you mean nEmbd\?\)/],
      [{ num_attention_heads: 2 }, /'num_attention_heads' \(did you mean nHead\?\)/],
      [{ tiedEmbedding: false }, /'tiedEmbedding' \(did you mean tiedEmbeddings\?\)/],
      [{ moe: { experts: 4, topK: 2, capacity: 1.5 } }, /for a GPT config moe key but received 'capacity' \(did you mean capacityFactor\?\)/],
      [{ zebra: 1 }, /received 'zebra'$/],
    ];
    for (const [extra, re] of cases) {
      const e = errorOf(() => new GPT({ ...base, ...extra } as GPTConfig));
      expect(e.code, Object.keys(extra)[0]).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(re);
    }
    expect(new GPT(base).blocks.length).toBe(n);
  });
});

describe('MarkovCorpus', () => {
  it('has the entropy rate its samples show', () => {
    const c = new MarkovCorpus({ vocab: 8, seed: 3 });
    const s = c.sample(200_000);
    // Empirical conditional entropy from counts, against the exact rate.
    const counts = new Float64Array(64);
    for (let i = 1; i < s.length; i++) counts[s[i - 1]! * 8 + s[i]!]!++;
    let h = 0;
    for (let a = 0; a < 8; a++) {
      let row = 0;
      for (let b = 0; b < 8; b++) row += counts[a * 8 + b]!;
      for (let b = 0; b < 8; b++) if (counts[a * 8 + b]) h -= (counts[a * 8 + b]! / (s.length - 1)) * Math.log(counts[a * 8 + b]! / row);
    }
    expect(Math.abs(h - c.entropyRate())).toBeLessThan(0.02);
    expect(c.entropyRate()).toBeLessThan(Math.log(8));
  });

  it('is deterministic per seed, and batches are next-token pairs', () => {
    const a = new MarkovCorpus({ vocab: 16, seed: 9, order: 2 }).batch(3, 10);
    const b = new MarkovCorpus({ vocab: 16, seed: 9, order: 2 }).batch(3, 10);
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
    for (let r = 0; r < 3; r++) for (let t = 0; t < 9; t++) expect(a.targets[r * 10 + t]).toBe(a.tokens[r * 10 + t + 1]);
    expect(() => new MarkovCorpus({ vocab: 1 })).toThrow(/Markov vocab/);
    expect(() => new MarkovCorpus({ vocab: 4, order: 3 as never })).toThrow(/Markov order/);
  });
});
