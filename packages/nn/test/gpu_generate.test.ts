// Generation on the GPU: the decode step (key/value caches as graph state, kv_cache_write and
// sdpa_decode, one CUDA graph replayed per token) against the CPU reference's logits, greedy decoding
// with the cache equal to greedy decoding without it token for token, and seeded sampling repeatable.
// Skips cleanly without a GPU.
import { capture, compile } from '@deepwell/ir';
import { cudaStatus } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { GPT, GPTDecode, Generator, type GPTConfig } from '../src/index.js';

const gpu = cudaStatus().available;
const CONFIGS: [string, GPTConfig][] = [
  ['GQA 4/2, head dimension 16', { vocabSize: 64, blockSize: 48, nLayer: 2, nHead: 4, nKvHead: 2, nEmbd: 64 }],
  ['head dimension 64', { vocabSize: 96, blockSize: 40, nLayer: 2, nHead: 2, nEmbd: 128 }],
];

/** Trained-looking weights: a random seed's initialisation scaled up so logits are not flat. */
function weightsOf(config: GPTConfig): Map<string, Float32Array> {
  const exe = compile(capture(new GPT(config), { tokens: { shape: [1, 2], dtype: 'i32' } }), { seed: 1 + Math.floor(Math.random() * 1e6) });
  const w = new Map(exe.parameterNames().map((n) => [n, exe.get(n).map((x) => (n.includes('ln') ? x : x * 10))] as const));
  exe.dispose();
  return w;
}

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(got[i]!)) return Infinity;
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

describe.skipIf(!gpu)('generation on the GPU', () => {
  it.each(CONFIGS)('the decode step’s logits (f32) track the CPU reference at every position (%s)', (_name, config) => {
    const w = weightsOf(config);
    const T = config.blockSize;
    const V = config.vocabSize;
    const tokens = Int32Array.from({ length: T }, () => Math.floor(Math.random() * V));
    const spec = { tokens: { shape: [1, 1], dtype: 'i32' as const }, pos: { shape: [1], dtype: 'i32' as const } };
    const steps = ['cpu', 'cuda:0'].map((device) => {
      const exe = compile(capture(new GPTDecode(new GPT(config)), spec), { device });
      for (const [k, v] of w) exe.set(k, v);
      return exe;
    });
    const errs: number[] = [];
    const cpuRows = new Float32Array(T * V);
    for (let p = 0; p < T; p++) {
      const [cpu, cuda] = steps.map((exe) => exe.run({ tokens: tokens.subarray(p, p + 1), pos: Int32Array.of(p) }).logits!);
      errs.push(relErr(cuda!, cpu!));
      cpuRows.set(cpu!, p * V);
    }
    // The GPU's forward without the cache (the path generate() takes past the context) on the same
    // tokens: every row against the CPU's decode steps.
    const forward = compile(capture(new GPT(config), { tokens: { shape: [1, T], dtype: 'i32' } }), { device: 'cuda:0' });
    for (const [k, v] of w) forward.set(k, v);
    const whole = forward.run({ tokens }).logits!;
    const rowErrs = Array.from({ length: T }, (_, p) => relErr(whole.subarray(p * V, (p + 1) * V), cpuRows.subarray(p * V, (p + 1) * V)));
    console.log(`decode logits, GPU f32 vs CPU: max relative error ${Math.max(...errs).toExponential(2)}; GPU forward vs CPU decode ${Math.max(...rowErrs).toExponential(2)}`);
    // f32 GEMMs on the GPU run on TF32 tensor cores (10-bit mantissas): about 1e-3 relative.
    expect(Math.max(...errs)).toBeLessThan(1e-2);
    expect(Math.max(...rowErrs)).toBeLessThan(1e-2);
    for (const exe of [...steps, forward]) exe.dispose();
  });

  it.each(CONFIGS)('greedy with the cache equals greedy without it, token for token; seeded sampling repeats; bf16 runs (%s)', (_name, config) => {
    const w = weightsOf(config);
    const cached = new Generator(new GPT(config), w, { device: 'cuda:0', precision: 'f32' });
    const plain = new Generator(new GPT(config), w, { device: 'cuda:0', precision: 'f32', cache: false });
    const prompt = Array.from({ length: 5 }, () => Math.floor(Math.random() * config.vocabSize));
    const n = config.blockSize + 4 - prompt.length; // past the context: the last tokens without the cache
    const a = cached.generate(prompt, { maxTokens: n, temperature: 0 });
    const b = plain.generate(prompt, { maxTokens: n, temperature: 0 });
    const k = a.findIndex((t, i) => t !== b[i]);
    if (k >= 0) {
      // The two paths round differently (one row at a time against whole blocks), so greedy may part
      // at a near tie, and only there: the CPU's logits after the shared tokens must put the two
      // choices within a rounding of each other.
      const ctx = Int32Array.from([...prompt, ...a.slice(0, k)]);
      const exe = compile(capture(new GPT(config), { tokens: { shape: [1, ctx.length], dtype: 'i32' } }));
      for (const [name, v] of w) exe.set(name, v);
      const last = exe.run({ tokens: ctx }).logits!.subarray((ctx.length - 1) * config.vocabSize);
      const scale = Math.max(...Array.from(last, Math.abs));
      const gap = Math.abs(last[a[k]!]! - last[b[k]!]!) / scale;
      console.log(`greedy parts at token ${k} (${a[k]} with the cache, ${b[k]} without): CPU logits ${last[a[k]!]} and ${last[b[k]!]}, gap ${gap.toExponential(2)} of the largest`);
      exe.dispose();
      expect(gap).toBeLessThan(1e-4);
    }
    const bf16 = new Generator(new GPT(config), w, { device: 'cuda:0' });
    const s1 = bf16.generate(prompt, { maxTokens: 20, temperature: 0.8, topK: 10, seed: 5 });
    expect(bf16.generate(prompt, { maxTokens: 20, temperature: 0.8, topK: 10, seed: 5 })).toEqual(s1);
    expect(s1.every((t) => Number.isInteger(t) && t >= 0 && t < config.vocabSize)).toBe(true);
    for (const g of [cached, plain, bf16]) g.dispose();
  });
});
